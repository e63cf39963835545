package watchdog

import (
	"context"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/lease"
)

// SetLeaseClock sets the clock the lease's deadline is counted on; call it
// before the lease is taken.
func SetLeaseClock(w *Watchdog, now func() time.Time) { w.leaseNow = now }

// TakeLease takes the lease once, as Run does, without renewing it.
func TakeLease(ctx context.Context, w *Watchdog) (bool, error) {
	l, ok, err := lease.Acquire(ctx, w.kv, leaderKey, w.opts.Instance, w.opts.LeaseTTL, w.leaseNow)
	if ok {
		w.lease.Store(l)
	}
	return ok, err
}
