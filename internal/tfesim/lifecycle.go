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
// A run holds its workspace's lock from the moment it leaves pending until
// it ends, and stays the workspace's current run after that. The others
// wait pending, in creation order, and a workspace a user locked starts
// none. Plan-only runs, as in TFE, neither wait for nor take the lock.

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

// FinishPhase ends now the timed phase run runID is in (queued, planning,
// applying), instead of at its due time: the run moves on as it would have
// then, stamped now. A test that needs a phase long enough to act in while
// it lasts (on a loaded machine, however slow) ends it once it has acted,
// instead of waiting for it. It fails when the run is not waiting on the
// clock: it ended, waits for a person, or is told to stay where it is.
func (s *Sim) FinishPhase(runID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	r := s.runs[runID]
	if r == nil {
		return errNotFound()
	}
	if _, timed := s.active[r]; !timed {
		return errTransition()
	}
	s.advanceRun(r, now)
	s.step(now)
	return nil
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

// finish ends r in a final status, which releases its workspace's lock
// for the next run and, when r applied, writes its state version and
// queues runs in the targets of its workspace's run triggers.
func (s *Sim) finish(r *run, status string, at time.Time) {
	s.setStatus(r, status, at)
	s.idle(r)
	ws := r.ws
	ws.updatedAt = at
	if status == StatusApplied {
		ws.resourceCount++
		s.writeState(r, at)
		promoteConfigVersion(r)
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
		if target.currentCV == nil || target.currentCV.status != "uploaded" {
			continue // TFE's behaviour here is unknown: see docs/tfesim.md
		}
		s.newRun(target, runSpec{
			cv:            target.currentCV,
			message:       "Triggered by run " + source.id + " in " + ws.name,
			source:        "tfe-run-trigger",
			triggerReason: "run_trigger",
			autoApply:     target.autoApplyRunTrigger,
			createdBy:     source.createdBy,
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
	createdBy     *user
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
	if r.createdBy == nil {
		r.createdBy = s.admin
	}
	r.updatedBy = r.createdBy
	s.runs[r.id] = r
	ws.runs = append(ws.runs, r)
	ws.updatedAt = at
	s.setStatus(r, StatusPending, at)
	if r.planOnly {
		s.start(r, at) // plan-only runs skip the queue and the lock
	} else {
		s.schedule(ws, at)
	}
	return r
}

// schedule starts the oldest pending run of ws when no run holds ws and
// no user locked it. The run takes the lock and becomes the current run.
func (s *Sim) schedule(ws *workspace, at time.Time) {
	if ws.activeRun() != nil || ws.userLock != nil {
		return
	}
	for _, r := range ws.runs {
		if r.status == StatusPending && !r.planOnly {
			ws.currentRun = r
			s.start(r, at)
			return
		}
	}
}

// start takes r out of pending into the queue for a plan.
func (s *Sim) start(r *run, at time.Time) {
	s.setStatus(r, StatusPlanQueued, at)
	s.waitUntil(r, at.Add(s.timing.Queue))
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
