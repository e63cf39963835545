package cascade

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"time"
)

// model is a small, exact model of how TFE plays runs out, for testing
// the core without any I/O: one run holds a workspace at a time and the
// others wait pending in creation order; a run plans, then applies on its
// own or waits for a person; an apply queues a run in every target of the
// workspace's run triggers (source tfe-run-trigger, auto-applying where the
// target has auto-apply-run-trigger); discard, cancel and confirm are
// allowed where TFE allows them.
type model struct {
	now     time.Time
	seq     int
	ws      map[string]*mws
	runs    map[string]*mrun
	targets map[string][]string // source → targets
	natives bool
	changed map[string]bool // workspaces with news since the last drain
}

type mws struct {
	id, name            string
	autoApplyRunTrigger bool
	outcome             string // applied, errored, no_changes
	plan, apply         time.Duration
	lockedUntil         time.Time // a person's lock
	held                bool      // locked by the engine
	personLocked        bool      // a person's lock came and went
	local, noConfig     bool
	runs                []*mrun
	current             *mrun
}

type mrun struct {
	id, ws, status, source, message string
	created, statusAt, due          time.Time // due: next automatic transition, zero while waiting
	autoApply                       bool
}

func newModel(start time.Time) *model {
	return &model{now: start, ws: map[string]*mws{}, runs: map[string]*mrun{}, targets: map[string][]string{}, natives: true, changed: map[string]bool{}}
}

func (m *model) addWorkspace(w *mws) { m.ws[w.id] = w }

func (m *model) touch(ws string) { m.changed[ws] = true }

func (m *model) setStatus(r *mrun, status string) {
	r.status, r.statusAt = status, m.now
	m.touch(r.ws)
}

// create queues a run and starts it when the workspace is free.
func (m *model) create(wsID, message, source string, autoApply bool) *mrun {
	m.seq++
	r := &mrun{id: fmt.Sprintf("run-%04d", m.seq), ws: wsID, status: "pending", source: source, message: message,
		created: m.now.Add(time.Duration(m.seq) * time.Microsecond), statusAt: m.now, autoApply: autoApply}
	m.runs[r.id] = r
	w := m.ws[wsID]
	w.runs = append(w.runs, r)
	m.touch(wsID)
	m.schedule(w)
	return r
}

func (m *model) busy(w *mws) bool {
	return (w.current != nil && !Final(w.current.status)) || m.now.Before(w.lockedUntil) || w.held
}

// lock locks a workspace as the engine, as TFE's lock endpoint does: not
// while a run or someone holds it.
func (m *model) lock(id string) bool {
	w := m.ws[id]
	if m.busy(w) {
		return false
	}
	w.held = true
	m.touch(id)
	return true
}

// unlock lets the engine's lock go; false when the engine did not hold it.
func (m *model) unlock(id string) bool {
	w := m.ws[id]
	if !w.held {
		return false
	}
	w.held = false
	m.touch(id)
	m.schedule(w)
	return true
}

// schedule starts the oldest pending run of a free workspace.
func (m *model) schedule(w *mws) {
	if m.busy(w) {
		return
	}
	for _, r := range w.runs {
		if r.status == "pending" {
			w.current = r
			m.setStatus(r, "planning")
			r.due = m.now.Add(w.plan)
			return
		}
	}
}

// step performs the transitions due at or before t, in time order.
func (m *model) advance(t time.Time) {
	for {
		var next *mrun
		for _, r := range m.runs {
			if !r.due.IsZero() && !r.due.After(t) && (next == nil || r.due.Before(next.due) || (r.due.Equal(next.due) && r.id < next.id)) {
				next = r
			}
		}
		var unlock *mws
		for _, w := range m.ws {
			if !w.lockedUntil.IsZero() && !w.lockedUntil.After(t) && (unlock == nil || w.lockedUntil.Before(unlock.lockedUntil)) {
				unlock = w
			}
		}
		if unlock != nil && (next == nil || !next.due.Before(unlock.lockedUntil)) {
			m.now = unlock.lockedUntil
			unlock.lockedUntil, unlock.personLocked = time.Time{}, true
			m.touch(unlock.id)
			m.schedule(unlock)
			continue
		}
		if next == nil {
			m.now = t
			return
		}
		m.now = next.due
		next.due = time.Time{}
		m.transition(next)
	}
}

