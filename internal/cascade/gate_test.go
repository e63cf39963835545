package cascade

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// Output gating, one row per case: d waits on b and c (both downstream of
// the root a). The upstreams that applied wrote state versions whose
// comparisons the row gives; d's workspace holds the run TFE's run
// triggers queued when they applied.
func TestOutputGate(t *testing.T) {
	unchanged := func(n int) OutputsDiff { return OutputsDiff{Count: n} }
	changed := func(n int, names ...string) OutputsDiff { return OutputsDiff{Count: n, Changed: names} }
	type want struct {
		state    State
		cause    string
		reason   []string // in the reason (skipped) or the gate's summary (runs)
		notGated bool
		changed  []string
		need     []string // run IDs whose outputs the decision asks for
		eager    bool     // d's native run, which would apply on its own, is stopped while the gate waits
	}
	for _, tc := range []struct {
		name    string
		when    RunWhen
		unchgd  bool // RunUnchanged, the old flag
		tags    []string
		b, c    State // their ends: Applied unless set
		outputs map[string]OutputsDiff
		now     float64
		want    want
	}{
		{name: "an upstream changed an output: runs, naming it", when: RunWhenOutputs,
			outputs: map[string]OutputsDiff{"run-b": changed(3, "vpc_id"), "run-c": unchanged(2)},
			want:    want{state: Running, changed: []string{"b.vpc_id"}, reason: []string{"changed outputs: b.vpc_id"}}},
		{name: "no upstream changed an output: skipped, its native run stopped", when: RunWhenOutputs,
			outputs: map[string]OutputsDiff{"run-b": unchanged(7), "run-c": unchanged(5)},
			want:    want{state: Skipped, cause: CauseOutputsUnchanged, reason: []string{"b, c applied, none of their 12 outputs changed"}}},
		{name: "one upstream applied, one had no changes: only the one that applied is compared", when: RunWhenOutputs, c: NoChanges,
			outputs: map[string]OutputsDiff{"run-b": unchanged(1)},
			want:    want{state: Skipped, cause: CauseOutputsUnchanged, reason: []string{"b applied, none of its 1 output changed"}}},
		{name: "not compared yet: both asked for in one decision", when: RunWhenOutputs,
			want: want{state: Ready, reason: []string{"comparing the outputs of b, c"}, need: []string{"run-b", "run-c"}}},
		{name: "a sensitive output that cannot be read: runs, and says why", when: RunWhenOutputs,
			outputs: map[string]OutputsDiff{"run-b": unchanged(3), "run-c": {Count: 2, Unknown: "sensitive output db_password could not be read"}},
			want:    want{state: Running, notGated: true, reason: []string{"outputs not compared", "c: sensitive output db_password could not be read"}}},
		{name: "state unreadable (403): runs", when: RunWhenOutputs,
			outputs: map[string]OutputsDiff{"run-b": {Unknown: "TFE refused to read its state versions (403)"}, "run-c": unchanged(2)},
			want:    want{state: Running, notGated: true, reason: []string{"b: TFE refused to read its state versions (403)"}}},
		{name: "first state version: runs", when: RunWhenOutputs,
			outputs: map[string]OutputsDiff{"run-b": unchanged(3), "run-c": {Count: 2, Unknown: "no state version before the one its run wrote"}},
			want:    want{state: Running, notGated: true, reason: []string{"no state version before"}}},
		{name: "newer state version written since: runs", when: RunWhenOutputs,
			outputs: map[string]OutputsDiff{"run-b": unchanged(3), "run-c": {Unknown: "its newest state version is not the one run-c wrote"}},
			want:    want{state: Running, notGated: true, reason: []string{"not the one run-c wrote"}}},
		{name: "not processed yet, within the wait: waits, asks nothing more", when: RunWhenOutputs, now: 15,
			outputs: map[string]OutputsDiff{"run-b": unchanged(3), "run-c": {Pending: true, At: at(15)}},
			want:    want{state: Ready, reason: []string{"comparing the outputs of c"}, eager: true}},
		{name: "not processed yet, but one upstream changed: runs without waiting", when: RunWhenOutputs, now: 15,
			outputs: map[string]OutputsDiff{"run-b": changed(3, "subnets"), "run-c": {Pending: true, At: at(15)}},
			want:    want{state: Running, changed: []string{"b.subnets"}}},
		{name: "not processed past the wait (TFE's time): runs", when: RunWhenOutputs, now: 41,
			outputs: map[string]OutputsDiff{"run-b": unchanged(3), "run-c": {Pending: true, At: at(40.5)}},
			want:    want{state: Running, notGated: true, reason: []string{"c: TFE had not processed the state version of run run-c 30s after it applied"}}},
		{name: "not processed, TFE's time unknown: the engine's clock bounds the wait", when: RunWhenOutputs, now: 41,
			outputs: map[string]OutputsDiff{"run-b": unchanged(3), "run-c": {Pending: true}},
			want:    want{state: Running, notGated: true}},
		{name: "tag cascade-run-on-outputs gates a member under changes", when: RunWhenChanges, tags: []string{TagRunOnOutputs},
			outputs: map[string]OutputsDiff{"run-b": unchanged(1), "run-c": unchanged(1)},
			want:    want{state: Skipped, cause: CauseOutputsUnchanged}},
		{name: "tag cascade-run-on-outputs under always, no upstream changed: skipped", when: RunWhenAlways, tags: []string{TagRunOnOutputs}, b: NoChanges, c: NoChanges,
			outputs: map[string]OutputsDiff{},
			want:    want{state: Skipped, cause: CauseUnchanged}},
		{name: "tag cascade-run-always exempts a member from gating", when: RunWhenOutputs, tags: []string{TagRunAlways, TagRunOnOutputs},
			outputs: map[string]OutputsDiff{"run-b": unchanged(1), "run-c": unchanged(1)},
			want:    want{state: Running}},
		{name: "changes: outputs are not compared", when: RunWhenChanges,
			want: want{state: Running}},
		{name: "changes by default", when: "",
			want: want{state: Running}},
		{name: "always: runs, no comparison", when: RunWhenAlways,
			want: want{state: Running}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSit(plan(t, "a", "a>b", "a>c", "b>d", "c>d"))
			for _, u := range []struct {
				name string
				end  State
				at   float64
			}{{"b", tc.b, 10}, {"c", tc.c, 9}} {
				if u.end == "" {
					u.end = Applied
				}
				x := s.status(u.name)
				x.State, x.RunID, x.RunStatus, x.FinishedAt, x.Changed, x.Cause = u.end, "run-"+u.name, string(u.end), at(u.at), u.end == Applied, CauseRun
			}
			s.seen("d", native("run-d1", "pending", at(10.001), true), func(w *Workspace) { w.Tags = tc.tags })
			s.pol = Policy{RunWhen: tc.when, RunUnchanged: tc.unchgd}
			s.now = at(11)
			if tc.now != 0 {
				s.now = at(tc.now)
			}
			d := Decide(Input{Plan: s.p, Statuses: s.st, Facts: Facts{Workspaces: s.ws, Runs: s.runs, Lists: s.list, Outputs: tc.outputs},
				Controls: s.ctl, Policy: s.pol, Now: s.now})
			noRefused(t, d)
			got := state(t, d, s.p, "d", tc.want.state)
			if got.Cause != tc.want.cause && tc.want.cause != "" {
				t.Errorf("cause: got %q, want %q", got.Cause, tc.want.cause)
			}
			text := got.Reason
			if got.Gate != nil && got.State != Skipped {
				text = got.Gate.Summary()
			}
			for _, w := range tc.want.reason {
				if !strings.Contains(text, w) {
					t.Errorf("got %q, want it to say %q", text, w)
				}
			}
			if tc.want.notGated != (got.Gate != nil && got.Gate.NotGated != "") {
				t.Errorf("gate %+v: want not gated %v", got.Gate, tc.want.notGated)
			}
			if tc.want.changed != nil && (got.Gate == nil || strings.Join(got.Gate.Changed, ",") != strings.Join(tc.want.changed, ",")) {
				t.Errorf("gate %+v: want changed %v", got.Gate, tc.want.changed)
			}
			var need []string
			for _, n := range d.Need.Outputs {
				need = append(need, n.RunID)
			}
			if strings.Join(need, ",") != strings.Join(tc.want.need, ",") {
				t.Errorf("outputs asked for: got %v, want %v", need, tc.want.need)
			}
			stops := actions(d, ActStop)
			switch {
			case got.State == Skipped:
				if len(stops) != 1 || stops[0].RunID != "run-d1" || !stops[0].Discard || !strings.Contains(stops[0].Message, got.Reason) {
					t.Errorf("stops: got %+v, want run-d1 discarded with a comment saying %q", stops, got.Reason)
				}
			case tc.want.eager:
				if len(stops) != 1 || stops[0].RunID != "run-d1" || !strings.Contains(stops[0].Message, "would apply on its own before the cascade knows") {
					t.Errorf("stops: got %+v, want run-d1, which would apply on its own", stops)
				}
			case len(stops) > 0:
				t.Errorf("stops: got %+v, want none", stops)
			}
			if got.State == Ready && d.Wake.After(s.now.Add(5*time.Second)) {
				t.Errorf("waiting for outputs, it wakes at %s, want within seconds", d.Wake)
			}
			if got.State == Running && got.RunID != "run-d1" {
				t.Errorf("run: got %q, want the native run-d1 taken", got.RunID)
			}
		})
	}
}

