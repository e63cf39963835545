package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
)

// A timing flag given in the environment wins over the scenario's timing;
// the phases it does not set keep the scenario's.
func TestTfesimTimingPrecedence(t *testing.T) {
	dir := t.TempDir()
	scenario := filepath.Join(dir, "scenario.yaml")
	if err := os.WriteFile(scenario, []byte("timing: {queue: 0s, plan: 2s, apply: 3s}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"tfesim", "--listen", "127.0.0.1:0", "--scenario", scenario},
			env(map[string]string{"TFESIM_TOKEN": "sim-token", "TFESIM_APPLY_DURATION": "7s", "TFESIM_STATE_PROCESSING_DURATION": "2500ms"}), &stdout, &stderr)
	}()
	addr := waitForListening(t, &stdout)

	req, _ := http.NewRequestWithContext(ctx, "GET", addr+"/_sim/timing", nil)
	req.Header.Set("Authorization", "Bearer sim-token")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var got map[string]int64
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got["queue_ms"] != 0 || got["plan_ms"] != 2000 || got["apply_ms"] != 7000 || got["state_processing_ms"] != 2500 {
		t.Errorf("timing: got %v, want queue 0 and plan 2s from the scenario, apply 7s from $TFESIM_APPLY_DURATION, state processing 2.5s from $TFESIM_STATE_PROCESSING_DURATION", got)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("tfesim did not stop")
	}
}

func TestTfesimHelpDocumentsTiming(t *testing.T) {
	var out syncBuffer
	if code := run(context.Background(), []string{"tfesim", "--help"}, env(nil), &out, &out); code != exitOK {
		t.Fatalf("exit code: got %d, want %d", code, exitOK)
	}
	for _, want := range []string{"--queue-duration (default 1s) [$TFESIM_QUEUE_DURATION]",
		"--plan-duration (default 4s) [$TFESIM_PLAN_DURATION]", "--apply-duration (default 4s) [$TFESIM_APPLY_DURATION]"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
}

// The simulator's server bounds every phase of a connection, as a
// production server does.
func TestSimServerTimeouts(t *testing.T) {
	srv := newSimServer(http.NotFoundHandler())
	for name, d := range map[string]time.Duration{
		"ReadHeaderTimeout": srv.ReadHeaderTimeout, "ReadTimeout": srv.ReadTimeout,
		"WriteTimeout": srv.WriteTimeout, "IdleTimeout": srv.IdleTimeout,
	} {
		if d <= 0 {
			t.Errorf("%s is not set", name)
		}
	}
	if srv.WriteTimeout <= 30*time.Second {
		t.Errorf("WriteTimeout %s: want more than the 30s a notification verification may take", srv.WriteTimeout)
	}
}

func waitForListening(t *testing.T, stdout *syncBuffer) string {
	t.Helper()
	var addr string
	testutil.WaitFor(t, "tfesim to print its address", 10*time.Second, func() bool {
		line, ok := strings.CutPrefix(strings.TrimSpace(stdout.String()), "tfesim listening on ")
		addr = line
		return ok
	})
	return addr
}
