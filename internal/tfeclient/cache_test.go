package tfeclient_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tu "github.com/tfe-orchestrator/orchestrator/internal/testutil"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
)

// manualClock is a clock the test moves.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newClock() *manualClock { return &manualClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func TestCacheEntriesAreFreshForTheTTL(t *testing.T) {
	clock := newClock()
	c := tfeclient.NewCache[string, int](time.Minute, clock.Now)
	if _, ok := c.Get("a"); ok {
		t.Fatal("an empty cache has an entry")
	}
	c.Put("a", 1)
	c.PutAt("old", 2, clock.Now().Add(-50*time.Second))
	for _, step := range []struct {
		advance  time.Duration
		key      string
		want     int
		wantFind bool
	}{
		{0, "a", 1, true},
		{0, "old", 2, true},
		{9 * time.Second, "old", 2, true}, // read 59s ago
		{time.Second, "old", 0, false},    // read a TTL ago: stale
		{49 * time.Second, "a", 1, true},
		{time.Second - time.Nanosecond, "a", 1, true}, // just under the TTL
		{time.Nanosecond, "a", 0, false},              // the TTL
		{0, "a", 0, false},                            // still gone
	} {
		clock.Advance(step.advance)
		got, ok := c.Get(step.key)
		if ok != step.wantFind || got != step.want {
			t.Fatalf("at %s, Get(%q) = %d, %v; want %d, %v", clock.Now().Format(time.TimeOnly), step.key, got, ok, step.want, step.wantFind)
		}
	}
}

func TestCacheInvalidate(t *testing.T) {
	c := tfeclient.NewCache[string, int](time.Hour, newClock().Now)
	c.Put("a", 1)
	c.Put("b", 2)
	c.Put("c", 3)
	c.Invalidate("a")
	if _, ok := c.Get("a"); ok {
		t.Error("an invalidated entry is still there")
	}
	if v, ok := c.Get("b"); !ok || v != 2 {
		t.Errorf("invalidating a dropped b: %d, %v", v, ok)
	}
	c.InvalidateAll()
	for _, k := range []string{"b", "c"} {
		if _, ok := c.Get(k); ok {
			t.Errorf("%s survived InvalidateAll", k)
		}
	}
}

// Load reads a missing or stale entry and keeps it as of when the read
// ended; a failed read is not kept.
func TestCacheLoad(t *testing.T) {
	clock := newClock()
	c := tfeclient.NewCache[string, int](time.Minute, clock.Now)
	ctx := context.Background()
	var loads int
	var fail error
	load := func(context.Context) (int, error) {
		loads++
		clock.Advance(10 * time.Second) // the read takes time: the entry is as of its end
		if fail != nil {
			return 0, fail
		}
		return loads, nil
	}
	if v, err := c.Load(ctx, "k", load); err != nil || v != 1 || loads != 1 {
		t.Fatalf("first load: %d, %v after %d loads; want 1 after 1", v, err, loads)
	}
	clock.Advance(59 * time.Second) // 59s after the read ended
	if v, err := c.Load(ctx, "k", load); err != nil || v != 1 || loads != 1 {
		t.Fatalf("a fresh entry: %d, %v after %d loads; want 1 with no read", v, err, loads)
	}
	clock.Advance(time.Second)
	fail = errors.New("tfe said no")
	if _, err := c.Load(ctx, "k", load); !errors.Is(err, fail) || loads != 2 {
		t.Fatalf("a stale entry whose read fails: %v after %d loads; want the error after 2", err, loads)
	}
	if _, ok := c.Get("k"); ok {
		t.Fatal("a failed read left an entry")
	}
	fail = nil
	if v, err := c.Load(ctx, "k", load); err != nil || v != 3 || loads != 3 {
		t.Fatalf("after a failed read: %d, %v after %d loads; want a new read", v, err, loads)
	}
}

// Callers of Load that come while a read of their key is under way wait
// for it and share its value: one read for all. A caller whose context
// ends while it waits gets its context's error; the read goes on.
func TestCacheLoadIsSingleFlight(t *testing.T) {
	c := tfeclient.NewCache[string, string](time.Hour, newClock().Now)
	release := make(chan struct{})
	var loads, started atomic.Int32
	load := func(context.Context) (string, error) {
		loads.Add(1)
		started.Add(1)
		<-release
		return "value", nil
	}
	const callers = 8
	results := make(chan string, callers)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		v, err := c.Load(context.Background(), "k", load)
		if err != nil {
			v = err.Error()
		}
		results <- v
	}()
	tu.WaitFor(t, "the first read starts", 10*time.Second, func() bool { return started.Load() == 1 })

	// One waiter gives up.
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() {
		_, err := c.Load(ctx, "k", load)
		gaveUp <- err
	}()
	for range callers - 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := c.Load(context.Background(), "k", load)
			if err != nil {
				v = err.Error()
			}
			results <- v
		}()
	}
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("a waiter whose context ended: %v, want context.Canceled", err)
	}
	close(release)
	wg.Wait()
	close(results)
	n := 0
	for v := range results {
		n++
		if v != "value" {
			t.Errorf("a caller got %q, want the read's value", v)
		}
	}
	if n != callers || loads.Load() != 1 {
		t.Errorf("%d callers served by %d reads, want %d by 1", n, loads.Load(), callers)
	}
	if v, ok := c.Get("k"); !ok || v != "value" {
		t.Errorf("after the read: %q, %v; want the value kept", v, ok)
	}
}

// Loads of different keys do not wait for each other.
func TestCacheLoadsOfOtherKeysDoNotWait(t *testing.T) {
	c := tfeclient.NewCache[string, int](time.Hour, newClock().Now)
	release := make(chan struct{})
	started := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = c.Load(context.Background(), "slow", func(context.Context) (int, error) {
			close(started)
			<-release
			return 1, nil
		})
	}()
	<-started
	v, err := c.Load(context.Background(), "quick", func(context.Context) (int, error) { return 2, nil })
	close(release)
	<-done
	if err != nil || v != 2 {
		t.Fatalf("a load of another key: %d, %v", v, err)
	}
}

// Callers waiting on a read that panics are not left waiting.
func TestCacheLoadThatPanicsReleasesWaiters(t *testing.T) {
	c := tfeclient.NewCache[string, int](time.Hour, newClock().Now)
	release := make(chan struct{})
	var started atomic.Bool
	panicked := make(chan any, 1)
	go func() {
		defer func() { panicked <- recover() }()
		_, _ = c.Load(context.Background(), "k", func(context.Context) (int, error) {
			started.Store(true)
			<-release
			panic("boom")
		})
	}()
	tu.WaitFor(t, "the read starts", 10*time.Second, started.Load)
	waited := make(chan error, 1)
	go func() {
		_, err := c.Load(context.Background(), "k", func(context.Context) (int, error) { return 1, nil })
		waited <- err
	}()
	close(release)
	if p := <-panicked; p != "boom" {
		t.Fatalf("the panic: %v", p)
	}
	// The waiter either waited for the read (and got an error) or came
	// after it (and read anew): it is not left waiting, and nothing was kept
	// from the read that panicked.
	select {
	case <-waited:
	case <-time.After(30 * time.Second):
		t.Fatal("a caller waiting on a read that panicked is still waiting")
	}
}
