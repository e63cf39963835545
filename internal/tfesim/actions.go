package tfesim

import (
	"time"
)

// Run actions: apply, cancel, discard, the user's force-cancel and the
// site admin's force-cancel. Each returns an error answered as 409 when the
// run's status does not allow it, and the run's actions.is-*able flags say
// exactly what is allowed (docs/tfesim.md gives TFE's evidence for each).
//
//	status                  apply  cancel  discard  admin force-cancel
//	pending                   -      ✓       ✓         ✓
//	plan_queued, planning     -      ✓       -         ✓
//	planned                   ✓      -       ✓         ✓
//	confirmed, apply_queued   -      ✓       -         ✓
//	applying                  -      ✓       -         ✓
//	final statuses            -      -       -         -
//
// The user's force-cancel is allowed only on a run that ignored a cancel,
// once the cool-off after the cancel request has passed.
//
// cancel, discard and the admin's force-cancel end a run canceled or
// discarded at once; the user's force-cancel ends it force_canceled. A run
// told to be stuck in its status ignores a cancel: the request is recorded
// (canceled-at, force-cancel-available-at) and the run stays.

var (
	cancelable = map[string]bool{
		StatusPending: true, StatusPlanQueued: true, StatusPlanning: true,
		StatusConfirmed: true, StatusApplyQueued: true, StatusApplying: true,
	}
	discardable = map[string]bool{StatusPending: true, StatusPlanned: true}
)

func isConfirmable(r *run) bool { return r.status == StatusPlanned }

// isForceCancelable is the user's force-cancel: only after a cancel
// request and its cool-off, on a run that has not ended.
func isForceCancelable(r *run, now time.Time) bool {
	return !isFinal(r.status) && r.cancelRequested && !now.Before(r.forceCancelAvailableAt)
}

// forceCancelCoolOff is how long after a cancel request a user may force-cancel.
const forceCancelCoolOff = time.Hour

func errTransition() error {
	return errConflict("transition not allowed", "the run's current status does not allow this action")
}

func (s *Sim) addComment(r *run, by *user, body string) *comment {
	if body == "" {
		return nil
	}
	c := comment{id: s.uniqueID("wsc", func(id string) bool { return s.comments[id] != nil }), body: body, by: by}
	s.comments[c.id] = r
	r.comments = append(r.comments, c)
	return &r.comments[len(r.comments)-1]
}

// runAct is one action: on run r, by user by, with an optional comment.
type runAct func(r *run, by *user, comment string, at time.Time) error

func (s *Sim) applyRun(r *run, by *user, comment string, at time.Time) error {
	if !isConfirmable(r) {
		return errTransition()
	}
	s.addComment(r, by, comment)
	r.confirmedBy, r.updatedBy = by, by
	s.confirm(r, at)
	return nil
}

func (s *Sim) cancelRun(r *run, by *user, comment string, at time.Time) error {
	if !cancelable[r.status] {
		return errTransition()
	}
	s.addComment(r, by, comment)
	r.updatedBy = by
	r.cancelRequested = true
	r.canceledAt = at
	r.forceCancelAvailableAt = at.Add(forceCancelCoolOff)
	if r.ws.behavior.StuckIn == r.status {
		return nil
	}
	s.finish(r, StatusCanceled, at)
	return nil
}

func (s *Sim) discardRun(r *run, by *user, comment string, at time.Time) error {
	if !discardable[r.status] {
		return errTransition()
	}
	s.addComment(r, by, comment)
	r.updatedBy = by
	s.finish(r, StatusDiscarded, at)
	return nil
}

func (s *Sim) forceCancelRun(r *run, by *user, comment string, at time.Time) error {
	if !isForceCancelable(r, at) {
		return errTransition()
	}
	s.addComment(r, by, comment)
	r.updatedBy = by
	s.finish(r, StatusForceCanceled, at)
	return nil
}

// adminForceCancelRun is the site admin's force-cancel: any run not yet
// final ends canceled, as TFE's admin API documents.
func (s *Sim) adminForceCancelRun(r *run, by *user, comment string, at time.Time) error {
	if isFinal(r.status) {
		return errTransition()
	}
	s.addComment(r, by, comment)
	r.updatedBy = by
	if r.canceledAt.IsZero() {
		r.canceledAt = at
	}
	s.finish(r, StatusCanceled, at)
	return nil
}
