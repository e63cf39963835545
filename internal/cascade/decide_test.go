package cascade

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/graph"
)

// The rules of the cascade, one table row each, on small hand-built
// situations. Workspaces are named by their IDs' suffix: ws-a is "a".

// plan builds the cascade a run applying in root starts, from edges "a>b".
func plan(t *testing.T, root string, edges ...string) *Plan {
	t.Helper()
	seen := map[string]bool{}
	var ws []graph.Workspace
	var es []graph.Edge
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			ws = append(ws, graph.Workspace{ID: "ws-" + n, Name: n})
		}
	}
	for _, e := range edges {
		s, d, _ := strings.Cut(e, ">")
		add(s)
		add(d)
		es = append(es, graph.Edge{Source: "ws-" + s, Target: "ws-" + d})
	}
	g, err := graph.New(ws, es)
	if err != nil {
		t.Fatal(err)
	}
	gp, err := g.Plan("ws-" + root)
	if err != nil {
		t.Fatal(err)
	}
	p := NewPlan(g, gp, Root{WorkspaceID: "ws-" + root, WorkspaceName: root, RunID: "run-root", FinishedAt: at(0), Status: "applied"}, "acme", at(0), false)
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	return p
}

// at is a time n seconds (and a few milliseconds, as TFE's created-at
// times have) after the cascade started.
func at(n float64) time.Time {
	return t0.Add(time.Duration(n*1000)*time.Millisecond + 7*time.Millisecond)
}

// sit is a situation: statuses by member name, workspaces observed.
type sit struct {
	p    *Plan
	st   []Status
	ws   map[string]Workspace
	runs map[string]Run
	list map[string][]Run
	ctl  Controls
	pol  Policy
	now  time.Time
}

func newSit(p *Plan) *sit {
	s := &sit{p: p, ws: map[string]Workspace{}, runs: map[string]Run{}, list: map[string][]Run{}, now: at(1)}
	for i := range p.Members {
		s.st = append(s.st, Initial(p, i))
	}
	return s
}

func (s *sit) status(name string) *Status { return &s.st[s.p.Index("ws-"+name)] }

// seen says that workspace name was looked at, with its current run.
func (s *sit) seen(name string, cur *Run, mods ...func(*Workspace)) *sit {
	w := Workspace{ID: "ws-" + name, Name: name, ExecutionMode: "remote", HasConfiguration: true, TerraformVersion: "1.9.8", AutoApplyRunTrigger: true}
	if cur != nil {
		c := *cur
		c.WorkspaceID = w.ID
		w.Current = &c
		if !Final(c.Status) {
			w.Locked, w.LockedByRun = true, c.ID
		}
	}
	for _, m := range mods {
		m(&w)
	}
	s.ws[w.ID] = w
	return s
}

func (s *sit) decide() Decision {
	return Decide(Input{Plan: s.p, Statuses: s.st, Facts: Facts{Workspaces: s.ws, Runs: s.runs, Lists: s.list}, Controls: s.ctl, Policy: s.pol, Now: s.now})
}

// native is a run TFE's run triggers queued.
func native(id, status string, created time.Time, auto bool) *Run {
	r := &Run{ID: id, Status: status, Source: SourceRunTrigger, Message: "Triggered by run-x", CreatedAt: created, AutoApply: auto, StatusAt: created}
	r.Discardable = status == "pending" || status == "planned"
	r.Cancelable = status == "pending" || status == "planning"
	r.Confirmable = status == "planned"
	return r
}

func applied(s *Status, runID string, finished time.Time) {
	s.State, s.RunID, s.RunStatus, s.FinishedAt, s.Changed, s.Cause = Applied, runID, "applied", finished, true, CauseRun
}

func actions(d Decision, kind ActionKind) []Action {
	var out []Action
	for _, a := range d.Actions {
		if a.Kind == kind {
			out = append(out, a)
		}
	}
	return out
}

func alerts(d Decision, kind string) []Notice {
	var out []Notice
	for _, a := range d.Actions {
		if a.Kind == ActAlert && a.Notice.Kind == kind {
			out = append(out, a.Notice)
		}
	}
	return out
}