// A run pending behind the cascade's hold cannot apply while the outputs
// are compared: it is left, to be taken if the member runs.
func TestOutputGateLeavesAHeldRun(t *testing.T) {
	s := newSit(plan(t, "a", "a>b", "a>c", "b>d", "c>d"))
	applied(s.status("b"), "run-b", at(10))
	applied(s.status("c"), "run-c", at(9))
	s.status("d").Hold = HoldHeld
	s.seen("d", native("run-d1", "pending", at(10.001), true), func(w *Workspace) {
		w.Locked, w.LockedByRun, w.LockedByUser, w.LockedBy = true, "", "user-engine", "engine"
	})
	s.pol = Policy{RunWhen: RunWhenOutputs}
	s.now = at(11)
	in := Input{Plan: s.p, Statuses: s.st, Facts: Facts{Workspaces: s.ws, Self: "user-engine", Lists: map[string][]Run{"ws-d": {*native("run-d1", "pending", at(10.001), true)}},
		Outputs: map[string]OutputsDiff{"run-b": {Count: 1}, "run-c": {Pending: true, At: at(11)}}}, Policy: s.pol, Now: s.now}
	d := Decide(in)
	noRefused(t, d)
	state(t, d, s.p, "d", Ready)
	if stops := actions(d, ActStop); len(stops) != 0 {
		t.Errorf("stops: got %+v, want none while the hold keeps run-d1 pending", stops)
	}
	in.Facts.Outputs["run-c"] = OutputsDiff{Count: 2, Changed: []string{"dns"}}
	d = Decide(in)
	if got := state(t, d, s.p, "d", Running); got.RunID != "run-d1" {
		t.Errorf("run: got %q, want run-d1 taken", got.RunID)
	}
}

