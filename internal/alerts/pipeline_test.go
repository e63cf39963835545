package alerts_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
)

// receiver is an alert endpoint that fails the first failures requests,
// and blocks while hold is set.
type receiver struct {
	mu       sync.Mutex
	failures int
	bodies   []map[string]any
	hold     chan struct{}
	srv      *httptest.Server
}

func newReceiver(t *testing.T, failures int) *receiver {
	rc := &receiver{failures: failures}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.mu.Lock()
		hold := rc.hold
		rc.mu.Unlock()
		if hold != nil {
			<-hold
		}
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if rc.failures > 0 {
			rc.failures--
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil || r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		rc.bodies = append(rc.bodies, m)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) got() []map[string]any {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]map[string]any(nil), rc.bodies...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, 10*time.Second, cond)
}

func start(t *testing.T, p *alerts.Pipeline) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

var sample = alerts.Alert{
	Kind: alerts.KindStuckRun, Severity: alerts.SeverityCritical, Organization: "acme", Workspace: "network",
	WorkspaceID: "ws-1", RunID: "run-1", CascadeID: "c-run-0", Message: "run-1 stuck in planning for 2h", Key: "stuck/run-1",
	RunURL: "https://tfe.example.com/app/acme/workspaces/network/runs/run-1",
}

func TestSinksReceiveShapedPayloads(t *testing.T) {
	hook, slack := newReceiver(t, 0), newReceiver(t, 0)
	p := alerts.NewPipeline(alerts.PipelineOptions{Backoff: time.Millisecond}, &alerts.Basic{Log: zap.NewNop()},
		[]alerts.Sink{&alerts.Webhook{URL: hook.srv.URL}, &alerts.Slack{URL: slack.srv.URL}}, nil)
	start(t, p)
	p.Raise(context.Background(), sample)
	waitFor(t, "both sinks", func() bool { return len(hook.got()) == 1 && len(slack.got()) == 1 })
	h := hook.got()[0]
	for field, want := range map[string]string{
		"kind": "stuck_run", "severity": "critical", "organization": "acme", "workspace": "network",
		"workspace_id": "ws-1", "run_id": "run-1", "cascade_id": "c-run-0", "key": "stuck/run-1", "message": sample.Message,
		"run_url": sample.RunURL,
	} {
		if h[field] != want {
			t.Errorf("webhook %s: got %v, want %q", field, h[field], want)
		}
	}
	if ts, _ := h["time"].(string); ts == "" {
		t.Error("webhook payload has no time")
	}
	if u, ok := h["page_url"]; ok {
		t.Errorf("webhook page_url %v without a public URL", u)
	}
	text, _ := slack.got()[0]["text"].(string)
	for _, want := range []string{"*[critical] stuck_run*", sample.Message, "workspace `network`", "run `run-1`", "<" + sample.RunURL + "|open the run in TFE>"} {
		if !strings.Contains(text, want) {
			t.Errorf("slack text %q lacks %q", text, want)
		}
	}
}

// With the daemon's public URL, an alert about a cascade links to its
// page, in the webhook's page_url and in the Slack text; one about no
// cascade has no link.
func TestAlertsLinkToTheCascadePage(t *testing.T) {
	hook, slack := newReceiver(t, 0), newReceiver(t, 0)
	p := alerts.NewPipeline(alerts.PipelineOptions{Backoff: time.Millisecond, PublicURL: "https://orchestrator.example.com/"}, &alerts.Basic{Log: zap.NewNop()},
		[]alerts.Sink{&alerts.Webhook{URL: hook.srv.URL}, &alerts.Slack{URL: slack.srv.URL}}, nil)
	start(t, p)
	p.Raise(context.Background(), sample)
	waitFor(t, "both sinks", func() bool { return len(hook.got()) == 1 && len(slack.got()) == 1 })
	const page = "https://orchestrator.example.com/ui/#c-run-0"
	if got := hook.got()[0]["page_url"]; got != page {
		t.Errorf("webhook page_url %v, want %q", got, page)
	}
	if text, _ := slack.got()[0]["text"].(string); !strings.Contains(text, "<"+page+"|open the cascade>") {
		t.Errorf("slack text %q lacks the cascade's page", text)
	}
	other := sample
	other.CascadeID, other.Key = "", "stuck/run-2"
	p.Raise(context.Background(), other)
	waitFor(t, "the second alert", func() bool { return len(hook.got()) == 2 })
	if u, ok := hook.got()[1]["page_url"]; ok {
		t.Errorf("an alert about no cascade has page_url %v", u)
	}
}