func state(t *testing.T, d Decision, p *Plan, name string, want State) Status {
	t.Helper()
	got := d.Statuses[p.Index("ws-"+name)]
	if got.State != want {
		t.Errorf("%s: got %s (%q), want %s", name, got.State, got.Reason, want)
	}
	return got
}

func noRefused(t *testing.T, d Decision) {
	t.Helper()
	if len(d.Refused) > 0 {
		t.Errorf("refused transitions: %v", d.Refused)
	}
}

func TestOrderAndNativeRuns(t *testing.T) {
	t.Run("a native run queued after the upstream applied is the member's run", func(t *testing.T) {
		s := newSit(plan(t, "a", "a>b")).seen("b", native("run-b1", "planning", at(0.001), true))
		d := s.decide()
		noRefused(t, d)
		b := state(t, d, s.p, "b", Running)
		if b.RunID != "run-b1" || !b.Adopted || len(actions(d, ActCreate)) != 0 {
			t.Errorf("b: got run %q adopted %v, %d creates; want run-b1 adopted, no create", b.RunID, b.Adopted, len(actions(d, ActCreate)))
		}
	})
	t.Run("a member waits while an upstream runs, and the run queued too early is stopped", func(t *testing.T) {
		s := newSit(plan(t, "a", "a>b", "a>c", "b>d", "c>d"))
		s.status("b").State, s.status("b").RunID, s.status("b").RunCreatedAt = Running, "run-b1", at(0.001)
		s.status("c").State, s.status("c").RunID, s.status("c").RunCreatedAt = Running, "run-c1", at(0.001)
		applied(s.status("b"), "run-b1", at(10))
		s.seen("b", &Run{ID: "run-b1", Status: "applied", StatusAt: at(10), CreatedAt: at(0.001)})
		s.seen("c", &Run{ID: "run-c1", Status: "applying", CreatedAt: at(0.001)})
		s.seen("d", native("run-d1", "pending", at(10.001), true))
		d := s.decide()
		noRefused(t, d)
		state(t, d, s.p, "d", Waiting)
		stops := actions(d, ActStop)
		if len(stops) != 1 || stops[0].RunID != "run-d1" || !stops[0].Discard || !strings.Contains(stops[0].Message, "superseded by cascade") {
			t.Errorf("stops: got %+v, want run-d1 discarded with a comment naming the cascade", stops)
		}
	})
	t.Run("a waiting member's run is not judged before its running upstreams were looked at", func(t *testing.T) {
		s := newSit(plan(t, "a", "a>b", "a>c", "b>d", "c>d"))
		applied(s.status("b"), "run-b1", at(10))
		s.status("c").State, s.status("c").RunID, s.status("c").RunCreatedAt = Running, "run-c1", at(0.001)
		s.seen("d", native("run-d2", "pending", at(20.001), true)) // c may have applied at 20
		d := s.decide()
		if len(actions(d, ActStop)) != 0 || !slices.Contains(d.Need.Workspaces, "ws-c") {
			t.Errorf("got stops %+v and needs %+v; want no stop and c looked at first", actions(d, ActStop), d.Need)
		}
	})
	t.Run("fan-in: the run queued when the last upstream applied is taken", func(t *testing.T) {
		s := newSit(plan(t, "a", "a>b", "a>c", "b>d", "c>d"))
		applied(s.status("b"), "run-b1", at(10))
		applied(s.status("c"), "run-c1", at(20))
		s.seen("d", native("run-d2", "planning", at(20.001), true))
		d := s.decide()
		noRefused(t, d)
		if got := state(t, d, s.p, "d", Running); got.RunID != "run-d2" || !got.ReadyAt.Equal(at(20)) {
			t.Errorf("d: got run %s ready at %s, want run-d2 ready at %s", got.RunID, got.ReadyAt, at(20))
		}
	})
	t.Run("a ready member whose workspace holds an early run stops it and waits", func(t *testing.T) {
		s := newSit(plan(t, "a", "a>b", "a>c", "b>d", "c>d"))
		applied(s.status("b"), "run-b1", at(10))
		applied(s.status("c"), "run-c1", at(20))
		s.seen("d", native("run-d1", "planning", at(10.001), true))
		d := s.decide()
		noRefused(t, d)
		got := state(t, d, s.p, "d", Ready)
		if stops := actions(d, ActStop); len(stops) != 1 || stops[0].RunID != "run-d1" || stops[0].Discard || got.Stopping != "run-d1" {
			t.Errorf("got stops %+v, stopping %q; want run-d1 cancelled", stops, got.Stopping)
		}
		if d.Wake.After(s.now.Add(DefaultPolicy.Soon)) {
			t.Errorf("wake at %s, want soon", d.Wake)
		}
	})
	t.Run("an early run already applying is reported and followed, never cancelled", func(t *testing.T) {
		s := newSit(plan(t, "a", "a>b", "a>c", "b>d", "c>d"))
		applied(s.status("b"), "run-b1", at(10))
		s.status("c").State, s.status("c").RunID = Running, "run-c1"
		s.seen("c", &Run{ID: "run-c1", Status: "planning", CreatedAt: at(0.001)})
		s.seen("d", native("run-d1", "applying", at(10.001), true))
		d := s.decide()
		if len(actions(d, ActStop)) != 0 || len(alerts(d, AlertUncontrolled)) != 1 || d.Statuses[s.p.Index("ws-d")].Stopping != "run-d1" {
			t.Errorf("got stops %+v, alerts %+v; want none, one uncontrolled_run alert, and the run followed", actions(d, ActStop), alerts(d, AlertUncontrolled))
		}
	})
	t.Run("with seconds-precision times a fan-in member lists its runs before taking one", func(t *testing.T) {
		s := newSit(plan(t, "a", "a>b", "a>c", "b>d", "c>d"))
		applied(s.status("b"), "run-b1", at(10))
		applied(s.status("c"), "run-c1", t0.Add(20*time.Second))
		s.seen("d", native("run-d1", "planning", t0.Add(20300*time.Millisecond), true))
		d := s.decide()
		if !slices.Contains(d.Need.Lists, "ws-d") {
			t.Fatalf("needs: got %+v, want d's runs listed", d.Need)
		}
		// The list shows the run queued by c's apply is the later one.
		s.list["ws-d"] = []Run{*native("run-d2", "pending", t0.Add(20500*time.Millisecond), true), *native("run-d1", "planning", t0.Add(20300*time.Millisecond), true)}
		d = s.decide()
		if got := state(t, d, s.p, "d", Running); got.RunID != "run-d2" {
			t.Errorf("d: got run %s, want run-d2", got.RunID)
		}
	})
	t.Run("another cascade holds the workspace: the member waits for it", func(t *testing.T) {
		s := newSit(plan(t, "a", "a>b")).seen("b", native("run-b1", "planning", at(0.001), true))
		d := Decide(Input{Plan: s.p, Statuses: s.st, Facts: Facts{Workspaces: s.ws, HeldBy: map[string]string{"ws-b": "c-run-other"}}, Now: s.now})
		if got := state(t, d, s.p, "b", Ready); got.RunID != "" || !strings.Contains(got.Reason, "c-run-other") {
			t.Errorf("b: got %+v, want waiting for c-run-other", got)
		}
	})
}

