package tfeclient

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
)

// reads is a read whose calls are numbered and each waits until the test
// lets it answer.
type reads struct {
	n       atomic.Int32
	started chan int32
	release chan struct{}
}

func newReads() *reads {
	return &reads{started: make(chan int32, 16), release: make(chan struct{}, 16)}
}

func (r *reads) read(ctx context.Context) (int32, error) {
	n := r.n.Add(1)
	r.started <- n
	select {
	case <-r.release:
		return n, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

type answer struct {
	v   int32
	own bool
	err error
}

func ask(f *Fresh[string, int32], ctx context.Context, r *reads) chan answer {
	out := make(chan answer, 1)
	go func() {
		v, own, err := f.Do(ctx, "org", r.read)
		out <- answer{v, own, err}
	}()
	return out
}

// Callers who come while a read is in flight never get its answer (it may
// predate what they were told): they share the next read, one for all.
func TestFreshNeverAnswersWithAnOlderRead(t *testing.T) {
	var f Fresh[string, int32]
	r := newReads()
	a := ask(&f, context.Background(), r)
	if n := <-r.started; n != 1 {
		t.Fatalf("read %d started, want 1", n)
	}
	var later []chan answer
	for range 5 {
		later = append(later, ask(&f, context.Background(), r))
	}
	testutil.WaitFor(t, "five callers to wait for the next read", 10*time.Second, func() bool { return f.waiting("org") == 5 })
	if len(r.started) > 0 {
		t.Fatalf("a read started while one was in flight")
	}
	r.release <- struct{}{}
	if got := <-a; got.v != 1 || !got.own || got.err != nil {
		t.Fatalf("first caller got %+v, want its own read 1", got)
	}
	if n := <-r.started; n != 2 {
		t.Fatalf("read %d started, want 2", n)
	}
	r.release <- struct{}{}
	owners := 0
	for _, c := range later {
		got := <-c
		if got.v != 2 || got.err != nil {
			t.Fatalf("a caller who came during read 1 got %+v, want read 2", got)
		}
		if got.own {
			owners++
		}
	}
	if owners != 1 || r.n.Load() != 2 {
		t.Fatalf("%d callers read themselves, %d reads in all; want 1 and 2", owners, r.n.Load())
	}
}

// waiting is how many callers wait for key's next read.
func (f *Fresh[K, V]) waiting(key K) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if k := f.reads[key]; k != nil && k.next != nil {
		return k.next.callers
	}
	return 0
}

// A caller whose context ends while it waits to start the next read still
// starts nothing with it; those sharing it try again with reads of their
// own, and get fresh answers.
func TestFreshStarterGivingUpFailsNoOther(t *testing.T) {
	var f Fresh[string, int32]
	r := newReads()
	a := ask(&f, context.Background(), r)
	<-r.started
	ctx, cancel := context.WithCancel(context.Background())
	b := ask(&f, ctx, r)
	testutil.WaitFor(t, "b to lead the next read", 10*time.Second, func() bool { return f.waiting("org") == 1 })
	c := ask(&f, context.Background(), r)
	testutil.WaitFor(t, "c to share it", 10*time.Second, func() bool { return f.waiting("org") == 2 })
	cancel()
	r.release <- struct{}{}
	if got := <-a; got.v != 1 {
		t.Fatalf("a got %+v", got)
	}
	if got := <-b; got.err == nil {
		t.Fatalf("b, given up, got %+v", got)
	}
	if n := <-r.started; n != 2 {
		t.Fatalf("read %d started, want 2 (c's own)", n)
	}
	r.release <- struct{}{}
	if got := <-c; got.v != 2 || !got.own || got.err != nil {
		t.Fatalf("c got %+v, want its own read 2", got)
	}
	// Nothing left behind: a next caller reads at once.
	d := ask(&f, context.Background(), r)
	if n := <-r.started; n != 3 {
		t.Fatalf("read %d started, want 3", n)
	}
	r.release <- struct{}{}
	if got := <-d; got.v != 3 {
		t.Fatalf("d got %+v", got)
	}
}
