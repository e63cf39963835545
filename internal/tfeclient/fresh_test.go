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

func askSince(f *Fresh[string, int32], since time.Time, r *reads) chan answer {
	out := make(chan answer, 1)
	go func() {
		v, own, err := f.DoSince(context.Background(), "org", since, r.read)
		out <- answer{v, own, err}
	}()
	return out
}

// A caller asked at some moment takes any read that started since: the
// last answer while it is younger than Keep, or the read in flight. A read
// that started before the question, or one older than Keep, does not
// answer it; nor does anything answer Do but a read started after the call.
func TestFreshSinceTakesOnlyReadsStartedAfterTheQuestion(t *testing.T) {
	f := Fresh[string, int32]{Keep: time.Hour}
	r := newReads()
	before := time.Now()
	a := ask(&f, context.Background(), r)
	<-r.started
	r.release <- struct{}{}
	if got := <-a; got.v != 1 || !got.own {
		t.Fatalf("a got %+v, want its own read 1", got)
	}
	if got := <-askSince(&f, before, r); got.v != 1 || got.own || got.err != nil {
		t.Fatalf("a caller asked before read 1 started got %+v, want read 1, shared", got)
	}
	after := time.Now()
	b := askSince(&f, after, r)
	if n := <-r.started; n != 2 {
		t.Fatalf("read %d started, want 2: read 1 started before b was asked", n)
	}
	// Read 2 is in flight and started after c was asked: c takes it
	// rather than waiting for a third.
	c := askSince(&f, after, r)
	r.release <- struct{}{}
	for name, ch := range map[string]chan answer{"b": b, "c": c} {
		if got := <-ch; got.v != 2 || got.err != nil {
			t.Fatalf("%s got %+v, want read 2", name, got)
		}
	}
	if n := r.n.Load(); n != 2 {
		t.Fatalf("%d reads, want 2", n)
	}
	d := ask(&f, context.Background(), r) // Do: asked now
	if n := <-r.started; n != 3 {
		t.Fatalf("read %d started, want 3: Do takes no kept answer", n)
	}
	r.release <- struct{}{}
	if got := <-d; got.v != 3 || !got.own {
		t.Fatalf("d got %+v, want its own read 3", got)
	}

	stale := Fresh[string, int32]{Keep: time.Nanosecond}
	a = askSince(&stale, before, r)
	<-r.started
	r.release <- struct{}{}
	<-a
	e := askSince(&stale, before, r)
	if n := <-r.started; n != 5 {
		t.Fatalf("read %d started, want 5: the answer kept was older than Keep", n)
	}
	r.release <- struct{}{}
	if got := <-e; got.v != 5 || !got.own {
		t.Fatalf("e got %+v, want its own read 5", got)
	}
}
