package events_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
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
	if opts.Tokens == nil && opts.OrgTokens == nil && !opts.SkipSignature {
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
	in := newIngest(t, events.WebhookOptions{MaxBodyBytes: 4096, RejectLogBurst: 100})
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

// gauge returns the value of an unlabelled gauge.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return 0
}

// heapInUse is the live heap after a collection.
func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// slowPost opens a connection, sends the head of a POST of declared
// length and part of its body, and leaves it open. Its answer, if any, is
// delivered on the channel, which is closed when the connection ends.
func slowPost(t *testing.T, addr string, declared int, part []byte) (net.Conn, chan *http.Response) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /webhooks/tfe HTTP/1.1\r\nHost: orchestrator\r\nContent-Length: %d\r\n\r\n", declared)
	answers := make(chan *http.Response, 1)
	go func() {
		_, _ = conn.Write(part) // a refused request's connection may be closed under it
	}()
	go func() {
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err == nil {
			res.Body.Close()
			answers <- res
		}
		close(answers)
	}()
	return conn, answers
}

// Unsigned bodies held open by slow senders hold no more memory than the
// cap: requests beyond it are answered 503 at once, without being read,
// and a signed webhook gets through as soon as the senders are gone.
func TestWebhookBoundsUnverifiedBodies(t *testing.T) {
	const (
		maxBody = 1 << 20
		maxHeld = 4 << 20 // four bodies of the largest size
		senders = 40
	)
	in := newIngest(t, events.WebhookOptions{MaxBodyBytes: maxBody, MaxPendingBytes: maxHeld, ReadTimeout: time.Minute})
	addr := strings.TrimPrefix(in.srv.URL, "http://")
	part := bytes.Repeat([]byte("x"), 3*maxBody/4)

	before := heapInUse()
	answers := make([]chan *http.Response, senders)
	conns := make([]net.Conn, senders)
	for i := range answers {
		conns[i], answers[i] = slowPost(t, addr, maxBody, part)
	}
	var refused []*http.Response
	held := map[int]bool{}
	for i := range answers {
		held[i] = true
	}
	testutil.WaitFor(t, "every sender beyond the cap to be answered", 20*time.Second, func() bool {
		for i := range held {
			select {
			case res, ok := <-answers[i]:
				if ok {
					refused = append(refused, res)
				}
				delete(held, i)
			default:
			}
		}
		return len(refused) == senders-maxHeld/maxBody
	})
	for _, res := range refused {
		if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
			t.Fatalf("a sender beyond the cap: got %d, Retry-After %q; want 503 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
		}
	}
	if got := gauge(t, in.reg, "orchestrator_webhook_unverified_bytes"); got != maxHeld {
		t.Errorf("orchestrator_webhook_unverified_bytes: got %v, want %d", got, maxHeld)
	}
	// Without the cap, forty senders would hold 40 × 768 KiB = 30 MiB.
	if grown := heapInUse() - before; grown > maxHeld+4<<20 {
		t.Errorf("the heap grew by %d MiB with %d slow senders, want at most the cap (%d MiB) and some slack", grown>>20, senders, maxHeld>>20)
	}
	if got := counter(t, in.reg, "orchestrator_webhooks_total", map[string]string{"result": events.ResultBusy}); got != float64(len(refused)) {
		t.Errorf("orchestrator_webhooks_total{result=busy}: got %v, want %d", got, len(refused))
	}

	// While the slow senders hold the capacity, TFE's webhook waits too.
	body := payloadFile(t, "run-applied.json")
	if status, _ := in.post("POST", "/webhooks/tfe", body, tfesim.Sign(newToken, body)); status != http.StatusServiceUnavailable {
		t.Errorf("a signed webhook while full: got %d, want 503", status)
	}
	for i := range held {
		conns[i].Close()
	}
	testutil.WaitFor(t, "the reservations to be given back", 10*time.Second, func() bool {
		return gauge(t, in.reg, "orchestrator_webhook_unverified_bytes") == 0
	})
	if status, answer := in.post("POST", "/webhooks/tfe", body, tfesim.Sign(newToken, body)); status != http.StatusOK {
		t.Errorf("a signed webhook once capacity freed: got %d %s, want 200", status, answer)
	}
	if n := in.messages(); n != 1 {
		t.Errorf("stream holds %d messages, want 1", n)
	}
}

