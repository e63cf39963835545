package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"
)

// syncBuffer is a bytes.Buffer safe to write from a command and read from a test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want int
		out  string // expected in stdout+stderr
	}{
		{"no command", nil, nil, exitUsage, "Commands:"},
		{"help", []string{"--help"}, nil, exitOK, "tfesim"},
		{"unknown command", []string{"frobnicate"}, nil, exitUsage, `unknown command "frobnicate"`},
		{"version", []string{"version"}, nil, exitOK, "orchestrator dev"},
		{"command help", []string{"tfesim", "--help"}, nil, exitOK, "$TFESIM_TOKEN"},
		{"unknown flag", []string{"tfesim", "--nope"}, nil, exitUsage, "flag provided but not defined"},
		{"stray argument", []string{"version", "extra"}, nil, exitUsage, "unexpected arguments"},
		{"missing token", []string{"tfesim"}, nil, exitUsage, "--token"},
		{"bad log format", []string{"tfesim", "--token", "t", "--log-format", "xml"}, nil, exitUsage, "json or console"},
		{"bad log level from the environment", []string{"version"}, map[string]string{"ORCHESTRATOR_LOG_LEVEL": "loud"}, exitUsage, "log-level"},
		{"bad rate limit from the environment", []string{"tfesim", "--token", "t"}, map[string]string{"TFESIM_RATE_LIMIT": "many"}, exitUsage, "$TFESIM_RATE_LIMIT"},
		{"token and token file", []string{"tfesim", "--token", "t", "--token-file", "f"}, nil, exitUsage, "not both"},
		{"serve without a webhook token", []string{"serve"}, nil, exitUsage, "--insecure-skip-signature"},
		{"serve with a bad duration", []string{"serve", "--webhook-token", "t"}, map[string]string{"ORCHESTRATOR_STREAM_MAX_AGE": "a week"}, exitUsage, "$ORCHESTRATOR_STREAM_MAX_AGE"},
		{"serve with a bad retention", []string{"serve", "--webhook-token", "t", "--stream-retention", "forever"}, nil, exitUsage, "retention"},
		{"unreadable token file", []string{"tfesim", "--token-file", "/does/not/exist"}, nil, exitError, "read --token-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out syncBuffer
			got := run(context.Background(), tc.args, env(tc.env), &out, &out)
			if got != tc.want {
				t.Errorf("exit code: got %d, want %d\n%s", got, tc.want, out.String())
			}
			if !strings.Contains(out.String(), tc.out) {
				t.Errorf("output does not mention %q:\n%s", tc.out, out.String())
			}
		})
	}
}

func TestTfesimServes(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("sim-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"tfesim", "--listen", "127.0.0.1:0", "--scenario", "../../examples/scenario.yaml"},
			env(map[string]string{"TFESIM_TOKEN_FILE": tokenFile}), &stdout, &stderr)
	}()

	var addr string
	deadline := time.Now().Add(10 * time.Second)
	for addr == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no address printed; stderr:\n%s", stderr.String())
		}
		if line, ok := strings.CutPrefix(strings.TrimSpace(stdout.String()), "tfesim listening on "); ok {
			addr = line
		}
		time.Sleep(5 * time.Millisecond)
	}

	client, err := tfe.NewClient(&tfe.Config{Address: addr, Token: "sim-token"})
	if err != nil {
		t.Fatal(err)
	}
	ws, err := client.Workspaces.Read(ctx, "acme", "network")
	if err != nil {
		t.Fatalf("read a scenario workspace: %v", err)
	}
	if !ws.AutoApply {
		t.Error("scenario settings were not applied")
	}
	if strings.Contains(stdout.String()+stderr.String(), "sim-token") {
		t.Error("the token appears in the output")
	}
	bad, err := tfe.NewClient(&tfe.Config{Address: addr, Token: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Workspaces.Read(ctx, "acme", "network"); err == nil {
		t.Error("another token was accepted")
	}

	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit code after the signal: got %d, want 0\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tfesim did not stop")
	}
}