// A member gated on the root's outputs: the root's run is compared.
func TestOutputGateOnRoot(t *testing.T) {
	s := newSit(plan(t, "net", "net>app"))
	s.seen("app", native("run-app1", "pending", at(0.001), true))
	s.pol = Policy{RunWhen: RunWhenOutputs}
	d := s.decide()
	if len(d.Need.Outputs) != 1 || d.Need.Outputs[0] != (OutputsNeed{WorkspaceID: "ws-net", RunID: "run-root"}) {
		t.Fatalf("need: got %+v, want the root's run", d.Need.Outputs)
	}
	in := Input{Plan: s.p, Statuses: s.st, Facts: Facts{Workspaces: s.ws, Outputs: map[string]OutputsDiff{"run-root": {Count: 12}}}, Policy: s.pol, Now: s.now}
	d = Decide(in)
	got := state(t, d, s.p, "app", Skipped)
	if got.Reason != "net applied, none of its 12 outputs changed" {
		t.Errorf("reason: got %q", got.Reason)
	}
	if x := Explain(s.p, d.Statuses, 0); !strings.Contains(x, "app was skipped in the cascade from net") || !strings.Contains(x, "none of its 12 outputs changed") {
		t.Errorf("explain: got %q", x)
	}
	// A root that started the cascade without applying wrote no state:
	// not gated.
	s.p.Root.Status = "planned_and_finished"
	in.Plan = s.p
	d = Decide(in)
	got = state(t, d, s.p, "app", Running)
	if got.Gate == nil || !strings.Contains(got.Gate.NotGated, "net started the cascade without applying") {
		t.Errorf("gate: got %+v", got.Gate)
	}
	if x := Explain(s.p, d.Statuses, 0); !strings.Contains(x, "could not be compared, so it runs all the same") {
		t.Errorf("explain: got %q", x)
	}
}

