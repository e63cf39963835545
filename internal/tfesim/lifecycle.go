package tfesim

import (
	"time"
)

// The run lifecycle. Every function here runs with s.mu held.
//
//	pending → plan_queued → planning → planned → (confirm or auto-apply)
//	  confirmed → apply_queued → applying → applied
//
// A plan with no changes ends planned_and_finished, a failing one errored.
// One run holds a workspace at a time; the others wait pending, in creation
// order, and a locked workspace starts none.

// step applies, in due-time order, every transition due at or before now.
func (s *Sim) step(now time.Time) {
	for {
		var next *run
		for r := range s.active {
			if r.nextAt.After(now) {
				continue
			}
			if next == nil || r.nextAt.Before(next.nextAt) ||
				(r.nextAt.Equal(next.nextAt) && r.seq < next.seq) {
				next = r
			}
		}
		if next == nil {
			return
		}
		s.advanceRun(next, next.nextAt)
	}
}

// waitUntil makes at the time of r's next transition, unless r is told to stay
// in its current status.
func (s *Sim) waitUntil(r *run, at time.Time) {
	if r.ws.behavior.StuckIn == r.status {
		s.idle(r)
		return
	}
	r.nextAt = at
	s.active[r] = struct{}{}
}

// idle leaves r waiting for an action or forever.
func (s *Sim) idle(r *run) {
	r.nextAt = time.Time{}
	delete(s.active, r)
}

func (s *Sim) setStatus(r *run, status string, at time.Time) {
	r.status = status
	r.timestamps[status] = at
	s.notifyRun(r, at)
}

// advanceRun performs r's due transition.
func (s *Sim) advanceRun(r *run, at time.Time) {
	b := r.ws.behavior
	switch r.status {
	case StatusPlanQueued:
		s.setStatus(r, StatusPlanning, at)
		r.outcome = b.Outcome
		s.waitUntil(r, at.Add(s.planDuration(r)))
	case StatusPlanning:
		switch {
		case r.outcome == OutcomeErrored:
			s.finish(r, StatusErrored, at)
		case r.outcome == OutcomeNoChanges || r.planOnly:
			r.hasChanges = r.outcome != OutcomeNoChanges
			s.finish(r, StatusPlannedAndFinished, at)
		default:
			r.hasChanges = true
			s.setStatus(r, StatusPlanned, at)
			if r.autoApply {
				s.waitUntil(r, at)
			} else {
				s.idle(r)
			}
		}
	case StatusPlanned:
		s.confirm(r, at)
	case StatusConfirmed:
		s.setStatus(r, StatusApplyQueued, at)
		s.waitUntil(r, at.Add(s.timing.Queue))
	case StatusApplyQueued:
		s.setStatus(r, StatusApplying, at)
		s.waitUntil(r, at.Add(s.applyDuration(r)))
	case StatusApplying:
		s.finish(r, StatusApplied, at)
	default:
		s.idle(r)
	}
}

func (s *Sim) confirm(r *run, at time.Time) {
	s.setStatus(r, StatusConfirmed, at)
	s.waitUntil(r, at)
}

// finish ends r in a final status, frees its workspace for the next run and,
// when r applied, queues runs in the targets of its workspace's run triggers.
func (s *Sim) finish(r *run, status string, at time.Time) {
	s.setStatus(r, status, at)
	s.idle(r)
	ws := r.ws
	if ws.current == r {
		ws.current = nil
	}
	ws.updatedAt = at
	if status == StatusApplied {
		ws.resourceCount++
		if !s.opts.NoNativeRunTriggers {
			s.fireRunTriggers(ws, r, at)
		}
	}
	s.schedule(ws, at)
}

// fireRunTriggers queues a run in every target of ws, as TFE's native run
// triggers do. Those runs auto-apply only where the target has
// auto-apply-run-trigger set.
func (s *Sim) fireRunTriggers(ws *workspace, source *run, at time.Time) {
	for _, t := range s.outboundTriggers(ws) {
		target := t.target
		if target.latestCV == nil {
			continue
		}
		s.newRun(target, runSpec{
			cv:            target.latestCV,
			message:       "Triggered by run " + source.id + " in " + ws.name,
			source:        "tfe-run-trigger",
			triggerReason: "run_trigger",
			autoApply:     target.autoApplyRunTrigger,
		}, at)
	}
}

type runSpec struct {
	cv            *configVersion
	message       string
	source        string
	triggerReason string
	autoApply     bool
	isDestroy     bool
	planOnly      bool
	createdBy     string
}

// newRun creates a pending run in ws and starts it if ws is free.
func (s *Sim) newRun(ws *workspace, spec runSpec, at time.Time) *run {
	r := &run{
		id:            s.uniqueID("run", func(id string) bool { return s.runs[id] != nil }),
		seq:           s.nextSeq(),
		ws:            ws,
		cv:            spec.cv,
		message:       spec.message,
		source:        spec.source,
		triggerReason: spec.triggerReason,
		autoApply:     spec.autoApply,
		isDestroy:     spec.isDestroy,
		planOnly:      spec.planOnly,
		createdAt:     at,
		createdBy:     spec.createdBy,
		timestamps:    map[string]time.Time{},
	}
	if r.createdBy == "" {
		r.createdBy = adminUser
	}
	s.runs[r.id] = r
	ws.runs = append(ws.runs, r)
	ws.updatedAt = at
	s.setStatus(r, StatusPending, at)
	s.schedule(ws, at)
	return r
}

