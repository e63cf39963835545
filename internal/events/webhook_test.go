package events_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

const (
	oldToken = "old-notification-token"
	newToken = "new-notification-token"
)

type ingest struct {
	t      *testing.T
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	reg    *prometheus.Registry
	logs   *observer.ObservedLogs
	srv    *httptest.Server
}

// newIngest runs the webhook handler over a real embedded JetStream.
func newIngest(t *testing.T, opts events.WebhookOptions) *ingest {
	t.Helper()
	js, nc := testutil.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := events.EnsureStream(ctx, js, events.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	reg := prometheus.NewRegistry()
	if opts.Tokens == nil && !opts.SkipSignature {
		opts.Tokens = []string{oldToken, newToken}
	}
	h, err := events.NewWebhook(opts, events.NewPublisher(js, events.DefaultStreamName), events.NewMetrics(reg), zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/webhooks/tfe", h)
	mux.Handle("/", h.NotFound())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &ingest{t: t, nc: nc, js: js, stream: stream, reg: reg, logs: logs, srv: srv}
}

func (in *ingest) post(method, path string, body []byte, sig string) (int, string) {
	in.t.Helper()
	req, err := http.NewRequest(method, in.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		in.t.Fatal(err)
	}
	if sig != "" {
		req.Header.Set(events.SignatureHeader, sig)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		in.t.Fatal(err)
	}
	defer res.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(res.Body)
	return res.StatusCode, b.String()
}

func (in *ingest) messages() uint64 {
	in.t.Helper()
	info, err := in.stream.Info(context.Background())
	if err != nil {
		in.t.Fatal(err)
	}
	return info.State.Msgs
}

// counter returns the value of a counter with the given labels, 0 if absent.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func TestWebhookRejects(t *testing.T) {
	in := newIngest(t, events.WebhookOptions{MaxBodyBytes: 4096})
	good := payloadFile(t, "run-applied.json")
	badRunID := bytes.Replace(good, []byte(`"run-8F5JFydVYAmtTjET"`), []byte(`"run-8F5J.>"`), 1)
	for _, tc := range []struct {
		name, method, path string
		body               []byte
		sig                string
		status             int
		result             string
	}{
		{"wrong signature", "POST", "/webhooks/tfe", good, tfesim.Sign("not-our-token", good), 401, events.ResultBadSignature},
		{"signature not hex", "POST", "/webhooks/tfe", good, "zz", 401, events.ResultBadSignature},
		{"signature of another body", "POST", "/webhooks/tfe", good, tfesim.Sign(newToken, []byte("{}")), 401, events.ResultBadSignature},
		{"missing signature", "POST", "/webhooks/tfe", good, "", 401, events.ResultMissingSignature},
		{"malformed JSON", "POST", "/webhooks/tfe", []byte(`{"payload_version":`), tfesim.Sign(newToken, []byte(`{"payload_version":`)), 400, events.ResultMalformed},
		{"wrong shape", "POST", "/webhooks/tfe", []byte(`{"payload_version":1,"notifications":[{"trigger":"run:completed"}]}`),
			tfesim.Sign(newToken, []byte(`{"payload_version":1,"notifications":[{"trigger":"run:completed"}]}`)), 400, events.ResultBadShape},
		{"a run ID outside TFE's format", "POST", "/webhooks/tfe", badRunID, tfesim.Sign(newToken, badRunID), 400, events.ResultBadShape},
		{"body over the limit", "POST", "/webhooks/tfe", bytes.Repeat([]byte(" "), 5000), tfesim.Sign(newToken, bytes.Repeat([]byte(" "), 5000)), 413, events.ResultTooLarge},
		{"wrong method", "GET", "/webhooks/tfe", nil, "", 405, events.ResultMethodNotAllowed},
		{"wrong path", "POST", "/webhooks/tfc", good, tfesim.Sign(newToken, good), 404, events.ResultNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := in.logs.Len()
			status, _ := in.post(tc.method, tc.path, tc.body, tc.sig)
			if status != tc.status {
				t.Errorf("status: got %d, want %d", status, tc.status)
			}
			if n := in.messages(); n != 0 {
				t.Errorf("stream holds %d messages, want 0", n)
			}
			if got := counter(t, in.reg, "orchestrator_webhooks_total", map[string]string{"result": tc.result}); got < 1 {
				t.Errorf("orchestrator_webhooks_total{result=%q} = %v, want counted", tc.result, got)
			}
			entries := in.logs.All()[before:]
			if len(entries) != 1 {
				t.Fatalf("got %d log entries, want 1", len(entries))
			}
			line, _ := json.Marshal(entries[0].ContextMap())
			for _, secret := range []string{oldToken, newToken, tc.sig} {
				if secret != "" && strings.Contains(entries[0].Message+string(line), secret) {
					t.Errorf("the log entry contains a secret: %s %s", entries[0].Message, line)
				}
			}
		})
	}
}

