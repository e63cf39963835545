package cascade

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/setting"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient/runstatus"
)

// ApplyPolicy says when a cascade run applies without a person.
type ApplyPolicy string

// Apply policies.
const (
	// ApplyLikeTFE applies a cascade run on its own exactly when TFE would
	// apply a run-trigger run in its workspace: when the workspace has
	// auto-apply-run-trigger set. The default.
	ApplyLikeTFE ApplyPolicy = "workspace"
	// ApplyAlways applies every cascade run on its own.
	ApplyAlways ApplyPolicy = "always"
	// ApplyNever leaves every cascade run for a person to confirm.
	ApplyNever ApplyPolicy = "never"
)

// RunWhen says when a member whose upstreams all finished runs.
type RunWhen string

// When members run.
const (
	// RunWhenChanges runs a member when at least one of its upstreams
	// applied changes, and skips it when none did (C11). The default.
	RunWhenChanges RunWhen = "changes"
	// RunWhenOutputs runs a member when at least one of its upstreams that
	// applied changed an output: the state version its run wrote against
	// the one before it. A member whose upstreams' outputs cannot be
	// compared runs, and says why.
	RunWhenOutputs RunWhen = "outputs"
	// RunWhenAlways runs every member whose upstreams finished, changed or
	// not.
	RunWhenAlways RunWhen = "always"
)

// Tags that set, for one workspace as a member, when it runs, whatever
// the policy. With both, TagRunAlways wins.
const (
	// TagRunAlways: never gated on outputs; it runs whenever the policy
	// would without them (under outputs: when an upstream applied).
	TagRunAlways = "cascade-run-always"
	// TagRunOnOutputs: gated on its upstreams' outputs even when the
	// policy is changes or always.
	TagRunOnOutputs = "cascade-run-on-outputs"
)

// Policy is how cascades behave: the operator's settings. A zero setting
// takes its default, DefaultPolicy's; a negative one is refused by
// Validate. No setting can be turned off with 0.
type Policy struct {
	// Apply: when a cascade run applies without a person; default
	// ApplyLikeTFE.
	Apply ApplyPolicy
	// RunWhen says when a member whose upstreams finished runs; default
	// RunWhenChanges.
	RunWhen RunWhen
	// RunUnchanged is the old name of RunWhen always: when RunWhen is not
	// set, it selects RunWhenAlways.
	RunUnchanged bool
	// OutputsWait bounds the wait for TFE to process the state version an
	// upstream's run wrote, from the run's apply (TFE's time): past it,
	// outputs are not compared and the member runs. Default 30s.
	OutputsWait time.Duration
	// LockedRetry is how often a member held by a person's lock or run is
	// looked at again (default 30s); LockedAlertAfter is when that is
	// alerted (default 10m).
	LockedRetry, LockedAlertAfter time.Duration
	// ApprovalReminder is how often a run awaiting a person is reminded;
	// default 1h.
	ApprovalReminder time.Duration
	// Recheck: an open cascade is looked at in full after this long, so a
	// lost webhook delays it by at most this; default 1m.
	Recheck time.Duration
	// NativeGrace is how long after a member's last upstream applied the
	// run TFE's run trigger queues is waited for before the cascade
	// creates one; default 10s.
	NativeGrace time.Duration
	// CreateTimeout bounds a run creation; CreateSettle is how long after
	// that a creation whose answer was lost may still appear in TFE;
	// defaults 30s and 30s.
	CreateTimeout, CreateSettle time.Duration
	// MaxAttempts bounds the creations of one member's run; default 5.
	MaxAttempts int
	// Soon is how soon a member is looked at again after the cascade asked
	// TFE to stop or apply one of its runs; default 2s.
	Soon time.Duration
	// NoHolds turns holds off (C13): runs TFE's run triggers queue too
	// early are then only stopped when a look finds them, which is in time
	// only while looks come faster than runs plan.
	NoHolds bool
}

// DefaultPolicy is the policy with every setting at its default.
var DefaultPolicy = Policy{
	Apply: ApplyLikeTFE, LockedRetry: 30 * time.Second, LockedAlertAfter: 10 * time.Minute,
	ApprovalReminder: time.Hour, Recheck: time.Minute, NativeGrace: 10 * time.Second,
	CreateTimeout: 30 * time.Second, CreateSettle: 30 * time.Second, MaxAttempts: 5, Soon: 2 * time.Second,
	RunWhen: RunWhenChanges, OutputsWait: 30 * time.Second,
}

// WithDefaults returns the policy with every unset setting at its default.
func (p Policy) WithDefaults() Policy { return p.withDefaults() }

func (p Policy) withDefaults() Policy {
	d := DefaultPolicy
	if p.Apply != "" {
		d.Apply = p.Apply
	}
	d.NoHolds = p.NoHolds
	switch {
	case p.RunWhen != "":
		d.RunWhen = p.RunWhen
	case p.RunUnchanged:
		d.RunWhen = RunWhenAlways
	}
	d.RunUnchanged = d.RunWhen == RunWhenAlways
	set := func(dst *time.Duration, v time.Duration) {
		if v > 0 {
			*dst = v
		}
	}
	set(&d.LockedRetry, p.LockedRetry)
	set(&d.LockedAlertAfter, p.LockedAlertAfter)
	set(&d.ApprovalReminder, p.ApprovalReminder)
	set(&d.Recheck, p.Recheck)
	set(&d.NativeGrace, p.NativeGrace)
	set(&d.CreateTimeout, p.CreateTimeout)
	set(&d.CreateSettle, p.CreateSettle)
	set(&d.Soon, p.Soon)
	set(&d.OutputsWait, p.OutputsWait)
	if p.MaxAttempts > 0 {
		d.MaxAttempts = p.MaxAttempts
	}
	return d
}

// Validate reports a policy that cannot work, as a *setting.Error naming
// the field. A zero setting takes its default (DefaultPolicy); a negative
// duration or MaxAttempts is refused.
func (p Policy) Validate() error {
	switch p.Apply {
	case "", ApplyLikeTFE, ApplyAlways, ApplyNever:
	default:
		return setting.Errorf("{Apply} must be workspace, always or never, not %q", p.Apply)
	}
	switch p.RunWhen {
	case "", RunWhenChanges, RunWhenOutputs, RunWhenAlways:
	default:
		return setting.Errorf("{RunWhen} must be changes, outputs or always, not %q", p.RunWhen)
	}
	for _, f := range []struct {
		field string
		v     time.Duration
	}{
		{"OutputsWait", p.OutputsWait}, {"LockedRetry", p.LockedRetry}, {"LockedAlertAfter", p.LockedAlertAfter},
		{"ApprovalReminder", p.ApprovalReminder}, {"Recheck", p.Recheck}, {"NativeGrace", p.NativeGrace},
		{"CreateTimeout", p.CreateTimeout}, {"CreateSettle", p.CreateSettle}, {"Soon", p.Soon},
	} {
		if f.v < 0 {
			return setting.Errorf("{"+f.field+"} (%s) must not be negative", setting.Duration(f.v))
		}
	}
	if p.MaxAttempts < 0 {
		return setting.Errorf("{MaxAttempts} (%d) must not be negative", p.MaxAttempts)
	}
	return nil
}

