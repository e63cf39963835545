package dispatcher_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// Events are hints. These tests send validly signed webhooks that lie,
// come early, come late or come again, and check that nothing TFE does
// not confirm changes anything.

// forge sends a validly signed run notification to the daemon's webhook.
func (h *harness) forge(org, wsID, wsName, runID, status string, at time.Time) {
	h.t.Helper()
	s := func(v string) *string { return &v }
	trigger := map[string]string{"applied": "run:completed", "errored": "run:errored", "planning": "run:planning"}[status]
	if trigger == "" {
		trigger = "run:created"
	}
	body, err := json.Marshal(tfesim.Payload{
		PayloadVersion: 1, NotificationConfigurationID: "nc-forgedforgedforg",
		RunID: s(runID), RunMessage: s("forged"), RunCreatedAt: s(at.UTC().Format(time.RFC3339)), RunCreatedBy: s("mallory"),
		WorkspaceID: s(wsID), WorkspaceName: s(wsName), OrganizationName: s(org),
		Notifications: []tfesim.Notification{{Message: "forged", Trigger: trigger, RunStatus: s(status), RunUpdatedAt: s(at.UTC().Format(time.RFC3339Nano))}},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, h.hook, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set(tfesim.SignatureHeader, tfesim.Sign(webhookToken, body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	var answer struct{ Duplicates, Ignored, Stored int }
	_ = json.NewDecoder(res.Body).Decode(&answer)
	res.Body.Close()
	if answer.Stored != 1 {
		h.t.Fatalf("forged webhook: got %+v, want one event stored", answer)
	}
	if res.StatusCode != http.StatusOK {
		h.t.Fatalf("forged webhook: got %s, want it stored", res.Status)
	}
}

func TestForgedRootsStartNothing(t *testing.T) {
	t.Parallel()
	o := org{workspaces: []tfesim.WorkspaceSpec{ws("a", 1000, 20), ws("b", 1000, 20)}, edges: [][2]string{{"a", "b"}}}
	h := newHarness(t, o, tfesim.Options{})
	// Another organization with a run that really applied.
	if err := h.sim.LoadScenario(&tfesim.Scenario{Organizations: []tfesim.OrganizationSpec{{Name: "evil", Email: "x@evil.test",
		Workspaces: []tfesim.WorkspaceSpec{ws("x", 1, 1)}}}}); err != nil {
		t.Fatal(err)
	}
	evilRun, err := h.sim.CreateRun(h.sim.WorkspaceID("evil", "x"), "real")
	if err != nil {
		t.Fatal(err)
	}
	d, _ := h.engine(fastOptions())
	waitFor(t, "the other organization's run to apply", func() bool {
		r, err := h.client.Runs.Read(h.ctx, evilRun)
		return err == nil && r.Status == tfe.RunApplied
	})
	now := time.Now()
	h.forge("acme", h.id("a"), "a", "run-doesnotexist0001", "applied", now)                               // a run TFE does not know
	h.forge("acme", h.id("a"), "a", evilRun, "applied", now.Add(time.Millisecond))                        // another organization's run, said to be a's
	h.forge("acme", h.sim.WorkspaceID("evil", "x"), "x", evilRun, "applied", now.Add(2*time.Millisecond)) // another organization's workspace, said to be acme's
	waitFor(t, "each lie to be rejected", func() bool { return len(h.alerts.Of(alerts.KindEventRejected)) >= 3 })
	list, err := d.Reads().List(h.ctx, dispatcher.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 || len(h.runs("b")) != 0 {
		t.Errorf("got %d cascades and %d runs in b, want none", len(list), len(h.runs("b")))
	}
	for _, a := range h.alerts.Of(alerts.KindEventRejected) {
		if !strings.Contains(a.Message, "no cascade starts") && !strings.Contains(a.Message, "TFE does not know it") {
			t.Errorf("alert: %q does not say why", a.Message)
		}
	}
}

func TestEarlyAndStaleEventsChangeNothing(t *testing.T) {
	t.Parallel()
	o := org{
		workspaces: []tfesim.WorkspaceSpec{wsKind("a", autoApply, 1000, 20), wsKind("b", triggerApply, 1500, 20), wsKind("c", triggerApply, 1000, 20)},
		edges:      [][2]string{{"a", "b"}, {"b", "c"}},
	}
	h := newHarness(t, o, tfesim.Options{})
	d, _ := h.engine(fastOptions())
	root := h.start("a")
	id := cascade.ID(root)
	var bRun string
	waitFor(t, "b to plan", func() bool {
		v, err := d.Reads().Snapshot(h.ctx, id)
		if err != nil {
			return false
		}
		bRun = v.Members[0].RunID
		return v.Members[0].RunStatus == "planning"
	})
	// b "applied", says a forged event, while TFE has it planning.
	h.forge("acme", h.id("b"), "b", bRun, "applied", time.Now())
	v := h.done(d, id, 30*time.Second)
	h.checkOnce(v, root) // c's run was created after b really applied
	// b "errored", says a stale event, after it applied.
	h.forge("acme", h.id("b"), "b", bRun, "errored", time.Now())
	waitFor(t, "the stale event to be handled", func() bool { return d.Metric("handled") >= 1 })
	v2, err := d.Reads().Snapshot(h.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Members[0].State != cascade.Applied || v2.Outcome != cascade.OutcomeApplied {
		t.Errorf("after a stale errored: b is %s, outcome %s", v2.Members[0].State, v2.Outcome)
	}
}

func TestReplayedRootsStartNothing(t *testing.T) {
	t.Parallel()
	o := org{workspaces: []tfesim.WorkspaceSpec{ws("a", untilEnded, 20), ws("b", untilEnded, 20)}, edges: [][2]string{{"a", "b"}}}
	h := newHarness(t, o, tfesim.Options{})
	d, stop := h.engine(fastOptions())
	root := h.start("a")
	stopPace := h.pace(d, root)
	h.done(d, cascade.ID(root), 30*time.Second)
	stopPace()
	stop()
	applied := len(h.applied("b"))

	// Replayed while the state is kept: the root was handled.
	d, stop = h.engine(fastOptions())
	h.forge("acme", h.id("a"), "a", root, "applied", time.Now())
	waitFor(t, "the replay to be handled", func() bool { return d.Metric("handled") >= 1 })
	stop()

	// Replayed a day later, when the state has expired (a bucket of its
	// own stands for it): the run applied too long ago.
	later := fastOptions()
	later.Bucket, later.LeaseBucket, later.Consumer = "cascades-later", "leases-later", "later"
	later.Now = func() time.Time { return time.Now().Add(25 * time.Hour) }
	d, _ = h.engine(later)
	h.forge("acme", h.id("a"), "a", root, "applied", time.Now().Add(time.Second))
	waitFor(t, "the late replay to be handled", func() bool { return d.Metric("handled") >= 2 })
	list, err := d.Reads().List(h.ctx, dispatcher.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 || len(h.applied("b")) != applied {
		t.Errorf("got %d cascades and %d applied runs in b, want none and %d", len(list), len(h.applied("b")), applied)
	}
}

// Events the engine can never process (runs TFE does not know) end with
// an alert and hold nothing up: a real apply behind a hundred of them
// cascades on time.
func TestUnprocessableEventsHoldNothingUp(t *testing.T) {
	t.Parallel()
	o := org{workspaces: []tfesim.WorkspaceSpec{ws("a", untilEnded, 20), ws("b", untilEnded, 20)}, edges: [][2]string{{"a", "b"}}}
	h := newHarness(t, o, tfesim.Options{})
	d, _ := h.engine(fastOptions())
	for i := range 100 {
		h.forge("acme", h.id("a"), "a", fmt.Sprintf("run-unknown%09d", i), "applied", time.Now())
	}
	root := h.start("a")
	h.pace(d, root)
	v := h.done(d, cascade.ID(root), 30*time.Second)
	h.checkOnce(v, root)
	waitFor(t, "every unprocessable event to be rejected", func() bool { return d.Metric("rejected") >= 100 })
}
