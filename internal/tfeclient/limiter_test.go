package tfeclient_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	tu "github.com/tfe-orchestrator/orchestrator/internal/testutil"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
)

// fakeClock moves only when the test advances it. It starts an hour after
// the wall clock, so that contexts with deadlines on it do not expire (in
// wall time) while the test runs.
type fakeClock struct {
	mu       sync.Mutex
	now      time.Time
	sleepers []sleeper
}

type sleeper struct {
	at   time.Time
	wake chan struct{}
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now().Add(time.Hour)} }

// newFakeClockNow is a fakeClock at the wall clock's time, for requests
// whose deadlines http.Client sets on the wall clock.
func newFakeClockNow() *fakeClock { return &fakeClock{now: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	s := sleeper{c.now.Add(d), make(chan struct{})}
	c.sleepers = append(c.sleepers, s)
	c.mu.Unlock()
	select {
	case <-s.wake:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, o := range c.sleepers {
			if o.wake == s.wake {
				c.sleepers = append(c.sleepers[:i], c.sleepers[i+1:]...)
				break
			}
		}
		return ctx.Err()
	}
}

// sleepsUntil tells whether one sleeper, alone, sleeps until at.
func (c *fakeClock) sleepsUntil(at time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sleepers) == 1 && c.sleepers[0].at.Equal(at)
}

// Sleeping is how many are asleep.
func (c *fakeClock) Sleeping() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sleepers)
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.sleepers[:0]
	for _, s := range c.sleepers {
		if s.at.After(c.now) {
			kept = append(kept, s)
		} else {
			close(s.wake)
		}
	}
	c.sleepers = kept
}

// replicas is a Shared with a number of replicas set by the test.
type replicas struct {
	tfeclient.Alone
	mu sync.Mutex
	n  int
}

func (r *replicas) Replicas() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

func (r *replicas) set(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n = n
}

// within is a context whose deadline is d from now on the clock.
func within(t *testing.T, c *fakeClock, d time.Duration) context.Context {
	ctx, cancel := context.WithDeadline(context.Background(), c.Now().Add(d))
	t.Cleanup(cancel)
	return ctx
}

// sent counts how many of n requests the limiter lets go now.
func sent(t *testing.T, l *tfeclient.Limiter, c *fakeClock, n int) int {
	t.Helper()
	ok := 0
	for range n {
		err := l.Wait(within(t, c, 0))
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, tfeclient.ErrNotSent):
			t.Fatalf("refused with %v, want ErrNotSent", err)
		}
	}
	return ok
}