func (m *model) nextDue() time.Time {
	var t time.Time
	for _, r := range m.runs {
		if !r.due.IsZero() && (t.IsZero() || r.due.Before(t)) {
			t = r.due
		}
	}
	for _, w := range m.ws {
		if !w.lockedUntil.IsZero() && (t.IsZero() || w.lockedUntil.Before(t)) {
			t = w.lockedUntil
		}
	}
	return t
}

func (m *model) transition(r *mrun) {
	w := m.ws[r.ws]
	switch r.status {
	case "planning":
		switch w.outcome {
		case "errored":
			m.finish(r, "errored")
		case "no_changes":
			m.finish(r, "planned_and_finished")
		default:
			m.setStatus(r, "planned")
			if r.autoApply {
				m.setStatus(r, "applying")
				r.due = m.now.Add(w.apply)
			}
		}
	case "applying":
		m.finish(r, "applied")
		if m.natives {
			for _, t := range m.targets[w.id] {
				m.create(t, "Triggered by run "+r.id+" in "+w.name, SourceRunTrigger, m.ws[t].autoApplyRunTrigger)
			}
		}
	}
}

func (m *model) finish(r *mrun, status string) {
	r.due = time.Time{}
	m.setStatus(r, status)
	m.schedule(m.ws[r.ws])
}

func (m *model) discard(id string) bool {
	r := m.runs[id]
	if r == nil || (r.status != "pending" && r.status != "planned") {
		return false
	}
	m.finish(r, "discarded")
	return true
}

func (m *model) cancel(id string) bool {
	r := m.runs[id]
	if r == nil || (r.status != "pending" && r.status != "planning") {
		return false
	}
	m.finish(r, "canceled")
	return true
}

func (m *model) confirm(id string) bool {
	r := m.runs[id]
	if r == nil || r.status != "planned" {
		return false
	}
	m.setStatus(r, "applying")
	r.due = m.now.Add(m.ws[r.ws].apply)
	return true
}

func (m *model) drain() map[string]bool {
	out := m.changed
	m.changed = map[string]bool{}
	return out
}

// Facts as the engine would read them.

func (m *model) runFacts(r *mrun) Run {
	return Run{ID: r.id, WorkspaceID: r.ws, Status: r.status, Source: r.source, Message: r.message, CreatedAt: r.created,
		StatusAt: r.statusAt, AutoApply: r.autoApply,
		Discardable: r.status == "pending" || r.status == "planned",
		Cancelable:  r.status == "pending" || r.status == "planning",
		Confirmable: r.status == "planned"}
}

func (m *model) workspaceFacts(id string) Workspace {
	w := m.ws[id]
	f := Workspace{ID: id, Name: w.name, ExecutionMode: "remote", HasConfiguration: !w.noConfig, TerraformVersion: "1.9.8",
		AutoApplyRunTrigger: w.autoApplyRunTrigger}
	if w.local {
		f.ExecutionMode = "local"
	}
	if w.current != nil {
		c := m.runFacts(w.current)
		f.Current = &c
		if !Final(c.Status) {
			f.Locked, f.LockedByRun = true, c.ID
		}
	}
	if m.now.Before(w.lockedUntil) {
		f.Locked, f.LockedByRun, f.LockedBy, f.LockedByUser = true, "", "ops", "user-ops"
	}
	if w.held {
		f.Locked, f.LockedByRun, f.LockedBy, f.LockedByUser = true, "", "orchestrator", engineUser
	}
	return f
}