func TestApplyPolicy(t *testing.T) {
	for _, tc := range []struct {
		name      string
		policy    ApplyPolicy
		aart      bool // the workspace's auto-apply-run-trigger
		nativeRun *Run
		want      State
		wantStop  bool
		wantApply bool
	}{
		{"like TFE: an auto-applying native run is taken", ApplyLikeTFE, true, native("run-b1", "planning", at(0.001), true), Running, false, false},
		{"like TFE: a planned native run without auto-apply waits for a person", ApplyLikeTFE, false, native("run-b1", "planned", at(0.001), false), AwaitingApproval, false, false},
		{"always: a planned native run is applied by the cascade", ApplyAlways, false, native("run-b1", "planned", at(0.001), false), Running, false, true},
		{"never: an auto-applying native run is stopped", ApplyNever, true, native("run-b1", "planning", at(0.001), true), Ready, true, false},
		{"never: an auto-applying native run that already applied is taken", ApplyNever, true, native("run-b1", "applied", at(0.001), true), Applied, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSit(plan(t, "a", "a>b")).seen("b", tc.nativeRun, func(w *Workspace) { w.AutoApplyRunTrigger = tc.aart })
			s.pol.Apply = tc.policy
			d := s.decide()
			noRefused(t, d)
			state(t, d, s.p, "b", tc.want)
			if got := len(actions(d, ActStop)) > 0; got != tc.wantStop {
				t.Errorf("stop: got %v, want %v", got, tc.wantStop)
			}
			if got := len(actions(d, ActApply)) > 0; got != tc.wantApply {
				t.Errorf("apply: got %v, want %v", got, tc.wantApply)
			}
		})
	}
	t.Run("the cascade's own runs follow the policy", func(t *testing.T) {
		for _, tc := range []struct {
			policy ApplyPolicy
			aart   bool
			want   bool
		}{{ApplyLikeTFE, true, true}, {ApplyLikeTFE, false, false}, {ApplyAlways, false, true}, {ApplyNever, true, false}} {
			s := newSit(plan(t, "a", "a>b")).seen("b", nil, func(w *Workspace) { w.AutoApplyRunTrigger = tc.aart })
			s.list["ws-b"] = nil
			s.pol.Apply, s.now = tc.policy, at(60)
			d := s.decide()
			creates := actions(d, ActCreate)
			if len(creates) != 1 || creates[0].AutoApply != tc.want {
				t.Errorf("policy %s, auto-apply-run-trigger %v: got creates %+v, want one with auto-apply %v", tc.policy, tc.aart, creates, tc.want)
			}
		}
	})
}

