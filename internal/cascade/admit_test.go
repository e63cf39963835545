package cascade

import (
	"strings"
	"testing"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/graph"
)

// What an event is worth, one row per rule: a look at the cascades that
// hold its workspace, and whether its run starts a cascade (C1, C12).

func TestStartsCascade(t *testing.T) {
	for _, c := range []struct {
		name            string
		status          string
		noChangesStarts bool
		want            bool
	}{
		{"a run that applied may start a cascade", "applied", false, true},
		{"a run with no changes starts none", "planned_and_finished", false, false},
		{"a run with no changes may start one when configured to", "planned_and_finished", true, true},
		{"a run that errored starts none, whatever the setting", "errored", true, false},
		{"a run still planning starts none", "planning", false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := StartsCascade(c.status, c.noChangesStarts); got != c.want {
				t.Errorf("StartsCascade(%q, %v) = %v, want %v", c.status, c.noChangesStarts, got, c.want)
			}
		})
	}
}

func TestRelevant(t *testing.T) {
	own := &Status{State: Running, RunID: "run-b1"}
	stopping := func(h HoldState) *Status {
		return &Status{State: Waiting, Stopping: "run-b0", Hold: h}
	}
	for _, c := range []struct {
		name   string
		member *Status
		ev     Event
		want   bool
	}{
		{"a member with no record yet is worth a look", nil, Event{RunID: "run-b1", Status: "planning"}, true},
		{"news of a run other than the member's own is worth a look", own, Event{RunID: "run-b2", Status: "pending"}, true},
		{"the member's own run finishing is worth a look", own, Event{RunID: "run-b1", Status: "applied"}, true},
		{"the member's own run erroring is worth a look", own, Event{RunID: "run-b1", Status: "errored"}, true},
		{"the member's own run waiting for a person is worth a look", own, Event{RunID: "run-b1", Status: "planned"}, true},
		{"the member's own run held by a policy is worth a look", own, Event{RunID: "run-b1", Status: "policy_override"}, true},
		{"the member's own run moving from planning to applying is not", own, Event{RunID: "run-b1", Status: "applying"}, false},
		{"the member's own run starting to plan is not", own, Event{RunID: "run-b1", Status: "planning"}, false},
		{"a run the cascade stopped ending is worth a look while the member is held", stopping(HoldHeld), Event{RunID: "run-b0", Status: "discarded"}, true},
		{"a run the cascade stopped ending is not, when the member is not held", stopping(HoldNone), Event{RunID: "run-b0", Status: "canceled"}, false},
		{"a run the cascade stops doing anything else is worth a look", stopping(HoldNone), Event{RunID: "run-b0", Status: "applying"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Relevant(c.member, c.ev); got != c.want {
				t.Errorf("Relevant = %v, want %v", got, c.want)
			}
		})
	}
}