// A replica takes the deployment's limit divided by the replicas: a burst
// of a third of a second's share, then one request per 1/share seconds. A
// request whose turn is after its deadline is refused at once, and takes
// no turn: the next one gets it.
func TestLimiterTakesItsShare(t *testing.T) {
	c := newFakeClock()
	shared := &replicas{n: 3}
	reg := prometheus.NewRegistry()
	l := tfeclient.NewLimiter(tfeclient.LimiterOptions{Limit: 27, Shared: shared, Clock: c, Registerer: reg})
	if got := l.Share(); got != 9 {
		t.Fatalf("share %v, want 27/3 = 9", got)
	}
	if got := sent(t, l, c, 10); got != 3 {
		t.Fatalf("%d requests sent at once, want the burst of 3", got)
	}
	c.Advance(time.Second / 9)
	if got := sent(t, l, c, 10); got != 1 {
		t.Fatalf("%d requests sent 1/9 s later, want 1", got)
	}
	c.Advance(time.Second)
	if got := sent(t, l, c, 20); got != 3 {
		t.Fatalf("%d requests sent after an idle second, want the burst of 3 (not more)", got)
	}

	// A replica leaves: the share grows to 13.5 (a burst of 4, a turn
	// every 74ms).
	shared.set(2)
	c.Advance(time.Second)
	if got := sent(t, l, c, 10); got != 4 {
		t.Fatalf("%d requests sent at once with 2 replicas, want the burst of 4", got)
	}
	c.Advance(75 * time.Millisecond)
	if got := sent(t, l, c, 10); got != 1 {
		t.Fatalf("%d requests sent 75ms later with 2 replicas, want 1", got)
	}
	for name, want := range map[string]float64{"orchestrator_tfe_rate_limit": 13.5, "orchestrator_tfe_replicas": 2, "orchestrator_tfe_not_sent_total": 7 + 9 + 17 + 6 + 9} {
		if got := gauge(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		m := f.GetMetric()[0]
		if m.GetGauge() != nil {
			return m.GetGauge().GetValue()
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// A request waits for its turn when its deadline allows; one whose context
// ends while it waits is not sent, and says why.
func TestLimiterWaitsForTheTurn(t *testing.T) {
	c := newFakeClock()
	l := tfeclient.NewLimiter(tfeclient.LimiterOptions{Limit: 3, Clock: c}) // a turn every 333ms, burst 1
	if err := l.Wait(within(t, c, 0)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Wait(within(t, c, time.Second)) }()
	tu.WaitFor(t, "the request to wait", 10*time.Second, func() bool { return c.Sleeping() == 1 })
	c.Advance(300 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("the request went before its turn: %v", err)
	default:
	}
	c.Advance(40 * time.Millisecond)
	if err := <-done; err != nil {
		t.Fatalf("at its turn: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- l.Wait(ctx) }()
	tu.WaitFor(t, "the request to wait", 10*time.Second, func() bool { return c.Sleeping() == 1 })
	cancel()
	err := <-done
	if !errors.Is(err, tfeclient.ErrNotSent) || !errors.Is(err, context.Canceled) {
		t.Fatalf("a request whose caller gave up: %v, want ErrNotSent and context.Canceled", err)
	}
}

// After a 429 nothing goes until the back-off TFE asked for ends, and then
// with an empty bucket: TFE's is empty too.
func TestLimiterBacksOff(t *testing.T) {
	c := newFakeClock()
	l := tfeclient.NewLimiter(tfeclient.LimiterOptions{Limit: 30, Clock: c}) // burst 10, a turn every 33ms
	l.RateLimited(time.Second)
	if err := l.Wait(within(t, c, 900*time.Millisecond)); !errors.Is(err, tfeclient.ErrNotSent) {
		t.Fatalf("a request due before the back-off ends: %v, want ErrNotSent", err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Wait(within(t, c, 2*time.Second)) }()
	tu.WaitFor(t, "the request to wait", 10*time.Second, func() bool { return c.Sleeping() == 1 })
	c.Advance(999 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("the request went during the back-off: %v", err)
	default:
	}
	c.Advance(time.Millisecond)
	if err := <-done; err != nil {
		t.Fatalf("at the end of the back-off: %v", err)
	}
	if got := sent(t, l, c, 10); got != 0 {
		t.Fatalf("%d requests sent right after the back-off, want 0 (the bucket starts empty)", got)
	}
	c.Advance(time.Second / 30)
	if got := sent(t, l, c, 10); got != 1 {
		t.Fatalf("%d requests sent a turn after the back-off, want 1", got)
	}
}

// Without a configured limit the deployment takes 0.9 × what TFE
// advertises, 30 when it advertises nothing usable; a configured limit
// stays.
func TestLimiterTakesTheAdvertisedLimit(t *testing.T) {
	for _, tc := range []struct {
		configured float64
		header     string
		want       float64
	}{
		{0, "", 27}, {0, "0", 27}, {0, "nope", 27}, {0, "100", 90}, {0, "30", 27}, {12, "100", 12},
	} {
		l := tfeclient.NewLimiter(tfeclient.LimiterOptions{Limit: tc.configured})
		l.Advertised(tc.header)
		if got := l.Limit(); got != tc.want {
			t.Errorf("configured %v, advertised %q: limit %v, want %v", tc.configured, tc.header, got, tc.want)
		}
	}
}

// An urgent request (a cascade's start) goes before the others: they wait
// while it waits, and a moment after, for the next of its requests.
func TestUrgentRequestsGoFirst(t *testing.T) {
	c := newFakeClock()
	l := tfeclient.NewLimiter(tfeclient.LimiterOptions{Limit: 3, Clock: c}) // a turn every 333ms, burst 1
	if err := l.Wait(within(t, c, 0)); err != nil {
		t.Fatal(err)
	}
	urgent, other := make(chan error, 1), make(chan error, 1)
	go func() { urgent <- l.Wait(tfeclient.Urgent(context.Background())) }()
	tu.WaitFor(t, "the urgent request to wait for its turn", 10*time.Second, func() bool { return c.Sleeping() == 1 })
	go func() { other <- l.Wait(context.Background()) }()
	tu.WaitFor(t, "the other request to wait", 10*time.Second, func() bool { return c.Sleeping() == 2 })
	start := c.Now()
	c.Advance(time.Second / 3)
	if err := <-urgent; err != nil {
		t.Fatal(err)
	}
	lingerEnd := c.Now().Add(tfeclient.UrgentLinger)
	tu.WaitFor(t, "the other request to wait for a next urgent one", 10*time.Second, func() bool { return c.sleepsUntil(lingerEnd) })
	select {
	case err := <-other:
		t.Fatalf("the other request went %v right after the urgent one: want it to wait %s", err, tfeclient.UrgentLinger)
	default:
	}
	c.Advance(tfeclient.UrgentLinger)
	turn := start.Add(2 * time.Second / 3) // the turn after the urgent one's
	tu.WaitFor(t, "the other request to wait for its turn", 10*time.Second, func() bool { return c.sleepsUntil(turn) })
	c.Advance(turn.Sub(c.Now()))
	if err := <-other; err != nil {
		t.Fatal(err)
	}
}

// Urgent requests never starve the others: one waits for them MaxYield at
// most; one whose caller gives up meanwhile is not sent.
func TestUrgentRequestsStarveNone(t *testing.T) {
	c := newFakeClock()
	l := tfeclient.NewLimiter(tfeclient.LimiterOptions{Limit: 30, Clock: c})
	urgent := make(chan error, 1)
	go func() { urgent <- l.WaitAfter(tfeclient.Urgent(context.Background()), c.Now().Add(time.Hour)) }()
	tu.WaitFor(t, "the urgent request to wait", 10*time.Second, func() bool { return c.Sleeping() == 1 })

	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() { gaveUp <- l.Wait(ctx) }()
	tu.WaitFor(t, "a request to yield", 10*time.Second, func() bool { return c.Sleeping() == 2 })
	cancel()
	if err := <-gaveUp; !errors.Is(err, tfeclient.ErrNotSent) || !errors.Is(err, context.Canceled) {
		t.Fatalf("a request given up while yielding: got %v, want ErrNotSent and context.Canceled", err)
	}

	other := make(chan error, 1)
	go func() { other <- l.Wait(context.Background()) }()
	tu.WaitFor(t, "a request to yield", 10*time.Second, func() bool { return c.Sleeping() == 2 })
	c.Advance(tfeclient.MaxYield - time.Millisecond)
	select {
	case err := <-other:
		t.Fatalf("went %v before MaxYield", err)
	default:
	}
	c.Advance(time.Millisecond)
	if err := <-other; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-urgent:
		t.Fatalf("the urgent request went %v an hour early", err)
	default:
	}
}