func (m *model) list(id string) []Run {
	w := m.ws[id]
	out := make([]Run, 0, len(w.runs))
	for k := len(w.runs) - 1; k >= 0; k-- {
		out = append(out, m.runFacts(w.runs[k]))
	}
	return out
}

// appliedSince lists the runs of a workspace that applied and were created
// at or after t.
func (m *model) appliedSince(id string, t time.Time) []*mrun {
	var out []*mrun
	for _, r := range m.ws[id].runs {
		if r.status == "applied" && !r.created.Before(t) {
			out = append(out, r)
		}
	}
	return out
}

// engineUser is the TFE user the engine acts as in the model.
const engineUser = "user-orchestrator"

// engine drives the core against the model as the dispatcher would: it
// looks at what Observe names (events can be lost), fills what a decision
// needs, carries the actions out, and plays a person who confirms runs
// awaiting approval.
type engine struct {
	m       *model
	p       *Plan
	st      []Status
	pol     Policy
	ctl     Controls
	rng     *rand.Rand
	lose    float64 // probability that an event is lost
	lostAck float64 // probability that a creation's answer is lost
	// lostAct is the probability that an action decided (and stored) is
	// never carried out: the replica that decided it died first, or its
	// look failed on an earlier action.
	lostAct float64
	// quiet is the probability that a member whose current run is older
	// than what a look waits for is passed as quiet rather than read (the
	// workspace list, newest first, stops before it). The dispatcher's
	// list passes it every time while nothing changes there: 1 plays that.
	quiet float64
	// late, when set, makes looks come late: a look follows the one before
	// after a random delay up to late, whatever happened in TFE meanwhile,
	// as under a backlog, rate limits or a slow NATS.
	late time.Duration
	// confirmWithin bounds how long the person takes to confirm a run.
	confirmWithin time.Duration
	alerts        []Notice
	lastFull      time.Time
	confirm       map[string]time.Time // run → when the person confirms it
	refused       []string
	trace         func(dirty map[string]bool, d Decision) // when set, called after each look
}

func newEngine(m *model, p *Plan, pol Policy, rng *rand.Rand) *engine {
	// The first look is a full one, as the dispatcher's: the root's apply
	// has just queued runs in its targets.
	e := &engine{m: m, p: p, pol: pol.withDefaults(), rng: rng, confirm: map[string]time.Time{}, quiet: 0.5, lastFull: m.now.Add(-pol.withDefaults().Recheck),
		confirmWithin: 2 * time.Hour}
	for i := range p.Members {
		e.st = append(e.st, Initial(p, i))
	}
	return e
}

// look makes one decision and carries it out.
func (e *engine) look(dirty map[string]bool) Decision {
	now := e.m.now
	full := !now.Before(e.lastFull.Add(e.pol.Recheck))
	if full {
		e.lastFull = now
	}
	facts := Facts{Workspaces: map[string]Workspace{}, Quiet: map[string]time.Time{}, Runs: map[string]Run{}, Lists: map[string][]Run{}, Self: engineUser}
	for _, w := range Observe(e.p, e.st, func(id string) bool { return dirty[id] }, full, e.pol, now) {
		id := e.p.Members[w.Member].WorkspaceID
		ws := e.m.workspaceFacts(id)
		// A read of the workspace list newest first may pass a member
		// whose current run is older than what it looks for: quiet.
		if (ws.Current == nil || ws.Current.CreatedAt.Before(w.Since)) && e.rng.Float64() < e.quiet {
			facts.Quiet[id] = w.Since
			continue
		}
		facts.Workspaces[id] = ws
	}
	var d Decision
	for round := 0; ; round++ {
		d = Decide(Input{Plan: e.p, Statuses: e.st, Facts: facts, Controls: e.ctl, Policy: e.pol, Now: now})
		if d.Need.Empty() || round == 4 {
			break
		}
		for _, id := range d.Need.Workspaces {
			facts.Workspaces[id] = e.m.workspaceFacts(id)
		}
		for _, id := range d.Need.Lists {
			facts.Lists[id] = e.m.list(id)
		}
		for _, id := range d.Need.Runs {
			if r := e.m.runs[id]; r != nil {
				facts.Runs[id] = e.m.runFacts(r)
			}
		}
	}
	e.refused = append(e.refused, d.Refused...)
	e.st = d.Statuses
	for _, a := range d.Actions {
		e.act(a)
	}
	for i, s := range e.st {
		if s.State == AwaitingApproval {
			if _, ok := e.confirm[s.RunID]; !ok {
				e.confirm[s.RunID] = now.Add(time.Duration(e.rng.Int64N(int64(e.confirmWithin))))
			}
		}
		_ = i
	}
	return d
}

