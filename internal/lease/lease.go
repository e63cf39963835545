// Package lease gives one holder at a time the right to act, through a key
// of a JetStream KV bucket whose TTL expires the key when its holder stops
// renewing it. The engine holds one a cascade, the watchdog one for its
// scans.
//
// What it guarantees:
//
//   - One holder at a time: a lease is taken by creating its key (which
//     fails while the key exists) and renewed by compare-and-swap on the
//     revision the holder wrote, so a renewal fails once the key expired
//     or went to another holder.
//   - Fencing by deadline: TFE has no fencing tokens, so a holder knows a
//     time until which the lease is surely its own (Deadline), counted
//     from its clock read before the write that took or renewed it, a
//     fifth of the TTL short of the TTL. Another holder can take the key
//     only after it expired, so after that time. The holder checks
//     Deadline before every write and bounds the write by it; a lease past
//     its deadline, or whose renewal failed (lost), allows no write.
//   - A lost lease stays lost: renewing it fails, and the holder must take
//     the lease again (Acquire) to act again.
//
// The clock given must be the wall clock (or follow it): the bucket's TTL
// runs on the server's.
package lease

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tfe-orchestrator/orchestrator/internal/events"
)

// ErrLost means the lease expired, passed its deadline, or went to another
// holder: stop writing at once.
var ErrLost = errors.New("lease lost")

// Lease is one holder's right to act, until Deadline.
type Lease struct {
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

// Acquire takes the lease of key in kv (whose TTL must be ttl) for holder;
// false when another holder has it. now is the clock the deadline is
// counted on (nil: time.Now).
func Acquire(ctx context.Context, kv jetstream.KeyValue, key, holder string, ttl time.Duration, now func() time.Time) (*Lease, bool, error) {
	return AcquireOn(ctx, nil, kv, key, holder, ttl, now)
}

// AcquireOn is Acquire that, when nc is given, asks the bucket's stream
// leader when a take fails on a revision a replica gave.
//
// A key released (or deleted) ends with a delete marker; the KV create
// then writes on the marker's revision, which it reads with a direct get.
// Any replica of a replicated bucket answers those, and one that lags
// gives an older revision: the write fails ("wrong last sequence"), and on
// a cluster that lost a node such takes failed again and again. The
// leader's answer is current: the lease is taken on it, or found held.
func AcquireOn(ctx context.Context, nc *nats.Conn, kv jetstream.KeyValue, key, holder string, ttl time.Duration, now func() time.Time) (*Lease, bool, error) {
	if now == nil {
		now = time.Now
	}
	l := &Lease{kv: kv, key: key, holder: holder, ttl: ttl, margin: ttl / 5, now: now}
	start := now()
	rev, err := kv.Create(ctx, key, []byte(holder))
	if nc != nil && events.WrongLastSequence(err) && !errors.Is(err, jetstream.ErrKeyExists) {
		rev, err = takeOnLeader(ctx, nc, kv, key, holder)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || events.WrongLastSequence(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("take lease %s: %w", key, err)
	}
	l.rev, l.until = rev, start.Add(ttl-l.margin)
	return l, true, nil
}

// takeOnLeader reads key's last entry from the stream's leader and takes
// the lease on it: on a delete marker at its revision; where there is
// none, as a create. A live entry is held (jetstream.ErrKeyExists).
func takeOnLeader(ctx context.Context, nc *nats.Conn, kv jetstream.KeyValue, key, holder string) (uint64, error) {
	_, err := events.LastEntry(ctx, nc, kv, key)
	switch {
	case err == nil:
		return 0, jetstream.ErrKeyExists // a live entry: held
	case errors.Is(err, jetstream.ErrKeyNotFound):
		// On the delete marker's revision, or as a create (0) where
		// the key was never written.
		return kv.Update(ctx, key, []byte(holder), events.DeletedAt(err))
	}
	return 0, fmt.Errorf("take lease %s: %w", key, err)
}

// TTL is the lease's time to live without renewal.
func (l *Lease) TTL() time.Duration { return l.ttl }

// Renew extends the lease; after a failure the lease is lost.
func (l *Lease) Renew(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost {
		return ErrLost
	}
	start := l.now()
	rev, err := l.kv.Update(ctx, l.key, []byte(l.holder), l.rev)
	if err != nil {
		l.lost = true
		return errors.Join(ErrLost, err)
	}
	l.rev, l.until = rev, start.Add(l.ttl-l.margin)
	return nil
}

// Deadline is when a write started now must be over: the lease's sure
// end. It fails (ErrLost) when the lease is lost or less than min is left.
func (l *Lease) Deadline(min time.Duration) (time.Time, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost || l.now().Add(min).After(l.until) {
		return time.Time{}, ErrLost
	}
	return l.until, nil
}

// Held reports whether the lease allows a write now: not lost and not past
// its deadline.
func (l *Lease) Held() bool {
	_, err := l.Deadline(0)
	return err == nil
}

// Keep renews the lease every third of its TTL, until a renewal fails or
// stop is called.
func (l *Lease) Keep(ctx context.Context) (stop func()) {
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
				if l.Renew(ctx) != nil {
					return
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// Release hands the lease back at once (the key goes, if still ours); the
// lease is lost from then on.
func (l *Lease) Release(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.lost {
		_ = l.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev))
		l.lost = true
	}
}