// A sender that stops sending is cut off after the read timeout and gives
// its reservation back; a body declared over the limit is refused unread.
func TestWebhookSlowAndOversizedSenders(t *testing.T) {
	in := newIngest(t, events.WebhookOptions{ReadTimeout: 200 * time.Millisecond})
	addr := strings.TrimPrefix(in.srv.URL, "http://")
	answer := func(ch chan *http.Response) *http.Response {
		t.Helper()
		select {
		case res := <-ch:
			if res == nil {
				t.Fatal("the connection closed without an answer")
			}
			return res
		case <-time.After(10 * time.Second):
			t.Fatal("no answer in 10s")
		}
		return nil
	}
	_, slow := slowPost(t, addr, 1000, []byte(`{"payload_version":`))
	if res := answer(slow); res.StatusCode != http.StatusRequestTimeout {
		t.Errorf("a stalled body: got %d, want 408", res.StatusCode)
	}
	testutil.WaitFor(t, "the stalled request's reservation to be given back", 5*time.Second, func() bool {
		return gauge(t, in.reg, "orchestrator_webhook_unverified_bytes") == 0
	})
	if got := counter(t, in.reg, "orchestrator_webhooks_total", map[string]string{"result": events.ResultReadTimeout}); got != 1 {
		t.Errorf("orchestrator_webhooks_total{result=read_timeout}: got %v, want 1", got)
	}
	_, huge := slowPost(t, addr, 1<<30, nil)
	if res := answer(huge); res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a body declared at 1 GiB: got %d, want 413", res.StatusCode)
	}
}

// A body sent without Content-Length (chunked) is read up to the limit.
func TestWebhookChunkedBody(t *testing.T) {
	in := newIngest(t, events.WebhookOptions{MaxBodyBytes: 4096})
	post := func(body []byte) int {
		t.Helper()
		req, err := http.NewRequest("POST", in.srv.URL+"/webhooks/tfe", io.MultiReader(bytes.NewReader(body))) // no length known
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(events.SignatureHeader, tfesim.Sign(newToken, body))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if got := post(payloadFile(t, "run-applied.json")); got != http.StatusOK {
		t.Errorf("a chunked webhook: got %d, want 200", got)
	}
	if got := post(bytes.Repeat([]byte(" "), 4097)); got != http.StatusRequestEntityTooLarge {
		t.Errorf("a chunked body over the limit: got %d, want 413", got)
	}
	if got := post(bytes.Repeat([]byte(" "), 4096)); got != http.StatusBadRequest {
		t.Errorf("a chunked body at the limit: got %d, want 400 (read, then not JSON)", got)
	}
}

// A token bound to organizations signs their events only: an event of
// another organization signed with it is refused (401), counted, and
// stores nothing; a token given for several organizations signs each.
func TestWebhookTokenBoundToOrganizations(t *testing.T) {
	const acmeToken, sharedToken = "acme-token", "shared=token,with,commas"
	in := newIngest(t, events.WebhookOptions{OrgTokens: []events.OrgToken{
		{Organizations: []string{"acme-org"}, Token: acmeToken},
		{Organizations: []string{"beta"}, Token: sharedToken},
		{Organizations: []string{"gamma"}, Token: sharedToken}, // the same token again: it signs both
	}})
	event := func(org, runID string) []byte {
		return valid(t, func(m map[string]any) { m["organization_name"], m["run_id"] = org, runID })
	}
	for _, tc := range []struct {
		name, token string
		body        []byte
		status      int
	}{
		{"acme's token, an acme event", acmeToken, event("acme-org", "run-0000000000000001"), 200},
		{"acme's token, a beta event", acmeToken, event("beta", "run-0000000000000002"), 401},
		{"the shared token, a beta event", sharedToken, event("beta", "run-0000000000000003"), 200},
		{"the shared token, a gamma event", sharedToken, event("gamma", "run-0000000000000004"), 200},
		{"the shared token, an acme event", sharedToken, event("acme-org", "run-0000000000000005"), 401},
		{"acme's token, a verification", acmeToken, payloadFile(t, "verification.json"), 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, answer := in.post("POST", "/webhooks/tfe", tc.body, tfesim.Sign(tc.token, tc.body)); status != tc.status {
				t.Errorf("got %d %s, want %d", status, answer, tc.status)
			}
		})
	}
	if n := in.messages(); n != 3 {
		t.Errorf("stream holds %d messages, want the 3 events signed for their organization", n)
	}
	if got := counter(t, in.reg, "orchestrator_webhooks_total", map[string]string{"result": events.ResultWrongOrg}); got != 2 {
		t.Errorf("orchestrator_webhooks_total{result=%q} = %v, want 2", events.ResultWrongOrg, got)
	}
	for _, e := range in.logs.All() {
		line, _ := json.Marshal(e.ContextMap())
		if strings.Contains(string(line), acmeToken) || strings.Contains(string(line), "with,commas") {
			t.Errorf("a token reached the log: %s %s", e.Message, line)
		}
	}
}

