package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/app"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/natsembed"
	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

const webhookToken = "webhook-secret"

type daemon struct {
	*app.App
	stop func()
}

// start runs the daemon until the test ends or stop is called.
func start(t *testing.T, cfg app.Config) *daemon {
	t.Helper()
	if cfg.HTTPListen == "" {
		cfg.HTTPListen = "127.0.0.1:0"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.NATS.EmbeddedListen == "" {
		cfg.NATS.EmbeddedListen = "127.0.0.1:0"
	}
	if cfg.Webhook.Tokens == nil {
		cfg.Webhook.Tokens = []string{webhookToken}
	}
	a, err := app.New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case <-a.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("daemon stopped before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("daemon not ready in 30s")
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("daemon stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("daemon did not stop in 30s")
		}
	}
	t.Cleanup(stop)
	return &daemon{App: a, stop: stop}
}

func (d *daemon) url(path string) string { return "http://" + d.HTTPAddr() + path }

// stream opens the run event stream through a client connection of its own.
func stream(t *testing.T, url string) jetstream.Stream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(context.Background(), events.DefaultStreamName)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func count(t *testing.T, s jetstream.Stream) uint64 {
	t.Helper()
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, 15*time.Second, cond)
}

func signedPost(t *testing.T, url string, body []byte) int {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set(events.SignatureHeader, tfesim.Sign(webhookToken, body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// startSim serves a simulator (token "sim-token", no rate limit) until the
// test ends, and returns it, its URL and a go-tfe client for it.
func startSim(t *testing.T, opts tfesim.Options) (*tfesim.Sim, string, *tfe.Client) {
	t.Helper()
	opts.Token, opts.RateLimit = "sim-token", -1
	if opts.Timing == nil {
		opts.Timing = &tfesim.Timing{} // instant unless a workspace sets durations
	}
	sim, err := tfesim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sim.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done; srv.Close() })
	client, err := tfe.NewClient(&tfe.Config{Address: srv.URL, Token: "sim-token"})
	if err != nil {
		t.Fatal(err)
	}
	return sim, srv.URL, client
}

func runPayload(runID, status string, at time.Time) []byte {
	s := func(v string) *string { return &v }
	b, _ := json.Marshal(tfesim.Payload{
		PayloadVersion: 1, NotificationConfigurationID: "nc-0000000000000000",
		RunID: s(runID), WorkspaceID: s("ws-0000000000000001"), WorkspaceName: s("network"), OrganizationName: s("acme"),
		Notifications: []tfesim.Notification{{Message: "Applied", Trigger: "run:completed", RunStatus: s(status), RunUpdatedAt: s(at.Format(time.RFC3339))}},
	})
	return b
}

// The simulator's signed notifications for a real run lifecycle land in the
// stream, one message per event, with the right content.
func TestEndToEndWithSimulator(t *testing.T) {
	d := start(t, app.Config{})

	clock := tfesim.NewManualClock(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	sim, _, client := startSim(t, tfesim.Options{Clock: clock})
	ctx := context.Background()
	if err := sim.LoadScenario(&tfesim.Scenario{Organizations: []tfesim.OrganizationSpec{{
		Name: "acme", Email: "ops@acme.test",
		Workspaces: []tfesim.WorkspaceSpec{{Name: "network", Behavior: tfesim.Behavior{PlanDurationMS: 1000, ApplyDurationMS: 1000}}},
	}}}); err != nil {
		t.Fatal(err)
	}
	wsID := sim.WorkspaceID("acme", "network")
	// Installed through the API, as a user would: TFE sends the verification
	// payload, and the daemon must answer it 2xx for the configuration to save.
	if _, err := client.NotificationConfigurations.Create(ctx, wsID, tfe.NotificationConfigurationCreateOptions{
		DestinationType: tfe.NotificationDestination(tfe.NotificationDestinationTypeGeneric),
		Enabled:         tfe.Bool(true), Name: tfe.String("orchestrator"), Token: tfe.String(webhookToken),
		URL: tfe.String(d.url("/webhooks/tfe")),
		Triggers: []tfe.NotificationTriggerType{tfe.NotificationTriggerCreated, tfe.NotificationTriggerPlanning,
			tfe.NotificationTriggerNeedsAttention, tfe.NotificationTriggerApplying, tfe.NotificationTriggerCompleted, tfe.NotificationTriggerErrored},
	}); err != nil {
		t.Fatalf("install the notification configuration: %v", err)
	}

	run, err := client.Runs.Create(ctx, tfe.RunCreateOptions{Workspace: &tfe.Workspace{ID: wsID}, Message: tfe.String("deploy")})
	if err != nil {
		t.Fatal(err)
	}
	sim.Advance(time.Second)
	if err := client.Runs.Apply(ctx, run.ID, tfe.RunApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	sim.Advance(time.Second)

	s := stream(t, d.NATSURL())
	waitFor(t, "five events in the stream", func() bool { return count(t, s) >= 5 })
	sim.Flush()
	if n := count(t, s); n != 5 {
		t.Fatalf("stream holds %d messages, want 5", n)
	}
	var got []string
	for seq := uint64(1); seq <= 5; seq++ {
		msg, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		var ev events.RunEvent
		if err := json.Unmarshal(msg.Data, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.RunID != run.ID || ev.WorkspaceID != wsID || ev.WorkspaceName != "network" || ev.Organization != "acme" || ev.RunMessage != "deploy" {
			t.Errorf("message %d: %+v", seq, ev)
		}
		if msg.Subject != ev.Subject() {
			t.Errorf("message %d: subject %s, want %s", seq, msg.Subject, ev.Subject())
		}
		got = append(got, ev.Trigger+"/"+ev.Status)
	}
	want := []string{"run:created/pending", "run:planning/planning", "run:needs_attention/planned", "run:applying/applying", "run:completed/applied"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestDuplicateDeliveryStoredOnce(t *testing.T) {
	d := start(t, app.Config{})
	body := runPayload("run-0000000000000001", "applied", time.Now().UTC())
	for i := range 2 {
		if status := signedPost(t, d.url("/webhooks/tfe"), body); status != http.StatusOK {
			t.Fatalf("delivery %d: got %d", i, status)
		}
	}
	if n := count(t, stream(t, d.NATSURL())); n != 1 {
		t.Errorf("stream holds %d messages after one delivery twice, want 1", n)
	}
}

func TestRestartKeepsEvents(t *testing.T) {
	dir := t.TempDir()
	first := start(t, app.Config{DataDir: dir})
	for i, status := range []string{"planning", "applied"} {
		body := runPayload("run-0000000000000001", status, time.Unix(int64(1000+i), 0).UTC())
		if code := signedPost(t, first.url("/webhooks/tfe"), body); code != http.StatusOK {
			t.Fatalf("post: got %d", code)
		}
	}
	first.stop()

	second := start(t, app.Config{DataDir: dir})
	if n := count(t, stream(t, second.NATSURL())); n != 2 {
		t.Errorf("after a restart the stream holds %d messages, want 2", n)
	}
}

func TestExternalNATS(t *testing.T) {
	ns, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown) // after the daemon stops
	d := start(t, app.Config{NATS: app.NATSConfig{URL: ns.ClientURL()}})
	if d.NATSURL() != "" {
		t.Errorf("with NATS_URL the daemon started an embedded server at %s", d.NATSURL())
	}
	if code := signedPost(t, d.url("/webhooks/tfe"), runPayload("run-0000000000000001", "applied", time.Now().UTC())); code != http.StatusOK {
		t.Fatalf("post: got %d", code)
	}
	if n := count(t, stream(t, ns.ClientURL())); n != 1 {
		t.Errorf("the outside server's stream holds %d messages, want 1", n)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	d := start(t, app.Config{})
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/metrics": "orchestrator_jetstream_connected 1"} {
		res, err := http.Get(d.url(path))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("%s: got %d %q, want 200 with %q", path, res.StatusCode, body, want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  app.Config
		want string
	}{
		{"no token", app.Config{}, "--insecure-skip-signature"},
		{"bad retention", app.Config{Webhook: events.WebhookOptions{Tokens: []string{"t"}}, Stream: events.StreamOptions{Retention: "forever"}}, "retention"},
		{"window over max age", app.Config{Webhook: events.WebhookOptions{Tokens: []string{"t"}}, Stream: events.StreamOptions{MaxAge: time.Minute, DuplicateWindow: time.Hour}}, "duplicate window"},
		{"half TLS", app.Config{Webhook: events.WebhookOptions{Tokens: []string{"t"}}, NATS: app.NATSConfig{TLSCert: "c"}}, "TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := app.New(tc.cfg, zap.NewNop()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

// The whole daemon, as serve runs it, against the simulator: a run applying
// in the root leads to one run in each downstream workspace, in order.
func TestDaemonRunsCascade(t *testing.T) {
	sim, simURL, client := startSim(t, tfesim.Options{NoNativeRunTriggers: true})
	ctx := context.Background()

	d := start(t, app.Config{TFE: app.TFEConfig{Address: simURL, Token: "sim-token"}})
	spec := tfesim.OrganizationSpec{Name: "acme", Email: "ops@acme.test",
		Notifications: []tfesim.ScenarioNotification{{NotificationSpec: tfesim.NotificationSpec{
			Name: "orchestrator", URL: d.url("/webhooks/tfe"), Token: webhookToken,
			Triggers: []string{"run:created", "run:planning", "run:needs_attention", "run:applying", "run:completed", "run:errored"},
		}}}}
	for _, n := range []string{"network", "cluster", "apps"} {
		spec.Workspaces = append(spec.Workspaces, tfesim.WorkspaceSpec{Name: n, AutoApply: true})
	}
	spec.RunTriggers = []tfesim.RunTriggerSpec{{Source: "network", Target: "cluster"}, {Source: "cluster", Target: "apps"}}
	if err := sim.LoadScenario(&tfesim.Scenario{Organizations: []tfesim.OrganizationSpec{spec}}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Runs.Create(ctx, tfe.RunCreateOptions{Workspace: &tfe.Workspace{ID: sim.WorkspaceID("acme", "network")}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "apps to apply its cascade run", func() bool {
		list, err := client.Runs.List(ctx, sim.WorkspaceID("acme", "apps"), nil)
		return err == nil && len(list.Items) == 1 && list.Items[0].Status == tfe.RunApplied &&
			strings.HasPrefix(list.Items[0].Message, "cascade c-")
	})
	// The run can apply in the simulator before its creator has counted it.
	wants := []string{"orchestrator_cascades_started_total 1", "orchestrator_runs_dispatched_total 2"}
	waitFor(t, "/metrics to count the cascade and its two runs", func() bool {
		res, err := http.Get(d.url("/metrics"))
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		for _, want := range wants {
			if !strings.Contains(string(body), want) {
				return false
			}
		}
		return true
	})
}
