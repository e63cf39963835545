package app

import (
	"net/url"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// revision is the VCS revision the binary was built from, when Go
// recorded it.
func revision() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// registerBuildInfo adds orchestrator_build_info, always 1, labelled with
// what the binary is.
func (a *App) registerBuildInfo() {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "orchestrator_build_info", Help: "The orchestrator's version, VCS revision and Go version (always 1).",
		ConstLabels: prometheus.Labels{"version": a.cfg.Version, "revision": revision(), "go_version": runtime.Version()},
	})
	g.Set(1)
	a.registry.MustRegister(g)
}

// logStart writes one line with the version and the effective
// configuration. No secret is in it: of each secret it says only whether
// it is set (of tokens, how many; API tokens by name).
func (a *App) logStart() {
	c := a.cfg
	set := func(v string) bool { return v != "" }
	nats := zap.Dict("nats",
		zap.String("url", redactURL(c.NATS.URL)), zap.Bool("embedded", c.NATS.URL == ""), zap.String("embedded_listen", c.NATS.EmbeddedListen),
		zap.String("auth", natsAuth(c.NATS)), zap.Bool("tls", set(c.NATS.TLSCA) || set(c.NATS.TLSCert)))
	o := c.Dispatcher
	p := o.Policy.WithDefaults()
	engine := zap.Dict("engine",
		zap.Bool("dry_run", o.DryRun), zap.String("apply_policy", string(p.Apply)), zap.String("run_when", string(p.RunWhen)), zap.Bool("holds", !p.NoHolds),
		zap.Bool("no_changes_starts_cascade", o.NoChangesStarts), zap.Int("guard_limit", o.GuardLimit),
		zap.Duration("reconcile_interval", p.Recheck), zap.Duration("native_run_grace", p.NativeGrace),
		zap.Duration("approval_reminder", p.ApprovalReminder), zap.Duration("locked_retry", p.LockedRetry),
		zap.Duration("locked_alert_after", p.LockedAlertAfter), zap.Duration("root_max_age", o.RootMaxAge),
		zap.Duration("state_ttl", o.StateTTL), zap.Duration("ack_wait", o.AckWait), zap.Int("max_event_deliveries", o.MaxDeliver),
		zap.Duration("lease_ttl", o.LeaseTTL), zap.Int("workers", o.Workers), zap.Int("max_in_flight", o.MaxInFlight),
		zap.Duration("debounce", o.Debounce))
	w := c.Watchdog
	watchdog := zap.Dict("watchdog", zap.Bool("enabled", !c.DisableWatchdog && set(c.TFE.Token)), zap.String("scan", w.Scan),
		zap.Duration("interval", w.Interval), zap.Bool("allow_applying", w.AllowApplying), zap.Strings("organizations", w.Organizations))
	var readers, operators []string
	if tokens, err := c.API.tokens(); err == nil {
		for _, t := range tokens {
			if t.Role.String() == "read" {
				readers = append(readers, t.Name)
			} else {
				operators = append(operators, t.Name)
			}
		}
	}
	a.log.Info("starting",
		zap.String("version", c.Version), zap.String("revision", revision()), zap.String("go", runtime.Version()),
		zap.String("http", c.HTTPListen), zap.String("data_dir", c.DataDir), nats,
		zap.Dict("stream", zap.String("name", c.Stream.Name), zap.String("retention", c.Stream.Retention),
			zap.Duration("max_age", c.Stream.MaxAge), zap.Int("replicas", c.Stream.Replicas)),
		zap.Dict("webhook", zap.Int("tokens", len(c.Webhook.Tokens)), zap.Bool("insecure_skip_signature", c.Webhook.SkipSignature),
			zap.Int64("max_body", c.Webhook.MaxBodyBytes)),
		zap.Dict("tfe", zap.String("address", redactURL(c.TFE.Address)), zap.Bool("token", set(c.TFE.Token)),
			zap.Float64("rate_limit", c.TFE.RateLimit), zap.Duration("graph_cache_ttl", c.GraphCacheTTL)),
		engine, watchdog,
		zap.Dict("alerts", zap.Bool("webhook", set(c.Alerts.WebhookURL)), zap.Bool("slack", set(c.Alerts.SlackURL)),
			zap.Duration("window", c.Alerts.Window)),
		zap.Dict("api", zap.Bool("on", len(readers)+len(operators) > 0), zap.Strings("read_tokens", readers), zap.Strings("operate_tokens", operators)),
	)
}

// redactURL drops a URL's user information (a password or token may ride
// in it) and its query.
func redactURL(raw string) string {
	var out []string
	for _, part := range strings.Split(raw, ",") {
		u, err := url.Parse(strings.TrimSpace(part))
		if err != nil {
			out = append(out, "(unparsable)")
			continue
		}
		u.User, u.RawQuery, u.Fragment = nil, "", ""
		out = append(out, u.String())
	}
	return strings.Join(out, ",")
}

// natsAuth names how the daemon signs in to NATS.
func natsAuth(n NATSConfig) string {
	switch {
	case n.URL == "":
		return "nkey (embedded)"
	case n.CredsFile != "":
		return "creds"
	case n.NKeyFile != "":
		return "nkey"
	case n.User != "":
		return "user/password"
	case n.Token != "":
		return "token"
	}
	return "none"
}
