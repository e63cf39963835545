package dispatcher_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// Several replicas on one stream, under TFE's rate limit: the runs TFE's
// triggers queue arrive while the cascade is still being planned, so the
// replica that gets their events knows no cascade yet. The cascade's first
// look reads every member and handles them.
func TestThreeReplicasUnderTheRateLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, layered(2, 5, triggerApply, untilEnded, 20), tfesim.Options{RateLimit: 30})
	d, _ := h.engine(fastOptions())
	h.engine(fastOptions())
	h.engine(fastOptions())
	root := h.start("root")
	h.pace(d, root)
	v := h.done(d, cascade.ID(root), 60*time.Second)
	if v.Outcome != cascade.OutcomeApplied {
		t.Fatalf("got %s:%s", v.Outcome, states(v))
	}
	h.checkOnce(v, root)
}

// A lost webhook of any run, the cascade's or TFE's, delays a cascade and
// never stalls it.
func TestLostWebhooks(t *testing.T) {
	t.Parallel()
	o := chain(4, triggerApply, untilEnded)
	for i := range o.workspaces {
		o.workspaces[i].Behavior.DropNotifications = i > 0
	}
	h := newHarness(t, o, tfesim.Options{})
	d, _ := h.engine(fastOptions())
	root := h.start("c00")
	h.pace(d, root)
	v := h.done(d, cascade.ID(root), 60*time.Second)
	if v.Outcome != cascade.OutcomeApplied {
		t.Fatalf("got %s:%s", v.Outcome, states(v))
	}
	h.checkOnce(v, root)
}

// slowCreates lets a run creation reach TFE, then holds its answer back
// until the caller gives up: the run exists, its creator does not know.
// While stuck is set, answers never come.
type slowCreates struct {
	next  http.RoundTripper
	delay time.Duration
	stuck atomic.Bool
	sent  atomic.Int32
}

func (s *slowCreates) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := s.next.RoundTrip(r)
	if err != nil || r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/api/v2/runs") {
		return res, err
	}
	s.sent.Add(1)
	wait := s.delay
	if s.stuck.Load() {
		wait = time.Hour
	}
	select {
	case <-r.Context().Done():
		res.Body.Close()
		return nil, r.Context().Err()
	case <-time.After(wait):
		return res, nil
	}
}

// A creation whose answer never comes (a slow API, a replica that dies
// in the middle) is found by the cascade's marker before any other is
// made: a replica taking the cascade over never creates a second run.
func TestSlowCreationTakenOverWithoutDuplicate(t *testing.T) {
	t.Parallel()
	h := newHarness(t, chain(4, triggerApply, 50), tfesim.Options{NoNativeRunTriggers: true})
	opts := fastOptions()
	opts.Policy.CreateTimeout = 500 * time.Millisecond
	slow := &slowCreates{next: http.DefaultTransport, delay: 2 * time.Second}
	slow.stuck.Store(true)
	a, stopA := h.engineWith(opts, slow)
	root := h.start("c00")
	id := cascade.ID(root)
	waitFor(t, "a creation to reach TFE", func() bool { return slow.sent.Load() > 0 })
	stopA() // the replica dies with its creation's answer outstanding
	b, _ := h.engine(opts)
	v := h.done(b, id, 60*time.Second)
	if v.Outcome != cascade.OutcomeApplied {
		t.Fatalf("got %s:%s", v.Outcome, states(v))
	}
	h.checkOnce(v, root)
	for _, m := range v.Members {
		if runs := h.runs(m.Name); len(runs) != 1 {
			t.Errorf("%s: got %d runs, want 1", m.Name, len(runs))
		}
	}
	_ = a
}

// The answers of every creation come late (after the creator's deadline):
// the engine learns of each run by its marker, and creates none twice.
func TestSlowAPIMakesNoDuplicate(t *testing.T) {
	t.Parallel()
	h := newHarness(t, chain(4, triggerApply, 50), tfesim.Options{NoNativeRunTriggers: true})
	opts := fastOptions()
	opts.Policy.CreateTimeout = 300 * time.Millisecond
	slow := &slowCreates{next: http.DefaultTransport, delay: time.Second}
	d, _ := h.engineWith(opts, slow)
	h.engineWith(opts, slow)
	root := h.start("c00")
	v := h.done(d, cascade.ID(root), 60*time.Second)
	if v.Outcome != cascade.OutcomeApplied {
		t.Fatalf("got %s:%s", v.Outcome, states(v))
	}
	for _, m := range v.Members {
		if runs := h.runs(m.Name); len(runs) != 1 {
			t.Errorf("%s: got %d runs, want 1", m.Name, len(runs))
		}
	}
}

var _ = context.Background
var _ = tfe.RunApplied

// slowTriggerLists delays every read of run triggers, as TFE's rate limit
// does for an engine reading a large graph cold.
type slowTriggerLists struct {
	next  http.RoundTripper
	delay time.Duration
}

func (s *slowTriggerLists) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/run-triggers") {
		select {
		case <-time.After(s.delay):
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	return s.next.RoundTrip(r)
}

// A root whose run triggers take several ack waits to read is handled
// once: its event is kept in progress, not delivered again to a second
// reading of the same graph beside the first. (TFE's run triggers are off
// here: a run they queue would apply while the graph is read, and start a
// reading of its own.)
func TestSlowGraphReadIsNotRedelivered(t *testing.T) {
	t.Parallel()
	h := newHarness(t, chain(4, triggerApply, 50), tfesim.Options{NoNativeRunTriggers: true})
	opts := fastOptions() // an ack wait of a second
	d, _ := h.engineWith(opts, &slowTriggerLists{next: http.DefaultTransport, delay: 800 * time.Millisecond})
	h.sim.ResetStats()
	root := h.start("c00")
	v := h.done(d, cascade.ID(root), 60*time.Second)
	if v.Outcome != cascade.OutcomeApplied {
		t.Fatalf("got %s:%s", v.Outcome, states(v))
	}
	h.checkOnce(v, root)
	if got := h.sim.Stats().Requests["GET /api/v2/workspaces/{id}/run-triggers"]; got != 4 {
		t.Errorf("the run triggers were read %d times, want 4 (once per workspace)", got)
	}
}