func TestParseOrgToken(t *testing.T) {
	for _, tc := range []struct {
		in    string
		orgs  []string
		token string
	}{
		{"acme=secret", []string{"acme"}, "secret"},
		{"acme,beta=a,b=c==", []string{"acme", "beta"}, "a,b=c=="}, // the token is all after the first '='
		{" acme , beta,acme = tok en ", []string{"acme", "beta"}, "tok en"},
	} {
		got, err := events.ParseOrgToken(tc.in)
		if err != nil || !slices.Equal(got.Organizations, tc.orgs) || got.Token != tc.token {
			t.Errorf("ParseOrgToken(%q): got %q %q %v, want %q %q", tc.in, got.Organizations, got.Token, err, tc.orgs, tc.token)
		}
	}
	for _, in := range []string{"no-organization-secret", "=secret", "acme,=secret", "ac.me=secret", "acme beta=secret", "acme=", "acme=  "} {
		_, err := events.ParseOrgToken(in)
		if err == nil {
			t.Errorf("ParseOrgToken(%q) accepted", in)
		} else if strings.Contains(err.Error(), "secret") && !strings.Contains(err.Error(), "a secret") {
			t.Errorf("ParseOrgToken(%q): the error shows the value: %v", in, err)
		}
	}
	if _, err := events.NewWebhook(events.WebhookOptions{OrgTokens: []events.OrgToken{{Token: "t"}}}, nil, nil, zap.NewNop()); err == nil {
		t.Error("a token bound to no organization was accepted as bound")
	}
}

// A flood of unsigned requests and unknown paths, each with a 60 KB path,
// writes the burst of log lines, each of bounded size, and then one line
// with the count of those held back when the bucket has refilled; the
// metrics count every request.
func TestWebhookRejectionLogIsBounded(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	in := newIngest(t, events.WebhookOptions{Now: clock, RejectLogBurst: 5, RejectLogEvery: time.Minute})
	long := "/" + strings.Repeat("\xe2\x98\x83a", 15<<10) // 60 KB of snowmen and letters
	body := payloadFile(t, "run-applied.json")
	const flood = 50
	for i := range flood {
		path := long
		if i%2 == 0 {
			path = "/webhooks/tfe"
		}
		if status, _ := in.post("POST", path, body, ""); status != 401 && status != 404 {
			t.Fatalf("request %d: got %d, want 401 or 404", i, status)
		}
	}
	entries := in.logs.All()
	if len(entries) != 5 {
		t.Fatalf("%d refused requests at one instant wrote %d log lines, want the burst of 5", flood, len(entries))
	}
	size := 0
	for _, e := range entries {
		line, _ := json.Marshal(e.ContextMap())
		size += len(e.Message) + len(line)
		path, _ := e.ContextMap()["path"].(string)
		if len(path) > events.MaxLoggedPath+32 || strings.ContainsFunc(path, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
			t.Errorf("a logged path of %d bytes, or not printable ASCII: %.200q", len(path), path)
		}
	}
	if size > 5*1024 {
		t.Errorf("5 log lines of %d bytes in all, want under 5 KiB", size)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	if status, _ := in.post("GET", long, nil, ""); status != 404 {
		t.Fatalf("after a minute: got %d, want 404", status)
	}
	entries = in.logs.All()[5:]
	if len(entries) != 2 || entries[0].ContextMap()["suppressed"] != int64(flood-5) || entries[1].Message != "webhook rejected" {
		for _, e := range entries {
			t.Logf("%s %v", e.Message, e.ContextMap())
		}
		t.Fatalf("after a minute: %d lines, want the count of the %d held back, then the line", len(entries), flood-5)
	}
	refused := counter(t, in.reg, "orchestrator_webhooks_total", map[string]string{"result": events.ResultMissingSignature}) +
		counter(t, in.reg, "orchestrator_webhooks_total", map[string]string{"result": events.ResultNotFound})
	if refused != flood+1 {
		t.Errorf("the metrics counted %v refused requests, want %d", refused, flood+1)
	}
}