func TestApproval(t *testing.T) {
	p := plan(t, "a", "a>b", "b>c")
	s := newSit(p)
	s.status("b").State, s.status("b").RunID, s.status("b").Since = AwaitingApproval, "run-b1", at(5)
	s.status("b").WantAutoApply = false
	s.seen("b", native("run-b1", "planned", at(0.001), false))
	s.pol.ApprovalReminder = time.Hour
	s.now = at(5 + 3600 + 1)
	d := s.decide()
	noRefused(t, d)
	state(t, d, p, "b", AwaitingApproval)
	if got := alerts(d, AlertAwaiting); len(got) != 1 || got[0].RunID != "run-b1" {
		t.Errorf("reminders: got %+v, want one for run-b1", got)
	}
	if want := at(5 + 7200); !d.Wake.Equal(want) && d.Wake.After(want) {
		t.Errorf("wake: got %s, want by the next reminder %s", d.Wake, want)
	}

	t.Run("discarded by a person, what depends on it is blocked", func(t *testing.T) {
		s.seen("b", &Run{ID: "run-b1", Status: "discarded", StatusAt: at(100), CreatedAt: at(0.001), Source: SourceRunTrigger})
		d := s.decide()
		noRefused(t, d)
		state(t, d, p, "b", Failed)
		c := state(t, d, p, "c", Blocked)
		if c.Cause != CauseUpstream || len(alerts(d, AlertBlocked)) != 1 {
			t.Errorf("c: got %+v and alerts %+v; want blocked by its upstream, one alert", c, alerts(d, AlertBlocked))
		}
	})
}

func TestNoChanges(t *testing.T) {
	for _, tc := range []struct {
		name         string
		b, c         State
		runUnchanged bool
		want         State
	}{
		{"every upstream finished without changes: skipped", NoChanges, NoChanges, false, Skipped},
		{"one upstream applied: runs", NoChanges, Applied, false, Ready},
		{"configured to run anyway", NoChanges, NoChanges, true, Ready},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSit(plan(t, "a", "a>b", "a>c", "b>d", "c>d"))
			for name, st := range map[string]State{"b": tc.b, "c": tc.c} {
				x := s.status(name)
				x.State, x.RunID, x.FinishedAt, x.Changed, x.Cause = st, "run-"+name, at(10), st == Applied, CauseRun
			}
			s.pol.RunUnchanged = tc.runUnchanged
			d := s.decide()
			noRefused(t, d)
			got := state(t, d, s.p, "d", tc.want)
			if tc.want == Skipped && got.Changed {
				t.Errorf("a skipped member counts as changed")
			}
		})
	}
}