func TestSinkDownIsRetriedAndNeverBlocks(t *testing.T) {
	rc := newReceiver(t, 2) // the first two attempts fail
	rc.hold = make(chan struct{})
	core, logs := observer.New(zap.DebugLevel)
	p := alerts.NewPipeline(alerts.PipelineOptions{Backoff: time.Millisecond}, &alerts.Basic{Log: zap.New(core)},
		[]alerts.Sink{&alerts.Webhook{URL: rc.srv.URL + "/secret-path"}}, nil)
	start(t, p)

	raised := make(chan struct{})
	go func() {
		p.Raise(context.Background(), sample) // the sink is hanging: this must not wait for it
		close(raised)
	}()
	select {
	case <-raised:
	case <-time.After(10 * time.Second):
		t.Fatal("Raise waited for a hanging sink")
	}
	close(rc.hold)
	rc.mu.Lock()
	rc.hold = nil
	rc.mu.Unlock()
	waitFor(t, "the alert after two failed attempts", func() bool { return len(rc.got()) == 1 })
	for _, e := range logs.All() {
		b, _ := json.Marshal(e.ContextMap())
		if strings.Contains(e.Message+string(b), "secret-path") {
			t.Errorf("a log line contains the sink's URL: %s %s", e.Message, b)
		}
	}
}

func TestRepeatsWithinTheWindowSendOnce(t *testing.T) {
	rc := newReceiver(t, 0)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	p := alerts.NewPipeline(alerts.PipelineOptions{Window: time.Minute, Now: clock}, &alerts.Basic{Log: zap.NewNop()},
		[]alerts.Sink{&alerts.Webhook{URL: rc.srv.URL}}, nil)
	start(t, p)
	p.Raise(context.Background(), sample)
	p.Raise(context.Background(), sample)
	other := sample
	other.Key = "stuck/run-2"
	p.Raise(context.Background(), other)
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	p.Raise(context.Background(), sample) // the window has passed
	waitFor(t, "three alerts", func() bool { return len(rc.got()) >= 3 })
	var keys []string
	for _, b := range rc.got() {
		keys = append(keys, b["key"].(string))
	}
	if strings.Join(keys, " ") != "stuck/run-1 stuck/run-2 stuck/run-1" {
		t.Errorf("got keys %v, want stuck/run-1 stuck/run-2 stuck/run-1", keys)
	}
}

// A sink URL that does not parse (a trailing CR from a Secret, say) is
// never quoted in the error: the URL of a Slack-style webhook is its
// credential.
func TestSinkErrorsHideTheURL(t *testing.T) {
	for _, sink := range []alerts.Sink{
		&alerts.Webhook{URL: "https://hooks.example.com/services/SECRET\r"},
		&alerts.Slack{URL: "https://hooks.example.com/services/SECRET\r"},
		&alerts.Slack{URL: "http://127.0.0.1:1/services/SECRET"}, // nothing listens
	} {
		err := sink.Send(context.Background(), alerts.Alert{Kind: alerts.KindCycle, Message: "m"})
		if err == nil {
			t.Fatalf("%s: sent to an unusable URL", sink.Name())
		}
		if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "hooks.example.com") {
			t.Errorf("%s: the error shows the URL: %v", sink.Name(), err)
		}
	}
}

// Alerts raised are counted by kind and severity, once each however often
// they repeat within the window; a kind nobody declared counts as other.
func TestRaisedAlertsAreCountedByKind(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := alerts.NewPipeline(alerts.PipelineOptions{Window: time.Minute}, &alerts.Basic{Log: zap.NewNop()}, nil, reg)
	p.Raise(context.Background(), sample)
	p.Raise(context.Background(), sample)
	odd := sample
	odd.Kind, odd.Severity, odd.Key = "made_up", "dire", "odd"
	p.Raise(context.Background(), odd)
	want := `
# HELP orchestrator_alerts_raised_total Alerts raised (after de-duplication), by kind and severity.
# TYPE orchestrator_alerts_raised_total counter
orchestrator_alerts_raised_total{kind="other",severity="other"} 1
orchestrator_alerts_raised_total{kind="` + sample.Kind + `",severity="` + sample.Severity + `"} 1
`
	if err := promtest.GatherAndCompare(reg, strings.NewReader(want), "orchestrator_alerts_raised_total"); err != nil {
		t.Error(err)
	}
}
