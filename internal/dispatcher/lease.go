package dispatcher

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// lease is one replica's right to reconcile one cascade: an entry in a KV
// bucket whose TTL expires it when its holder stops renewing. Its holder
// knows a time until which the lease is surely its own — taken before the
// write that took or renewed it, so TFE writes end before anyone else can
// hold it — and bounds every TFE write by it (fencing).
type lease struct {
	kv     jetstream.KeyValue
	key    string
	holder string
	ttl    time.Duration
	margin time.Duration
	now    func() time.Time

	mu    sync.Mutex
	rev   uint64
	until time.Time // the lease is ours until then, surely
	lost  bool
}

// errLeaseLost means the lease expired or went to another replica: stop
// writing at once.
var errLeaseLost = errors.New("cascade lease lost")

// acquire takes the lease of a cascade; false when another replica holds it.
func acquire(ctx context.Context, kv jetstream.KeyValue, id, holder string, ttl time.Duration, now func() time.Time) (*lease, bool, error) {
	l := &lease{kv: kv, key: "lease." + id, holder: holder, ttl: ttl, margin: ttl / 5, now: now}
	start := now()
	rev, err := kv.Create(ctx, l.key, []byte(holder))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	l.rev, l.until = rev, start.Add(ttl-l.margin)
	return l, true, nil
}

// renew extends the lease; after a failure the lease counts as lost.
func (l *lease) renew(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost {
		return errLeaseLost
	}
	start := l.now()
	rev, err := l.kv.Update(ctx, l.key, []byte(l.holder), l.rev)
	if err != nil {
		l.lost = true
		return errors.Join(errLeaseLost, err)
	}
	l.rev, l.until = rev, start.Add(l.ttl-l.margin)
	return nil
}

// deadline is when a write started now must be over: the lease's sure end.
// It fails when less than min is left.
func (l *lease) deadline(min time.Duration) (time.Time, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost || l.now().Add(min).After(l.until) {
		return time.Time{}, errLeaseLost
	}
	return l.until, nil
}

// keep renews the lease every third of its TTL until stop is called.
func (l *lease) keep(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(l.ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if l.renew(ctx) != nil {
					return
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// release hands the lease back at once.
func (l *lease) release(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.lost {
		_ = l.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev))
		l.lost = true
	}
}