func TestFailuresAndCycles(t *testing.T) {
	t.Run("an upstream that errored blocks what depends on it, in one alert", func(t *testing.T) {
		p := plan(t, "a", "a>b", "b>c", "c>d", "a>e")
		s := newSit(p)
		s.status("b").State, s.status("b").RunID = Running, "run-b1"
		s.seen("b", &Run{ID: "run-b1", Status: "errored", StatusAt: at(9), CreatedAt: at(0.001), Source: SourceRunTrigger})
		d := s.decide()
		noRefused(t, d)
		state(t, d, p, "b", Failed)
		state(t, d, p, "c", Blocked)
		state(t, d, p, "d", Blocked)
		got := alerts(d, AlertBlocked)
		if len(got) != 1 || !strings.Contains(got[0].Message, "c (upstream b failed (run errored))") || !strings.Contains(got[0].Message, "d (upstream c is blocked)") {
			t.Errorf("alerts: got %+v, want one naming c and d", got)
		}
	})
	t.Run("members on a cycle never run; what TFE queued in them is stopped", func(t *testing.T) {
		p := plan(t, "root", "root>app", "app>db", "db>app", "root>side")
		if len(p.Cycles) != 1 || p.Cycles[0] != "app → db → app" {
			t.Fatalf("cycles: got %v", p.Cycles)
		}
		s := newSit(p).seen("app", native("run-app1", "planning", at(0.001), true))
		d := s.decide()
		if stops := actions(d, ActStop); len(stops) != 1 || stops[0].RunID != "run-app1" {
			t.Errorf("stops: got %+v, want run-app1", stops)
		}
		state(t, d, p, "app", Blocked)
	})
	t.Run("a member that does not run is swept once before it is done", func(t *testing.T) {
		p := plan(t, "root", "root>app", "app>db", "db>app")
		s := newSit(p)
		if Done(p, s.st, p.Index("ws-app")) {
			t.Fatal("app is done before it was swept")
		}
		s.seen("app", nil).seen("db", nil)
		s.list["ws-app"], s.list["ws-db"] = nil, nil
		d := s.decide()
		if !d.Done || d.Outcome != OutcomeIncomplete {
			t.Errorf("got done %v outcome %s, want done and incomplete", d.Done, d.Outcome)
		}
	})
}

func TestPreflight(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mod   func(*Workspace)
		tools map[string]Tool
		want  State
		alert string
	}{
		{"local execution", func(w *Workspace) { w.ExecutionMode = "local" }, nil, Blocked, AlertBlocked},
		{"no configuration version", func(w *Workspace) { w.HasConfiguration = false }, nil, Blocked, AlertBlocked},
		{"disabled Terraform version", nil, map[string]Tool{"1.9.8": {}}, Blocked, AlertBlocked},
		{"deprecated Terraform version", nil, map[string]Tool{"1.9.8": {Enabled: true, Deprecated: true}}, Dispatching, AlertDeprecated},
		{"locked by a person", func(w *Workspace) { w.Locked, w.LockedBy = true, "user-ops" }, nil, Ready, ""},
		{"gone", func(w *Workspace) { w.Missing = true }, nil, Blocked, AlertBlocked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := plan(t, "a", "a>b")
			mods := []func(*Workspace){}
			if tc.mod != nil {
				mods = append(mods, tc.mod)
			}
			s := newSit(p).seen("b", nil, mods...)
			s.list["ws-b"] = nil
			s.now = at(60)
			d := Decide(Input{Plan: p, Statuses: s.st, Facts: Facts{Workspaces: s.ws, Lists: s.list, Tools: tc.tools}, Now: s.now})
			noRefused(t, d)
			got := state(t, d, p, "b", tc.want)
			if tc.want == Blocked && got.Cause != CausePreflight {
				t.Errorf("cause: got %q, want preflight", got.Cause)
			}
			if tc.alert != "" && len(alerts(d, tc.alert)) != 1 {
				t.Errorf("alerts: got %+v, want one %s", d.Actions, tc.alert)
			}
		})
	}
	t.Run("a lock that lasts is alerted once per period", func(t *testing.T) {
		p := plan(t, "a", "a>b")
		s := newSit(p).seen("b", nil, func(w *Workspace) { w.Locked, w.LockedBy = true, "user-ops" })
		s.list["ws-b"] = nil
		b := s.status("b")
		b.State, b.ReadyAt, b.BusySince = Ready, at(0), at(1)
		s.now = at(1).Add(DefaultPolicy.LockedAlertAfter)
		d := s.decide()
		if got := alerts(d, AlertLocked); len(got) != 1 || !strings.Contains(got[0].Message, "locked by user-ops") {
			t.Errorf("alerts: got %+v, want one saying who holds the lock", got)
		}
		s.st = d.Statuses
		if d := s.decide(); len(alerts(d, AlertLocked)) != 0 {
			t.Errorf("alerted again at once")
		}
	})
	t.Run("a workspace held by a person's run waits for it", func(t *testing.T) {
		p := plan(t, "a", "a>b")
		s := newSit(p).seen("b", &Run{ID: "run-p", Status: "planning", Source: "tfe-ui", CreatedAt: at(0.5)})
		s.now = at(60)
		d := s.decide()
		got := state(t, d, p, "b", Ready)
		if len(actions(d, ActStop))+len(actions(d, ActCreate)) != 0 || !strings.Contains(got.Reason, "run-p") {
			t.Errorf("got actions %+v, reason %q; want none, waiting for run-p", d.Actions, got.Reason)
		}
	})
}

