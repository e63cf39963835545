package watchdog

import (
	"testing"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient/runstatus"
)

func TestJudge(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	b := Budgets{}
	for _, tc := range []struct {
		name  string
		f     Facts
		allow bool
		want  Action
		group Group
	}{
		{"planning within the floor", Facts{Status: "planning", Entered: ago(20 * time.Minute)}, false, None, GroupPlanning},
		{"planning past the floor", Facts{Status: "planning", Entered: ago(31 * time.Minute)}, false, Cancel, GroupPlanning},
		{"planning past the floor but within 3× its average", Facts{Status: "planning", Entered: ago(31 * time.Minute), PlanAvg: 15 * time.Minute}, false, None, GroupPlanning},
		{"applying past budget: alert only", Facts{Status: "applying", Entered: ago(2 * time.Hour)}, false, Alert, GroupApplying},
		{"applying past budget, opted in", Facts{Status: "applying", Entered: ago(2 * time.Hour)}, true, Cancel, GroupApplying},
		{"planned for a day: a reminder", Facts{Status: "planned", Entered: ago(25 * time.Hour)}, false, Remind, GroupAwaiting},
		{"pending behind a person's lock: a reminder", Facts{Status: "pending", Entered: ago(25 * time.Hour), HeldByPerson: true}, false, Remind, GroupAwaiting},
		{"pending behind another run: its turn comes", Facts{Status: "pending", Entered: ago(25 * time.Hour), HeldByRun: true}, false, None, GroupQueued},
		{"pending with the workspace free: queued too long", Facts{Status: "pending", Entered: ago(31 * time.Minute)}, false, Cancel, GroupQueued},
		{"final runs are nothing to the watchdog", Facts{Status: "canceled", Entered: ago(48 * time.Hour)}, false, None, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Judge(tc.f, b, tc.allow, now)
			if v.Action != tc.want || v.Group != tc.group {
				t.Errorf("got %v in %q, want %v in %q", v.Action, v.Group, tc.want, tc.group)
			}
		})
	}
}

func TestMayBeOverNeedsNoWorkspaceForYoungRuns(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	if MayBeOver("planning", now.Add(-time.Minute), Budgets{}, now) {
		t.Error("a run a minute into planning may be over budget")
	}
	if !MayBeOver("pending", now.Add(-31*time.Minute), Budgets{}, now) {
		t.Error("a run pending for 31 minutes cannot be over budget")
	}
}

func TestTrackerIsBounded(t *testing.T) {
	tr := tracker{max: 3}
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for i, id := range []string{"run-a", "run-b", "run-c", "run-d"} {
		tr.observe(evAt(id, t0.Add(time.Duration(i)*time.Minute)))
	}
	if got := tr.size(); got != 3 {
		t.Fatalf("got %d runs tracked, want 3", got)
	}
	if _, ok := tr.runs["run-a"]; ok {
		t.Error("the run that entered its status first was kept")
	}
}

func evAt(id string, at time.Time) *events.RunEvent {
	return &events.RunEvent{RunID: id, WorkspaceID: "ws-x", Organization: "acme", Status: "planning", UpdatedAt: at}
}

// The scan asks for exactly the statuses with a budget, all of them
// statuses TFE documents and none final.
func TestActiveStatusesAreThoseWithABudget(t *testing.T) {
	if len(activeStatuses) != len(groups) {
		t.Errorf("the scan asks for %d statuses, %d have a budget", len(activeStatuses), len(groups))
	}
	for _, s := range activeStatuses {
		if _, ok := groups[s]; !ok {
			t.Errorf("the scan asks for %s, which has no budget", s)
		}
	}
	for s := range groups {
		if !runstatus.Known(s) || runstatus.Final(s) {
			t.Errorf("%s has a budget but is not a status a run can be in and leave", s)
		}
	}
}
