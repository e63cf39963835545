package cascade

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// Operators' controls, one row per rule: what their records make of a
// cascade (EvaluateControls), when the blast-radius guard holds one
// (Guard), and which members a retry may run again.

func TestEvaluateControls(t *testing.T) {
	p := plan(t, "a", "a>b", "a>c", "b>d") // in organization acme
	now := at(100)
	window := func(org string, start, end float64) Freeze {
		return Freeze{Organization: org, Start: at(start), End: at(end), By: "ops", Why: "release"}
	}
	tagged := map[string]Workspace{"ws-c": {ID: "ws-c", Name: "c", Tags: []string{"prod", "legacy"}}}
	for _, c := range []struct {
		name     string
		r        ControlRecords
		seen     map[string]Workspace
		paused   string // a part of Paused; "" for not paused
		held     string // a part of Held; "" for not held
		resumeAt time.Time
		excluded []string // member names, in plan order
	}{
		{name: "no records leave the cascade alone"},
		{name: "a pause everywhere pauses it", r: ControlRecords{Pause: "ana: incident"}, paused: "ana: incident"},
		{name: "a pause in its organization pauses it", r: ControlRecords{OrgPause: "bo: audit"}, paused: "bo: audit"},
		{name: "with both pauses, the organization's is named", r: ControlRecords{Pause: "ana: incident", OrgPause: "bo: audit"}, paused: "bo: audit"},
		{name: "a freeze window in force pauses it until the window ends, and it is looked at then",
			r: ControlRecords{Freezes: []Freeze{window("", 50, 200)}}, paused: "freeze window until " + at(200).Format(time.RFC3339) + " (ops: release)", resumeAt: at(200)},
		{name: "a freeze window of its organization pauses it",
			r: ControlRecords{Freezes: []Freeze{window("acme", 50, 200)}}, paused: "freeze window", resumeAt: at(200)},
		{name: "a freeze window of another organization does not",
			r: ControlRecords{Freezes: []Freeze{window("other", 50, 200)}}},
		{name: "a freeze window to come does not pause it, and it is looked at when the window begins",
			r: ControlRecords{Freezes: []Freeze{window("", 150, 200)}}, resumeAt: at(150)},
		{name: "a freeze window that ended does nothing",
			r: ControlRecords{Freezes: []Freeze{window("", 10, 50)}}},
		{name: "a freeze window is in force from its start",
			r: ControlRecords{Freezes: []Freeze{window("", 100, 200)}}, paused: "freeze window", resumeAt: at(200)},
		{name: "a freeze window is over at its end",
			r: ControlRecords{Freezes: []Freeze{window("", 50, 100)}}},
		{name: "of several freeze windows, the earliest change is when to look again",
			r: ControlRecords{Freezes: []Freeze{window("", 50, 300), window("", 120, 130), window("", 500, 600)}}, paused: "until " + at(300).Format(time.RFC3339), resumeAt: at(120)},
		{name: "a freeze window in force names itself rather than the pause",
			r: ControlRecords{Pause: "ana: incident", Freezes: []Freeze{window("", 50, 200)}}, paused: "freeze window", resumeAt: at(200)},
		{name: "a control record that cannot be read pauses it, whatever else was read",
			r: ControlRecords{Unreadable: "ctl.cancel.c-run-root: bad json", Freezes: []Freeze{window("", 50, 200)}}, paused: "a control record cannot be read (ctl.cancel.c-run-root: bad json)", resumeAt: at(200)},
		{name: "an exclusion by name keeps that member out",
			r: ControlRecords{Exclusions: []Exclusion{{Name: "b", By: "ana", Why: "migrating"}}}, excluded: []string{"b"}},
		{name: "an exclusion by name in its organization keeps that member out",
			r: ControlRecords{Exclusions: []Exclusion{{Organization: "acme", Name: "d", By: "ana", Why: "migrating"}}}, excluded: []string{"d"}},
		{name: "an exclusion by name in another organization does not",
			r: ControlRecords{Exclusions: []Exclusion{{Organization: "other", Name: "b", By: "ana", Why: "migrating"}}}},
		{name: "an exclusion of the root changes nothing: the root already ran",
			r: ControlRecords{Exclusions: []Exclusion{{Name: "a", By: "ana", Why: "migrating"}}}},
		{name: "an exclusion by tag keeps out a member seen with that tag",
			r: ControlRecords{Exclusions: []Exclusion{{Tag: "legacy", By: "ana", Why: "frozen"}}}, seen: tagged, excluded: []string{"c"}},
		{name: "an exclusion by tag matches TFE's lower-case tags whatever its case",
			r: ControlRecords{Exclusions: []Exclusion{{Tag: "PROD", By: "ana", Why: "frozen"}}}, seen: tagged, excluded: []string{"c"}},
		{name: "an exclusion by tag waits until the member's workspace is seen",
			r: ControlRecords{Exclusions: []Exclusion{{Tag: "legacy", By: "ana", Why: "frozen"}}}},
		{name: "an exclusion by tag in another organization does not",
			r: ControlRecords{Exclusions: []Exclusion{{Organization: "other", Tag: "legacy", By: "ana", Why: "frozen"}}}, seen: tagged},
		{name: "the blast-radius guard holds a cascade of more members than its limit",
			r: ControlRecords{GuardLimit: 2}, held: "3 members, more than 2: waiting for an operator's go"},
		{name: "the guard does not hold a cascade as large as its limit", r: ControlRecords{GuardLimit: 3}},
		{name: "the guard lets an approved cascade go", r: ControlRecords{GuardLimit: 2, ApprovedBy: "ana: checked"}},
		{name: "with no guard limit nothing is held", r: ControlRecords{GuardLimit: 0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := EvaluateControls(p, c.r, c.seen, now)
			if (c.paused == "") != (got.Paused == "") || !strings.Contains(got.Paused, c.paused) {
				t.Errorf("paused: got %q, want %q", got.Paused, c.paused)
			}
			if (c.held == "") != (got.Held == "") || !strings.Contains(got.Held, c.held) {
				t.Errorf("held: got %q, want %q", got.Held, c.held)
			}
			if !got.ResumeAt.Equal(c.resumeAt) {
				t.Errorf("resume at: got %s, want %s", got.ResumeAt, c.resumeAt)
			}
			var excluded []string
			for _, m := range p.Members {
				if _, ok := got.Excluded[m.WorkspaceID]; ok {
					excluded = append(excluded, m.Name)
				}
			}
			if !slices.Equal(excluded, c.excluded) {
				t.Errorf("excluded: got %v, want %v", excluded, c.excluded)
			}
		})
	}

	t.Run("an exclusion says who decided it and why, and by which tag", func(t *testing.T) {
		r := ControlRecords{Exclusions: []Exclusion{{Name: "b", By: "ana", Why: "migrating"}, {Tag: "legacy", By: "bo", Why: "frozen"}}}
		got := EvaluateControls(p, r, tagged, now).Excluded
		if got["ws-b"] != "ana: migrating" || got["ws-c"] != "bo: frozen (tag legacy)" {
			t.Errorf("excluded: got %v", got)
		}
	})
	t.Run("a member excluded by name and by tag is named by its tag", func(t *testing.T) {
		r := ControlRecords{Exclusions: []Exclusion{{Tag: "legacy", By: "bo", Why: "frozen"}, {Name: "c", By: "ana", Why: "migrating"}}}
		if got := EvaluateControls(p, r, tagged, now).Excluded["ws-c"]; got != "bo: frozen (tag legacy)" {
			t.Errorf("c: got %q", got)
		}
	})
	t.Run("a cancel and retries are passed on as recorded", func(t *testing.T) {
		r := ControlRecords{Cancelled: "ana: wrong change", CancelRuns: true, Retries: map[string]string{"ws-b": "r1"}}
		got := EvaluateControls(p, r, nil, now)
		if got.Cancelled != "ana: wrong change" || !got.CancelRuns || got.Retries["ws-b"] != "r1" {
			t.Errorf("got %+v", got)
		}
	})
}

