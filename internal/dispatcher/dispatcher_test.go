package dispatcher_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

var noNative = tfesim.Options{NoNativeRunTriggers: true}

func TestCascadeShapes(t *testing.T) {
	fanOut := org{workspaces: []tfesim.WorkspaceSpec{ws("hub", 5, 5)}}
	for i := range 50 {
		name := fmt.Sprintf("spoke%02d", i)
		fanOut.workspaces = append(fanOut.workspaces, ws(name, 5, 5))
		fanOut.edges = append(fanOut.edges, [2]string{"hub", name})
	}
	for _, tc := range []struct {
		name string
		org  org
		root string
	}{
		{"chain of 20", chain(20), "c00"},
		{"diamond", org{
			workspaces: []tfesim.WorkspaceSpec{ws("a", 5, 5), ws("b", 5, 5), ws("c", 40, 40), ws("d", 5, 5)},
			edges:      [][2]string{{"a", "b"}, {"a", "c"}, {"b", "d"}, {"c", "d"}},
		}, "a"},
		{"fan-out of 50", fanOut, "hub"},
		{"fan-in of 3 upstreams with different durations", org{
			workspaces: []tfesim.WorkspaceSpec{ws("root", 5, 5), ws("fast", 5, 5), ws("medium", 30, 30), ws("slow", 80, 80), ws("sink", 5, 5)},
			edges:      [][2]string{{"root", "fast"}, {"root", "medium"}, {"root", "slow"}, {"fast", "sink"}, {"medium", "sink"}, {"slow", "sink"}},
		}, "root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.org, noNative)
			h.dispatcher(fastOptions(), nil)
			rootRun := h.start(tc.root)
			members := names(tc.org, tc.root)
			h.waitFor("every member to apply once", 60*time.Second, func() bool { return h.applied(members...) })
			h.checkOrder(rootRun, tc.root, tc.org.edges, members)
			if got := h.cascadeRuns(tc.root); len(got) != 0 {
				t.Errorf("the root got %d cascade runs, want none", len(got))
			}
		})
	}
}

func diamond(bOutcome string) org {
	b := ws("b", 5, 5)
	b.Behavior.Outcome = bOutcome
	return org{
		workspaces: []tfesim.WorkspaceSpec{ws("a", 5, 5), b, ws("c", 30, 30), ws("d", 5, 5), ws("e", 5, 5)},
		edges:      [][2]string{{"a", "b"}, {"a", "c"}, {"b", "d"}, {"c", "d"}, {"d", "e"}},
	}
}

func TestFailedUpstreamBlocksDownstream(t *testing.T) {
	h := newHarness(t, diamond(tfesim.OutcomeErrored), noNative)
	h.dispatcher(fastOptions(), nil)
	h.start("a")
	h.waitFor("c to apply and the block to be reported", 30*time.Second, func() bool {
		return h.applied("c") && len(h.alerts.Of(alerts.KindCascadeBlocked)) > 0
	})
	blocked := h.alerts.Of(alerts.KindCascadeBlocked)
	if len(blocked) != 1 || !strings.Contains(blocked[0].Message, "d (upstream b errored)") || !strings.Contains(blocked[0].Message, "e (upstream d is blocked)") {
		t.Errorf("alerts: got %+v, want one listing d and e", blocked)
	}
	for _, n := range []string{"d", "e"} {
		if got := h.cascadeRuns(n); len(got) != 0 {
			t.Errorf("%s: got %d runs, want none", n, len(got))
		}
	}
	if rs := h.cascadeRuns("b"); len(rs) != 1 || rs[0].Status != tfe.RunErrored {
		t.Errorf("b: got %d runs, want one errored", len(rs))
	}
}