// Controls are what operators decided about a cascade.
type Controls struct {
	// Paused, when set, says why dispatching is paused (who paused, why):
	// no run starts in a member meanwhile.
	Paused string
	// Held, when set, says that the blast-radius guard holds the cascade
	// until an operator lets it go.
	Held string
	// Cancelled, when set, says who cancelled the cascade and why: no
	// member runs any more. With CancelRuns, its runs that have not started
	// applying are stopped too.
	Cancelled  string
	CancelRuns bool
	// Excluded workspaces are never run by a cascade: workspace ID → why.
	Excluded map[string]string
	// Retries are operators' requests to run a failed member again:
	// workspace ID → the request's ID (applied once).
	Retries map[string]string
	// ResumeAt, when set, is when a freeze window in force ends or the
	// next one begins: an open cascade is looked at again by then.
	ResumeAt time.Time
}

// ActionKind is what an action does.
type ActionKind string

// Actions.
const (
	// Create a run in Member with Message, auto-applying when AutoApply.
	ActCreate ActionKind = "create"
	// Stop RunID in Member: discard it (Discard) or cancel it, with the
	// comment Message.
	ActStop ActionKind = "stop"
	// Apply (confirm) RunID with the comment Message.
	ActApply ActionKind = "apply"
	// Alert operators: Notice.
	ActAlert ActionKind = "alert"
	// Hold Member: lock its workspace, with Message as the lock's reason.
	ActHold ActionKind = "hold"
	// Release Member: unlock the workspace the cascade locked.
	ActRelease ActionKind = "release"
)

// Action is something the shell does in TFE or tells operators.
type Action struct {
	Kind      ActionKind
	Member    string // workspace ID
	RunID     string
	Message   string
	AutoApply bool
	Discard   bool
	Notice    Notice
}

// Notice is an alert, in the core's terms.
type Notice struct {
	Kind, Severity    string
	WorkspaceID, Name string
	RunID             string
	Message           string
	Key               string
}