func TestCreateAndLostAnswers(t *testing.T) {
	p := plan(t, "a", "a>b")
	t.Run("no native run comes: after the grace, the runs are listed, then one is created", func(t *testing.T) {
		s := newSit(p).seen("b", nil)
		s.now = at(2)
		d := s.decide()
		if state(t, d, p, "b", Ready); len(actions(d, ActCreate)) != 0 || !d.Wake.Equal(at(0).Add(DefaultPolicy.NativeGrace)) {
			t.Errorf("before the grace: got %+v, wake %s; want no create, wake at the grace's end", d.Actions, d.Wake)
		}
		s.now = at(30)
		if d = s.decide(); !slices.Contains(d.Need.Lists, "ws-b") {
			t.Fatalf("needs: got %+v, want b's runs listed", d.Need)
		}
		s.list["ws-b"] = nil
		d = s.decide()
		got := state(t, d, p, "b", Dispatching)
		creates := actions(d, ActCreate)
		if len(creates) != 1 || !strings.HasPrefix(creates[0].Message, Marker(p.ID)) || got.Attempts != 1 {
			t.Errorf("got creates %+v, attempts %d; want one carrying the marker", creates, got.Attempts)
		}
		st, acts := AfterCreate(p, d.Statuses, p.Index("ws-b"), &Run{ID: "run-b9", Status: "pending", CreatedAt: at(30)}, "", at(30))
		if st.State != Running || st.RunID != "run-b9" || st.Adopted || len(acts) != 0 {
			t.Errorf("after create: got %+v", st)
		}
		st, acts = AfterCreate(p, d.Statuses, p.Index("ws-b"), nil, "workspace is locked", at(30))
		if st.State != Blocked || st.Cause != CauseRefused || len(acts) != 1 || acts[0].Notice.Kind != AlertDispatch {
			t.Errorf("after refusal: got %+v, %+v", st, acts)
		}
	})
	t.Run("a creation whose answer was lost is found by its marker", func(t *testing.T) {
		s := newSit(p)
		b := s.status("b")
		b.State, b.ReadyAt, b.Attempts, b.AttemptDeadline = Dispatching, at(0), 1, at(40)
		s.now = at(50)
		s.seen("b", &Run{ID: "run-b9", Status: "planning", Source: "tfe-api", Message: Marker(p.ID) + " b after a", CreatedAt: at(31)})
		d := s.decide()
		if got := state(t, d, p, "b", Running); got.RunID != "run-b9" || got.Adopted {
			t.Errorf("b: got %+v, want its own run-b9", got)
		}
	})
	t.Run("a creation that never landed is made again once it can no longer appear", func(t *testing.T) {
		s := newSit(p)
		b := s.status("b")
		b.State, b.ReadyAt, b.Attempts, b.AttemptDeadline = Dispatching, at(0), 1, at(40)
		s.seen("b", nil)
		s.now = at(50)
		if d := s.decide(); len(actions(d, ActCreate)) != 0 {
			t.Errorf("created again within the settle time")
		}
		s.now = at(40).Add(DefaultPolicy.CreateSettle + time.Second)
		s.list["ws-b"] = nil
		d := s.decide()
		if got := state(t, d, p, "b", Dispatching); got.Attempts != 2 || len(actions(d, ActCreate)) != 1 {
			t.Errorf("got attempts %d and %d creates, want attempt 2", got.Attempts, len(actions(d, ActCreate)))
		}
	})
}

