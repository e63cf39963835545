package cascade

import (
	"fmt"
	"slices"
	"time"
)

// State is where a member stands in its cascade.
type State string

// Member states. Waiting, Ready, Dispatching, Running and AwaitingApproval
// are open; the others are final.
const (
	// Waiting: some upstream has not finished (or dispatching is paused
	// or held by the blast-radius guard).
	Waiting State = "waiting"
	// Ready: every upstream finished; its run is looked for (a run TFE's
	// run triggers queued after that) or is about to be created.
	Ready State = "ready"
	// Dispatching: a run creation was sent and its outcome is not known.
	Dispatching State = "dispatching"
	// Running: its run is queued, planning or applying.
	Running State = "running"
	// AwaitingApproval: its run planned and waits for a person to confirm.
	AwaitingApproval State = "awaiting_approval"
	// Applied: its run applied.
	Applied State = "applied"
	// NoChanges: its run finished planning with no changes.
	NoChanges State = "no_changes"
	// Failed: its run errored, or was cancelled or discarded.
	Failed State = "failed"
	// Blocked: it can never run (an upstream failed, a cycle, preflight,
	// the cascade was cancelled).
	Blocked State = "blocked"
	// Skipped: it need not run (no upstream changed, excluded by an
	// operator, or a dry run).
	Skipped State = "skipped"
)

// States are the member states in the order a member goes through them.
var States = []State{Waiting, Ready, Dispatching, Running, AwaitingApproval, Applied, NoChanges, Failed, Blocked, Skipped}

// Final reports whether a member in state s will not change again (unless
// an operator retries it).
func (s State) Final() bool {
	switch s {
	case Applied, NoChanges, Failed, Blocked, Skipped:
		return true
	}
	return false
}

func (s State) valid() bool { return slices.Contains(States, s) }

// Transitions is the transition table: for each state, the states Decide
// may move a member to. Retrying (an operator's action) may also move a
// Failed or Blocked member back to Waiting.
var Transitions = map[State][]State{
	Waiting:          {Ready, Blocked, Skipped},
	Ready:            {Waiting, Dispatching, Running, AwaitingApproval, Applied, NoChanges, Failed, Blocked, Skipped},
	Dispatching:      {Ready, Running, AwaitingApproval, Applied, NoChanges, Failed, Blocked},
	Running:          {AwaitingApproval, Applied, NoChanges, Failed, Blocked},
	AwaitingApproval: {Running, Applied, NoChanges, Failed, Blocked},
	Applied:          {},
	NoChanges:        {},
	Failed:           {Waiting},
	Blocked:          {Waiting},
	Skipped:          {},
}