// In a dry run the gate decides as it would, and an upstream that would
// have run is not compared: its outputs are not known.
func TestOutputGateDryRun(t *testing.T) {
	p := plan(t, "a", "a>b", "b>c")
	p.DryRun = true
	s := newSit(p)
	s.seen("b", nil).seen("c", nil)
	s.pol = Policy{RunWhen: RunWhenOutputs}
	s.now = at(20) // past the wait for the run TFE's run trigger queues
	in := func() Input {
		return Input{Plan: s.p, Statuses: s.st, Facts: Facts{Workspaces: s.ws, Lists: map[string][]Run{"ws-b": nil, "ws-c": nil}, Outputs: map[string]OutputsDiff{"run-root": {Count: 2, Changed: []string{"id"}}}}, Policy: s.pol, Now: s.now}
	}
	d := Decide(in())
	b := state(t, d, p, "b", Skipped)
	if b.Cause != CauseDryRun || b.Gate == nil || strings.Join(b.Gate.Changed, ",") != "a.id" {
		t.Errorf("b: got %+v, gate %+v", b, b.Gate)
	}
	c := state(t, d, p, "c", Skipped)
	if c.Cause != CauseDryRun || c.Gate == nil || !strings.Contains(c.Gate.NotGated, "b would run (dry run)") {
		t.Errorf("c: got %+v, gate %+v", c, c.Gate)
	}
	if x := Explain(p, d.Statuses, 0); !strings.Contains(x, "runs because some changed: a.id") {
		t.Errorf("explain: got %q", x)
	}
}

func TestRunWhenPolicy(t *testing.T) {
	for _, tc := range []struct {
		in   Policy
		want RunWhen
	}{{Policy{}, RunWhenChanges}, {Policy{RunUnchanged: true}, RunWhenAlways}, {Policy{RunWhen: RunWhenOutputs, RunUnchanged: true}, RunWhenOutputs}} {
		if got := tc.in.WithDefaults().RunWhen; got != tc.want {
			t.Errorf("%+v: got %s, want %s", tc.in, got, tc.want)
		}
	}
	if err := (Policy{RunWhen: "sometimes"}).Validate(); err == nil {
		t.Error("run-when sometimes validated")
	}
}