func TestControls(t *testing.T) {
	p := plan(t, "a", "a>b", "b>c")
	t.Run("paused: nothing starts, early runs are stopped", func(t *testing.T) {
		s := newSit(p).seen("b", native("run-b1", "pending", at(0.001), true))
		s.ctl.Paused = "ops: maintenance"
		d := s.decide()
		noRefused(t, d)
		got := state(t, d, p, "b", Waiting)
		if !strings.Contains(got.Reason, "paused") || len(actions(d, ActStop)) != 1 {
			t.Errorf("b: got %+v, stops %+v; want waiting, paused, run stopped", got, actions(d, ActStop))
		}
	})
	t.Run("resumed: a run stopped while paused is not the member's run; the cascade creates one", func(t *testing.T) {
		s := newSit(p)
		stopped := native("run-b1", "canceled", at(0.001), true)
		s.seen("b", stopped)
		s.list["ws-b"] = []Run{*stopped}
		s.status("b").Stopped = 1
		s.now = at(30)
		d := s.decide()
		noRefused(t, d)
		state(t, d, p, "b", Dispatching)
		if creates := actions(d, ActCreate); len(creates) != 1 {
			t.Errorf("creates: got %+v, want one", creates)
		}
	})
	t.Run("held by the blast-radius guard", func(t *testing.T) {
		s := newSit(p).seen("b", nil)
		s.ctl.Held = "3 members, more than 2"
		d := s.decide()
		if got := state(t, d, p, "b", Waiting); !strings.Contains(got.Reason, "blast-radius") {
			t.Errorf("b: got %q", got.Reason)
		}
	})
	t.Run("cancelled: open members blocked, runs not applying stopped", func(t *testing.T) {
		s := newSit(p)
		s.status("b").State, s.status("b").RunID = Running, "run-b1"
		s.seen("b", native("run-b1", "planning", at(0.001), true))
		s.ctl.Cancelled, s.ctl.CancelRuns = "ops: wrong change", true
		d := s.decide()
		noRefused(t, d)
		state(t, d, p, "b", Blocked)
		state(t, d, p, "c", Blocked)
		if stops := actions(d, ActStop); len(stops) != 1 || stops[0].RunID != "run-b1" {
			t.Errorf("stops: got %+v, want run-b1", stops)
		}
	})
	t.Run("retried: a failed member runs again, never taking its old run, and what it blocked resumes", func(t *testing.T) {
		s := newSit(p)
		b := s.status("b")
		b.State, b.RunID, b.Cause, b.Reason = Failed, "run-b1", CauseRun, "run errored"
		c := s.status("c")
		c.State, c.Cause, c.Reason = Blocked, CauseUpstream, "upstream b failed (run errored)"
		s.ctl.Retries = map[string]string{"ws-b": "retry-1"}
		s.seen("b", &Run{ID: "run-b1", Status: "errored", Source: SourceRunTrigger, CreatedAt: at(0.001)})
		s.list["ws-b"] = []Run{*s.ws["ws-b"].Current}
		s.now = at(300)
		d := s.decide()
		noRefused(t, d)
		gotB := state(t, d, p, "b", Dispatching)
		state(t, d, p, "c", Waiting)
		if gotB.Retry != "retry-1" || !slices.Contains(gotB.PastRuns, "run-b1") || len(actions(d, ActCreate)) != 1 {
			t.Errorf("b: got %+v and %d creates; want a new run", gotB, len(actions(d, ActCreate)))
		}
		s.st = d.Statuses
		if d := s.decide(); len(actions(d, ActCreate)) != 0 {
			t.Errorf("the retry was applied twice")
		}
	})
	t.Run("excluded: skipped, and what TFE queues there is left alone", func(t *testing.T) {
		s := newSit(p).seen("b", native("run-b1", "planning", at(0.001), true))
		s.ctl.Excluded = map[string]string{"ws-b": "ops: frozen"}
		d := s.decide()
		noRefused(t, d)
		state(t, d, p, "b", Skipped)
		if len(actions(d, ActStop)) != 0 {
			t.Errorf("stopped a run in an excluded workspace")
		}
	})
}