func TestAdmitRoot(t *testing.T) {
	yes, no := new(bool), new(bool)
	*yes = true
	now := t0.Add(time.Hour)
	pol := RootPolicy{MaxAge: 24 * time.Hour}
	ev := Event{RunID: "run-root", WorkspaceID: "ws-a", WorkspaceName: "a", Organization: "acme", Status: "applied"}
	tfeRun := func(status string, finished time.Time) *RootRun {
		return &RootRun{Run: Run{ID: "run-root", Status: status, StatusAt: finished}, WorkspaceID: "ws-a", WorkspaceName: "a", Organization: "acme"}
	}
	downstream := &graph.Plan{Layers: [][]string{{"ws-a"}, {"ws-b"}}}
	checked := func(r *RootRun) RootFacts {
		return RootFacts{Event: ev, Recorded: no, Started: no, Handled: no, Run: r}
	}
	for _, c := range []struct {
		name   string
		facts  RootFacts
		pol    RootPolicy
		kind   AdmissionKind
		need   RootNeed
		reason string // a part of the reason
	}{
		{"an event of a run still planning starts nothing and reads nothing",
			RootFacts{Event: Event{RunID: "run-root", WorkspaceID: "ws-a", Organization: "acme", Status: "planning"}}, pol, AdmitIgnore, "", ""},
		{"an event of a run with no changes starts nothing by default",
			RootFacts{Event: Event{RunID: "run-root", WorkspaceID: "ws-a", Organization: "acme", Status: "planned_and_finished"}}, pol, AdmitIgnore, "", ""},
		{"a run that applied in a workspace an open cascade holds starts no cascade of its own",
			RootFacts{Event: ev, Claimed: true}, pol, AdmitIgnore, "", "an open cascade holds"},
		{"first it is asked whether a cascade created or took the run",
			RootFacts{Event: ev}, pol, AdmitNeed, NeedRecorded, ""},
		{"a cascade's own run starts nothing: its downstream is in that cascade",
			RootFacts{Event: ev, Recorded: yes}, pol, AdmitIgnore, "", "cascade's own run"},
		{"then whether its cascade was started before",
			RootFacts{Event: ev, Recorded: no}, pol, AdmitNeed, NeedStarted, ""},
		{"a root whose cascade was started before has it made whole",
			RootFacts{Event: ev, Recorded: no, Started: yes}, pol, AdmitResume, "", ""},
		{"then whether the root was handled before",
			RootFacts{Event: ev, Recorded: no, Started: no}, pol, AdmitNeed, NeedHandled, ""},
		{"a root handled before is never handled again, however late a replay comes",
			RootFacts{Event: ev, Recorded: no, Started: no, Handled: yes}, pol, AdmitIgnore, "", ""},
		{"only then is TFE asked about the run",
			RootFacts{Event: ev, Recorded: no, Started: no, Handled: no}, pol, AdmitNeed, NeedRun, ""},
		{"a run TFE has in another workspace is refused",
			checked(&RootRun{Run: Run{Status: "applied"}, WorkspaceID: "ws-z", WorkspaceName: "z", Organization: "acme"}), pol, AdmitRefuse, "", "TFE has it in acme/z (ws-z)"},
		{"a run TFE has in another organization is refused",
			checked(&RootRun{Run: Run{Status: "applied"}, WorkspaceID: "ws-a", WorkspaceName: "a", Organization: "other"}), pol, AdmitRefuse, "", "TFE has it in other/a"},
		{"a run whose message carries a cascade's marker starts nothing",
			checked(&RootRun{Run: Run{Status: "applied", Message: Marker("c-run-x") + " after a"}, WorkspaceID: "ws-a", Organization: "acme"}), pol, AdmitIgnore, "", "cascade's own run"},
		{"a run TFE says has not applied starts nothing yet",
			checked(tfeRun("applying", time.Time{})), pol, AdmitIgnore, "", "TFE says applying"},
		{"a run TFE says finished with no changes starts nothing unless configured",
			checked(tfeRun("planned_and_finished", now)), pol, AdmitIgnore, "", "TFE says planned_and_finished"},
		{"a run that applied too long ago is recorded as handled, with a warning",
			checked(tfeRun("applied", now.Add(-25*time.Hour))), pol, AdmitRecord, "", RootTooOld},
		{"a run that applied recently has its closure resolved",
			checked(tfeRun("applied", now.Add(-time.Minute))), pol, AdmitNeed, NeedClosure, ""},
		{"a root with nothing downstream is recorded as handled",
			func() RootFacts {
				f := checked(tfeRun("applied", now))
				f.Closure = &graph.Plan{Layers: [][]string{{"ws-a"}}}
				return f
			}(), pol, AdmitRecord, "", RootNoDownstream},
		{"a root whose only downstream is on a cycle starts a cascade, to report it",
			func() RootFacts {
				f := checked(tfeRun("applied", now))
				f.Closure = &graph.Plan{Layers: [][]string{{"ws-a"}}, Blocked: []graph.Blocked{{ID: "ws-b", OnCycle: true}}}
				return f
			}(), pol, AdmitStart, "", ""},
		{"a root TFE confirms, recent, with something downstream starts a cascade",
			func() RootFacts {
				f := checked(tfeRun("applied", now))
				f.Closure = downstream
				return f
			}(), pol, AdmitStart, "", ""},
		{"with no-changes-starts, a run with no changes starts a cascade",
			func() RootFacts {
				f := checked(tfeRun("planned_and_finished", now))
				f.Event.Status = "planned_and_finished"
				f.Closure = downstream
				return f
			}(), RootPolicy{NoChangesStarts: true, MaxAge: time.Hour}, AdmitStart, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := AdmitRoot(c.facts, c.pol, now)
			if got.Kind != c.kind || got.Need != c.need || !strings.Contains(got.Reason, c.reason) {
				t.Errorf("got %s %q (%q), want %s %q (%q)", got.Kind, got.Need, got.Reason, c.kind, c.need, c.reason)
			}
		})
	}

	t.Run("the root started is the run TFE confirmed, in the workspace it named", func(t *testing.T) {
		f := checked(tfeRun("applied", now.Add(-time.Minute)))
		f.Closure = downstream
		got := AdmitRoot(f, pol, now).Root
		want := Root{WorkspaceID: "ws-a", WorkspaceName: "a", RunID: "run-root", FinishedAt: now.Add(-time.Minute), Status: "applied"}
		if got != want {
			t.Errorf("root: got %+v, want %+v", got, want)
		}
	})
	t.Run("a root whose finish TFE does not date counts as finished now, so what follows waits longer, never less", func(t *testing.T) {
		f := checked(tfeRun("applied", time.Time{}))
		f.Closure = downstream
		if got := AdmitRoot(f, pol, now); got.Kind != AdmitStart || !got.Root.FinishedAt.Equal(now) {
			t.Errorf("got %s finished at %s, want a start finished at %s", got.Kind, got.Root.FinishedAt, now)
		}
	})
	t.Run("a root exactly as old as the limit still starts", func(t *testing.T) {
		f := checked(tfeRun("applied", now.Add(-pol.MaxAge)))
		if got := AdmitRoot(f, pol, now); got.Kind != AdmitNeed || got.Need != NeedClosure {
			t.Errorf("got %s %s, want its closure resolved", got.Kind, got.Need)
		}
	})
	t.Run("only a root too old is warned about", func(t *testing.T) {
		old := AdmitRoot(checked(tfeRun("applied", now.Add(-25*time.Hour))), pol, now)
		f := checked(tfeRun("applied", now))
		f.Closure = &graph.Plan{Layers: [][]string{{"ws-a"}}}
		alone := AdmitRoot(f, pol, now)
		if !old.Warn || alone.Warn {
			t.Errorf("warn: too old %v, nothing downstream %v; want true, false", old.Warn, alone.Warn)
		}
	})
}
