package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
	"github.com/tfe-orchestrator/orchestrator/internal/app"
	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/natsembed"
	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim/simtest"
	"github.com/tfe-orchestrator/orchestrator/internal/watchdog"
)

const webhookToken = "webhook-secret"

type daemon struct {
	*app.App
	stop func()
}

// start runs the daemon until the test ends or stop is called.
func start(t *testing.T, cfg app.Config) *daemon {
	t.Helper()
	return startLogged(t, cfg, zap.NewNop())
}

// startLogged is start with the daemon's log going to log.
func startLogged(t *testing.T, cfg app.Config, log *zap.Logger) *daemon {
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
	a, err := app.New(cfg, log)
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

// connect opens a client connection of its own to the daemon's NATS.
func connect(t *testing.T, d *daemon) *nats.Conn {
	t.Helper()
	nc, err := d.ConnectNATS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// stream opens the run event stream through nc.
func stream(t *testing.T, nc *nats.Conn) jetstream.Stream {
	t.Helper()
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
	testutil.WaitFor(t, what, time.Minute, cond) // "never happened", on a loaded machine
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
	opts.Token, opts.RateLimit = simtest.Token, -1
	srv := simtest.Start(t, opts)
	return srv.Sim, srv.URL, srv.Client
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

	s := stream(t, connect(t, d))
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
	if n := count(t, stream(t, connect(t, d))); n != 1 {
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
	if n := count(t, stream(t, connect(t, second))); n != 2 {
		t.Errorf("after a restart the stream holds %d messages, want 2", n)
	}
}

// An outside NATS that requires authentication is reached with the NKey
// seed the operator gives (--nats-nkey), and not without it.
func TestExternalNATS(t *testing.T) {
	seedPath := filepath.Join(t.TempDir(), "orchestrator.nk")
	seed, _, err := natsembed.LoadOrCreateSeed(seedPath)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown) // after the daemon stops
	cfg := app.Config{HTTPListen: "127.0.0.1:0", DataDir: t.TempDir(), Webhook: events.WebhookOptions{Tokens: []string{webhookToken}},
		NATS: app.NATSConfig{URL: ns.ClientURL()}}
	a, err := app.New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "Authorization Violation") {
		t.Errorf("without credentials: got %v, want an authorization violation", err)
	}

	d := start(t, app.Config{NATS: app.NATSConfig{URL: ns.ClientURL(), NKeyFile: seedPath}})
	if d.NATSURL() != "" {
		t.Errorf("with NATS_URL the daemon started an embedded server at %s", d.NATSURL())
	}
	if code := signedPost(t, d.url("/webhooks/tfe"), runPayload("run-0000000000000001", "applied", time.Now().UTC())); code != http.StatusOK {
		t.Fatalf("post: got %d", code)
	}
	nc, err := ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if n := count(t, stream(t, nc)); n != 1 {
		t.Errorf("the outside server's stream holds %d messages, want 1", n)
	}
	if n := count(t, stream(t, connect(t, d))); n != 1 {
		t.Errorf("through ConnectNATS the stream holds %d messages, want 1", n)
	}
}

// What happens to the NATS connection after it is up goes to the log: a
// lost server, the reconnection once it is back.
func TestNATSConnectionEventsAreLogged(t *testing.T) {
	seedPath := filepath.Join(t.TempDir(), "orchestrator.nk")
	seed, _, err := natsembed.LoadOrCreateSeed(seedPath)
	if err != nil {
		t.Fatal(err)
	}
	store := t.TempDir()
	ns, err := natsembed.Start(natsembed.Options{StoreDir: store, Listen: "127.0.0.1:0", Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(ns.ClientURL(), "nats://")
	core, logs := observer.New(zap.InfoLevel)
	startLogged(t, app.Config{NATS: app.NATSConfig{URL: ns.ClientURL(), NKeyFile: seedPath}}, zap.New(core))
	seen := func(msg string) func() bool {
		return func() bool { return logs.FilterLoggerName("nats").FilterMessage(msg).Len() > 0 }
	}
	ns.Shutdown()
	waitFor(t, "the disconnection to be logged", seen("nats disconnected"))
	again, err := natsembed.Start(natsembed.Options{StoreDir: store, Listen: addr, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(again.Shutdown) // after the daemon stops
	waitFor(t, "the reconnection to be logged", seen("nats reconnected"))
}

// The embedded NATS admits only the daemon and whoever holds the seed it
// keeps in the data directory: a local process without it can neither
// publish a run event nor delete the stream. The seed is made once,
// readable by its owner only, and kept across restarts.
func TestEmbeddedNATSRequiresCredentials(t *testing.T) {
	dir := t.TempDir()
	first := start(t, app.Config{DataDir: dir})
	if nc, err := nats.Connect(first.NATSURL()); err == nil {
		nc.Close()
		t.Fatal("an anonymous client connected to the embedded NATS")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("an anonymous client: got %v, want an authorization violation", err)
	}
	seedPath := filepath.Join(dir, app.SeedFileName)
	st, err := os.Stat(seedPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("the seed file's mode is %04o, want 0600", st.Mode().Perm())
	}
	seed, _ := os.ReadFile(seedPath)
	// As docs/security.md tells operators: nats --server URL --nkey DATA_DIR/nats-user.nk
	withSeed := func(d *daemon) *nats.Conn {
		t.Helper()
		opt, err := nats.NkeyOptionFromSeed(seedPath)
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(d.NATSURL(), opt)
		if err != nil {
			t.Fatalf("with the seed: %v", err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	if n := count(t, stream(t, withSeed(first))); n != 0 {
		t.Errorf("stream holds %d messages, want 0", n)
	}
	first.stop()

	second := start(t, app.Config{DataDir: dir})
	again, _ := os.ReadFile(seedPath)
	if string(again) != string(seed) {
		t.Error("the seed changed across a restart")
	}
	withSeed(second)
	if err := os.Chmod(seedPath, 0o644); err != nil {
		t.Fatal(err)
	}
	second.stop()
	a, err := app.New(app.Config{HTTPListen: "127.0.0.1:0", DataDir: dir, NATS: app.NATSConfig{EmbeddedListen: "127.0.0.1:0"},
		Webhook: events.WebhookOptions{Tokens: []string{webhookToken}}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("with a seed others may read: got %v, want refused", err)
	}
}

// A rejected webhook raises webhook_rejected, seen where operators look:
// on NATS and at the configured webhook sink, without the request's secrets.
func TestWebhookRejectedAlert(t *testing.T) {
	watch := testutil.NewAlertWatch(t)
	d := start(t, app.Config{Alerts: app.AlertsConfig{WebhookURL: watch.SinkURL()}})
	watch.Subscribe(t, connect(t, d))

	body := runPayload("run-0000000000000001", "applied", time.Now().UTC())
	req, _ := http.NewRequest("POST", d.url("/webhooks/tfe"), bytes.NewReader(body))
	req.Header.Set(events.SignatureHeader, tfesim.Sign("a-guessed-token", body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a badly signed webhook: got %d, want 401", res.StatusCode)
	}
	onNATS, atSink := watch.Expect(t, alerts.KindWebhookRejected, 15*time.Second)
	for _, a := range []alerts.Alert{onNATS.Alert, atSink} {
		if !strings.Contains(a.Message, events.ResultBadSignature) || a.Severity != alerts.SeverityWarning {
			t.Errorf("alert %+v: want a warning naming %s", a, events.ResultBadSignature)
		}
		if strings.Contains(a.Message, webhookToken) || strings.Contains(a.Message, "a-guessed-token") {
			t.Errorf("the alert shows a token: %s", a.Message)
		}
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
	tok := events.WebhookOptions{Tokens: []string{"t"}}
	for _, tc := range []struct {
		name string
		cfg  app.Config
		want string
	}{
		{"no token", app.Config{}, "--insecure-skip-signature"},
		{"bad retention", app.Config{Webhook: tok, Stream: events.StreamOptions{Retention: "forever"}}, "--stream-retention"},
		{"window over max age", app.Config{Webhook: tok, Stream: events.StreamOptions{MaxAge: time.Minute, DuplicateWindow: time.Hour}},
			"--stream-duplicate-window (1h) must not be longer than --stream-max-age (1m)"},
		{"window over the default max age", app.Config{Webhook: tok, Stream: events.StreamOptions{DuplicateWindow: 8 * 24 * time.Hour}}, "--stream-max-age (168h)"},
		{"half TLS", app.Config{Webhook: tok, NATS: app.NATSConfig{URL: "nats://n:4222", TLSCert: "c"}}, "--nats-tls-cert and --nats-tls-key"},
		{"state TTL under the ack wait", app.Config{Webhook: tok, Dispatcher: dispatcher.Options{StateTTL: time.Second}},
			"--state-ttl (1s) must be longer than --ack-wait (30s)"},
		{"state TTL under a set ack wait", app.Config{Webhook: tok, Dispatcher: dispatcher.Options{StateTTL: time.Minute, AckWait: 2 * time.Minute}},
			"--state-ttl (1m) must be longer than --ack-wait (2m)"},
		{"negative in flight", app.Config{Webhook: tok, Dispatcher: dispatcher.Options{MaxInFlight: -1}}, "--max-dispatch-in-flight"},
		{"negative reconcile interval", app.Config{Webhook: tok, Dispatcher: dispatcher.Options{Policy: cascade.Policy{Recheck: -time.Second}}}, "--reconcile-interval (-1s)"},
		{"negative watchdog interval", app.Config{Webhook: tok, Watchdog: watchdog.Options{Interval: -time.Minute}}, "--watchdog-interval"},
		{"short lease", app.Config{Webhook: tok, Watchdog: watchdog.Options{LeaseTTL: time.Millisecond}}, "--watchdog-lease-ttl"},
		{"unknown scan", app.Config{Webhook: tok, Watchdog: watchdog.Options{Scan: "all"}}, "--watchdog-scan"},
		{"negative shutdown timeout", app.Config{Webhook: tok, ShutdownTimeout: -time.Second}, "--shutdown-timeout"},
		{"negative webhook body", app.Config{Webhook: events.WebhookOptions{Tokens: []string{"t"}, MaxBodyBytes: -1}}, "--webhook-max-body"},
		{"empty token", app.Config{Webhook: events.WebhookOptions{Tokens: []string{" "}}}, "--webhook-token"},
		{"slack URL", app.Config{Webhook: tok, Alerts: app.AlertsConfig{SlackURL: "https://hooks.example.com/SECRET\r"}}, "--alert-slack-url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := app.New(tc.cfg, zap.NewNop())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error saying %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "SECRET") {
				t.Errorf("the error shows a secret: %v", err)
			}
		})
	}
}

// The whole daemon, as serve runs it, against the simulator: a run applying
// in the root leads to one run in each downstream workspace, in order.
func TestDaemonRunsCascade(t *testing.T) {
	sim, simURL, client := startSim(t, tfesim.Options{NoNativeRunTriggers: true})
	ctx := context.Background()

	// Without TFE's own run triggers, no run is queued downstream: the
	// cascade creates them once a short grace for those runs passed.
	d := startLogged(t, app.Config{TFE: app.TFEConfig{Address: simURL, Token: "sim-token"},
		Dispatcher: dispatcher.Options{Policy: cascade.Policy{NativeGrace: 100 * time.Millisecond}}}, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	spec := tfesim.OrganizationSpec{Name: "acme", Email: "ops@acme.test",
		Notifications: []tfesim.ScenarioNotification{{NotificationSpec: tfesim.NotificationSpec{
			Name: "orchestrator", URL: d.url("/webhooks/tfe"), Token: webhookToken,
			Triggers: []string{"run:created", "run:planning", "run:needs_attention", "run:applying", "run:completed", "run:errored"},
		}}}}
	for _, n := range []string{"network", "cluster", "apps"} {
		spec.Workspaces = append(spec.Workspaces, tfesim.WorkspaceSpec{Name: n, AutoApply: true, AutoApplyRunTrigger: true})
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

// run runs a daemon that is expected to fail to start, and returns its error.
func runToFailure(t *testing.T, cfg app.Config) error {
	t.Helper()
	cfg.HTTPListen = "127.0.0.1:0"
	if cfg.NATS.EmbeddedListen == "" {
		cfg.NATS.EmbeddedListen = "127.0.0.1:0"
	}
	cfg.Webhook.Tokens = []string{webhookToken}
	a, err := app.New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case <-a.Ready():
		cancel()
		<-done
		t.Fatal("the daemon started")
	case err := <-done:
		return err
	}
	return nil
}

// Two daemons on one data directory would share one store and lose the
// events one of them acknowledged: the second refuses at once and names
// the first's process; the lock goes with the first, and a lock file left
// by a process that is gone blocks nobody.
func TestDataDirectoryLocked(t *testing.T) {
	dir := t.TempDir()
	first := start(t, app.Config{DataDir: dir})
	began := time.Now()
	err := runToFailure(t, app.Config{DataDir: dir})
	if err == nil || !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("a second daemon on the data directory: got %v, want refused naming pid %d", err, os.Getpid())
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("the refusal took %s", took)
	}
	if code := signedPost(t, first.url("/webhooks/tfe"), runPayload("run-0000000000000001", "applied", time.Now().UTC())); code != http.StatusOK {
		t.Errorf("the first daemon after the second was refused: got %d, want 200", code)
	}
	first.stop()
	second := start(t, app.Config{DataDir: dir})
	if n := count(t, stream(t, connect(t, second))); n != 1 {
		t.Errorf("stream holds %d messages, want 1", n)
	}
	second.stop()

	stale := t.TempDir()
	if err := os.WriteFile(filepath.Join(stale, app.LockFileName), []byte("999999999\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	start(t, app.Config{DataDir: stale})
	pid, _ := os.ReadFile(filepath.Join(stale, app.LockFileName))
	if strings.TrimSpace(string(pid)) != fmt.Sprint(os.Getpid()) {
		t.Errorf("the lock file holds %q, want this process's pid", pid)
	}
}

// An embedded NATS that cannot listen says so at once, with the flag.
func TestEmbeddedNATSListenFailureReported(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	began := time.Now()
	err = runToFailure(t, app.Config{DataDir: t.TempDir(), NATS: app.NATSConfig{EmbeddedListen: ln.Addr().String()}})
	if err == nil || !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), "--embedded-nats-listen") {
		t.Errorf("got %v, want the address in use and the flag", err)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("the failure took %s to report", took)
	}
}

// get returns the status and body of a GET.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// A token TFE refuses is found at start, not left to runs that never come:
// /readyz says why, orchestrator_tfe_token_valid is 0, and operators get a
// tfe_unauthorized alert; the token appears nowhere.
func TestWrongTFETokenShown(t *testing.T) {
	const wrong = "wrong-tfe-token"
	_, simURL, _ := startSim(t, tfesim.Options{})
	// The check runs before the daemon is ready: the alert is watched for
	// on a NATS of the test's, subscribed before the daemon starts.
	seedPath := filepath.Join(t.TempDir(), "orchestrator.nk")
	seed, _, err := natsembed.LoadOrCreateSeed(seedPath)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	watch := testutil.NewAlertWatch(t)
	watch.Subscribe(t, nc)
	core, logs := observer.New(zap.DebugLevel)
	d := startLogged(t, app.Config{
		NATS: app.NATSConfig{URL: ns.ClientURL(), NKeyFile: seedPath},
		TFE:  app.TFEConfig{Address: simURL, Token: wrong}, Alerts: app.AlertsConfig{WebhookURL: watch.SinkURL()},
	}, zap.New(core))

	code, body := get(t, d.url("/readyz"))
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "TFE refused the API token: 401") || !strings.Contains(body, "GET /api/v2/account/details") {
		t.Errorf("/readyz: got %d %q, want 503 saying TFE refused the token", code, body)
	}
	_, metrics := get(t, d.url("/metrics"))
	for _, want := range []string{"orchestrator_tfe_token_valid 0", `orchestrator_tfe_requests_total{code="401",endpoint="GET /api/v2/account/details"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics does not have %s", want)
		}
	}
	// On NATS and at the sink, critical, about no workspace or run.
	onNATS := expectAlert(t, watch, wantAlert{Kind: alerts.KindTFEUnauthorized, Severity: alerts.SeverityCritical,
		Message: "TFE refused the API token: 401 Unauthorized on GET /api/v2/account/details"})
	for _, text := range []string{body, metrics, onNATS.Message} {
		if strings.Contains(text, wrong) {
			t.Errorf("the token is shown: %s", text)
		}
	}
	for _, e := range logs.All() {
		line, _ := json.Marshal(e.ContextMap())
		if strings.Contains(e.Message+string(line), wrong) {
			t.Errorf("the token is in the log: %s %s", e.Message, line)
		}
	}
}

// refusingProxy stands in front of the simulator and, while refuse is set,
// answers every API request but ping 401 as TFE does for a revoked token.
type refusingProxy struct {
	*httptest.Server
	refuse atomic.Bool
}

func newRefusingProxy(t *testing.T, target string) *refusingProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &refusingProxy{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.refuse.Load() && r.URL.Path != "/api/v2/ping" {
			w.Header().Set("Content-Type", "application/vnd.api+json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"errors":[{"status":"401","title":"unauthorized"}]}`))
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

// Any 401 from TFE, on whatever endpoint, makes the daemon unready; once
// TFE accepts the token again, the periodic check makes it ready again.
// Every request to TFE is counted by endpoint and code.
func TestTFETokenRefusedThenAcceptedAgain(t *testing.T) {
	_, simURL, _ := startSim(t, tfesim.Options{})
	proxy := newRefusingProxy(t, simURL)
	watch := testutil.NewAlertWatch(t)
	d := start(t, app.Config{
		TFE:      app.TFEConfig{Address: proxy.URL, Token: "sim-token", CheckInterval: 50 * time.Millisecond},
		Watchdog: watchdog.Options{Interval: 100 * time.Millisecond},
		Alerts:   app.AlertsConfig{WebhookURL: watch.SinkURL()},
	})
	watch.Subscribe(t, connect(t, d))
	ready := func() bool { code, _ := get(t, d.url("/readyz")); return code == http.StatusOK }
	waitFor(t, "the daemon to be ready with a good token", ready)

	proxy.refuse.Store(true)
	waitFor(t, "a 401 on the watchdog's scan to make the daemon unready", func() bool {
		code, body := get(t, d.url("/readyz"))
		return code == http.StatusServiceUnavailable && strings.Contains(body, "401 Unauthorized on GET /api/v2/admin/runs")
	})
	expectAlert(t, watch, wantAlert{Kind: alerts.KindTFEUnauthorized, Severity: alerts.SeverityCritical,
		Message: "401 Unauthorized on GET /api/v2/admin/runs"})
	_, metrics := get(t, d.url("/metrics"))
	if !strings.Contains(metrics, "orchestrator_tfe_token_valid 0") {
		t.Error("orchestrator_tfe_token_valid is not 0 after a 401")
	}
	proxy.refuse.Store(false)
	waitFor(t, "the check to find the token accepted again", ready)
	_, metrics = get(t, d.url("/metrics"))
	for _, want := range []string{
		"orchestrator_tfe_token_valid 1",
		`orchestrator_tfe_requests_total{code="200",endpoint="GET /api/v2/account/details"}`,
		`orchestrator_tfe_requests_total{code="401",endpoint="GET /api/v2/admin/runs"}`,
		`orchestrator_tfe_requests_total{code="204",endpoint="GET /api/v2/ping"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics does not have %s", want)
		}
	}
}

// Accepting unsigned webhooks is said loudly at start.
func TestSkipSignatureWarns(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	d := startLogged(t, app.Config{Webhook: events.WebhookOptions{Tokens: []string{}, SkipSignature: true}}, zap.New(core))
	if n := logs.FilterMessageSnippet("--insecure-skip-signature").FilterLevelExact(zap.WarnLevel).Len(); n != 1 {
		t.Errorf("got %d warnings naming --insecure-skip-signature at start, want 1", n)
	}
	body := runPayload("run-0000000000000001", "applied", time.Now().UTC())
	res, err := http.Post(d.url("/webhooks/tfe"), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("an unsigned webhook with signatures skipped: got %d, want 200", res.StatusCode)
	}
}

// An error NATS reports after the connection is up (here: the operator's
// NATS denies publishing alerts) goes to the log, not nowhere.
func TestNATSAsyncErrorsAreLogged(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedPath := filepath.Join(t.TempDir(), "orchestrator.nk")
	if err := os.WriteFile(seedPath, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
		Nkeys: []*server.NkeyUser{{Nkey: pub, Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{alerts.Subject + ".>"}},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	t.Cleanup(ns.Shutdown)
	core, logs := observer.New(zap.InfoLevel)
	d := startLogged(t, app.Config{NATS: app.NATSConfig{URL: ns.ClientURL(), NKeyFile: seedPath}}, zap.New(core))

	if code := signedPost(t, d.url("/webhooks/tfe"), []byte("not json")); code != http.StatusBadRequest {
		t.Fatalf("a malformed webhook: got %d, want 400", code)
	}
	waitFor(t, "the denied alert publish to be logged", func() bool {
		for _, e := range logs.FilterLoggerName("nats").FilterMessage("nats error").All() {
			if strings.Contains(e.ContextMap()["error"].(string), "Permissions Violation") {
				return true
			}
		}
		return false
	})
}

// --run-unchanged, deprecated, runs as --run-when always and says so at
// start.
func TestRunUnchangedWarns(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	cfg := app.Config{Webhook: events.WebhookOptions{Tokens: []string{}, SkipSignature: true}}
	cfg.Dispatcher.Policy.RunUnchanged = true
	startLogged(t, cfg, zap.New(core))
	got := logs.FilterMessageSnippet("--run-unchanged is deprecated").FilterLevelExact(zap.WarnLevel).All()
	if len(got) != 1 || got[0].ContextMap()["run_when"] != "always" {
		t.Errorf("got %+v, want one warning that it runs as always", got)
	}
}
