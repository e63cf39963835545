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
