package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
	"github.com/tfe-orchestrator/orchestrator/internal/api"
	"github.com/tfe-orchestrator/orchestrator/internal/app"
	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
	"github.com/tfe-orchestrator/orchestrator/internal/tfegraph"
	"github.com/tfe-orchestrator/orchestrator/internal/watchdog"
)

// Every flag of serve defaults to what the component it sets does with a
// zero field: the defaults are written once, in the component, and a flag
// that says otherwise (or a flag added without saying what it sets) fails
// here. The components' own tests check that a zero field runs with their
// Default values.
func TestServeFlagDefaultsAreTheComponents(t *testing.T) {
	disp, pol := dispatcher.DefaultOptions(), cascade.DefaultPolicy
	stream, hook := events.DefaultStreamOptions(), events.DefaultWebhookOptions()
	wd := watchdog.DefaultOptions()
	none := "" // secrets, files and lists: nothing unless given
	want := map[string]any{
		// the daemon's own
		"http-listen":          app.DefaultHTTPListen,
		"http-idle-timeout":    app.DefaultHTTPIdleTimeout,
		"public-url":           none,
		"data-dir":             app.DefaultDataDir,
		"embedded-nats-listen": app.DefaultEmbeddedListen,
		"shutdown-timeout":     app.DefaultShutdownTimeout,
		"tfe-address":          app.DefaultTFEAddress,
		"no-watchdog":          false,
		// NATS: none of them, the embedded server
		"nats-url": none, "nats-creds": none, "nats-nkey": none, "nats-tls-ca": none, "nats-tls-cert": none, "nats-tls-key": none,
		"nats-user": none, "nats-password": none, "nats-password-file": none, "nats-token": none, "nats-token-file": none,
		// secrets
		"webhook-token": none, "webhook-token-file": none, "webhook-org-token": none, "webhook-org-token-file": none,
		"api-read-token": none, "api-read-token-file": none, "api-operate-token": none, "api-operate-token-file": none,
		"tfe-token": none, "tfe-token-file": none, "alert-webhook-url": none, "alert-webhook-url-file": none,
		"alert-slack-url": none, "alert-slack-url-file": none,
		// api
		"api-max-watch-streams":           api.DefaultMaxStreams,
		"api-max-watch-streams-per-token": api.DefaultMaxStreamsPerToken,
		// events: the webhook and the stream
		"insecure-skip-signature":   hook.SkipSignature,
		"webhook-max-body":          hook.MaxBodyBytes,
		"webhook-max-concurrent":    hook.MaxConcurrent,
		"webhook-max-pending-bytes": hook.MaxPendingBytes,
		"webhook-read-timeout":      hook.ReadTimeout,
		"stream-name":               stream.Name,
		"stream-retention":          stream.Retention,
		"stream-max-age":            stream.MaxAge,
		"stream-duplicate-window":   stream.DuplicateWindow,
		"stream-replicas":           stream.Replicas,
		// tfeclient: 0 is Margin × what TFE advertises
		"tfe-rate-limit": tfeclient.LimiterOptions{}.Limit,
		// tfegraph
		"graph-cache-ttl": tfegraph.DefaultTTL,
		// the dispatcher and its policy
		"dry-run":                   disp.DryRun,
		"max-dispatch-in-flight":    disp.MaxInFlight,
		"reconcile-workers":         disp.Workers,
		"reconcile-debounce":        disp.Debounce,
		"ack-wait":                  disp.AckWait,
		"max-event-deliveries":      disp.MaxDeliver,
		"lease-ttl":                 disp.LeaseTTL,
		"root-max-age":              disp.RootMaxAge,
		"guard-limit":               disp.GuardLimit,
		"no-changes-starts-cascade": disp.NoChangesStarts,
		"state-ttl":                 disp.StateTTL,
		"audit-retention":           disp.AuditRetention,
		"reconcile-interval":        pol.Recheck,
		"locked-retry":              pol.LockedRetry,
		"locked-alert-after":        pol.LockedAlertAfter,
		"apply-policy":              pol.Apply,
		"approval-reminder":         pol.ApprovalReminder,
		"native-run-grace":          pol.NativeGrace,
		"no-holds":                  pol.NoHolds,
		"run-when":                  pol.RunWhen,
		"run-unchanged":             pol.RunUnchanged,
		// alerts
		"alert-window": alerts.DefaultWindow,
		// the watchdog
		"watchdog-interval":       wd.Interval,
		"watchdog-budget":         wd.Budgets.String(),
		"watchdog-allow-applying": wd.AllowApplying,
		"watchdog-scan":           wd.Scan,
		"watchdog-organization":   strings.Join(wd.Organizations, ","),
		"watchdog-lease-ttl":      wd.LeaseTTL,
	}
	fs := newFlagSet("serve", io.Discard)
	serveFlags(fs)
	seen := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		seen[f.Name] = true
		w, ok := want[f.Name]
		if !ok {
			t.Errorf("--%s: not in this test's table; say which component default it takes", f.Name)
			return
		}
		if got := f.DefValue; got != fmt.Sprint(w) {
			t.Errorf("--%s defaults to %s; its component's default is %v", f.Name, got, w)
		}
	})
	for name := range want {
		if !seen[name] {
			t.Errorf("--%s is in the table but serve has no such flag", name)
		}
	}
	// The defaults the flags give are a configuration the daemon accepts.
	cfg, err := parseServe(t, []string{"--insecure-skip-signature"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("serve's defaults are refused: %v", err)
	}
}

