package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestNotificationsInstall(t *testing.T) {
	srv := simFromScenario(t, "testdata/graph-scenario.yaml") // seven workspaces, none with notifications
	receiver := newHookReceiver(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("hook-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"TFE_ADDRESS": srv.URL, "TFE_TOKEN": "sim-token"}
	args := []string{"notifications", "install", "--organization", "acme", "--url", receiver.URL, "--token-file", tokenFile}
	configs := func() int {
		client := srv.Client
		list, err := client.Workspaces.List(context.Background(), "acme", nil)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, w := range list.Items {
			ncs, err := client.NotificationConfigurations.List(context.Background(), w.ID, nil)
			if err != nil {
				t.Fatal(err)
			}
			n += len(ncs.Items)
		}
		return n
	}

	code, out, stderr := runCmd(t, env, append(args, "--dry-run")...)
	if code != exitOK || !strings.Contains(out, "dry run: 7 created, 0 updated, 0 unchanged") {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, stderr)
	}
	if n := configs(); n != 0 {
		t.Fatalf("the dry run wrote %d configurations", n)
	}
	code, out, stderr = runCmd(t, env, args...)
	if code != exitOK || !strings.Contains(out, "7 created, 0 updated, 0 unchanged") {
		t.Fatalf("first run: exit %d\n%s%s", code, out, stderr)
	}
	if n := configs(); n != 7 {
		t.Errorf("after the first run: %d configurations, want 7", n)
	}
	if got := receiver.verifications(); got != 7 {
		t.Errorf("verification payloads received: %d, want 7 (TFE verifies each on create)", got)
	}
	code, out, _ = runCmd(t, env, args...)
	if code != exitOK || !strings.Contains(out, "0 created, 0 updated, 7 unchanged") {
		t.Errorf("second run: exit %d\n%s", code, out)
	}
	if n := configs(); n != 7 {
		t.Errorf("after the second run: %d configurations, want 7", n)
	}
	code, _, stderr = runCmd(t, env, "notifications", "install", "--organization", "acme", "--url", "ftp://x", "--token-file", tokenFile)
	if code != exitUsage || !strings.Contains(stderr, "--url") {
		t.Errorf("bad URL: exit %d %s", code, stderr)
	}
}

type hookReceiver struct {
	URL   string
	count func() int
}

func (h *hookReceiver) verifications() int { return h.count() }

// newHookReceiver answers 200 to every webhook and counts verification
// payloads.
func newHookReceiver(t *testing.T) *hookReceiver {
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), `"trigger":"verification"`) {
			mu.Lock()
			n++
			mu.Unlock()
		}
	}))
	t.Cleanup(srv.Close)
	return &hookReceiver{URL: srv.URL, count: func() int { mu.Lock(); defer mu.Unlock(); return n }}
}
