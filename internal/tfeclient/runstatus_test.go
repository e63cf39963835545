package tfeclient_test

import (
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient/runstatus"
)

// Every status go-tfe names is in the vocabulary, spelled the same.
func TestVocabularyCoversGoTFE(t *testing.T) {
	for _, s := range []tfe.RunStatus{
		tfe.RunApplied, tfe.RunApplying, tfe.RunApplyQueued, tfe.RunCanceled, tfe.RunConfirmed, tfe.RunCostEstimated,
		tfe.RunCostEstimating, tfe.RunDiscarded, tfe.RunErrored, tfe.RunFetching, tfe.RunFetchingCompleted, tfe.RunPending,
		tfe.RunPlanned, tfe.RunPlannedAndFinished, tfe.RunPlannedAndSaved, tfe.RunPlanning, tfe.RunPlanQueued,
		tfe.RunPolicyChecked, tfe.RunPolicyChecking, tfe.RunPolicyOverride, tfe.RunPolicySoftFailed,
		tfe.RunPostPlanAwaitingDecision, tfe.RunPostPlanCompleted, tfe.RunPostPlanRunning, tfe.RunPostApplyRunning,
		tfe.RunPostApplyCompleted, tfe.RunPreApplyRunning, tfe.RunPreApplyCompleted, tfe.RunPrePlanCompleted,
		tfe.RunPrePlanRunning, tfe.RunQueuing, tfe.RunQueuingApply,
	} {
		if !runstatus.Known(string(s)) {
			t.Errorf("go-tfe's %s is not in the vocabulary", s)
		}
	}
}

func TestStatusAt(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) }
	ts := &tfe.RunStatusTimestamps{
		PlanQueuedAt: at(1), PlanningAt: at(2), PlannedAt: at(3), CostEstimatedAt: at(4), PolicyCheckedAt: at(5),
		ConfirmedAt: at(6), PlannedAndFinishedAt: at(7), ApplyQueuedAt: at(8), ApplyingAt: at(9), AppliedAt: at(10),
		DiscardedAt: at(11), ErroredAt: at(12), CanceledAt: at(13), ForceCanceledAt: at(14),
		// Fields of statuses whose time is not read.
		FetchingAt: at(20), FetchedAt: at(21), QueuingAt: at(22), CostEstimatingAt: at(23), PlannedAndSavedAt: at(24),
		PolicySoftFailedAt: at(25), PostPlanRunningAt: at(26), PostPlanCompletedAt: at(27), PrePlanRunningAt: at(28),
		PrePlanCompletedAt: at(29), PlanQueueableAt: at(30),
	}
	want := map[string]time.Time{
		runstatus.PlanQueued: at(1), runstatus.Planning: at(2), runstatus.Planned: at(3), runstatus.CostEstimated: at(4),
		runstatus.PolicyChecked: at(5), runstatus.Confirmed: at(6), runstatus.PlannedAndFinished: at(7),
		runstatus.ApplyQueued: at(8), runstatus.Applying: at(9), runstatus.Applied: at(10), runstatus.Discarded: at(11),
		runstatus.Errored: at(12), runstatus.Canceled: at(13), runstatus.ForceCanceled: at(14),
	}
	for _, s := range append(runstatus.All(), "unknown") {
		if got := tfeclient.StatusAt(tfe.RunStatus(s), ts); !got.Equal(want[s]) {
			t.Errorf("StatusAt(%s) = %v, want %v", s, got, want[s])
		}
		if got := tfeclient.StatusAt(tfe.RunStatus(s), nil); !got.IsZero() {
			t.Errorf("StatusAt(%s) without timestamps = %v, want zero", s, got)
		}
		if got := tfeclient.StatusAt(tfe.RunStatus(s), &tfe.RunStatusTimestamps{}); !got.IsZero() {
			t.Errorf("StatusAt(%s) with empty timestamps = %v, want zero", s, got)
		}
	}
}