func TestFreezePhase(t *testing.T) {
	f := Freeze{Start: at(10), End: at(20)}
	for _, c := range []struct {
		name string
		now  time.Time
		want string
	}{
		{"a freeze window before its start is upcoming", at(9), FreezeUpcoming},
		{"it is in force from its start", at(10), FreezeInForce},
		{"it is in force up to its end", at(19.999), FreezeInForce},
		{"it is over at its end", at(20), FreezeOver},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := f.Phase(c.now); got != c.want {
				t.Errorf("Phase = %s, want %s", got, c.want)
			}
		})
	}
}

func TestGuard(t *testing.T) {
	for _, c := range []struct {
		name           string
		members, limit int
		approvedBy     string
		holds          bool
		why            string
	}{
		{"a cascade of more members than the limit is held until approved", 3, 2, "", true, "3 members, more than 2: waiting for an operator's go"},
		{"one as large as the limit is not", 2, 2, "", false, "2 members, no more than 2"},
		{"an approved one is not", 30, 2, "ana: checked", false, "approved already by ana: checked"},
		{"nothing is held without a limit", 30, 0, "", false, "there is no guard (--guard-limit is 0)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			holds, why := Guard(c.members, c.limit, c.approvedBy)
			if holds != c.holds || why != c.why {
				t.Errorf("got %v %q, want %v %q", holds, why, c.holds, c.why)
			}
		})
	}
}