func TestCycleInClosure(t *testing.T) {
	o := org{
		workspaces: []tfesim.WorkspaceSpec{ws("root", 5, 5), ws("app", 5, 5), ws("db", 5, 5), ws("after", 5, 5), ws("side", 5, 5), ws("side2", 5, 5)},
		edges:      [][2]string{{"root", "app"}, {"app", "db"}, {"db", "app"}, {"db", "after"}, {"root", "side"}, {"side", "side2"}},
	}
	h := newHarness(t, o, noNative)
	h.dispatcher(fastOptions(), nil)
	h.start("root")
	h.waitFor("the branch without the cycle to apply", 30*time.Second, func() bool { return h.applied("side", "side2") })
	cycles := h.alerts.Of(alerts.KindCycle)
	if len(cycles) != 1 || !strings.Contains(cycles[0].Message, "app → db → app") {
		t.Fatalf("cycle alerts: got %+v, want one naming app → db → app", cycles)
	}
	for _, n := range []string{"app", "db", "after"} {
		if got := h.cascadeRuns(n); len(got) != 0 {
			t.Errorf("%s: got %d runs, want none", n, len(got))
		}
	}
}

// With TFE's native run triggers on, the runs they queue in workspaces a
// cascade runs are superseded: no workspace ends with two applied runs.
// A native run that auto-applies must be caught while it plans; real plans
// take far longer than the 400 ms given here, which leaves room for a
// loaded test machine.
func TestNativeRunsSuperseded(t *testing.T) {
	o := diamond(tfesim.OutcomeApplied)
	for i := range o.workspaces {
		o.workspaces[i].AutoApplyRunTrigger = i%2 == 0 // some native runs would auto-apply, some wait
		o.workspaces[i].Behavior.PlanDurationMS = 400
	}
	h := newHarness(t, o, tfesim.Options{})
	h.dispatcher(fastOptions(), nil)
	h.start("a")
	h.waitFor("b, c, d, e to apply", 60*time.Second, func() bool { return h.applied("b", "c", "d", "e") })
	h.waitFor("every native run to end", 30*time.Second, func() bool {
		for _, n := range []string{"b", "c", "d", "e"} {
			for _, r := range h.runs(n) {
				if !strings.HasPrefix(r.Message, "cascade ") && !final(r.Status) {
					return false
				}
			}
		}
		return true
	})
	for _, n := range []string{"b", "c", "d", "e"} {
		applied := 0
		for _, r := range h.runs(n) {
			if r.Status == tfe.RunApplied {
				applied++
			}
			if strings.HasPrefix(r.Message, "cascade ") {
				continue
			}
			comments, err := h.client.Comments.List(h.ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != tfe.RunDiscarded && r.Status != tfe.RunCanceled {
				t.Errorf("%s: native run %s ended %s, want discarded or canceled", n, r.ID, r.Status)
			}
			if len(comments.Items) != 1 || !strings.Contains(comments.Items[0].Body, "superseded by cascade c-") {
				t.Errorf("%s: native run %s has comments %+v, want the supersede comment", n, r.ID, comments.Items)
			}
		}
		if applied != 1 {
			t.Errorf("%s: %d applied runs, want 1", n, applied)
		}
	}
}

func final(s tfe.RunStatus) bool {
	switch s {
	case tfe.RunApplied, tfe.RunErrored, tfe.RunCanceled, tfe.RunDiscarded, tfe.RunPlannedAndFinished, "force_canceled":
		return true
	}
	return false
}

// A crash at each step boundary of a dispatch, then a restart: no run is
// created twice and none is missing. The crashing dispatch's workspace
// sends no notifications, so its run is found by the cascade's marker, not
// learned from an event.
func TestCrashAtEachStep(t *testing.T) {
	for _, step := range []string{"intent", "created", "recorded"} {
		t.Run(step, func(t *testing.T) {
			o := chain(4)
			o.workspaces[1].Behavior.DropNotifications = true
			h := newHarness(t, o, noNative)
			crashed := make(chan struct{})
			first := true
			stop := h.dispatcher(fastOptions(), func(s string) error {
				if s == step && first {
					first = false
					close(crashed)
					return dispatcher.ErrCrash
				}
				return nil
			})
			h.start("c00")
			select {
			case <-crashed:
			case <-time.After(30 * time.Second):
				t.Fatal("the dispatcher never reached the step")
			}
			stop()
			h.dispatcher(fastOptions(), nil)
			h.waitFor("the chain to finish after the restart", 60*time.Second, func() bool { return h.applied(names(o, "c00")...) })
			for _, n := range names(o, "c00") {
				if got := len(h.cascadeRuns(n)); got != 1 {
					t.Errorf("%s: %d cascade runs, want 1", n, got)
				}
			}
		})
	}
}

func TestTwoDispatchers(t *testing.T) {
	o := chain(6)
	o.workspaces = append(o.workspaces, ws("x1", 5, 5), ws("x2", 5, 5), ws("x3", 5, 5))
	o.edges = append(o.edges, [2]string{"c01", "x1"}, [2]string{"c01", "x2"}, [2]string{"x1", "x3"}, [2]string{"x2", "x3"})
	h := newHarness(t, o, noNative)
	h.dispatcher(fastOptions(), nil)
	h.dispatcher(fastOptions(), nil)
	h.start("c00")
	members := names(o, "c00")
	h.waitFor("every member to apply", 60*time.Second, func() bool { return h.applied(members...) })
	for _, n := range members {
		if got := len(h.cascadeRuns(n)); got != 1 {
			t.Errorf("%s: %d cascade runs, want 1", n, got)
		}
	}
}

// Notifications lost for one workspace: reconciliation reads its run
// through the API and the cascade completes.
func TestLostWebhooks(t *testing.T) {
	o := chain(4)
	o.workspaces[1].Behavior.DropNotifications = true
	h := newHarness(t, o, noNative)
	h.dispatcher(fastOptions(), nil)
	h.start("c00")
	h.waitFor("the chain to finish", 60*time.Second, func() bool { return h.applied(names(o, "c00")...) })
}

func TestLockedTarget(t *testing.T) {
	o := chain(3)
	o.workspaces[1].Locked = true
	h := newHarness(t, o, noNative)
	h.dispatcher(fastOptions(), nil)
	h.start("c00")
	h.waitFor("the lock alert", 30*time.Second, func() bool { return len(h.alerts.Of(alerts.KindWorkspaceLocked)) > 0 })
	if got := h.cascadeRuns("c01"); len(got) != 0 {
		t.Fatalf("a run was created in the locked workspace")
	}
	if _, err := h.client.Workspaces.Unlock(h.ctx, h.id("c01")); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the chain to finish after unlock", 60*time.Second, func() bool { return h.applied("c01", "c02") })
	if got := len(h.alerts.Of(alerts.KindWorkspaceLocked)); got != 1 {
		t.Errorf("lock alerts: got %d, want 1", got)
	}
}

func TestPreflightBlocks(t *testing.T) {
	o := org{
		workspaces: []tfesim.WorkspaceSpec{ws("root", 5, 5), ws("laptop", 5, 5), ws("empty", 5, 5), ws("fine", 5, 5)},
		edges:      [][2]string{{"root", "laptop"}, {"root", "empty"}, {"root", "fine"}},
	}
	o.workspaces[1].ExecutionMode = "local"
	o.workspaces[2].NoConfiguration = true
	h := newHarness(t, o, noNative)
	h.dispatcher(fastOptions(), nil)
	h.start("root")
	h.waitFor("fine to apply and two blocks", 30*time.Second, func() bool {
		return h.applied("fine") && len(h.alerts.Of(alerts.KindCascadeBlocked)) == 2
	})
	all := ""
	for _, a := range h.alerts.Of(alerts.KindCascadeBlocked) {
		all += a.Message + "\n"
	}
	for _, want := range []string{"laptop (the workspace uses local execution", "empty (the workspace has no configuration version"} {
		if !strings.Contains(all, want) {
			t.Errorf("alerts do not mention %q:\n%s", want, all)
		}
	}
}

func TestDryRun(t *testing.T) {
	o := chain(4)
	h := newHarness(t, o, noNative)
	opts := fastOptions()
	opts.DryRun = true
	h.dispatcher(opts, nil)
	root := h.start("c00")
	h.waitFor("the root to apply", 30*time.Second, func() bool {
		r, err := h.client.Runs.Read(h.ctx, root)
		return err == nil && r.Status == tfe.RunApplied
	})
	// Give the dry run a chance to (wrongly) write: wait until the cascade
	// is recorded done, then check TFE.
	h.waitFor("the dry-run cascade to finish", 30*time.Second, func() bool { return cascadeDone(h, dispatcher.CascadeID(root)) })
	for _, n := range names(o, "c00") {
		if got := h.runs(n); len(got) != 0 {
			t.Errorf("%s: dry run created %d runs", n, len(got))
		}
	}
}

// cascadeDone reads the cascade's done marker from the KV bucket.
func cascadeDone(h *harness, id string) bool {
	kv, err := h.js.KeyValue(h.ctx, "cascades")
	if err != nil {
		return false
	}
	_, err = kv.Get(h.ctx, "done."+id)
	return err == nil
}

// Every event of a finished cascade delivered again, in reverse order and
// twice: nothing new is created.
func TestRedeliveredEventsChangeNothing(t *testing.T) {
	o := diamond(tfesim.OutcomeApplied)
	h := newHarness(t, o, noNative)
	h.dispatcher(fastOptions(), nil)
	root := h.start("a")
	members := names(o, "a")
	h.waitFor("the cascade to finish", 30*time.Second, func() bool {
		return h.applied(members...) && cascadeDone(h, dispatcher.CascadeID(root))
	})
	before := map[string]int{}
	for _, n := range append(members, "a") {
		before[n] = len(h.runs(n))
	}

	stream, err := h.js.Stream(h.ctx, "RUN_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		for seq := info.State.LastSeq; seq >= info.State.FirstSeq && seq > 0; seq-- {
			msg, err := stream.GetMsg(h.ctx, seq)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := h.js.Publish(h.ctx, msg.Subject, msg.Data, jetstream.WithMsgID(fmt.Sprintf("replay-%d-%d", round, seq))); err != nil {
				t.Fatal(err)
			}
		}
	}
	cons, err := h.js.Consumer(h.ctx, "RUN_EVENTS", "dispatcher")
	if err != nil {
		t.Fatal(err)
	}
	h.waitFor("the replayed events to be consumed", 30*time.Second, func() bool {
		ci, err := cons.Info(h.ctx)
		return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0
	})
	for n, want := range before {
		if got := len(h.runs(n)); got != want {
			t.Errorf("%s: %d runs after the replay, %d before", n, got, want)
		}
	}
}