// A held member waiting on an early run that a look found only in the
// list (its workspace was not read: the organization's list showed
// nothing new there) is not left waiting on it for ever: the look reads
// the workspace, and then the run is stopped (or stopped again, when the
// replica that decided the first stop died before sending it), and the
// hold can go.
func TestHeldMemberEarlyRunFoundInTheListIsStopped(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lostStop bool
	}{
		{"a run not stopped yet", false},
		{"a stop that was lost", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSit(plan(t, "a", "a>b", "a>c", "b>d", "c>d"))
			applied(s.status("b"), "run-b", at(9))
			applied(s.status("c"), "run-c", at(10))
			d := s.status("d")
			d.State, d.RunID, d.RunStatus, d.ReadyAt, d.Hold = Running, "run-d2", "pending", at(10), HoldHeld
			if tc.lostStop {
				d.Stopping, d.StoppingCreatedAt, d.Stopped = "run-d1", at(9.001), 1
			}
			own, early := native("run-d2", "pending", at(10.001), true), native("run-d1", "pending", at(9.001), true)
			s.list["ws-d"] = []Run{*own, *early}
			s.now = at(12)
			dec := s.decide()
			if stops := actions(dec, ActStop); len(stops) == 0 && !slices.Contains(dec.Need.Workspaces, "ws-d") {
				t.Fatalf("with d's list only: no stop of run-d1 and no read of d asked for (need %+v): the look would wait on it for ever", dec.Need)
			}
			s.seen("d", nil, func(w *Workspace) {
				w.Locked, w.LockedByUser, w.LockedBy = true, "user-engine", "engine"
			})
			dec = Decide(Input{Plan: s.p, Statuses: s.st, Facts: Facts{Workspaces: s.ws, Lists: s.list, Self: "user-engine"}, Policy: s.pol, Now: s.now})
			if stops := actions(dec, ActStop); len(stops) != 1 || stops[0].RunID != "run-d1" {
				t.Fatalf("with d seen: stops %+v, want run-d1", stops)
			}
		})
	}
}

// A held member whose early run is being stopped is not read to see the
// stop: the list of its runs, which the release reads anyway, shows it
// ended, and the hold goes in the same look. A member stopping a run
// without a hold is watched, as before.
func TestHeldMemberStopSettlesFromTheList(t *testing.T) {
	s := newSit(plan(t, "a", "a>b", "a>c", "b>d", "c>d"))
	applied(s.status("b"), "run-b", at(9))
	applied(s.status("c"), "run-c", at(10))
	d := s.status("d")
	d.State, d.RunID, d.RunStatus, d.RunCreatedAt, d.ReadyAt, d.Hold = Running, "run-d2", "pending", at(10.001), at(10), HoldHeld
	d.Stopping, d.StoppingCreatedAt, d.Stopped = "run-d1", at(9.001), 1
	s.now = at(12)
	watched := func() bool {
		for _, w := range Observe(s.p, s.st, func(string) bool { return false }, false, s.pol, s.now) {
			if s.p.Members[w.Member].Name == "d" {
				return true
			}
		}
		return false
	}
	if watched() {
		t.Fatal("a held member stopping a run is watched: a workspace read for nothing")
	}
	dec := s.decide()
	if !slices.Contains(dec.Need.Lists, "ws-d") || slices.Contains(dec.Need.Workspaces, "ws-d") {
		t.Fatalf("need %+v, want d's list and not its workspace", dec.Need)
	}
	s.list["ws-d"] = []Run{*native("run-d2", "pending", at(10.001), true), *native("run-d1", "discarded", at(9.001), true)}
	dec = s.decide()
	if rel := actions(dec, ActRelease); len(rel) != 1 || rel[0].Member != "ws-d" {
		t.Fatalf("with d's list showing the stop: releases %+v, want d's", rel)
	}
	if got := state(t, dec, s.p, "d", Running); got.Stopping != "" {
		t.Errorf("d still stopping %s", got.Stopping)
	}
	d.Hold = HoldReleased
	if !watched() {
		t.Error("a member stopping a run outside a hold is not watched")
	}
}