func TestWebhookStoresOnce(t *testing.T) {
	in := newIngest(t, events.WebhookOptions{})
	body := payloadFile(t, "run-applied.json")
	answers := []string{`{"duplicates":0,"ignored":0,"stored":1}` + "\n", `{"duplicates":1,"ignored":0,"stored":0}` + "\n"}
	for i, token := range []string{oldToken, newToken} { // either token of a rotation verifies
		status, answer := in.post("POST", "/webhooks/tfe", body, tfesim.Sign(token, body))
		if status != http.StatusOK || answer != answers[i] {
			t.Fatalf("delivery %d: got %d %s, want 200 %s", i, status, answer, answers[i])
		}
	}
	if n := in.messages(); n != 1 {
		t.Fatalf("stream holds %d messages after the same delivery twice, want 1", n)
	}
	if got := counter(t, in.reg, "orchestrator_run_events_duplicate_total", nil); got != 1 {
		t.Errorf("duplicates: got %v, want 1", got)
	}
	if got := counter(t, in.reg, "orchestrator_run_events_total", map[string]string{"trigger": "run:completed", "status": "applied"}); got != 2 {
		t.Errorf("events{run:completed,applied}: got %v, want 2", got)
	}
	msg, err := in.stream.GetLastMsgForSubject(context.Background(), "tfe.run.acme-org.ws-2HRvNs49EWPjDqT1.applied")
	if err != nil {
		t.Fatal(err)
	}
	var ev events.RunEvent
	if err := json.Unmarshal(msg.Data, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.RunID != "run-8F5JFydVYAmtTjET" || ev.WorkspaceName != "network" || ev.Status != "applied" || ev.ReceivedAt.IsZero() {
		t.Errorf("stored event: %+v", ev)
	}
}

func TestWebhookVerificationAndIgnored(t *testing.T) {
	in := newIngest(t, events.WebhookOptions{})
	for _, file := range []string{"verification.json", "workspace-v2.json", "assessment-v2.json"} {
		body := payloadFile(t, file)
		if status, answer := in.post("POST", "/webhooks/tfe", body, tfesim.Sign(oldToken, body)); status != http.StatusOK {
			t.Errorf("%s: got %d %s, want 200", file, status, answer)
		}
	}
	if n := in.messages(); n != 0 {
		t.Errorf("stream holds %d messages, want 0", n)
	}
	if got := counter(t, in.reg, "orchestrator_webhooks_total", map[string]string{"result": events.ResultVerification}); got != 1 {
		t.Errorf("verification: got %v, want 1", got)
	}
	if got := counter(t, in.reg, "orchestrator_notifications_ignored_total", nil); got != 2 {
		t.Errorf("ignored: got %v, want 2", got)
	}
}

func TestWebhookUnavailable(t *testing.T) {
	in := newIngest(t, events.WebhookOptions{})
	in.nc.Close()
	body := payloadFile(t, "run-applied.json")
	if status, _ := in.post("POST", "/webhooks/tfe", body, tfesim.Sign(oldToken, body)); status != http.StatusServiceUnavailable {
		t.Errorf("with NATS closed: got %d, want 503", status)
	}
	if got := counter(t, in.reg, "orchestrator_webhooks_total", map[string]string{"result": events.ResultUnavailable}); got != 1 {
		t.Errorf("unavailable: got %v, want 1", got)
	}
}

func TestWebhookSkipSignature(t *testing.T) {
	in := newIngest(t, events.WebhookOptions{SkipSignature: true})
	body := payloadFile(t, "run-canceled.json")
	if status, answer := in.post("POST", "/webhooks/tfe", body, ""); status != http.StatusOK {
		t.Errorf("unsigned with signatures skipped: got %d %s, want 200", status, answer)
	}
	if _, err := events.NewWebhook(events.WebhookOptions{}, nil, nil, zap.NewNop()); err == nil {
		t.Error("a webhook with no token and signatures not skipped was built")
	}
}

// Run statuses a signed sender makes up are counted under one label value,
// so input cannot grow the number of series.
func TestWebhookBoundsStatusLabels(t *testing.T) {
	in := newIngest(t, events.WebhookOptions{})
	for i := range 50 {
		body := valid(t, func(m map[string]any) { notif(m)["run_status"] = fmt.Sprintf("made_up_%d", i) })
		if status, answer := in.post("POST", "/webhooks/tfe", body, tfesim.Sign(newToken, body)); status != http.StatusOK {
			t.Fatalf("event %d: got %d %s, want 200", i, status, answer)
		}
	}
	body := payloadFile(t, "run-applied.json")
	if status, _ := in.post("POST", "/webhooks/tfe", body, tfesim.Sign(newToken, body)); status != http.StatusOK {
		t.Fatalf("a known status: got %d, want 200", status)
	}
	families, err := in.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "orchestrator_run_events_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			var key []string
			for _, l := range m.GetLabel() {
				key = append(key, l.GetName()+"="+l.GetValue())
			}
			series[strings.Join(key, ",")] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{"status=other,trigger=run:completed": 50, "status=applied,trigger=run:completed": 1}
	if !maps.Equal(series, want) {
		t.Errorf("orchestrator_run_events_total series: got %v, want %v", series, want)
	}
}