// The default docs/configuration.md gives each flag of serve is the flag's:
// the first value in backquotes in the default column (none where the flag
// has none), durations compared as durations (168h is 168h0m0s).
func TestConfigurationReferenceGivesServesDefaults(t *testing.T) {
	reference, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `serve --([a-z0-9-]+)` \\|[^|]*\\|([^|]*)\\|")
	quoted := regexp.MustCompile("`([^`]*)`")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(reference), -1) {
		def := ""
		if q := quoted.FindStringSubmatch(m[2]); q != nil {
			def = q[1]
		}
		documented[m[1]] = def
	}
	fs := newFlagSet("serve", io.Discard)
	serveFlags(fs)
	fs.VisitAll(func(f *flag.Flag) {
		doc, ok := documented[f.Name]
		if !ok {
			t.Errorf("--%s: no row in docs/configuration.md's serve table", f.Name)
			return
		}
		got := f.DefValue
		if d, err := time.ParseDuration(doc); err == nil {
			if fd, ferr := time.ParseDuration(got); ferr == nil && fd == d {
				return
			}
		}
		if doc != got {
			t.Errorf("--%s: docs/configuration.md gives the default %q, the flag's is %q", f.Name, doc, got)
		}
	})
}

// On the command line a 0 is refused wherever it would only mean "the
// default"; the flags whose 0 means something else say so and accept it.
func TestServeRefusesZeroUnlessItMeansSomething(t *testing.T) {
	means := map[string]string{"guard-limit": "no guard", "tfe-rate-limit": "0.9 × what TFE advertises"}
	fs := newFlagSet("serve", io.Discard)
	serveFlags(fs)
	fs.VisitAll(func(f *flag.Flag) {
		g, ok := f.Value.(flag.Getter)
		if !ok {
			return
		}
		switch g.Get().(type) {
		case int, int64, float64, time.Duration:
		default:
			return
		}
		zero := "0"
		if _, isDuration := g.Get().(time.Duration); isDuration {
			zero = "0s"
		}
		_, err := parseServe(t, []string{"--insecure-skip-signature", "--" + f.Name, zero}, nil)
		switch meaning, ok := means[f.Name]; {
		case ok && err != nil:
			t.Errorf("--%s 0 (%s) refused: %v", f.Name, meaning, err)
		case ok && !strings.Contains(f.Usage, "0:"):
			t.Errorf("--%s: its help does not say what 0 means (%s)", f.Name, meaning)
		case !ok && (err == nil || !strings.Contains(err.Error(), "--"+f.Name+" must be greater than 0")):
			t.Errorf("--%s 0: got %v, want it refused", f.Name, err)
		}
	})
}