// C6: three cascades reach one slow workspace in turn. The second queues a
// follow-up run behind the first's; the third shares that follow-up rather
// than queue another. Every cascade completes.
func TestOverlappingCascadesShareOneFollowUp(t *testing.T) {
	o := org{
		workspaces: []tfesim.WorkspaceSpec{ws("a1", 5, 5), ws("a2", 5, 5), ws("a3", 5, 5), ws("shared", 400, 400)},
		edges:      [][2]string{{"a1", "shared"}, {"a2", "shared"}, {"a3", "shared"}},
	}
	h := newHarness(t, o, noNative)
	h.dispatcher(fastOptions(), nil)
	var roots []string
	roots = append(roots, h.start("a1"))
	h.waitFor("the first cascade's run to start", 30*time.Second, func() bool {
		rs := h.cascadeRuns("shared")
		return len(rs) == 1 && rs[0].Status != tfe.RunPending
	})
	roots = append(roots, h.start("a2"))
	h.waitFor("the second cascade's follow-up", 30*time.Second, func() bool { return len(h.cascadeRuns("shared")) == 2 })
	roots = append(roots, h.start("a3"))
	h.waitFor("every cascade to finish", 60*time.Second, func() bool {
		for _, r := range roots {
			if !cascadeDone(h, dispatcher.CascadeID(r)) {
				return false
			}
		}
		return true
	})
	rs := h.cascadeRuns("shared")
	if len(rs) != 2 {
		t.Fatalf("shared: %d cascade runs, want 2 (the first, and one follow-up for the other two)", len(rs))
	}
	for _, r := range rs {
		if r.Status != tfe.RunApplied {
			t.Errorf("run %s ended %s, want applied", r.ID, r.Status)
		}
	}
}
