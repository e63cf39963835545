package watchdog

import (
	"fmt"
	"strings"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient/runstatus"
)

// Group is a set of run statuses that share a budget.
type Group string

// The status groups.
const (
	// GroupQueued: waiting for a worker or a step of TFE's own (pending
	// with the workspace free, plan_queued, confirmed, apply_queued, and
	// the fetching, queuing, cost-estimating and policy-checking steps).
	GroupQueued Group = "queued"
	// GroupPlanning: planning.
	GroupPlanning Group = "planning"
	// GroupApplying: applying. Never cancelled without opt-in.
	GroupApplying Group = "applying"
	// GroupAwaiting: waiting for a person (planned, cost_estimated,
	// policy_checked, policy_override, policy_soft_failed,
	// post_plan_awaiting_decision, post_plan_completed), or pending behind
	// a locked workspace. Reminders only.
	GroupAwaiting Group = "awaiting"
)

// groups gives each status with a budget its group. The statuses not
// listed have none: final ones, and the pre- and post-apply steps.
var groups = map[string]Group{
	runstatus.Pending: GroupQueued, runstatus.PlanQueued: GroupQueued, runstatus.Confirmed: GroupQueued,
	runstatus.ApplyQueued: GroupQueued, runstatus.Queuing: GroupQueued, runstatus.QueuingApply: GroupQueued,
	runstatus.Fetching: GroupQueued, runstatus.FetchingCompleted: GroupQueued, runstatus.PrePlanRunning: GroupQueued,
	runstatus.PrePlanCompleted: GroupQueued, runstatus.CostEstimating: GroupQueued,
	runstatus.PolicyChecking: GroupQueued, runstatus.PostPlanRunning: GroupQueued,
	runstatus.Planning: GroupPlanning,
	runstatus.Applying: GroupApplying,
	runstatus.Planned:  GroupAwaiting, runstatus.CostEstimated: GroupAwaiting, runstatus.PolicyChecked: GroupAwaiting,
	runstatus.PolicyOverride: GroupAwaiting, runstatus.PolicySoftFailed: GroupAwaiting,
	runstatus.PostPlanAwaitingDecision: GroupAwaiting, runstatus.PostPlanCompleted: GroupAwaiting,
}

// GroupOf returns the group of a run status; false for final statuses.
func GroupOf(status string) (Group, bool) {
	g, ok := groups[status]
	return g, ok
}

// Budgets say how long a run may stay in a status group. Zero values take
// the defaults. Planning and applying budgets, unless set, are Factor
// times the workspace's average plan or apply duration, at least Floor.
type Budgets struct {
	Queued, Planning, Applying, Awaiting time.Duration
	Factor                               float64
	PlanningFloor, ApplyingFloor         time.Duration
}

// Defaults.
const (
	DefaultQueued        = 30 * time.Minute
	DefaultAwaiting      = 24 * time.Hour
	DefaultFactor        = 3
	DefaultPlanningFloor = 30 * time.Minute
	DefaultApplyingFloor = time.Hour
)

// For returns the budget of a group, given the workspace's averages.
func (b Budgets) For(g Group, planAvg, applyAvg time.Duration) time.Duration {
	factor := b.Factor
	if factor == 0 {
		factor = DefaultFactor
	}
	derived := func(set, floor, def, avg time.Duration) time.Duration {
		if set > 0 {
			return set
		}
		if floor == 0 {
			floor = def
		}
		return max(floor, time.Duration(factor*float64(avg)))
	}
	switch g {
	case GroupQueued:
		return or(b.Queued, DefaultQueued)
	case GroupPlanning:
		return derived(b.Planning, b.PlanningFloor, DefaultPlanningFloor, planAvg)
	case GroupApplying:
		return derived(b.Applying, b.ApplyingFloor, DefaultApplyingFloor, applyAvg)
	default:
		return or(b.Awaiting, DefaultAwaiting)
	}
}

func or(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}

// Set parses GROUP=DURATION (several separated by commas) into the
// budgets; it is the flag.Value of --watchdog-budget.
func (b *Budgets) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		if err := b.set(strings.TrimSpace(part)); err != nil {
			return err
		}
	}
	return nil
}

func (b *Budgets) set(v string) error {
	name, dur, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("want GROUP=DURATION, got %q", v)
	}
	d, err := time.ParseDuration(dur)
	if err != nil || d <= 0 {
		return fmt.Errorf("budget %q: not a positive duration", dur)
	}
	switch Group(name) {
	case GroupQueued:
		b.Queued = d
	case GroupPlanning:
		b.Planning = d
	case GroupApplying:
		b.Applying = d
	case GroupAwaiting:
		b.Awaiting = d
	default:
		return fmt.Errorf("unknown group %q: want queued, planning, applying or awaiting", name)
	}
	return nil
}

// String shows the budgets set.
func (b *Budgets) String() string {
	if b == nil {
		return ""
	}
	var parts []string
	for _, p := range []struct {
		g Group
		d time.Duration
	}{{GroupQueued, b.Queued}, {GroupPlanning, b.Planning}, {GroupApplying, b.Applying}, {GroupAwaiting, b.Awaiting}} {
		if p.d > 0 {
			parts = append(parts, string(p.g)+"="+p.d.String())
		}
	}
	return strings.Join(parts, ",")
}
