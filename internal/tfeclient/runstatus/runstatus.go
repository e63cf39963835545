// Package runstatus is TFE's run-status vocabulary, written once: every
// status TFE documents for a run, in the order a run passes them, and
// which of them a run never leaves.
//
// It imports nothing, so that packages that must not depend on go-tfe (the
// webhook intake, the decision core) name statuses as the rest do;
// internal/tfeclient reads go-tfe's runs with it (tfeclient.StatusAt: when
// a run entered its status).
package runstatus

// Run statuses, as TFE spells them.
const (
	Pending                  = "pending"
	Fetching                 = "fetching"
	FetchingCompleted        = "fetching_completed"
	PrePlanRunning           = "pre_plan_running"
	PrePlanCompleted         = "pre_plan_completed"
	Queuing                  = "queuing"
	PlanQueued               = "plan_queued"
	Planning                 = "planning"
	Planned                  = "planned"
	CostEstimating           = "cost_estimating"
	CostEstimated            = "cost_estimated"
	PolicyChecking           = "policy_checking"
	PolicyOverride           = "policy_override"
	PolicySoftFailed         = "policy_soft_failed"
	PolicyChecked            = "policy_checked"
	Confirmed                = "confirmed"
	PostPlanRunning          = "post_plan_running"
	PostPlanCompleted        = "post_plan_completed"
	PostPlanAwaitingDecision = "post_plan_awaiting_decision"
	PlannedAndFinished       = "planned_and_finished"
	PlannedAndSaved          = "planned_and_saved"
	QueuingApply             = "queuing_apply"
	ApplyQueued              = "apply_queued"
	PreApplyRunning          = "pre_apply_running"
	PreApplyCompleted        = "pre_apply_completed"
	Applying                 = "applying"
	PostApplyRunning         = "post_apply_running"
	PostApplyCompleted       = "post_apply_completed"
	Applied                  = "applied"
	Discarded                = "discarded"
	Errored                  = "errored"
	Canceled                 = "canceled"
	// ForceCanceled has no constant in go-tfe.
	ForceCanceled = "force_canceled"
)

// all is every status, in the order a run passes them; final is true for
// those a run never leaves.
var all = []struct {
	status string
	final  bool
}{
	{Pending, false}, {Fetching, false}, {FetchingCompleted, false}, {PrePlanRunning, false}, {PrePlanCompleted, false},
	{Queuing, false}, {PlanQueued, false}, {Planning, false}, {Planned, false}, {CostEstimating, false},
	{CostEstimated, false}, {PolicyChecking, false}, {PolicyOverride, false}, {PolicySoftFailed, false},
	{PolicyChecked, false}, {Confirmed, false}, {PostPlanRunning, false}, {PostPlanCompleted, false},
	{PostPlanAwaitingDecision, false}, {PlannedAndFinished, true}, {PlannedAndSaved, true}, {QueuingApply, false},
	{ApplyQueued, false}, {PreApplyRunning, false}, {PreApplyCompleted, false}, {Applying, false},
	{PostApplyRunning, false}, {PostApplyCompleted, false}, {Applied, true}, {Discarded, true}, {Errored, true},
	{Canceled, true}, {ForceCanceled, true},
}

var final = func() map[string]bool {
	m := make(map[string]bool, len(all))
	for _, s := range all {
		m[s.status] = s.final
	}
	return m
}()

// All is every run status TFE documents, in the order a run passes them.
func All() []string {
	out := make([]string, len(all))
	for i, s := range all {
		out[i] = s.status
	}
	return out
}

// Known reports whether s is a run status TFE documents.
func Known(s string) bool {
	_, ok := final[s]
	return ok
}

// Final reports whether s is a status a run never leaves: applied,
// planned_and_finished, planned_and_saved, errored, discarded, canceled,
// force_canceled.
func Final(s string) bool { return final[s] }