// Alert kinds and severities the core raises (the alerts package's names).
const (
	AlertBlocked      = "cascade_blocked"
	AlertLocked       = "workspace_locked"
	AlertDeprecated   = "terraform_version_deprecated"
	AlertAwaiting     = "run_awaiting"
	AlertUncontrolled = "uncontrolled_run"
	AlertDispatch     = "dispatch_failed"
	AlertHoldLifted   = "hold_lifted"

	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// Needs are facts a decision lacked: read them and decide again.
type Needs struct {
	Workspaces []string // members' workspaces with their current runs
	Runs       []string // runs, by ID
	Lists      []string // members' recent runs
	// Outputs are upstream runs whose outputs are to be compared (into
	// Facts.Outputs).
	Outputs []OutputsNeed
}

// OutputsNeed asks for the outputs of the state version a run wrote in
// a workspace to be compared with the state version before it.
type OutputsNeed struct {
	WorkspaceID string
	RunID       string
}

// Empty reports whether nothing is needed.
func (n Needs) Empty() bool { return len(n.Workspaces)+len(n.Runs)+len(n.Lists)+len(n.Outputs) == 0 }

// Input is everything a decision is made from.
type Input struct {
	Plan     *Plan
	Statuses []Status // one per member, in Plan.Members order
	Facts    Facts
	Controls Controls
	Policy   Policy
	Now      time.Time
}

// Decision is what Decide concluded.
type Decision struct {
	// Statuses are the members' new statuses; Changed lists the positions
	// that differ from the input's.
	Statuses []Status
	Changed  []int
	Actions  []Action
	Need     Needs
	// Wake is when to look at the cascade again; zero when it is done.
	Wake time.Time
	// Hold and Release list the members that the cascade starts or stops
	// holding: a member is held until it is final and nothing of the
	// cascade can still queue a run in it.
	Hold, Release []int
	Done          bool
	// Finished: a cancelled cascade whose members are all final; its
	// outcome is known (Outcome) although it is not Done yet: runs already
	// applying may still make TFE queue runs in it, to be stopped, or it
	// still holds members.
	Finished bool
	Outcome  Outcome
	// Refused lists transitions the table does not allow: a bug, reported
	// by the shell; the member keeps its status.
	Refused []string
}

// Decide is the cascade engine's one decision: from the cascade, its
// members' statuses, what was observed in TFE and the operators' controls,
// at time now, it returns the new statuses, the actions to take and when
// to look again. It is pure: the same input gives the same decision.
func Decide(in Input) Decision {
	d := &decider{in: in, p: in.Plan, pol: in.Policy.withDefaults(), now: in.Now, next: slices.Clone(in.Statuses)}
	for i := range d.p.Members {
		d.member(i)
	}
	d.alertBlocked()
	d.conclude()
	return d.out
}

type decider struct {
	in      Input
	p       *Plan
	pol     Policy
	now     time.Time
	next    []Status
	out     Decision
	blocked []int // members blocked by this decision, for one alert
	wake    time.Time
}

func (d *decider) member(i int) {
	m := &d.p.Members[i]
	s := d.next[i]
	if id := d.in.Controls.Retries[m.WorkspaceID]; id != "" && id != s.Retry && retriable(s) {
		past := s.PastRuns
		if s.RunID != "" {
			past = append(slices.Clone(past), s.RunID)
		}
		d.set(i, Status{State: Waiting, Reason: "retried by an operator", Retry: id, PastRuns: past, Stopped: s.Stopped})
	}
	if why := d.in.Controls.Cancelled; why != "" && !d.next[i].State.Final() {
		d.cancel(i, why)
	}
	switch d.next[i].State {
	case Waiting:
		d.waiting(i)
	case Blocked:
		if d.next[i].Cause == CauseUpstream {
			d.waiting(i) // an upstream retried by an operator may let it run again
		}
	case Ready:
		d.ready(i)
	case Dispatching:
		d.dispatching(i)
	case Running, AwaitingApproval:
		d.running(i)
	}
	d.settleStop(i)
	switch s := d.next[i]; {
	case s.State == Waiting, s.State == Running, s.State == AwaitingApproval, s.State.Final() && !handsOff(s, d.in.Controls):
		d.strays(i)
	}
	d.hold(i)
}

// handsOff reports whether the cascade leaves a final member's workspace
// alone: excluded by an operator, or in a cancelled cascade whose runs
// operators did not ask to stop.
func handsOff(s Status, c Controls) bool {
	return s.Cause == CauseOperator && (s.State == Skipped || !c.CancelRuns)
}

func retriable(s Status) bool {
	switch {
	case s.State == Failed:
		return true
	case s.State == Blocked:
		return s.Cause == CausePreflight || s.Cause == CauseRefused
	}
	return false
}

// verdict is what a member's upstreams allow.
type verdict struct {
	failed      string   // why it can never run, when one of them failed
	pending     []string // names of those not finished
	readyAt     time.Time
	changed     bool // at least one applied changes
	lastApplied bool // the one that finished last applied, so TFE's run triggers fired from it
}

func (d *decider) barrier(i int) verdict {
	var v verdict
	for _, u := range d.p.Members[i].Upstreams {
		var at time.Time
		var changed, applied bool
		if u == d.p.Root.WorkspaceID {
			at, changed, applied = d.p.Root.FinishedAt, true, d.p.Root.fired()
		} else {
			us := d.next[d.p.Index(u)]
			name := d.p.Name(u)
			switch us.State {
			case Failed:
				v.failed = "upstream " + name + " failed (" + us.Reason + ")"
				return v
			case Blocked:
				v.failed = "upstream " + name + " is blocked"
				return v
			case Applied, NoChanges, Skipped:
				at, changed, applied = us.FinishedAt, us.Changed, us.State == Applied
			default:
				v.pending = append(v.pending, name)
				continue
			}
		}
		v.changed = v.changed || changed
		if at.After(v.readyAt) || (at.Equal(v.readyAt) && applied) {
			v.readyAt, v.lastApplied = at, applied
		}
	}
	return v
}

func (d *decider) gate() string {
	switch c := d.in.Controls; {
	case c.Paused != "":
		return "dispatching paused: " + c.Paused
	case c.Held != "":
		return "held by the blast-radius guard: " + c.Held
	}
	return ""
}

// waiting moves a member whose upstreams have all finished on to Ready,
// or ends it when it can never run or need not run.
func (d *decider) waiting(i int) {
	s := d.next[i]
	m := &d.p.Members[i]
	if why, ok := d.in.Controls.Excluded[m.WorkspaceID]; ok && s.State == Waiting {
		d.end(i, Skipped, CauseOperator, "excluded by an operator: "+why, false, d.barrier(i).readyAt)
		return
	}
	v := d.barrier(i)
	if s.State == Blocked && v.failed == "" {
		d.setReason(i, Waiting, "resumed: the upstream that blocked it was retried")
		s = d.next[i]
	}
	switch {
	case v.failed != "":
		if s.State != Blocked || s.Reason != v.failed {
			d.end(i, Blocked, CauseUpstream, v.failed, false, time.Time{})
			d.blocked = append(d.blocked, i)
		}
	case len(v.pending) > 0:
		d.setReason(i, Waiting, "waiting for "+strings.Join(v.pending, ", "))
	case !v.changed && d.pol.RunWhen != RunWhenAlways:
		d.end(i, Skipped, CauseUnchanged, "no upstream changed", false, v.readyAt)
	case d.gate() != "":
		d.setReason(i, Waiting, d.gate())
	default:
		s := d.next[i]
		s.State, s.Reason, s.ReadyAt = Ready, "its upstreams finished", v.readyAt
		d.set(i, s)
		d.ready(i)
	}
}

// ready finds the member's run: one it created before, or one TFE's run
// triggers queued after its upstreams finished; or it creates one.
func (d *decider) ready(i int) {
	m := &d.p.Members[i]
	s := d.next[i]
	if held := d.in.Facts.HeldBy[m.WorkspaceID]; held != "" {
		d.setReason(i, Ready, "after cascade "+held+", which runs "+m.Name+" first")
		d.wakeIn(d.pol.LockedRetry)
		return
	}
	if why, ok := d.in.Controls.Excluded[m.WorkspaceID]; ok {
		d.end(i, Skipped, CauseOperator, "excluded by an operator: "+why, false, s.ReadyAt)
		return
	}
	if g := d.gate(); g != "" {
		d.setReason(i, Waiting, g)
		return
	}
	ws, seen := d.in.Facts.Workspaces[m.WorkspaceID]
	if !seen {
		d.needWorkspace(i)
		return
	}
	if ws.Missing {
		d.block(i, CausePreflight, "the workspace no longer exists")
		return
	}
	if !d.gated(i, ws) {
		return
	}
	runs, listed := d.runsIn(i, ws)
	if ws.Locked && ws.LockedByRun == "" && !listed && !(d.mine(ws) && s.Hold.open()) {
		// Runs TFE queued wait behind a person's lock, where only a list
		// shows them: one queued too early is stopped while it waits,
		// before the lock goes.
		d.needList(i)
		return
	}
	if r, ambiguous := d.pick(i, runs, ws, listed); ambiguous {
		d.needList(i)
		return
	} else if r != nil {
		if r.AutoApply && !d.wantAuto(ws) {
			d.alert(i, Notice{Kind: AlertUncontrolled, Severity: SeverityWarning, RunID: r.ID,
				Message: fmt.Sprintf("cascade %s: run %s (%s) applied in %s on its own before the cascade could stop it, against the apply policy (%s); it is taken as %s's run",
					d.p.ID, r.ID, sourceName(r.Source), m.Name, d.pol.Apply, m.Name),
				Key: "uncontrolled/" + r.ID})
		}
		// The run TFE queued is taken, not created: the version is
		// warned about all the same.
		if tool, known := d.in.Facts.Tools[ws.TerraformVersion]; known && tool.Deprecated {
			d.deprecated(i, ws)
		}
		d.adopt(i, *r, ws)
		d.running(i)
		return
	}
	// Runs that must not run: queued by TFE's run triggers before the
	// upstreams finished, or against the apply policy.
	stopping := false
	for _, r := range runs {
		switch {
		case !r.Native() || r.CreatedAt.Before(d.p.Root.FinishedAt):
		case Final(r.Status):
			d.escaped(i, r)
		default:
			d.stop(i, r, d.whyStop(i, r))
			stopping = true
		}
	}
	if stopping {
		d.setReason(i, Ready, "stopping runs TFE queued before its upstreams finished")
		return
	}
	if cur := ws.Current; cur != nil && !Final(cur.Status) {
		d.busy(i, fmt.Sprintf("waiting for run %s (%s, %s) that holds %s", cur.ID, sourceName(cur.Source), cur.Status, m.Name))
		return
	}
	if ws.Locked && ws.LockedByRun == "" && !(d.mine(ws) && s.Hold.open()) {
		d.busy(i, m.Name+" is locked by "+lockHolder(ws))
		return
	}
	if s.Hold == HoldHeld && !listed {
		// The run TFE's run trigger queued waits behind the hold, where
		// only a list of the workspace's runs shows it.
		d.needList(i)
		return
	}
	if d.barrier(i).lastApplied && s.Retry == "" && d.now.Before(s.ReadyAt.Add(d.pol.NativeGrace)) {
		d.setReason(i, Ready, "waiting for the run TFE's run trigger queues")
		d.wakeAt(s.ReadyAt.Add(d.pol.NativeGrace))
		return
	}
	if !listed {
		d.needList(i)
		return
	}
	d.create(i, ws)
}

// runsIn returns the runs known in a member's workspace, newest first: its
// recent runs when they were listed, else its current run.
func (d *decider) runsIn(i int, ws Workspace) ([]Run, bool) {
	if list, ok := d.in.Facts.Lists[d.p.Members[i].WorkspaceID]; ok {
		if ws.Current != nil && !slices.ContainsFunc(list, func(r Run) bool { return r.ID == ws.Current.ID }) {
			list = append([]Run{*ws.Current}, list...)
		}
		return list, true
	}
	if ws.Current != nil {
		return []Run{*ws.Current}, false
	}
	return nil, false
}

// pick returns the run that is, or may be, the member's run: one a
// creation of this cascade left, else the newest run created since its
// upstreams finished by TFE's run triggers or by another cascade. With
// seconds-precision times (TFE's status timestamps), a run created in the
// second the last upstream finished is ambiguous for a member with several
// upstreams until its recent runs are listed.
func (d *decider) pick(i int, runs []Run, ws Workspace, listed bool) (*Run, bool) {
	s := d.next[i]
	for k := range runs {
		if id, ok := OfMessage(runs[k].Message); ok && id == d.p.ID && !slices.Contains(s.PastRuns, runs[k].ID) {
			return &runs[k], false
		}
	}
	var best *Run
	for k := range runs {
		r := &runs[k]
		if !d.eligible(i, r, ws) {
			continue
		}
		// The newest; of two queued in the same instant (two upstreams that
		// applied at once), the one already running.
		if best == nil || r.CreatedAt.After(best.CreatedAt) || (r.CreatedAt.Equal(best.CreatedAt) && best.Status == runstatus.Pending && r.Status != runstatus.Pending) {
			best = r
		}
	}
	if best == nil || listed {
		return best, false
	}
	ambiguous := len(d.p.Members[i].Upstreams) > 1 && s.ReadyAt.Nanosecond() == 0 && best.CreatedAt.Before(s.ReadyAt.Add(time.Second))
	return best, ambiguous
}

// eligible reports whether r may be the member's run: queued by TFE's run
// triggers (or by another cascade) after the member's upstreams finished,
// one that plans and applies, not stopped (by the cascade while it was
// paused or held, or by a person), and, for a run that would apply on its
// own, allowed to by the apply policy.
func (d *decider) eligible(i int, r *Run, ws Workspace) bool {
	s := d.next[i]
	_, other := OfMessage(r.Message)
	switch {
	case !r.Native() && !other, r.IsDestroy, r.PlanOnly, r.ID == s.Stopping, slices.Contains(s.PastRuns, r.ID), r.stopped():
		return false
	case r.CreatedAt.Before(s.ReadyAt):
		return false
	case r.AutoApply && !d.wantAuto(ws):
		// Against the apply policy: stopped, unless it already applied;
		// then it is the member's run, for a second one would apply twice.
		return r.Status == runstatus.Applied
	}
	return true
}

func (d *decider) wantAuto(ws Workspace) bool {
	switch d.pol.Apply {
	case ApplyAlways:
		return true
	case ApplyNever:
		return false
	}
	return ws.AutoApplyRunTrigger
}

func (d *decider) whyStop(i int, r Run) string {
	s := d.next[i]
	m := &d.p.Members[i]
	switch {
	case s.RunID != "" && r.ID != s.RunID:
		return fmt.Sprintf("superseded by cascade %s: %s runs once in it, and its run is %s", d.p.ID, m.Name, s.RunID)
	case s.State == Ready && !r.CreatedAt.Before(s.ReadyAt):
		return fmt.Sprintf("stopped by cascade %s: this run would apply on its own, and the apply policy (%s) leaves %s's cascade run to a person", d.p.ID, d.pol.Apply, m.Name)
	case s.State == Ready || s.State == Waiting:
		return fmt.Sprintf("superseded by cascade %s: %s runs once, after all of its upstreams (%s) finished; this run was queued before that", d.p.ID, m.Name, d.p.upstreamNames(i))
	}
	return fmt.Sprintf("stopped by cascade %s: %s does not run in it (%s)", d.p.ID, m.Name, s.Reason)
}

func sourceName(source string) string {
	switch source {
	case SourceRunTrigger:
		return "queued by a run trigger"
	case "tfe-ui":
		return "queued in the UI"
	case "tfe-api":
		return "queued through the API"
	case "":
		return "source unknown"
	}
	return "source " + source
}

// deprecated warns that a member runs on a Terraform version the
// installation deprecated (C8); its run goes ahead.
func (d *decider) deprecated(i int, ws Workspace) {
	m := &d.p.Members[i]
	d.alert(i, Notice{Kind: AlertDeprecated, Severity: SeverityWarning,
		Message: fmt.Sprintf("cascade %s: %s uses Terraform %s, which is deprecated; its run goes ahead", d.p.ID, m.Name, ws.TerraformVersion),
		Key:     "deprecated/" + m.WorkspaceID + "/" + ws.TerraformVersion})
}

// create records the intent to create the member's run, after the checks
// TFE would fail it on (C8), and asks the shell to create it.
func (d *decider) create(i int, ws Workspace) {
	m := &d.p.Members[i]
	s := d.next[i]
	switch tool, known := d.in.Facts.Tools[ws.TerraformVersion]; {
	case ws.ExecutionMode == "local":
		d.block(i, CausePreflight, "the workspace uses local execution and cannot run remotely")
		return
	case !ws.HasConfiguration:
		d.block(i, CausePreflight, "the workspace has no configuration version to run")
		return
	case known && !tool.Enabled:
		d.block(i, CausePreflight, "Terraform "+ws.TerraformVersion+" is disabled on this installation")
		return
	case known && tool.Deprecated:
		d.deprecated(i, ws)
	}
	if d.p.DryRun {
		d.end(i, Skipped, CauseDryRun, "dry run: a run would be created", true, s.ReadyAt)
		return
	}
	if s.Attempts >= d.pol.MaxAttempts {
		d.refuse(i, fmt.Sprintf("its run could not be created in %d attempts", s.Attempts))
		return
	}
	s.State, s.Reason = Dispatching, "creating its run"
	s.Attempts++
	s.AttemptDeadline = d.now.Add(d.pol.CreateTimeout)
	s.WantAutoApply = d.wantAuto(ws)
	d.set(i, s)
	d.out.Actions = append(d.out.Actions, Action{Kind: ActCreate, Member: m.WorkspaceID, AutoApply: s.WantAutoApply,
		Message: fmt.Sprintf("%s %s after %s", Marker(d.p.ID), m.Name, d.p.upstreamNames(i))})
}

// dispatching resolves a creation whose answer was lost: the run it made
// is found by the cascade's marker, or, once it can no longer appear, the
// member is ready to create again.
func (d *decider) dispatching(i int) {
	m := &d.p.Members[i]
	s := d.next[i]
	ws, seen := d.in.Facts.Workspaces[m.WorkspaceID]
	if seen {
		runs, _ := d.runsIn(i, ws)
		for _, r := range runs {
			if id, ok := OfMessage(r.Message); ok && id == d.p.ID && !slices.Contains(s.PastRuns, r.ID) {
				d.adopt(i, r, ws)
				d.running(i)
				return
			}
		}
	}
	if settle := s.AttemptDeadline.Add(d.pol.CreateSettle); d.now.Before(settle) {
		d.wakeAt(settle)
		return
	}
	if _, listed := d.in.Facts.Lists[m.WorkspaceID]; !seen || !listed {
		if !seen {
			d.needWorkspace(i)
		}
		d.needList(i)
		return
	}
	s.State, s.Reason = Ready, "its last run creation did not reach TFE; trying again"
	d.set(i, s)
	d.ready(i)
}

// adopt takes r as the member's run.
func (d *decider) adopt(i int, r Run, ws Workspace) {
	s := d.next[i]
	id, ours := OfMessage(r.Message)
	ours = ours && id == d.p.ID
	s.RunID, s.RunCreatedAt, s.RunStatus, s.Adopted = r.ID, r.CreatedAt, r.Status, !ours
	if !ours {
		s.WantAutoApply = d.wantAuto(ws)
	}
	s.BusySince, s.Alerted = time.Time{}, 0
	s.State, s.Reason = Running, "run "+r.Status
	d.set(i, s)
}

// running follows the member's run to its end.
func (d *decider) running(i int) {
	s := d.next[i]
	r, known := d.runOf(i, s.RunID)
	if !known {
		switch {
		case s.Hold.open():
			d.needList(i) // its run waits behind the hold; the release needs the list too
		case d.runLeft(i):
			d.needRun(s.RunID)
		}
		d.wakeIn(d.pol.Recheck)
		return
	}
	s.RunStatus = r.Status
	switch {
	case r.Gone:
		d.set(i, s)
		d.end(i, Failed, CauseRun, "its run no longer exists in TFE", false, d.now)
	case Final(r.Status):
		at := r.StatusAt
		if at.IsZero() {
			at = d.now // later than TFE's: what follows waits longer, never less
		}
		d.set(i, s)
		d.end(i, outcome(r.Status), CauseRun, "run "+r.Status, r.Status == runstatus.Applied, at)
	case r.awaitsPerson():
		if s.WantAutoApply && !r.AutoApply && r.Confirmable && !s.ApplyRequested && d.gate() == "" && !d.p.DryRun {
			s.State, s.Reason, s.ApplyRequested = Running, "applying its run, as the apply policy says", true
			d.set(i, s)
			d.out.Actions = append(d.out.Actions, Action{Kind: ActApply, Member: d.p.Members[i].WorkspaceID, RunID: r.ID,
				Message: fmt.Sprintf("applied by cascade %s: the apply policy (%s) applies cascade runs in %s", d.p.ID, d.pol.Apply, d.p.Members[i].Name)})
			d.wakeIn(d.pol.Soon)
			return
		}
		s.State, s.Reason = AwaitingApproval, "run "+r.Status+": waiting for a person to confirm it"
		d.set(i, s)
		d.remind(i, r)
	default:
		s.State, s.Reason = Running, "run "+r.Status
		d.set(i, s)
		ws, seen := d.in.Facts.Workspaces[d.p.Members[i].WorkspaceID]
		if r.Status == runstatus.Pending && seen && ws.Locked && ws.LockedByRun == "" && !(d.mine(ws) && s.Hold.open()) {
			d.busy(i, "run pending: "+d.p.Members[i].Name+" is locked by "+lockHolder(ws))
			return
		}
		s.BusySince = time.Time{}
		d.set(i, s)
		d.wakeIn(d.pol.Recheck)
	}
}

// lockHolder names who holds a workspace's lock, for a reason.
func lockHolder(ws Workspace) string {
	if ws.LockedBy == "" {
		return "a person"
	}
	return ws.LockedBy
}

// runOf finds a run among the facts.
func (d *decider) runOf(i int, id string) (Run, bool) {
	if r, ok := d.in.Facts.Runs[id]; ok {
		return r, true
	}
	ws, seen := d.in.Facts.Workspaces[d.p.Members[i].WorkspaceID]
	if seen && ws.Current != nil && ws.Current.ID == id {
		return *ws.Current, true
	}
	for _, r := range d.in.Facts.Lists[d.p.Members[i].WorkspaceID] {
		if r.ID == id {
			return r, true
		}
	}
	return Run{}, false
}

// runLeft reports whether the member's workspace was looked at and its run
// was not the current one: it is queued behind another, or it ended. Only
// a read of the run tells which.
func (d *decider) runLeft(i int) bool {
	id := d.p.Members[i].WorkspaceID
	if _, seen := d.in.Facts.Workspaces[id]; seen {
		return true
	}
	since, quiet := d.in.Facts.Quiet[id]
	return quiet && !since.After(d.next[i].RunCreatedAt)
}

// remind sends a reminder for a run waiting for a person, every
// ApprovalReminder, and says when the next one is due.
func (d *decider) remind(i int, r Run) {
	s := d.next[i]
	m := &d.p.Members[i]
	due := s.Since.Add(time.Duration(s.Alerted+1) * d.pol.ApprovalReminder)
	if !d.now.Before(due) {
		s.Alerted++
		d.set(i, s)
		d.alert(i, Notice{Kind: AlertAwaiting, Severity: SeverityInfo, RunID: r.ID,
			Message: fmt.Sprintf("cascade %s: run %s in %s has waited %s for a person to confirm it (%s); what depends on it waits too",
				d.p.ID, r.ID, m.Name, d.now.Sub(s.Since).Round(time.Second), r.Status),
			Key: fmt.Sprintf("awaiting/%s/%d", r.ID, s.Alerted)})
		due = s.Since.Add(time.Duration(s.Alerted+1) * d.pol.ApprovalReminder)
	}
	d.wakeAt(due)
	d.wakeIn(d.pol.Recheck)
}

// busy keeps a ready member waiting for what holds its workspace, and
// alerts when that lasts.
func (d *decider) busy(i int, why string) {
	s := d.next[i]
	m := &d.p.Members[i]
	if s.BusySince.IsZero() {
		s.BusySince = d.now
	}
	s.Reason = why
	if held := d.now.Sub(s.BusySince); held >= time.Duration(s.Alerted+1)*d.pol.LockedAlertAfter {
		s.Alerted++
		d.alert(i, Notice{Kind: AlertLocked, Severity: SeverityWarning,
			Message: fmt.Sprintf("cascade %s: %s has waited %s: %s", d.p.ID, m.Name, held.Round(time.Second), why),
			Key:     fmt.Sprintf("locked/%s/%s/%d", d.p.ID, m.WorkspaceID, s.Alerted)})
	}
	d.set(i, s)
	d.wakeIn(d.pol.LockedRetry)
}

// strays stops the runs TFE's run triggers queued in a member that are not
// its run: queued before its upstreams finished, in a member that will
// not run, or a second one beside the member's own (two upstreams that
// applied at once queue two). Each upstream that applied queues one run:
// while the runs seen and handled are fewer than that, the member's runs
// are listed to find the others (queued behind another run, or behind a
// lock). A final member is swept once its upstreams are quiet: looked at,
// and nothing of the cascade's left going in it.
func (d *decider) strays(i int) {
	m := &d.p.Members[i]
	s := d.next[i]
	if d.p.DryRun || d.in.Facts.HeldBy[m.WorkspaceID] != "" {
		return
	}
	ws, seen := d.in.Facts.Workspaces[m.WorkspaceID]
	if !seen {
		if s.State.Final() && d.upstreamsQuiet(i) && !Done(d.p, d.next, i) {
			d.needWorkspace(i) // to sweep it
		}
		return
	}
	runs, listed := d.runsIn(i, ws)
	clean := true
	for _, r := range runs {
		id, ours := OfMessage(r.Message)
		ours = ours && id == d.p.ID
		if (!r.Native() && !ours) || r.ID == s.RunID || !d.inWindow(i, r) {
			continue
		}
		clean = false
		// Judge a run of a waiting member on fresh news of its upstreams:
		// one may have applied since, which makes the run its own.
		if s.State == Waiting && !d.upstreamsObserved(i) {
			continue
		}
		if Final(r.Status) {
			clean = true
			d.escaped(i, r)
			continue
		}
		d.stop(i, r, d.whyStop(i, r))
	}
	s = d.next[i]
	accounted := s.Counted || d.accounted(i) >= d.expected(i)
	if listed && s.RunID != "" && !s.Counted {
		s.Counted = true // what the list showed is handled above
		d.set(i, s)
		accounted = true
	}
	if !accounted && s.RunID != "" && !listed {
		d.needList(i) // find the rest early, while they wait behind the member's run
		return
	}
	if !clean || !s.State.Final() || !d.upstreamsQuiet(i) {
		return
	}
	// A member whose own run holds the workspace last, finished, with no
	// lock, and every run queued in it by the cascade accounted for, has
	// nothing queued behind it; otherwise only a list shows what may be.
	cur := ws.Current
	idle := !ws.Locked && (cur == nil || Final(cur.Status))
	if !listed && !(idle && accounted && s.RunID != "" && cur != nil && cur.ID == s.RunID) {
		d.needList(i)
		return
	}
	d.swept(i)
}

// expected is how many runs the cascade's run triggers queue in member i:
// one for each upstream run that applied.
func (d *decider) expected(i int) int {
	n := 0
	for _, u := range d.p.Members[i].Upstreams {
		j := d.p.Index(u)
		switch {
		case j < 0:
			if d.p.Root.fired() {
				n++
			}
		case d.next[j].State == Applied:
			n += 1 + d.next[j].Escaped
		default:
			n += d.next[j].Escaped
		}
	}
	return n
}

// accounted is how many of those the cascade has seen and handled: its
// run, those it stopped, and those that escaped.
func (d *decider) accounted(i int) int {
	s := d.next[i]
	n := s.Stopped + s.Escaped
	if s.Adopted {
		n++
	}
	return n
}

func (d *decider) swept(i int) {
	if s := d.next[i]; !s.Swept && s.State.Final() {
		s.Swept = true
		d.set(i, s)
	}
}

// inWindow reports whether r was created while the cascade's upstreams of
// member i could queue runs in it: from the root's apply until the member
// was ready (and the grace TFE may take to queue a run after an apply). A
// run TFE's triggers queued later comes from elsewhere (another cascade's
// follow-up), and is not this cascade's to stop once the member ran.
func (d *decider) inWindow(i int, r Run) bool {
	s := d.next[i]
	if r.CreatedAt.Before(d.p.Root.FinishedAt) {
		return false
	}
	return s.ReadyAt.IsZero() || !r.CreatedAt.After(s.ReadyAt.Add(d.pol.NativeGrace))
}

// upstreamsObserved reports whether every upstream of member i that has
// not finished was looked at in this decision; if not, it asks for them.
func (d *decider) upstreamsObserved(i int) bool {
	ok := true
	for _, u := range d.p.Members[i].Upstreams {
		j := d.p.Index(u)
		if j < 0 || d.next[j].State.Final() {
			continue
		}
		if _, seen := d.in.Facts.Workspaces[u]; seen {
			continue
		}
		if _, read := d.in.Facts.Runs[d.next[j].RunID]; read && d.next[j].RunID != "" {
			continue
		}
		d.needWorkspace(j)
		ok = false
	}
	return ok
}

// upstreamsQuiet reports whether every upstream of member i is final with
// no run of the cascade's triggers still going in it.
func (d *decider) upstreamsQuiet(i int) bool {
	for _, u := range d.p.Members[i].Upstreams {
		if j := d.p.Index(u); j >= 0 && !quiet(d.next[j]) {
			return false
		}
	}
	return true
}

func quiet(s Status) bool { return s.State.Final() && s.Stopping == "" }

// escaped reports a run of TFE's run triggers that applied in a member
// before its upstreams finished, or in one that was not to run: the order
// the cascade keeps was broken (events about it came too late, or never).
func (d *decider) escaped(i int, r Run) {
	s := d.next[i]
	if r.Status != runstatus.Applied || (s.State == Ready && !r.CreatedAt.Before(s.ReadyAt)) {
		return
	}
	if s.Escaped == 0 || r.ID != s.LastEscaped {
		s.Escaped++
		s.LastEscaped = r.ID
		d.set(i, s)
	}
	m := &d.p.Members[i]
	d.alert(i, Notice{Kind: AlertUncontrolled, Severity: SeverityCritical, RunID: r.ID,
		Message: fmt.Sprintf("cascade %s: run %s (%s) applied in %s before the cascade could stop it: %s",
			d.p.ID, r.ID, sourceName(r.Source), m.Name, d.whyStop(i, r)),
		Key: "uncontrolled/" + r.ID})
}

// stop asks the shell to discard or cancel r. A run already confirmed to
// apply or applying is not interrupted: cancelling an apply can lose state;
// operators are told instead.
func (d *decider) stop(i int, r Run, why string) {
	m := &d.p.Members[i]
	if d.p.DryRun {
		return
	}
	var discard bool
	switch {
	case r.Discardable:
		discard = true
	case r.Cancelable && !r.applying():
	case r.applying():
		d.alert(i, Notice{Kind: AlertUncontrolled, Severity: SeverityCritical, RunID: r.ID,
			Message: fmt.Sprintf("cascade %s: run %s in %s (%s) is %s and is not stopped, since cancelling an apply can lose state; %s",
				d.p.ID, r.ID, m.Name, sourceName(r.Source), r.Status, why),
			Key: "uncontrolled/" + r.ID})
		d.watch(i, r) // its apply may queue runs downstream: follow it to its end
		d.wakeIn(d.pol.Soon)
		return
	default:
		d.wakeIn(d.pol.Soon) // TFE allows neither for a moment: look again
		return
	}
	if d.next[i].Stopping != r.ID {
		d.watch(i, r)
		s := d.next[i]
		s.Stopped++
		d.set(i, s)
	}
	d.out.Actions = append(d.out.Actions, Action{Kind: ActStop, Member: m.WorkspaceID, RunID: r.ID, Discard: discard, Message: why})
	if s := d.next[i]; s.State == Ready || s.State.Final() || s.Hold.open() {
		d.wakeIn(d.pol.Soon) // it, or its hold's release, waits on the stop
	}
}

// watch records a run of the cascade's triggers that must end before the
// member is done.
func (d *decider) watch(i int, r Run) {
	s := d.next[i]
	if s.Stopping != r.ID {
		s.Stopping, s.StoppingCreatedAt = r.ID, r.CreatedAt
		d.set(i, s)
	}
}

// settleStop forgets a run the member was stopping once it ended.
func (d *decider) settleStop(i int) {
	s := d.next[i]
	if s.Stopping == "" {
		return
	}
	if r, ok := d.runOf(i, s.Stopping); ok {
		if Final(r.Status) {
			s.Stopping, s.StoppingCreatedAt = "", time.Time{}
			d.set(i, s)
			return
		}
		// Still going (the stop was lost: a replica died before sending
		// it, or TFE refused it for a moment): strays sends it again, once
		// the workspace is seen, and a look that read only the list would
		// otherwise wait on it for ever.
		if _, seen := d.in.Facts.Workspaces[d.p.Members[i].WorkspaceID]; !seen {
			d.needWorkspace(i)
			d.wakeIn(d.pol.Soon)
		}
		return
	}
	// Not the current run: a run created after it holds the workspace, so
	// it ended (runs start in the order they were created).
	ws, seen := d.in.Facts.Workspaces[d.p.Members[i].WorkspaceID]
	if seen && ws.Current != nil && ws.Current.CreatedAt.After(s.StoppingCreatedAt) {
		s.Stopping, s.StoppingCreatedAt = "", time.Time{}
		d.set(i, s)
		return
	}
	// Only a read of the run tells now; it is worth one when the member
	// waits on it (to take its own run, or to be done). A running member's
	// final look settles it.
	// A held member waits on it too: its hold is let go once it ended,
	// and the list of its runs that the release needs shows the stop.
	switch {
	case s.Hold.open():
		d.needList(i)
		d.wakeIn(d.pol.Soon)
	case s.State == Ready || (s.State.Final() && d.upstreamsQuiet(i)):
		if seen {
			d.needRun(s.Stopping)
		}
		d.wakeIn(d.pol.Soon)
	}
}

// cancel ends an open member of a cancelled cascade, stopping its run
// when operators asked for that and it has not started applying.
func (d *decider) cancel(i int, why string) {
	s := d.next[i]
	if s.RunID != "" && d.in.Controls.CancelRuns {
		if r, ok := d.runOf(i, s.RunID); ok {
			if !Final(r.Status) {
				d.stop(i, r, fmt.Sprintf("cancelled with cascade %s: %s", d.p.ID, why))
			}
		} else {
			d.needRun(s.RunID)
		}
	}
	d.end(i, Blocked, CauseOperator, "cascade cancelled: "+why, false, time.Time{})
}

// block ends a member that can never run, to be reported.
func (d *decider) block(i int, cause, why string) {
	d.end(i, Blocked, cause, why, false, time.Time{})
	d.blocked = append(d.blocked, i)
}

// refuse blocks a member whose run TFE would not create, with an alert.
func (d *decider) refuse(i int, why string) {
	m := &d.p.Members[i]
	d.end(i, Blocked, CauseRefused, why, false, time.Time{})
	d.alert(i, Notice{Kind: AlertDispatch, Severity: SeverityCritical,
		Message: fmt.Sprintf("cascade %s: the run in %s was not created: %s", d.p.ID, m.Name, why),
		Key:     "dispatch-failed/" + d.p.ID + "/" + m.WorkspaceID})
}

// end moves a member to a final state. at is when it finished, in TFE's
// time: what waits on it may take runs created from then on.
func (d *decider) end(i int, state State, cause, why string, changed bool, at time.Time) {
	s := d.next[i]
	s.State, s.Cause, s.Reason, s.Changed, s.FinishedAt = state, cause, why, changed, at
	s.BusySince = time.Time{}
	d.set(i, s)
	if state == Applied {
		for _, j := range d.p.Downstream(i) {
			if _, seen := d.in.Facts.Workspaces[d.p.Members[j].WorkspaceID]; !seen {
				d.needWorkspace(j) // TFE's run triggers just queued a run there
			}
		}
	}
}

func (d *decider) setReason(i int, state State, why string) {
	s := d.next[i]
	s.State, s.Reason = state, why
	if state != Ready {
		s.BusySince = time.Time{}
	}
	d.set(i, s)
}

// set replaces a member's status, within the transition table.
func (d *decider) set(i int, s Status) {
	from := d.next[i].State
	if !Allowed(from, s.State) {
		d.out.Refused = append(d.out.Refused, fmt.Sprintf("%s: %s → %s", d.p.Members[i].Name, from, s.State))
		return
	}
	if s.State != from {
		s.Since = d.now
		if from == AwaitingApproval || s.State == AwaitingApproval {
			s.Alerted = 0
		}
	}
	d.next[i] = s
}

func (d *decider) alert(i int, n Notice) {
	m := &d.p.Members[i]
	n.WorkspaceID, n.Name = m.WorkspaceID, m.Name
	d.out.Actions = append(d.out.Actions, Action{Kind: ActAlert, Member: m.WorkspaceID, Notice: n})
}

func (d *decider) alertBlocked() {
	if len(d.blocked) == 0 {
		return
	}
	parts := make([]string, 0, len(d.blocked))
	ids := make([]string, 0, len(d.blocked))
	for _, i := range d.blocked {
		parts = append(parts, d.p.Members[i].Name+" ("+d.next[i].Reason+")")
		ids = append(ids, d.p.Members[i].WorkspaceID)
	}
	d.out.Actions = append(d.out.Actions, Action{Kind: ActAlert, Notice: Notice{Kind: AlertBlocked, Severity: SeverityWarning,
		Message: fmt.Sprintf("cascade %s from %s: %d workspace(s) blocked and not run: %s", d.p.ID, d.p.Root.WorkspaceName, len(parts), strings.Join(parts, ", ")),
		Key:     "blocked/" + d.p.ID + "/" + strings.Join(ids, ",")}})
}

func (d *decider) needWorkspace(i int) {
	d.out.Need.Workspaces = appendOnce(d.out.Need.Workspaces, d.p.Members[i].WorkspaceID)
}
func (d *decider) needList(i int) {
	d.out.Need.Lists = appendOnce(d.out.Need.Lists, d.p.Members[i].WorkspaceID)
}
func (d *decider) needRun(id string) { d.out.Need.Runs = appendOnce(d.out.Need.Runs, id) }

func appendOnce[T comparable](list []T, v T) []T {
	if slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}

func (d *decider) wakeIn(after time.Duration) { d.wakeAt(d.now.Add(after)) }

func (d *decider) wakeAt(t time.Time) {
	if d.wake.IsZero() || t.Before(d.wake) {
		d.wake = t
	}
}

// Done reports whether member i of p needs nothing more of its cascade: it
// is final, so are its upstreams (no run trigger of the cascade can queue
// a run in it any more), no run it stops is still to end, and, when an
// upstream applied, it was swept: looked at once final, with no other run
// that the cascade's triggers queued left in it.
func Done(p *Plan, st []Status, i int) bool {
	s := st[i]
	if !s.State.Final() || s.Stopping != "" || s.Hold.open() {
		return false
	}
	fired := false
	for _, u := range p.Members[i].Upstreams {
		j := p.Index(u)
		switch {
		case j < 0:
			fired = fired || p.Root.fired()
		case !quiet(st[j]):
			return false
		case st[j].State == Applied || st[j].Escaped > 0:
			fired = true
		}
	}
	return s.Swept || !fired || s.Cause == CauseOperator || s.Cause == CauseDryRun || p.DryRun
}

func allFinal(st []Status) bool {
	for _, s := range st {
		if !s.State.Final() {
			return false
		}
	}
	return true
}

func (d *decider) conclude() {
	d.out.Statuses = d.next
	open := false
	counts := map[State]int{}
	for i := range d.next {
		before, after := Done(d.p, d.in.Statuses, i), Done(d.p, d.next, i)
		switch {
		case before && !after:
			d.out.Hold = append(d.out.Hold, i)
		case !before && after:
			d.out.Release = append(d.out.Release, i)
		}
		if !after {
			open = true
		}
		if !d.next[i].equal(d.in.Statuses[i]) {
			d.out.Changed = append(d.out.Changed, i)
		}
		counts[d.next[i].State]++
	}
	if open {
		d.wakeIn(d.pol.Recheck)
		if t := d.in.Controls.ResumeAt; !t.IsZero() {
			d.wakeAt(t) // a freeze window ends, or one begins
		}
		d.out.Wake = d.wake
		if d.in.Controls.Cancelled != "" && allFinal(d.next) {
			d.out.Finished, d.out.Outcome = true, OutcomeCancelled
		}
		return
	}
	d.out.Done = true
	switch {
	case d.in.Controls.Cancelled != "":
		d.out.Outcome = OutcomeCancelled
	case counts[Failed] > 0 || counts[Blocked] > 0:
		d.out.Outcome = OutcomeIncomplete
	case d.p.DryRun:
		d.out.Outcome = OutcomeDryRun
	default:
		d.out.Outcome = OutcomeApplied
	}
}

func (s Status) equal(o Status) bool {
	// Field by field without naming the fields: one added to Status is
	// compared (and so stored when it changes) without being listed here.
	a, b := reflect.ValueOf(s), reflect.ValueOf(o)
	for k := range a.NumField() {
		x, y := a.Field(k), b.Field(k)
		switch v := x.Interface().(type) {
		case time.Time:
			if !v.Equal(y.Interface().(time.Time)) {
				return false
			}
		default:
			if x.Kind() == reflect.Slice && x.Len() == 0 && y.Len() == 0 {
				continue
			}
			if !reflect.DeepEqual(x.Interface(), y.Interface()) {
				return false
			}
		}
	}
	return true
}

// AfterNotSent is member i's status when its run's creation was never sent
// (the deployment's rate budget had no turn for it in time): nothing
// happened in TFE, so no attempt is spent; the member is ready to create
// it again when its turn comes.
func AfterNotSent(st []Status, i int) Status {
	s := st[i]
	if s.State != Dispatching {
		return s
	}
	s.State, s.Reason = Ready, "waiting for its turn in the rate budget to create its run"
	s.Attempts = max(0, s.Attempts-1)
	s.AttemptDeadline = time.Time{}
	return s
}

// AfterCreate is member i's status once the shell knows how the creation
// of its run went: created (r), or refused by TFE (refused, why: the
// member is blocked and operators are told). When neither is known, the
// status stays as it is and the next decision finds out.
func AfterCreate(p *Plan, st []Status, i int, r *Run, refused string, now time.Time) (Status, []Action) {
	d := &decider{p: p, now: now, next: slices.Clone(st), pol: DefaultPolicy}
	if d.next[i].State != Dispatching {
		return d.next[i], nil
	}
	switch {
	case r != nil:
		s := d.next[i]
		s.RunID, s.RunCreatedAt, s.RunStatus, s.Adopted = r.ID, r.CreatedAt, r.Status, false
		s.State, s.Reason = Running, "run "+r.Status
		d.set(i, s)
	case refused != "":
		d.refuse(i, "TFE refused it: "+refused)
	}
	return d.next[i], d.out.Actions
}