// Allowed reports whether the table allows from → to.
func Allowed(from, to State) bool {
	if from == to {
		return true
	}
	for _, s := range Transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Status is where a member stands, with what the cascade needs to remember
// about it. The dispatcher stores one per member.
type Status struct {
	State  State  `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Since is when it entered its state (the engine's clock).
	Since time.Time `json:"since,omitzero"`

	// ReadyAt is when its last upstream finished, in TFE's time: a run
	// created at or after it may be the member's run.
	ReadyAt time.Time `json:"ready_at,omitzero"`

	// The member's run: created by the cascade, or queued by TFE's run
	// triggers and adopted (Adopted).
	RunID        string    `json:"run_id,omitempty"`
	RunStatus    string    `json:"run_status,omitempty"`
	RunCreatedAt time.Time `json:"run_created_at,omitzero"`
	Adopted      bool      `json:"adopted,omitempty"`
	// WantAutoApply: the apply policy wants its run to apply on its own.
	WantAutoApply bool `json:"want_auto_apply,omitempty"`
	// ApplyRequested: the cascade asked TFE to apply the run.
	ApplyRequested bool `json:"apply_requested,omitempty"`
	// FinishedAt is when its run finished, in TFE's time.
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// Changed: its run applied changes (its downstream runs).
	Changed bool `json:"changed,omitempty"`

	// Attempts counts run creations; AttemptDeadline is the latest time the
	// last one may still land in TFE (the engine's clock).
	Attempts        int       `json:"attempts,omitempty"`
	AttemptDeadline time.Time `json:"attempt_deadline,omitzero"`

	// Stopping is a run the cascade is stopping (a native run queued too
	// early, or in a member that will not run) and when TFE created it.
	Stopping          string    `json:"stopping,omitempty"`
	StoppingCreatedAt time.Time `json:"stopping_created_at,omitzero"`
	// Stopped counts the runs the cascade stopped in this member.
	Stopped int `json:"stopped,omitempty"`
	// Swept: a member that does not run was looked at once its upstreams
	// finished, and no run of the cascade's triggers was left in it.
	// Escaped counts runs of the cascade's triggers that applied in it
	// before the cascade could stop them (they fired triggers in turn).
	Swept       bool   `json:"swept,omitempty"`
	Escaped     int    `json:"escaped,omitempty"`
	LastEscaped string `json:"last_escaped,omitempty"`
	// Counted: its runs were listed once it had its run, and every run
	// the cascade's triggers queued there was handled.
	Counted bool `json:"counted,omitempty"`

	// BusySince is when the member was first seen held by something else
	// (a person's lock or run); Alerted counts the alerts about it, or the
	// reminders while it awaits approval.
	BusySince time.Time `json:"busy_since,omitzero"`
	Alerted   int       `json:"alerted,omitempty"`

	// Cause says why a final member ended as it did: one of the Cause
	// constants.
	Cause string `json:"cause,omitempty"`
	// Retry is the ID of the last operator retry applied to the member;
	// PastRuns are the runs it had before retries, never taken again.
	Retry    string   `json:"retry,omitempty"`
	PastRuns []string `json:"past_runs,omitempty"`

	// Hold is where the cascade's hold on the member's workspace stands: a
	// TFE lock that keeps runs queued too early pending (C13).
	Hold HoldState `json:"hold,omitempty"`

	// Gate is what the comparison of its upstreams' outputs found, for a
	// member gated on outputs: names only, never values.
	Gate *Gate `json:"gate,omitempty"`
}

// Gate is how a member gated on outputs was decided: which upstreams that
// applied were compared, which of their outputs changed, or why they could
// not be compared (then it ran all the same).
type Gate struct {
	// Upstreams are the names of the upstreams whose outputs were compared
	// (or tried); Outputs is how many outputs their new state versions
	// hold.
	Upstreams []string `json:"upstreams,omitempty"`
	Outputs   int      `json:"outputs,omitempty"`
	// Changed names the outputs that changed, as upstream.output, at most
	// MaxGateNames; More counts the others.
	Changed []string `json:"changed,omitempty"`
	More    int      `json:"more,omitempty"`
	// NotGated, when set, says why outputs could not be compared.
	NotGated string `json:"not_gated,omitempty"`
}

// MaxGateNames bounds the output names a member's status keeps.
const MaxGateNames = 50

// Runs reports whether the gate lets the member run.
func (g *Gate) Runs() bool { return g.NotGated != "" || len(g.Changed) > 0 }

// HoldState is where the cascade's hold on a member's workspace stands.
// A hold is a TFE workspace lock taken by the engine's user: while it is
// there TFE starts no run in the workspace, so a run its run triggers queue
// before the member may run stays pending until the cascade stops it,
// however late the cascade looks.
type HoldState string

// Hold states. Taking, Held and Releasing are open: a member with an open
// hold is not done.
const (
	// HoldNone: the cascade has not held the workspace.
	HoldNone HoldState = ""
	// HoldTaking: the cascade asked TFE to lock the workspace and does not
	// know yet that it holds it.
	HoldTaking HoldState = "taking"
	// HoldHeld: the workspace is locked by the engine for the cascade.
	HoldHeld HoldState = "held"
	// HoldReleasing: the cascade asked TFE to unlock the workspace.
	HoldReleasing HoldState = "releasing"
	// HoldReleased: the cascade let the workspace go; it never holds it
	// again.
	HoldReleased HoldState = "released"
	// HoldLifted: someone else unlocked the workspace while the cascade
	// held it (a force-unlock): an operator's decision, reported and
	// respected; the cascade does not lock it again.
	HoldLifted HoldState = "lifted"
)

// HoldStates are the hold states, for validation.
var HoldStates = []HoldState{HoldNone, HoldTaking, HoldHeld, HoldReleasing, HoldReleased, HoldLifted}

// open reports whether the cascade still has, or may have, a lock on the
// workspace.
func (h HoldState) open() bool { return h == HoldTaking || h == HoldHeld || h == HoldReleasing }

// Causes of a final state.
const (
	CauseRun       = "run"       // its run ended so
	CauseUpstream  = "upstream"  // an upstream failed or was blocked
	CauseCycle     = "cycle"     // a run-trigger cycle
	CausePreflight = "preflight" // it cannot run (local execution, no configuration, disabled Terraform version, gone)
	CauseRefused   = "refused"   // TFE refused its run
	CauseOperator  = "operator"  // excluded, or the cascade was cancelled
	CauseUnchanged = "unchanged" // no upstream changed
	// CauseOutputsUnchanged: upstreams applied, none changed an output.
	CauseOutputsUnchanged = "outputs_unchanged"
	CauseDryRun           = "dry_run" // a dry run decided it would run
)

// Validate checks a status read back from storage.
func (s *Status) Validate() error {
	if !s.State.valid() {
		return fmt.Errorf("unknown member state %q", s.State)
	}
	if !slices.Contains(HoldStates, s.Hold) {
		return fmt.Errorf("unknown hold state %q", s.Hold)
	}
	if s.Attempts < 0 || s.Stopped < 0 || s.Alerted < 0 {
		return fmt.Errorf("negative counter in member status")
	}
	if (s.State == Running || s.State == AwaitingApproval) && s.RunID == "" {
		return fmt.Errorf("member %s without a run", s.State)
	}
	if g := s.Gate; g != nil && (len(g.Changed) > MaxGateNames || len(g.Upstreams) > 1000 || g.More < 0 || g.Outputs < 0 || len(g.NotGated) > 4096) {
		return fmt.Errorf("member gate too large")
	}
	if len(s.Reason) > 4096 || len(s.PastRuns) > 1000 {
		return fmt.Errorf("member status too large")
	}
	return nil
}

// Initial returns the status every member starts in.
func Initial(p *Plan, i int) Status {
	m := p.Members[i]
	if m.Cycle != "" {
		return Status{State: Blocked, Reason: m.Cycle, Since: p.StartedAt, Cause: CauseCycle}
	}
	return Status{State: Waiting, Reason: "waiting for " + p.upstreamNames(i), Since: p.StartedAt}
}

func (p *Plan) upstreamNames(i int) string {
	names := ""
	for k, u := range p.Members[i].Upstreams {
		if k > 0 {
			names += ", "
		}
		names += p.Name(u)
	}
	return names
}

// Outcome is how a cascade ended.
type Outcome string

// Outcomes.
const (
	OutcomeApplied    Outcome = "applied"    // every member applied, had no changes or was skipped
	OutcomeIncomplete Outcome = "incomplete" // something failed or was blocked
	OutcomeCancelled  Outcome = "cancelled"  // an operator cancelled it
	OutcomeDryRun     Outcome = "dry_run"
)
