package tfeclient

import (
	"context"
	"errors"
	"sync"
	"time"
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
// A caller whose question is older than its call (DoSince: it wants what
// TFE said after some moment, an event it was told of) also takes a read
// started since then: the one in flight, or the last answer, kept for
// Keep.
//
// A read that fails because its starter's context ended is not an answer
// for the others: they try again. The zero value is ready to use and keeps
// no answer; keys must be few (the last answer of each is kept).
type Fresh[K comparable, V any] struct {
	// Keep is how long the last answer of a key stays for DoSince.
	Keep time.Duration

	mu    sync.Mutex
	reads map[K]*freshKey[V]
}

type freshKey[V any] struct {
	inFlight *freshRead[V] // started: its answer may predate a newcomer's question
	next     *freshRead[V] // not started: its answer will not
	last     *freshRead[V] // the last answer, for DoSince
}

type freshRead[V any] struct {
	done    chan struct{}
	started time.Time // by the local clock; zero until it starts
	v       V
	err     error
	callers int
}

// Do returns an answer of read for key read after Do was called, and
// whether this caller's own call of read gave it (false: it shared one).
func (f *Fresh[K, V]) Do(ctx context.Context, key K, read func(context.Context) (V, error)) (v V, own bool, err error) {
	return f.DoSince(ctx, key, time.Time{}, read)
}

// DoSince is Do for a question asked at since (by the local clock, before
// the call; zero: now): a read that started at or after since answers it,
// the one in flight or the last, if it is not older than Keep.
func (f *Fresh[K, V]) DoSince(ctx context.Context, key K, since time.Time, read func(context.Context) (V, error)) (v V, own bool, err error) {
	for {
		v, own, err = f.do(ctx, key, since, read)
		if err == nil || own || ctx.Err() != nil || !isContextErr(err) {
			return v, own, err
		}
		// The read this caller shared ended with its starter's context,
		// not with an answer: try again.
	}
}

func (f *Fresh[K, V]) do(ctx context.Context, key K, since time.Time, read func(context.Context) (V, error)) (V, bool, error) {
	f.mu.Lock()
	if f.reads == nil {
		f.reads = map[K]*freshKey[V]{}
	}
	k := f.reads[key]
	if k == nil {
		k = &freshKey[V]{}
		f.reads[key] = k
	}
	if last := k.last; last != nil && time.Since(last.started) > f.Keep {
		k.last = nil
	}
	if answers := func(r *freshRead[V]) bool {
		return r != nil && !since.IsZero() && !r.started.Before(since)
	}; answers(k.last) || answers(k.inFlight) {
		r := k.last
		if answers(k.inFlight) {
			r = k.inFlight // newer
		}
		f.mu.Unlock()
		return r.wait(ctx)
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
		return r.wait(ctx)
	}
	// This caller starts the next read once the one in flight ended; it
	// waits for it whatever its own context says, or those sharing the
	// next read would wait for nobody.
	<-prev.done // and made r the read in flight
	f.run(ctx, key, k, r, read)
	return r.v, true, r.err
}

// wait is a caller's share of read r: its answer, or ctx's end.
func (r *freshRead[V]) wait(ctx context.Context) (V, bool, error) {
	select {
	case <-r.done:
		return r.v, false, r.err
	case <-ctx.Done():
		var zero V
		return zero, false, ctx.Err()
	}
}

func (f *Fresh[K, V]) run(ctx context.Context, key K, k *freshKey[V], r *freshRead[V], read func(context.Context) (V, error)) {
	f.mu.Lock()
	r.started = time.Now() // before the request: its answer is later still
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		k.inFlight, k.next = k.next, nil // its leader, waiting on r, starts it
		if r.err == nil && f.Keep > 0 {
			k.last = r
		}
		if k.inFlight == nil && k.last == nil {
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
