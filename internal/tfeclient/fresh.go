package tfeclient

import (
	"context"
	"errors"
	"sync"
)

// Fresh shares a read among the callers that want it at the same time,
// without ever giving one an answer read before it asked: a caller that
// finds no read of its key in flight starts one; a caller that finds one
// in flight (it started before the caller asked, so it may miss what the
// caller was told of) waits for it to end and shares the next one, which
// the first of them to come starts. However many callers come, a key has
// at most one read in flight and one waiting, and each answer was read
// after each of its callers asked.
//
// A read that fails because its starter's context ended is not an answer
// for the others: they try again. The zero value is ready to use.
type Fresh[K comparable, V any] struct {
	mu    sync.Mutex
	reads map[K]*freshKey[V]
}

type freshKey[V any] struct {
	inFlight *freshRead[V] // started: its answer may predate a newcomer's question
	next     *freshRead[V] // not started: its answer will not
}

type freshRead[V any] struct {
	done    chan struct{}
	v       V
	err     error
	callers int
}

// Do returns an answer of read for key read after Do was called, and
// whether this caller's own call of read gave it (false: it shared one).
func (f *Fresh[K, V]) Do(ctx context.Context, key K, read func(context.Context) (V, error)) (v V, own bool, err error) {
	for {
		v, own, err = f.do(ctx, key, read)
		if err == nil || own || ctx.Err() != nil || !isContextErr(err) {
			return v, own, err
		}
		// The read this caller shared ended with its starter's context,
		// not with an answer: try again.
	}
}

func (f *Fresh[K, V]) do(ctx context.Context, key K, read func(context.Context) (V, error)) (V, bool, error) {
	f.mu.Lock()
	if f.reads == nil {
		f.reads = map[K]*freshKey[V]{}
	}
	k := f.reads[key]
	if k == nil {
		k = &freshKey[V]{}
		f.reads[key] = k
	}
	if k.inFlight == nil {
		r := &freshRead[V]{done: make(chan struct{})}
		k.inFlight = r
		f.mu.Unlock()
		f.run(ctx, key, k, r, read)
		return r.v, true, r.err
	}
	lead := k.next == nil
	if lead {
		k.next = &freshRead[V]{done: make(chan struct{})}
	}
	r, prev := k.next, k.inFlight
	r.callers++
	f.mu.Unlock()

	if !lead {
		select {
		case <-r.done:
			return r.v, false, r.err
		case <-ctx.Done():
			var zero V
			return zero, false, ctx.Err()
		}
	}
	// This caller starts the next read once the one in flight ended; it
	// waits for it whatever its own context says, or those sharing the
	// next read would wait for nobody.
	<-prev.done // and made r the read in flight
	f.run(ctx, key, k, r, read)
	return r.v, true, r.err
}

func (f *Fresh[K, V]) run(ctx context.Context, key K, k *freshKey[V], r *freshRead[V], read func(context.Context) (V, error)) {
	defer func() {
		f.mu.Lock()
		k.inFlight, k.next = k.next, nil // its leader, waiting on r, starts it
		if k.inFlight == nil {
			delete(f.reads, key)
		}
		f.mu.Unlock()
		close(r.done)
	}()
	if err := ctx.Err(); err != nil {
		r.err = err
		return
	}
	r.v, r.err = read(ctx)
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
