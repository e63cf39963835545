package dispatcher

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
)

// schedule runs looks at cascades when they are due. Every replica follows
// the due entries (a KV watch); when one is due, a free worker tries to
// take the cascade's lease, and only the replica that gets it looks. A
// replica that dies holding a lease loses it after LeaseTTL, and the
// cascade, still due, is looked at by another.
func (d *Dispatcher) schedule(ctx context.Context) {
	dueAt := map[string]time.Time{} // cascade → when due, from the watch
	retry := map[string]time.Time{} // cascade → not before, locally (lease held elsewhere, failure)
	running := map[string]bool{}
	finished := make(chan lookResult, d.opts.Workers)
	sem := make(chan struct{}, d.opts.Workers)

	var updates <-chan jetstream.KeyValueEntry
	var watcher jetstream.KeyWatcher
	defer func() {
		if watcher != nil {
			_ = watcher.Stop()
		}
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if updates == nil {
			w, err := d.store.dueWatch(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				d.log.Warn("watch due cascades", zap.Error(err))
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
				continue
			}
			watcher, updates = w, w.Updates()
		}
		now := d.opts.Now()
		ready, next := dueNow(dueAt, retry, running, now, cap(sem)-len(sem))
		for _, id := range ready {
			sem <- struct{}{}
			running[id] = true
			go func() {
				defer func() { <-sem }()
				finished <- lookResult{id: id, err: d.lookWhenDue(ctx, id)}
			}()
		}
		// Cascades due and left waiting wait for a worker: one finishing
		// wakes the loop.
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(now), time.Millisecond)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			for len(running) > 0 {
				r := <-finished
				delete(running, r.id)
			}
			return
		case e, ok := <-updates:
			if !ok { // the watch ends when NATS disconnects: make another
				_ = watcher.Stop()
				watcher, updates = nil, nil
				continue
			}
			if e == nil {
				continue // the initial values were all delivered
			}
			id, at, gone := dueOf(e)
			if gone {
				delete(dueAt, id)
				delete(retry, id)
				continue
			}
			if at.IsZero() {
				at = now
			}
			dueAt[id] = at
			// Whoever held the lease wrote this, or an event did: try
			// again as it says, not as a held lease made us wait.
			delete(retry, id)
		case r := <-finished:
			delete(running, r.id)
			switch {
			case r.err == nil:
				delete(retry, r.id)
			case errors.Is(r.err, ErrLeaseHeld):
				retry[r.id] = d.opts.Now().Add(d.opts.LeaseTTL / 2)
			default:
				if ctx.Err() == nil {
					d.log.Warn("cascade look failed; looking again later", zap.String("cascade_id", r.id), zap.Error(r.err))
				}
				retry[r.id] = d.opts.Now().Add(retryLook(errors.Is(r.err, errUnauthorized)))
			}
		case <-d.wake:
		case <-timer.C:
		}
	}
}

// dueNow chooses the cascades to look at now, at most free of them: those
// due (and not to be retried later) that no worker is looking at, the
// longest due first, so that a cascade due again and again (a large one,
// or one whose events keep coming) never keeps another waiting for a
// worker. next is when the earliest cascade not yet due will be, or zero.
func dueNow(dueAt, retry map[string]time.Time, running map[string]bool, now time.Time, free int) (ready []string, next time.Time) {
	type waiting struct {
		id string
		at time.Time
	}
	var due []waiting
	for id, at := range dueAt {
		if running[id] {
			continue
		}
		if r := retry[id]; r.After(at) {
			at = r
		}
		if at.After(now) {
			if next.IsZero() || at.Before(next) {
				next = at
			}
			continue
		}
		due = append(due, waiting{id, at})
	}
	slices.SortFunc(due, func(a, b waiting) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	for _, w := range due[:min(len(due), max(free, 0))] {
		ready = append(ready, w.id)
	}
	return ready, next
}

// retryLook is how soon a look that failed is made again: a second, with
// jitter (NATS electing a leader, TFE answering 5xx: a run queued too early
// must still be stopped while it plans), or a minute while TFE refuses
// the token.
func retryLook(unauthorized bool) time.Duration {
	if unauthorized {
		return backoff(6, true)
	}
	return 750*time.Millisecond + time.Duration(rand.Int64N(int64(500*time.Millisecond)))
}

type lookResult struct {
	id  string
	err error
}

// ErrLeaseHeld means a look at the cascade is under way, by another
// replica or by this one's scheduler.
var ErrLeaseHeld = errors.New("another replica holds the cascade's lease")

// lookWhenDue takes a cascade's lease and looks at it.
func (d *Dispatcher) lookWhenDue(ctx context.Context, id string) error {
	return d.lookNow(ctx, id, nil)
}

// lookNow takes a cascade's lease and looks at it, with workspaces read
// moments before (pre, may be nil).
func (d *Dispatcher) lookNow(ctx context.Context, id string, pre map[string]cascade.Workspace) error {
	l, ok, err := d.store.takeLease(ctx, id, d.opts.Instance, d.opts.LeaseTTL, d.opts.Now)
	if err != nil {
		return err
	}
	if !ok {
		return ErrLeaseHeld
	}
	// Whatever hangs in a look, it does not keep renewing the cascade's
	// lease for ever: past maxLook it fails, lets the lease go, and the
	// cascade, still due, is looked at again.
	ctx, cancel := bounded(ctx, maxLook)
	defer cancel()
	stop := l.Keep(ctx)
	defer func() {
		stop()
		l.Release(context.WithoutCancel(ctx))
	}()
	return d.look(ctx, l, id, pre)
}

// maxLook bounds a look: far longer than one takes (reading a thousand
// members at TFE's 30 requests a second takes under a minute).
const maxLook = 5 * time.Minute

// bounded is ctx cancelled after d, without a deadline. nats.go gives each
// JetStream request made with a context that has no deadline a timeout of
// its own (5 s), and none to one whose context has a deadline: with a
// deadline here, a KV write whose answer was lost (its stream's leader
// died) waited out the whole of maxLook, the look keeping its lease and
// every other replica off the cascade.
func bounded(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	t := time.AfterFunc(d, cancel)
	return ctx, func() {
		t.Stop()
		cancel()
	}
}

// Reconcile looks at a cascade now, as the scheduler would when it is due;
// ErrLeaseHeld when a look is under way already. It is for tests and
// tools; the daemon's scheduler calls it on its own.
func (d *Dispatcher) Reconcile(ctx context.Context, id string) error {
	return d.lookWhenDue(ctx, id)
}
