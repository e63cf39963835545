package app_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
	"github.com/tfe-orchestrator/orchestrator/internal/app"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// What the daemon's HTTP server does for whoever reaches its port:
// organization-bound webhook tokens, idle connections closed, the
// browser's icon answered without a word in the log.

// postAs posts body to the webhook signed with token.
func postAs(t *testing.T, d *daemon, token string, body []byte) int {
	t.Helper()
	req, _ := http.NewRequest("POST", d.url("/webhooks/tfe"), bytes.NewReader(body))
	req.Header.Set(events.SignatureHeader, tfesim.Sign(token, body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// orgPayload is runPayload in another organization.
func orgPayload(org, runID string) []byte {
	return bytes.Replace(runPayload(runID, "applied", time.Now().UTC()), []byte(`"organization_name":"acme"`),
		[]byte(`"organization_name":"`+org+`"`), 1)
}

// acme's notification token signs acme's events, not beta's: beta never
// pointed a notification at the daemon, and acme's token must not start a
// cascade there. The refusal is counted; a token not bound to an
// organization is warned about at start.
func TestWebhookOrgTokenRefusesAnotherOrganization(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	d := startLogged(t, app.Config{Webhook: events.WebhookOptions{Tokens: []string{}},
		WebhookOrgTokens: []string{"acme=acme-secret", "beta,gamma=beta-secret"}}, zap.New(core))
	s := stream(t, connect(t, d))
	if code := postAs(t, d, "acme-secret", orgPayload("acme", "run-0000000000000001")); code != http.StatusOK {
		t.Fatalf("acme's token, an acme event: got %d, want 200", code)
	}
	if code := postAs(t, d, "acme-secret", orgPayload("beta", "run-0000000000000002")); code != http.StatusUnauthorized {
		t.Errorf("acme's token, a beta event: got %d, want 401", code)
	}
	if code := postAs(t, d, "beta-secret", orgPayload("gamma", "run-0000000000000003")); code != http.StatusOK {
		t.Errorf("beta and gamma's token, a gamma event: got %d, want 200", code)
	}
	if n := count(t, s); n != 2 {
		t.Errorf("the stream holds %d events, want 2 (acme's and gamma's)", n)
	}
	if _, body := get(t, d.url("/metrics")); !strings.Contains(body, `orchestrator_webhooks_total{result="wrong_organization"} 1`) {
		t.Errorf("/metrics does not count the refused event as wrong_organization")
	}
	if n := logs.FilterMessageSnippet("--webhook-org-token").Len(); n != 0 {
		t.Errorf("%d warnings about unbound tokens with every token bound, want none", n)
	}
	for _, e := range logs.All() {
		if line := fmt.Sprint(e.Message, e.ContextMap()); strings.Contains(line, "secret") {
			t.Errorf("a token reached the log: %s", line)
		}
	}

	core, logs = observer.New(zapcore.InfoLevel)
	startLogged(t, app.Config{}, zap.New(core)) // --webhook-token only
	if n := logs.FilterMessageSnippet("--webhook-org-token").FilterLevelExact(zapcore.WarnLevel).Len(); n != 1 {
		t.Errorf("%d warnings at start about a token bound to no organization, want 1", n)
	}
}

// A keep-alive connection left idle is closed after --http-idle-timeout,
// not kept for whoever opened it.
func TestIdleConnectionsAreClosed(t *testing.T) {
	const idle = 300 * time.Millisecond
	d := start(t, app.Config{HTTPIdleTimeout: idle})
	conn, err := net.Dial("tcp", d.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET /healthz HTTP/1.1\r\nHost: orchestrator\r\n\r\n")
	r := bufio.NewReader(conn)
	res, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.Close {
		t.Fatal("the server closed the connection at once; want it kept alive until idle")
	}
	answered := time.Now()
	// The read ends when the server closes the connection: the condition,
	// with a deadline far above the timeout for a loaded machine.
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, err := r.Read(make([]byte, 1))
	if err != io.EOF {
		t.Fatalf("an idle connection after %s: read %d bytes, %v; want it closed by the server (EOF)", time.Since(answered).Round(time.Millisecond), n, err)
	}
	if gone := time.Since(answered); gone < idle-50*time.Millisecond {
		t.Errorf("the connection was closed %s after its answer, before the idle timeout of %s", gone, idle)
	}
}

// A browser asks for /favicon.ico: it gets the icon, and neither the log
// nor the webhook's metrics hear of it.
func TestFaviconIsServedQuietly(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	d := startLogged(t, app.Config{}, zap.New(core))
	res, err := http.Get(d.url("/favicon.ico"))
	if err != nil {
		t.Fatal(err)
	}
	icon, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "image/") {
		t.Fatalf("/favicon.ico: got %d %q, want 200 and an image", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if !bytes.HasPrefix(icon, []byte{0, 0, 1, 0}) {
		t.Errorf("/favicon.ico is not an ICO file: % x", icon[:min(len(icon), 8)])
	}
	for _, e := range logs.All() {
		if line := fmt.Sprint(e.Message, e.ContextMap()); strings.Contains(line, "favicon") || strings.Contains(e.Message, "rejected") {
			t.Errorf("the icon's request was logged: %s", line)
		}
	}
	if _, body := get(t, d.url("/metrics")); strings.Contains(body, `orchestrator_webhooks_total{result="not_found"}`) {
		t.Errorf("the icon's request was counted as a webhook to an unknown path")
	}
}

func TestEdgeConfigErrors(t *testing.T) {
	tok := events.WebhookOptions{Tokens: []string{"t"}}
	for _, tc := range []struct {
		name string
		cfg  app.Config
		want string
	}{
		{"org token without organizations", app.Config{WebhookOrgTokens: []string{"SECRET"}}, "--webhook-org-token (the first given)"},
		{"org token with a bad organization", app.Config{WebhookOrgTokens: []string{"acme=a", "ac me=SECRET"}}, "--webhook-org-token (the second given)"},
		{"org token with skipped signatures", app.Config{WebhookOrgTokens: []string{"acme=SECRET"}, Webhook: events.WebhookOptions{SkipSignature: true}},
			"--insecure-skip-signature"},
		{"negative idle timeout", app.Config{Webhook: tok, HTTPIdleTimeout: -time.Second}, "--http-idle-timeout"},
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
	if _, err := app.New(app.Config{WebhookOrgTokens: []string{"acme=SECRET"}}, zap.NewNop()); err != nil {
		t.Errorf("a daemon with only a token bound to acme: %v", err)
	}
}

// A cascade ID, workspace or organization that cannot be one answers 400
// on the operator API, a well-formed unknown one 404: never 503, as if the
// engine were in trouble.
func TestOperatorAPIRefusesMalformedNames(t *testing.T) {
	_, simURL, _ := startSim(t, tfesim.Options{})
	d := start(t, app.Config{TFE: app.TFEConfig{Address: simURL, Token: "sim-token"}, DisableWatchdog: true,
		API: app.APIConfig{ReadTokens: []string{"viewer:" + readSecret}, OperateTokens: []string{"alice:" + operateSecret}}})
	long := "c-run-" + strings.Repeat("a", 200)
	for _, tc := range []struct {
		method, path, token, body string
		want                      int
	}{
		{"GET", "/api/v1/cascades/c-*", readSecret, "", 400},
		{"GET", "/api/v1/cascades/c-%3E", readSecret, "", 400},
		{"GET", "/api/v1/cascades/c-run-a.b", readSecret, "", 400},
		{"GET", "/api/v1/cascades/c-run%20a", readSecret, "", 400},
		{"GET", "/api/v1/cascades/" + long, readSecret, "", 400},
		{"GET", "/api/v1/cascades/run-8F5JFydVYAmtTjET", readSecret, "", 400},
		{"GET", "/api/v1/cascades/c-*/watch", readSecret, "", 400},
		{"POST", "/api/v1/cascades/c-*/cancel", operateSecret, `{"why":"x"}`, 400},
		{"POST", "/api/v1/cascades/c->/retry", operateSecret, `{"why":"x","workspace":"a"}`, 400},
		{"POST", "/api/v1/cascades/c-a.*/approve", operateSecret, `{"why":"x"}`, 400},
		{"POST", "/api/v1/pause", operateSecret, `{"why":"x","organization":"ac*me"}`, 400},
		{"POST", "/api/v1/resume", operateSecret, `{"why":"x","organization":"acme.>"}`, 400},
		{"GET", "/api/v1/why/a.*", readSecret, "", 400},
		{"GET", "/api/v1/why/network?organization=acme.*", readSecret, "", 400},
		{"GET", "/api/v1/cascades?workspace=a%20b", readSecret, "", 400},
		{"GET", "/api/v1/cascades/c-run-8F5JFydVYAmtTjET", readSecret, "", 404},
		{"GET", "/api/v1/cascades/c-run-8F5JFydVYAmtTjET/watch", readSecret, "", 404},
		{"POST", "/api/v1/cascades/c-run-8F5JFydVYAmtTjET/cancel", operateSecret, `{"why":"x"}`, 404},
		{"GET", "/api/v1/why/network?organization=acme", readSecret, "", 200},
	} {
		req, _ := http.NewRequest(tc.method, d.url(tc.path), strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+tc.token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.want {
			t.Errorf("%s %.80s: got %d %s, want %d", tc.method, tc.path, res.StatusCode, b, tc.want)
		}
		if len(b) > 1024 {
			t.Errorf("%s %.80s: an answer of %d bytes repeats what was sent", tc.method, tc.path, len(b))
		}
	}
}

// Requests without a valid token, a flood of them with long paths, leave
// a bounded log: a burst, then about a line a second, each of bounded size.
func TestOperatorAPIRefusalLogIsBounded(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	d := startLogged(t, app.Config{API: app.APIConfig{ReadTokens: []string{"viewer:" + readSecret}}}, zap.New(core))
	path := "/api/v1/cascades/c-run-" + strings.Repeat("x", 60<<10)
	began := time.Now()
	const flood = 200
	for range flood {
		req, _ := http.NewRequest("GET", d.url(path), nil)
		req.Header.Set("Authorization", "Bearer not-a-token-at-all-0123456789")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("got %d, want 401", res.StatusCode)
		}
	}
	took := time.Since(began)
	refused := logs.FilterMessage("API request refused: no valid token").All()
	// The burst of 10, and one a second after it; the count lines with them.
	if most := 10 + int(took/time.Second) + 1; len(refused) > most {
		t.Errorf("%d refused requests in %s wrote %d lines, want at most %d", flood, took.Round(time.Millisecond), len(refused), most)
	}
	for _, e := range refused {
		if p, _ := e.ContextMap()["path"].(string); len(p) > 160 {
			t.Errorf("a logged path of %d bytes", len(p))
		}
	}
	if _, body := get(t, d.url("/metrics")); !strings.Contains(body, fmt.Sprintf(`orchestrator_api_requests_total{code="401",route="/api/v1/cascades/{id}"} %d`, flood)) {
		t.Errorf("/metrics does not count the %d refused requests", flood)
	}
}

// metric reads one series' value from /metrics, 0 when it is absent.
func metric(t *testing.T, d *daemon, series string) float64 {
	t.Helper()
	_, body := get(t, d.url("/metrics"))
	for line := range strings.Lines(body) {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return v
		}
	}
	return 0
}

// A flood of signed "applied" events about runs TFE does not have (forged
// with a leaked token, say) is refused event by event, and raises one
// alert: the alert is keyed by organization, not by the run, so the
// de-duplication window holds the rest back.
func TestUnknownRunFloodRaisesOneAlert(t *testing.T) {
	e := newAlertEnv(t, tfesim.Options{}, app.Config{DisableWatchdog: true})
	e.load([]tfesim.WorkspaceSpec{auto("network")})
	const flood = 20
	for i := range flood {
		body := runPayload(fmt.Sprintf("run-%016d", 1000+i), "applied", time.Now().UTC())
		if code := signedPost(t, e.d.url("/webhooks/tfe"), body); code != http.StatusOK {
			t.Fatalf("forged event %d: got %d, want 200 (it is signed)", i, code)
		}
	}
	raised := `orchestrator_alerts_raised_total{kind="event_rejected",severity="warning"}`
	deduplicated := `orchestrator_alerts_total{result="deduplicated",sink="all"}`
	waitFor(t, "every forged event to be refused and its alert raised or held back", func() bool {
		return metric(t, e.d, `orchestrator_run_events_handled_total{result="rejected"}`) == flood &&
			metric(t, e.d, raised)+metric(t, e.d, deduplicated) >= flood
	})
	if n := metric(t, e.d, raised); n != 1 {
		t.Errorf("%d forged events about unknown runs raised %v event_rejected alerts, want 1", flood, n)
	}
	e.expect(wantAlert{Kind: alerts.KindEventRejected, Severity: alerts.SeverityWarning, Organization: "acme", Message: "read run run-"})
}
