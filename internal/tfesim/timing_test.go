package tfesim_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// With the default timing a run spends a second queued for a plan, four
// seconds planning, a second queued for an apply and four seconds applying,
// so that every transient status can be seen.
func TestDefaultTiming(t *testing.T) {
	def := tfesim.DefaultTiming()
	e := newEnv(t, tfesim.Options{Timing: &def})
	e.org("acme")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net"), AutoApply: tfe.Bool(true)})
	r := e.run(ws.ID, tfe.RunCreateOptions{})

	for _, step := range []struct {
		after time.Duration
		want  tfe.RunStatus
	}{
		{0, tfe.RunPlanQueued},
		{999 * time.Millisecond, tfe.RunPlanQueued},
		{time.Millisecond, tfe.RunPlanning},
		{4*time.Second - time.Millisecond, tfe.RunPlanning},
		{time.Millisecond, tfe.RunApplyQueued},
		{time.Second, tfe.RunApplying},
		{4 * time.Second, tfe.RunApplied},
	} {
		e.sim.Advance(step.after)
		e.wantStatus(r.ID, step.want)
	}
	got, err := e.client.Runs.Read(e.ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	ts := got.StatusTimestamps
	for name, pair := range map[string][2]time.Time{
		"plan-queued-at":  {ts.PlanQueuedAt, epoch},
		"planning-at":     {ts.PlanningAt, epoch.Add(time.Second)},
		"planned-at":      {ts.PlannedAt, epoch.Add(5 * time.Second)},
		"apply-queued-at": {ts.ApplyQueuedAt, epoch.Add(5 * time.Second)},
		"applying-at":     {ts.ApplyingAt, epoch.Add(6 * time.Second)},
		"applied-at":      {ts.AppliedAt, epoch.Add(10 * time.Second)},
	} {
		if !pair[0].Equal(pair[1]) {
			t.Errorf("%s: got %v, want %v", name, pair[0], pair[1])
		}
	}
}

func TestTimingSources(t *testing.T) {
	for _, tc := range []struct {
		name     string
		timing   *tfesim.Timing
		behavior tfesim.Behavior
		// planFor is how long the run plans after it starts planning.
		planFor time.Duration
	}{
		{"instant", &tfesim.Timing{}, tfesim.Behavior{}, 0},
		{"simulator timing", &tfesim.Timing{Plan: 3 * time.Second}, tfesim.Behavior{}, 3 * time.Second},
		{"the workspace's duration wins", &tfesim.Timing{Plan: 3 * time.Second}, tfesim.Behavior{PlanDurationMS: 500}, 500 * time.Millisecond},
		{"a zero duration keeps the simulator's", &tfesim.Timing{Plan: 2 * time.Second}, tfesim.Behavior{PlanDurationMS: 0}, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tfesim.Options{Timing: tc.timing})
			e.org("acme")
			ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net")})
			e.behave(ws.ID, tc.behavior)
			r := e.run(ws.ID, tfe.RunCreateOptions{})
			if tc.planFor > 0 {
				e.sim.Advance(tc.planFor - time.Millisecond)
				e.wantStatus(r.ID, tfe.RunPlanning)
				e.sim.Advance(time.Millisecond)
			}
			e.wantStatus(r.ID, tfe.RunPlanned)
		})
	}
}

// A scenario may set the timing; the control API reads and changes it.
func TestTimingFromScenarioAndControlAPI(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	sc, err := tfesim.ParseScenario(strings.NewReader("timing: {queue: 250ms, plan: 2s, apply: 3s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.sim.LoadScenario(sc); err != nil {
		t.Fatal(err)
	}
	if got, want := e.sim.Timing(), (tfesim.Timing{Queue: 250 * time.Millisecond, Plan: 2 * time.Second, Apply: 3 * time.Second}); got != want {
		t.Errorf("after the scenario: got %+v, want %+v", got, want)
	}
	code, body := e.raw("GET", "/_sim/timing", adminToken, "")
	if code != http.StatusOK || !strings.Contains(string(body), `"queue_ms":250`) {
		t.Errorf("GET /_sim/timing: got %d %s", code, body)
	}
	if code, _ := e.raw("PUT", "/_sim/timing", adminToken, `{"queue_ms": 0, "plan_ms": 10, "apply_ms": 20}`); code != http.StatusOK {
		t.Fatalf("PUT /_sim/timing: got %d", code)
	}
	if got, want := e.sim.Timing(), (tfesim.Timing{Plan: 10 * time.Millisecond, Apply: 20 * time.Millisecond}); got != want {
		t.Errorf("after PUT: got %+v, want %+v", got, want)
	}
	for _, body := range []string{`{"plan_ms": -1}`, `{"plan": 1}`} {
		if code, _ := e.raw("PUT", "/_sim/timing", adminToken, body); code == http.StatusOK {
			t.Errorf("PUT %s: accepted", body)
		}
	}
	var j map[string]int64
	_, body = e.raw("GET", "/_sim/timing", adminToken, "")
	if err := json.Unmarshal(body, &j); err != nil || j["plan_ms"] != 10 {
		t.Errorf("after rejected updates: got %s, want plan_ms 10 kept", body)
	}
	bad, err := tfesim.ParseScenario(strings.NewReader("timing: {plan: -1s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.sim.LoadScenario(bad); err == nil {
		t.Error("a negative scenario timing was accepted")
	}
}
