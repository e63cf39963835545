package dispatcher

import (
	"context"
	"time"
)

// What the operators' controls ask of the engine (the engine interface
// Controls holds): that the cascades a control concerns be looked at soon,
// and that a retried cascade run again. Marking a cascade due and waking
// the scheduler stay the engine's.

// lookAt asks for a full look at cascade id now.
func (d *Dispatcher) lookAt(ctx context.Context, id string) error {
	d.nudge()
	return d.store.markDirty(ctx, id, "", d.opts.Now(), true)
}

// lookAtRunning asks for a full look at every running cascade (of org, or
// all when it is empty).
func (d *Dispatcher) lookAtRunning(ctx context.Context, org string) error {
	metas, err := d.store.metas(ctx)
	if err != nil {
		return err
	}
	for id, m := range metas {
		if m.State == StateRunning && (org == "" || m.Organization == org) {
			if err := d.store.markDirty(ctx, id, "", d.opts.Now(), true); err != nil {
				return err
			}
		}
	}
	d.nudge()
	return nil
}

// reopen marks a finished cascade running again (a retry).
func (d *Dispatcher) reopen(ctx context.Context, id string) error {
	for {
		m, rev, err := d.store.meta(ctx, id)
		if err != nil {
			return err
		}
		if m.State == StateRunning {
			return nil
		}
		if m.State == StateDone {
			m.Reopened++ // its finish was counted: the next one is not
		}
		m.State, m.Outcome, m.FinishedAt = StateRunning, "", time.Time{}
		if _, err := d.store.putMeta(ctx, id, m, rev); err == nil || !isConflict(err) {
			return err
		}
	}
}
