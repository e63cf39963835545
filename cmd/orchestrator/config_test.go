package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tfe-orchestrator/orchestrator/internal/app"
	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
)

// parseServe parses serve's flags and environment into the daemon's
// configuration, as `orchestrator serve` does before it starts anything.
func parseServe(t *testing.T, args []string, vars map[string]string) (app.Config, error) {
	t.Helper()
	fs := newFlagSet("serve", io.Discard)
	config := serveFlags(fs)
	if err := fs.parse(args, env(vars)); err != nil {
		return app.Config{}, err
	}
	return config()
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A token is never split inside a value: each repeated flag is one token,
// the environment variable is one token, a file holds one per line with
// comment and blank lines left out; every value is trimmed.
func TestWebhookTokensAreNeverSplit(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"repeated flag, a comma inside", []string{"--webhook-token", "a,b", "--webhook-token", " c "}, nil, []string{"a,b", "c"}},
		{"environment, a comma and a CRLF", nil, map[string]string{"ORCHESTRATOR_WEBHOOK_TOKEN": "x,y\r\n"}, []string{"x,y"}},
		{"file with comments", []string{"--webhook-token-file", writeFile(t, "# rotated 2026-05-01\n\n  new,token\r\n#old\nold-token\n")}, nil, []string{"new,token", "old-token"}},
		{"flag and file", []string{"--webhook-token", "one", "--webhook-token-file", writeFile(t, "two\n")}, nil, []string{"one", "two"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseServe(t, tc.args, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.Webhook.Tokens, tc.want) {
				t.Errorf("tokens: got %q, want %q", cfg.Webhook.Tokens, tc.want)
			}
		})
	}
	if _, err := parseServe(t, []string{"--webhook-token-file", writeFile(t, "# nothing but a comment\n\n")}, nil); err == nil || !strings.Contains(err.Error(), "--webhook-token-file") {
		t.Errorf("a token file with no token: got %v, want an error naming --webhook-token-file", err)
	}
}