func TestDryRun(t *testing.T) {
	p := plan(t, "a", "a>b", "b>c")
	p.DryRun = true
	s := newSit(p).seen("b", nil).seen("c", nil)
	s.list["ws-b"], s.list["ws-c"] = nil, nil
	s.now = at(60)
	d := s.decide()
	noRefused(t, d)
	state(t, d, p, "b", Skipped)
	state(t, d, p, "c", Skipped)
	if n := len(actions(d, ActCreate)) + len(actions(d, ActStop)) + len(actions(d, ActApply)); n != 0 {
		t.Errorf("a dry run took %d actions", n)
	}
	if !d.Done || d.Outcome != OutcomeDryRun {
		t.Errorf("got done %v, outcome %s", d.Done, d.Outcome)
	}
}

func TestWakeWhileOpen(t *testing.T) {
	s := newSit(plan(t, "a", "a>b"))
	s.status("b").State, s.status("b").RunID = Running, "run-b1"
	d := s.decide() // nothing observed: a lost webhook must not stall it
	if d.Done || d.Wake.IsZero() || d.Wake.After(s.now.Add(DefaultPolicy.Recheck)) {
		t.Errorf("got done %v wake %s; want a look again within the recheck", d.Done, d.Wake)
	}
}

func TestTransitionTable(t *testing.T) {
	for from, tos := range Transitions {
		for _, to := range tos {
			if !Allowed(from, to) {
				t.Errorf("%s → %s listed but not allowed", from, to)
			}
		}
	}
	if Allowed(Applied, Waiting) || Allowed(Skipped, Ready) || Allowed(Waiting, Running) {
		t.Error("a transition outside the table is allowed")
	}
}

func TestValidate(t *testing.T) {
	p := plan(t, "a", "a>b", "b>c")
	bad := *p
	bad.Members = slices.Clone(p.Members)
	bad.Members[0], bad.Members[1] = bad.Members[1], bad.Members[0]
	bad.index = nil
	if err := bad.Validate(); err == nil {
		t.Error("a plan with a member before its upstream validated")
	}
	bad = *p
	bad.ID = "c-other"
	if err := bad.Validate(); err == nil {
		t.Error("a plan whose ID does not match its root validated")
	}
	for _, s := range []Status{{State: "bogus"}, {State: Running}, {State: Waiting, Attempts: -1}} {
		if err := s.Validate(); err == nil {
			t.Errorf("status %+v validated", s)
		}
	}
}

// A full look watches every member the cascade can have reached (running,
// or an upstream running or done), not the members further down that are
// still waiting behind waiting upstreams: nothing can have happened there
// that the cascade must handle, and reading them costs a call each.
func TestFullLookWatchesWhatTheCascadeReached(t *testing.T) {
	s := newSit(plan(t, "a", "a>b", "b>c", "c>d", "d>e", "a>f"))
	applied(s.status("b"), "run-b1", at(1))
	s.status("c").State, s.status("c").RunID, s.status("c").RunCreatedAt = Running, "run-c1", at(1)
	var got []string
	for _, w := range Observe(s.p, s.st, func(string) bool { return false }, true, s.pol, s.now) {
		got = append(got, s.p.Members[w.Member].Name)
	}
	slices.Sort(got)
	// b applied: done once its downstream moved; c runs; d waits behind c;
	// f waits on the root, whose apply queued a run there.
	if want := []string{"b", "c", "d", "f"}; !slices.Equal(got, want) {
		t.Errorf("a full look watches %v, want %v (e waits behind d, which waits)", got, want)
	}
	// Named by an event, a member is watched wherever it stands.
	var named []string
	for _, w := range Observe(s.p, s.st, func(id string) bool { return id == "ws-e" }, false, s.pol, s.now) {
		named = append(named, s.p.Members[w.Member].Name)
	}
	if !slices.Contains(named, "e") {
		t.Errorf("a look for an event about e watches %v, not e", named)
	}
}