// schedule starts the oldest pending run of ws when ws is free and unlocked.
func (s *Sim) schedule(ws *workspace, at time.Time) {
	if ws.current != nil || ws.locked {
		return
	}
	for _, r := range ws.runs {
		if r.status == StatusPending {
			ws.current = r
			s.setStatus(r, StatusPlanQueued, at)
			s.waitUntil(r, at.Add(s.timing.Queue))
			return
		}
	}
}

// positionInQueue is the number of pending runs ahead of r, as TFE reports it.
func positionInQueue(r *run) int {
	if r.status != StatusPending {
		return 0
	}
	n := 0
	for _, o := range r.ws.runs {
		if o == r {
			break
		}
		if o.status == StatusPending {
			n++
		}
	}
	return n
}

// Actions a user can take on a run. Each returns an error answered as 409
// when the run's status does not allow it.

func errTransition() error {
	return errConflict("transition not allowed", "the run's current status does not allow this action")
}

func (s *Sim) addComment(r *run, body string) {
	if body == "" {
		return
	}
	c := comment{id: s.uniqueID("wsc", func(id string) bool { return s.comments[id] != nil }), body: body}
	s.comments[c.id] = r
	r.comments = append(r.comments, c)
}

func (s *Sim) applyRun(r *run, commentBody string, at time.Time) error {
	if r.status != StatusPlanned {
		return errTransition()
	}
	s.addComment(r, commentBody)
	s.confirm(r, at)
	return nil
}

var cancelable = map[string]bool{
	StatusPlanQueued: true, StatusPlanning: true, StatusApplyQueued: true, StatusApplying: true,
}

// cancelRun interrupts a planning or applying run. A run that is stuck does
// not react: it stays where it is, and after a cool-off can be force-cancelled.
func (s *Sim) cancelRun(r *run, commentBody string, at time.Time) error {
	if !cancelable[r.status] {
		return errTransition()
	}
	s.addComment(r, commentBody)
	r.cancelRequested = true
	r.canceledAt = at
	r.forceCancelAvailableAt = at.Add(forceCancelCoolOff)
	if r.ws.behavior.StuckIn == r.status {
		return nil
	}
	s.finish(r, StatusCanceled, at)
	return nil
}

// forceCancelCoolOff is how long after a cancel request a user may force-cancel.
const forceCancelCoolOff = time.Hour

var discardable = map[string]bool{StatusPending: true, StatusPlanned: true}

func (s *Sim) discardRun(r *run, commentBody string, at time.Time) error {
	if !discardable[r.status] {
		return errTransition()
	}
	s.addComment(r, commentBody)
	s.finish(r, StatusDiscarded, at)
	return nil
}

// forceCancelRun is the user's force-cancel: allowed only after a cancel
// request and its cool-off.
func (s *Sim) forceCancelRun(r *run, commentBody string, at time.Time) error {
	if isFinal(r.status) || !r.cancelRequested || at.Before(r.forceCancelAvailableAt) {
		return errTransition()
	}
	s.addComment(r, commentBody)
	s.finish(r, StatusForceCanceled, at)
	return nil
}

// adminForceCancelRun is the site admin's force-cancel: any run not yet final.
func (s *Sim) adminForceCancelRun(r *run, commentBody string, at time.Time) error {
	if isFinal(r.status) {
		return errTransition()
	}
	s.addComment(r, commentBody)
	s.finish(r, StatusForceCanceled, at)
	return nil
}

// perf holds a workspace's performance attributes, computed as TFE does
// over its last 30 runs that applied or errored.
type perf struct {
	planAvgMS, applyAvgMS int64
	failures, runs        int
}

func workspacePerf(ws *workspace) perf {
	var p perf
	var planSum, applySum time.Duration
	var plans, applies int
	for i := len(ws.runs) - 1; i >= 0 && p.runs < 30; i-- {
		r := ws.runs[i]
		if r.status != StatusApplied && r.status != StatusErrored {
			continue
		}
		p.runs++
		if r.status == StatusErrored {
			p.failures++
		}
		if start, end := r.timestamps[StatusPlanning], planEnd(r); !start.IsZero() && !end.IsZero() {
			planSum += end.Sub(start)
			plans++
		}
		if start, end := r.timestamps[StatusApplying], r.timestamps[StatusApplied]; !start.IsZero() && !end.IsZero() {
			applySum += end.Sub(start)
			applies++
		}
	}
	if plans > 0 {
		p.planAvgMS = (planSum / time.Duration(plans)).Milliseconds()
	}
	if applies > 0 {
		p.applyAvgMS = (applySum / time.Duration(applies)).Milliseconds()
	}
	return p
}

func planEnd(r *run) time.Time {
	if t := r.timestamps[StatusPlanned]; !t.IsZero() {
		return t
	}
	return r.timestamps[StatusErrored]
}