// Organization-bound tokens are read like the others, one per value or
// line, commas and '=' inside the token kept.
func TestWebhookOrgTokensAreNeverSplit(t *testing.T) {
	cfg, err := parseServe(t, []string{"--webhook-org-token", "acme,beta=a,b=c==", "--webhook-org-token-file",
		writeFile(t, "# acme's rotation\nacme=new,token\r\n\n")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"acme,beta=a,b=c==", "acme=new,token"}; !slices.Equal(cfg.WebhookOrgTokens, want) {
		t.Errorf("organization-bound tokens: got %q, want %q", cfg.WebhookOrgTokens, want)
	}
}

// Secrets from the environment are trimmed like those from files: a
// trailing CR of a Secret or an env file never becomes part of a URL.
func TestSecretsFromTheEnvironmentAreTrimmed(t *testing.T) {
	cfg, err := parseServe(t, []string{"--webhook-token", "t"}, map[string]string{
		"ORCHESTRATOR_ALERT_SLACK_URL": "https://hooks.example.com/services/T0/B0/secret\r\n",
		"TFE_TOKEN":                    " tfe-secret\t\n",
		"NATS_PASSWORD":                "nats-secret\r",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Alerts.SlackURL != "https://hooks.example.com/services/T0/B0/secret" || cfg.TFE.Token != "tfe-secret" || cfg.NATS.Password != "nats-secret" {
		t.Errorf("got %q, %q, %q: not trimmed", cfg.Alerts.SlackURL, cfg.TFE.Token, cfg.NATS.Password)
	}
	cfg, err = parseServe(t, []string{"--webhook-token", "t", "--tfe-token-file", writeFile(t, "tfe-secret\r\n")}, nil)
	if err != nil || cfg.TFE.Token != "tfe-secret" {
		t.Errorf("a token file ending in CRLF: got %q, %v", cfg.TFE.Token, err)
	}
	if _, err := parseServe(t, []string{"--webhook-token", "t", "--tfe-token-file", writeFile(t, "# my token\ntfe-secret\n")}, nil); err == nil || !strings.Contains(err.Error(), "more than one line") {
		t.Errorf("a one-secret file of two lines: got %v, want refused", err)
	}
}

// Every mistake in the configuration is refused before anything starts:
// exit 2, one message naming the flag, no data directory created, no
// secret in the output.
func TestConfigurationRefusedBeforeStart(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	serve := func(args ...string) []string {
		return append([]string{"serve", "--data-dir", dataDir, "--http-listen", "127.0.0.1:0", "--embedded-nats-listen", "off", "--webhook-token", "t"}, args...)
	}
	scenario := writeFile(t, "organizations: [{name: acme, email: a@b.c, workspaces: [{name: w}, {name: w}]}]\n")
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"state TTL under the ack wait", serve("--state-ttl", "1s"), nil, "--state-ttl (1s) must be longer than --ack-wait (30s)"},
		{"audit kept under an hour", serve("--audit-retention", "30m"), nil, "--audit-retention (30m) must be at least 1h"},
		{"no dispatch in flight", serve("--max-dispatch-in-flight", "0"), nil, "--max-dispatch-in-flight must be greater than 0"},
		{"negative in flight from the environment", serve(), map[string]string{"ORCHESTRATOR_MAX_DISPATCH_IN_FLIGHT": "-3"}, "--max-dispatch-in-flight"},
		{"negative duration", serve("--root-max-age", "-1m"), nil, "--root-max-age must be greater than 0"},
		{"zero ack wait", serve("--ack-wait", "0s"), nil, "--ack-wait must be greater than 0"},
		{"ack wait too short", serve("--ack-wait", "10ms"), nil, "--ack-wait (10ms) must be at least 100ms"},
		{"duplicate window over max age", serve("--stream-max-age", "1h", "--stream-duplicate-window", "2h"), nil, "--stream-duplicate-window (2h) must not be longer than --stream-max-age (1h)"},
		{"too many replicas", serve("--stream-replicas", "7"), nil, "--stream-replicas must be from 1 to 5"},
		{"bad stream name", serve("--stream-name", "run.events"), nil, "--stream-name"},
		{"bad retention", serve("--stream-retention", "forever"), nil, "--stream-retention must be limits, interest or workqueue"},
		{"watchdog scan mode", serve("--watchdog-scan", "everything"), nil, "--watchdog-scan must be admin or workspaces"},
		{"workspaces scan without organizations", serve("--watchdog-scan", "workspaces", "--tfe-token", "x", "--tfe-address", "http://127.0.0.1:1"), nil, "--watchdog-organization"},
		{"lease TTL too short", serve("--watchdog-lease-ttl", "500ms"), nil, "--watchdog-lease-ttl (500ms) must be at least 1s"},
		{"bad organization", serve("--watchdog-organization", "acme corp"), nil, "--watchdog-organization"},
		{"negative rate limit", serve("--tfe-rate-limit", "-1"), nil, "--tfe-rate-limit"},
		{"TFE address", serve("--tfe-address", "tfe.example.com"), nil, "--tfe-address"},
		{"HTTP listen address", serve("--http-listen", "8080"), nil, "--http-listen"},
		{"embedded NATS listen address", serve("--embedded-nats-listen", "localhost:nats"), nil, "--embedded-nats-listen"},
		{"NATS URL", serve("--nats-url", "http://nats:4222"), nil, "--nats-url"},
		{"NATS user without password", serve("--nats-url", "nats://n:4222", "--nats-user", "u"), nil, "--nats-user needs --nats-password"},
		{"two NATS authentications", serve("--nats-url", "nats://n:4222", "--nats-user", "u", "--nats-password", "p", "--nats-token", "tok"), nil, "--nats-user and --nats-token"},
		{"NATS credentials without a NATS URL", serve("--nats-token", "tok"), nil, "--nats-token applies to the NATS of --nats-url"},
		{"NKey file that is not a seed", serve("--nats-url", "nats://n:4222", "--nats-nkey", writeFile(t, "SECRET\n")), nil, "--nats-nkey"},
		{"NKey and user", serve("--nats-url", "nats://n:4222", "--nats-nkey", "f", "--nats-user", "u", "--nats-password", "p"), nil, "--nats-nkey and --nats-user"},
		{"missing NATS creds file", serve("--nats-url", "nats://n:4222", "--nats-creds", "/does/not/exist"), nil, "--nats-creds"},
		{"pending bytes under the body limit", serve("--webhook-max-pending-bytes", "1000"), nil, "--webhook-max-pending-bytes (1000) must be at least --webhook-max-body (1048576)"},
		{"skip signature with a token", serve("--insecure-skip-signature"), nil, "--insecure-skip-signature with --webhook-token"},
		{"alert URL with a secret", serve(), map[string]string{"ORCHESTRATOR_ALERT_SLACK_URL": "hooks.example.com/services/SECRET"}, "--alert-slack-url is not an http:// or https:// URL"},
		{"public URL", serve("--public-url", "orchestrator.example.com"), nil, "--public-url \"orchestrator.example.com\": want an http:// or https:// URL"},
		{"tfesim listen address", []string{"tfesim", "--token", "t", "--listen", "nowhere"}, nil, "--listen"},
		{"tfesim address", []string{"tfesim", "--token", "t", "--address", "ftp://sim"}, nil, "--address"},
		{"tfesim scenario", []string{"tfesim", "--token", "t", "--scenario", scenario}, nil, "--scenario"},
		{"graph organization", []string{"graph", "--organization", "acme/x", "--tfe-token", "t"}, nil, "--organization"},
		{"graph TFE address", []string{"graph", "--organization", "acme", "--tfe-token", "t", "--tfe-address", "localhost"}, nil, "--tfe-address"},
		{"install URL", []string{"notifications", "install", "--organization", "acme", "--url", "https://", "--token-file", "f"}, nil, "--url"},
		{"install token file with two tokens", []string{"notifications", "install", "--organization", "acme", "--url", "https://o.example.com/webhooks/tfe",
			"--token-file", writeFile(t, "new\nold\n"), "--tfe-token", "t"}, nil, "--token-file"},
		{"demo scenario", []string{"demo", "--scenario", filepath.Join(t.TempDir(), "missing.yaml")}, nil, "--scenario"},
		{"demo picture", []string{"demo", "--scenario", "../../examples/demo.yaml", "--picture", "/does/not/exist/cascade.mmd"}, nil, "--picture"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out syncBuffer
			code := run(context.Background(), tc.args, env(tc.env), &out, &out)
			if code != exitUsage {
				t.Errorf("exit code: got %d, want %d\n%s", code, exitUsage, out.String())
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Errorf("output does not say %q:\n%s", tc.want, out.String())
			}
			if lines := strings.Count(strings.TrimSpace(out.String()), "\n"); lines > 0 {
				t.Errorf("want one line, got:\n%s", out.String())
			}
			if strings.Contains(out.String(), "SECRET") {
				t.Errorf("the output shows a secret:\n%s", out.String())
			}
			if _, err := os.Stat(dataDir); err == nil {
				t.Fatalf("the data directory was created")
			}
		})
	}
}

