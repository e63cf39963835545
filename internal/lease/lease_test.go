package lease_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tfe-orchestrator/orchestrator/internal/lease"
	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
)

func bucket(t *testing.T, ttl time.Duration) jetstream.KeyValue {
	t.Helper()
	js, _ := testutil.JetStream(t)
	kv, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "leases", TTL: ttl, History: 1})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// clock is a wall clock that a test can move forward.
type clock struct {
	mu   sync.Mutex
	skew time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.skew)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.skew += d
	c.mu.Unlock()
}

func TestLease(t *testing.T) {
	kv := bucket(t, time.Second)
	ctx := context.Background()
	l, ok, err := lease.Acquire(ctx, kv, "lease.c-1", "one", time.Second, time.Now)
	if err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	if _, ok, _ := lease.Acquire(ctx, kv, "lease.c-1", "two", time.Second, time.Now); ok {
		t.Fatal("a second replica took a held lease")
	}
	until, err := l.Deadline(0)
	if err != nil || until.After(time.Now().Add(time.Second)) {
		t.Errorf("deadline: got %s, %v; want within the TTL", until, err)
	}
	if _, err := l.Deadline(2 * time.Second); err == nil {
		t.Error("a write longer than the lease was allowed to start")
	}
	// Not renewed, it expires, and another replica takes it; the first
	// one's renewal then fails and it stops writing.
	testutil.WaitFor(t, "the lease to expire", 10*time.Second, func() bool {
		_, ok, _ := lease.Acquire(ctx, kv, "lease.c-1", "two", time.Second, time.Now)
		return ok
	})
	if err := l.Renew(ctx); err == nil {
		t.Error("an expired lease was renewed")
	}
	if _, err := l.Deadline(0); !errors.Is(err, lease.ErrLost) {
		t.Errorf("a lost lease: got %v, want ErrLost", err)
	}
	if l.Held() {
		t.Error("a lost lease is held")
	}
}

// A holder whose clock passed the lease's deadline may not write, although
// the key is still its own in the bucket; renewing gives it a new deadline.
func TestLeasePastItsDeadlineAllowsNoWrite(t *testing.T) {
	kv := bucket(t, time.Minute)
	ctx := context.Background()
	c := &clock{}
	l, ok, err := lease.Acquire(ctx, kv, "leader", "one", time.Minute, c.now)
	if err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	if !l.Held() {
		t.Fatal("a lease just taken is not held")
	}
	c.advance(49 * time.Second) // the sure end is 48 s after the take: the TTL less a fifth
	if l.Held() {
		t.Error("a lease past its deadline is held")
	}
	if _, err := l.Deadline(0); !errors.Is(err, lease.ErrLost) {
		t.Errorf("deadline past it: got %v, want ErrLost", err)
	}
	if err := l.Renew(ctx); err != nil {
		t.Fatalf("renew a lease still ours in the bucket: %v", err)
	}
	if until, err := l.Deadline(0); err != nil || !until.After(c.now()) {
		t.Errorf("deadline after renewal: got %s, %v; want a later one", until, err)
	}
}

// Keep renews the lease past its TTL; Release hands it over at once.
func TestLeaseKeptThenReleased(t *testing.T) {
	kv := bucket(t, time.Second)
	ctx := context.Background()
	l, ok, err := lease.Acquire(ctx, kv, "leader", "one", time.Second, nil)
	if err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	stop := l.Keep(ctx)
	first, _ := l.Deadline(0)
	testutil.WaitFor(t, "two renewals", 10*time.Second, func() bool {
		until, err := l.Deadline(0)
		return err == nil && until.After(first.Add(time.Second/2))
	})
	if _, ok, _ := lease.Acquire(ctx, kv, "leader", "two", time.Second, nil); ok {
		t.Fatal("another holder took a lease kept past its TTL")
	}
	stop()
	l.Release(ctx)
	if l.Held() {
		t.Error("a released lease is held")
	}
	if _, ok, err := lease.Acquire(ctx, kv, "leader", "two", time.Second, nil); err != nil || !ok {
		t.Errorf("a released lease could not be taken at once: %v %v", ok, err)
	}
}