func (e *engine) act(a Action) {
	if a.Kind != ActCreate && a.Kind != ActAlert && e.rng.Float64() < e.lostAct {
		return
	}
	switch a.Kind {
	case ActCreate:
		i := e.p.Index(a.Member)
		land := e.rng.Float64() >= e.lostAck/2 // some creations never reach TFE
		var r *mrun
		if land {
			r = e.m.create(a.Member, a.Message, "tfe-api", a.AutoApply)
		}
		if r != nil && e.rng.Float64() >= e.lostAck {
			f := e.m.runFacts(r)
			s, acts := AfterCreate(e.p, e.st, i, &f, "", e.m.now)
			e.st[i] = s
			for _, x := range acts {
				e.act(x)
			}
		}
	case ActStop:
		if a.Discard {
			e.m.discard(a.RunID)
		} else {
			e.m.cancel(a.RunID)
		}
	case ActApply:
		e.m.confirm(a.RunID)
	case ActHold:
		i := e.p.Index(a.Member)
		if e.m.lock(a.Member) && e.rng.Float64() >= e.lostAck {
			e.st[i] = AfterHold(e.st, i, true)
		}
	case ActRelease:
		i := e.p.Index(a.Member)
		e.m.unlock(a.Member)
		if e.rng.Float64() >= e.lostAck {
			e.st[i] = AfterRelease(e.st, i, true)
		}
	case ActAlert:
		e.alerts = append(e.alerts, a.Notice)
	}
}

// run drives the cascade until it is done; it returns the number of looks.
func (e *engine) run(maxLooks int) (int, bool) {
	var d Decision
	for looks := 0; looks < maxLooks; looks++ {
		dirty := e.m.drain()
		for _, id := range sortedIDs(dirty) {
			if e.rng.Float64() < e.lose {
				delete(dirty, id)
			}
		}
		d = e.look(dirty)
		if e.trace != nil {
			e.trace(dirty, d)
		}
		if d.Done {
			return looks + 1, true
		}
		if e.late > 0 {
			e.m.advance(e.m.now.Add(time.Duration(e.rng.Int64N(int64(e.late)))))
			e.confirmDue()
			continue
		}
		if len(e.m.changed) > 0 {
			continue // what the actions changed arrives as events at once
		}
		next := d.Wake
		if t := e.m.nextDue(); !t.IsZero() && t.Before(next) {
			next = t
		}
		for id, at := range e.confirm {
			if at.Before(next) && e.m.runs[id].status == "planned" {
				next = at
			}
		}
		if next.Before(e.m.now) {
			next = e.m.now
		}
		e.m.advance(next)
		e.confirmDue()
	}
	return maxLooks, false
}

// confirmDue plays the person who confirms runs awaiting approval.
func (e *engine) confirmDue() {
	for _, id := range sortedIDs(keys(e.confirm)) {
		if !e.confirm[id].After(e.m.now) && e.m.confirm(id) {
			delete(e.confirm, id)
		}
	}
}

func (e *engine) alertsOf(kind string) []Notice {
	var out []Notice
	for _, n := range e.alerts {
		if n.Kind == kind {
			out = append(out, n)
		}
	}
	return out
}

// sortedIDs returns the keys of a set in order, for stable failure messages.
func sortedIDs(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return slices.Clip(out)
}

func keys[V any](m map[string]V) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}
