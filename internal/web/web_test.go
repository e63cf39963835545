package web_test

import (
	"context"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/app"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/web"
)

var wantHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
		"base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	"X-Content-Type-Options": "nosniff",
	"X-Frame-Options":        "DENY",
	"Referrer-Policy":        "no-referrer",
}

func get(t *testing.T, h http.Handler, method, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

// Every answer of the page carries the security headers; the page, its
// script and its stylesheet are served with their types, GET / leads to
// the page, and nothing else answers.
func TestHandlerServesThePageWithItsHeaders(t *testing.T) {
	h := web.Handler(true)
	for _, tc := range []struct {
		method, path string
		code         int
		typ, has     string
	}{
		{"GET", "/ui/", 200, "text/html", `<script src="app.js" defer></script>`},
		{"HEAD", "/ui/", 200, "text/html", ""},
		{"GET", "/ui/app.js", 200, "text/javascript", "EventSource cannot send"},
		{"GET", "/ui/style.css", 200, "text/css", "--running-fill: #c6dbff"},
		{"GET", "/", 302, "", ""},
		{"GET", "/ui/nothing.js", 404, "", ""},
		{"POST", "/ui/", 405, "", ""},
	} {
		res, body := get(t, h, tc.method, tc.path)
		if res.StatusCode != tc.code {
			t.Errorf("%s %s: got %d, want %d", tc.method, tc.path, res.StatusCode, tc.code)
		}
		if tc.typ != "" && !strings.HasPrefix(res.Header.Get("Content-Type"), tc.typ) {
			t.Errorf("%s %s: Content-Type %q, want %s", tc.method, tc.path, res.Header.Get("Content-Type"), tc.typ)
		}
		if !strings.Contains(body, tc.has) {
			t.Errorf("%s %s: the body lacks %q", tc.method, tc.path, tc.has)
		}
		for k, v := range wantHeaders {
			if got := res.Header.Get(k); got != v {
				t.Errorf("%s %s: %s is %q, want %q", tc.method, tc.path, k, got, v)
			}
		}
	}
	if res, _ := get(t, h, "GET", "/"); res.Header.Get("Location") != web.Path {
		t.Errorf("GET / leads to %q, want %s", res.Header.Get("Location"), web.Path)
	}
}

// Without API tokens the page says the API is off, and serves no script.
func TestHandlerWithoutTheAPISaysItIsOff(t *testing.T) {
	h := web.Handler(false)
	for _, path := range []string{"/ui/", "/ui/app.js"} {
		res, body := get(t, h, "GET", path)
		if res.StatusCode != http.StatusNotFound || !strings.Contains(body, "The operator API is off") || !strings.Contains(body, "--api-operate-token") {
			t.Errorf("GET %s: got %d\n%s", path, res.StatusCode, body)
		}
		if res.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s: no Content-Security-Policy", path)
		}
	}
}

// The assets hold to what the Content-Security-Policy and the page's
// guarantee need: no inline script, style or handler, nothing from
// another origin, data put in the page as text only, and the token in
// session storage only.
func TestAssetsKeepToThePolicy(t *testing.T) {
	read := func(name string) string {
		b, err := fs.ReadFile(os.DirFS("assets"), name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	html, js, css := read("index.html"), read("app.js"), read("style.css")
	for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(html, -1) {
		if !strings.Contains(tag, ` src="`) {
			t.Errorf("index.html has an inline script: %s", tag)
		}
	}
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`<script[^>]*>[^<]+</script>`), // inline script
		regexp.MustCompile(`\son[a-z]+\s*=`),              // inline handler
		regexp.MustCompile(`\sstyle\s*=`),                 // inline style
		regexp.MustCompile(`<style`),
		regexp.MustCompile(`(?:src|href)\s*=\s*"(?:[a-z]+:)?//`), // another origin
	} {
		if m := bad.FindString(html); m != "" {
			t.Errorf("index.html has %q", m)
		}
	}
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "localStorage", "EventSource(", "?token", "&token"} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
	if m := regexp.MustCompile(`https?://[^\s'"\x60]+`).FindAllString(js+css, -1); len(m) != 1 || m[0] != "http://www.w3.org/2000/svg" {
		t.Errorf("the assets name other origins: %v (only the SVG namespace is expected)", m)
	}
	if strings.Contains(css, "@import") {
		t.Error("style.css imports another stylesheet")
	}
}

// Mounted by the daemon: without API tokens /ui/ says the API is off; GET
// / leads there.
func TestDaemonWithoutTokensServesThePageOff(t *testing.T) {
	d, err := app.New(app.Config{HTTPListen: "127.0.0.1:0", DataDir: t.TempDir(), NATS: app.NATSConfig{EmbeddedListen: "off"},
		Webhook: events.WebhookOptions{Tokens: []string{webhookToken}}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	}()
	select {
	case <-d.Ready():
	case err := <-done:
		t.Fatalf("daemon stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("daemon not ready in 30s")
	}
	res, err := http.Get("http://" + d.HTTPAddr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.Request.URL.Path != "/ui/" || res.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "The operator API is off") {
		t.Errorf("GET / led to %s: %d\n%s", res.Request.URL.Path, res.StatusCode, body)
	}
}