// --run-when chooses when members run; --run-unchanged, deprecated, is
// --run-when always and contradicts any other choice.
func TestRunWhen(t *testing.T) {
	for _, tc := range []struct {
		args []string
		vars map[string]string
		want cascade.RunWhen
		err  string
	}{
		{nil, nil, cascade.RunWhenChanges, ""},
		{[]string{"--run-when", "outputs"}, nil, cascade.RunWhenOutputs, ""},
		{nil, map[string]string{"ORCHESTRATOR_RUN_WHEN": "always"}, cascade.RunWhenAlways, ""},
		{[]string{"--run-unchanged"}, nil, cascade.RunWhenAlways, ""},
		{nil, map[string]string{"ORCHESTRATOR_RUN_UNCHANGED": "true"}, cascade.RunWhenAlways, ""},
		{[]string{"--run-unchanged", "--run-when", "outputs"}, nil, "", "contradicts --run-when outputs"},
		{[]string{"--run-when", "sometimes"}, nil, "", "--run-when must be changes, outputs or always"},
	} {
		cfg, err := parseServe(t, append([]string{"--insecure-skip-signature"}, tc.args...), tc.vars)
		if err == nil {
			err = cfg.Validate()
		}
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%v %v: got %v, want an error saying %q", tc.args, tc.vars, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%v %v: %v", tc.args, tc.vars, err)
		case tc.err == "" && cfg.Dispatcher.Policy.WithDefaults().RunWhen != tc.want:
			t.Errorf("%v %v: run-when %s, want %s", tc.args, tc.vars, cfg.Dispatcher.Policy.RunWhen, tc.want)
		}
	}
}