func TestFreezeWindowWakesTheCascade(t *testing.T) {
	p := plan(t, "a", "a>b")
	t.Run("a freeze window that ends before the recheck is when to look again", func(t *testing.T) {
		s := newSit(p).seen("b", nil)
		s.ctl.Paused, s.ctl.ResumeAt = "freeze window", at(11)
		if d := s.decide(); !d.Wake.Equal(at(11)) {
			t.Errorf("wake: got %s, want %s", d.Wake, at(11))
		}
	})
	t.Run("one that ends after the recheck leaves the recheck", func(t *testing.T) {
		s := newSit(p).seen("b", nil)
		s.ctl.Paused, s.ctl.ResumeAt = "freeze window", at(3600)
		if d := s.decide(); !d.Wake.Equal(s.now.Add(DefaultPolicy.Recheck)) {
			t.Errorf("wake: got %s, want the recheck at %s", d.Wake, s.now.Add(DefaultPolicy.Recheck))
		}
	})
	t.Run("a cascade that is done is not looked at again for a freeze window", func(t *testing.T) {
		s := newSit(p)
		applied(s.status("b"), "run-b1", at(0.5))
		s.status("b").Swept = true
		s.seen("b", &Run{ID: "run-b1", Status: "applied", CreatedAt: at(0.001), StatusAt: at(0.5)})
		s.ctl.ResumeAt = at(11)
		if d := s.decide(); !d.Done || !d.Wake.IsZero() {
			t.Errorf("got done %v, wake %s; want done, no wake", d.Done, d.Wake)
		}
	})
}

// A retry resumes the members blocked behind the retried one, and only
// those: one also blocked by another failed upstream stays blocked.
//
//	root → a → b → c
//	root → x → d ← b   (x failed too: d waits for both)
func TestRetry(t *testing.T) {
	p := &Plan{ID: "c-run-x", Root: Root{WorkspaceID: "ws-root", WorkspaceName: "root"}, Members: []Member{
		{WorkspaceID: "ws-a", Name: "a", Upstreams: []string{"ws-root"}},
		{WorkspaceID: "ws-x", Name: "x", Upstreams: []string{"ws-root"}},
		{WorkspaceID: "ws-b", Name: "b", Upstreams: []string{"ws-a"}},
		{WorkspaceID: "ws-c", Name: "c", Upstreams: []string{"ws-b"}},
		{WorkspaceID: "ws-d", Name: "d", Upstreams: []string{"ws-b", "ws-x"}},
	}}
	up := Status{State: Blocked, Cause: CauseUpstream, Reason: "upstream a failed (run errored)"}
	st := []Status{
		{State: Failed, Cause: CauseRun, Reason: "run errored"},
		{State: Failed, Cause: CauseRun, Reason: "run errored"},
		up, up, up,
	}
	t.Run("a retry resumes what only the retried member blocked", func(t *testing.T) {
		if got := Unblocks(p, st, 0); !slices.Equal(got, []string{"b", "c"}) {
			t.Errorf("retry of a resumes %v, want [b c]", got)
		}
	})
	t.Run("a member also blocked by another failed upstream stays blocked", func(t *testing.T) {
		if got := Unblocks(p, st, 1); len(got) != 0 {
			t.Errorf("retry of x resumes %v, want none (d still waits for a's branch)", got)
		}
	})
	t.Run("a member blocked by its upstream is not retried: the refusal names what to retry", func(t *testing.T) {
		for i, want := range map[int]string{2: "b is blocked by its upstream", 4: "retry a, x, and it resumes"} {
			if why := WhyNotRetriable(p, st, i); !strings.Contains(why, want) {
				t.Errorf("retry of %s: %q, want it to say %q", p.Members[i].Name, why, want)
			}
		}
	})
	t.Run("a member that did not fail is not retried", func(t *testing.T) {
		if why := WhyNotRetriable(p, []Status{{State: Applied}}, 0); why != "a is applied: only a failed or blocked member can be retried" {
			t.Errorf("retry of an applied member: %q", why)
		}
	})
	t.Run("a member retried already says so", func(t *testing.T) {
		if why := WhyNotRetriable(p, []Status{{State: Waiting, Retry: "r1"}}, 0); !strings.Contains(why, "waiting (retried already)") {
			t.Errorf("retry of a retried member: %q", why)
		}
	})
	t.Run("a failed member, or one blocked by preflight or by TFE's refusal, may be retried", func(t *testing.T) {
		for _, s := range []Status{st[0], {State: Blocked, Cause: CausePreflight}, {State: Blocked, Cause: CauseRefused}} {
			if !Retriable(s) || WhyNotRetriable(p, []Status{s}, 0) != "" {
				t.Errorf("Retriable(%s, %s) is false", s.State, s.Cause)
			}
		}
	})
	t.Run("no other member may be", func(t *testing.T) {
		for _, s := range []Status{
			up, {State: Applied}, {State: Skipped}, {State: Running, RunID: "run-1"}, {State: Waiting},
			{State: Blocked, Cause: CauseOperator}, {State: Blocked, Cause: CauseCycle},
		} {
			if Retriable(s) {
				t.Errorf("Retriable(%s, %s) is true", s.State, s.Cause)
			}
		}
	})
}
