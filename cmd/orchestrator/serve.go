package main

import (
	"github.com/tfe-orchestrator/orchestrator/internal/app"
	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
)

func serveCommand() *command {
	return &command{
		name:    "serve",
		summary: "run the daemon: TFE notifications into JetStream, cascades dispatched in dependency order",
		setup: func(fs *flagSet) func(*runEnv) error {
			config := serveFlags(fs)
			return func(env *runEnv) error {
				cfg, err := config()
				if err != nil {
					return err
				}
				d, err := app.New(cfg, env.log)
				if err != nil {
					return usagef("%v", err)
				}
				return d.Run(env.ctx)
			}
		},
	}
}

// serveFlags defines serve's flags and returns the function that turns
// them, once parsed, into the daemon's configuration.
func serveFlags(fs *flagSet) func() (app.Config, error) {
	cfg := app.Config{Version: version}
	// Every default is the component's: def, never a literal here.
	def := app.DefaultConfig()
	fs.stringVar(&cfg.HTTPListen, "http-listen", "ORCHESTRATOR_HTTP_LISTEN", def.HTTPListen, "address of the webhook, health and metrics server")
	fs.stringVar(&cfg.PublicURL, "public-url", "ORCHESTRATOR_PUBLIC_URL", def.PublicURL, "where operators reach this server (http:// or https://), e.g. behind a proxy: alerts link to a cascade's page under it, and cascades show and list print the link")
	fs.durationVar(&cfg.HTTPIdleTimeout, "http-idle-timeout", "ORCHESTRATOR_HTTP_IDLE_TIMEOUT", def.HTTPIdleTimeout, "a keep-alive connection of the HTTP server idle this long is closed")
	fs.stringVar(&cfg.DataDir, "data-dir", "ORCHESTRATOR_DATA_DIR", def.DataDir, "directory for the embedded NATS server's store")
	fs.stringVar(&cfg.NATS.URL, "nats-url", "NATS_URL", def.NATS.URL, "NATS server or cluster URL(s); empty runs an embedded JetStream server")
	fs.stringVar(&cfg.NATS.EmbeddedListen, "embedded-nats-listen", "ORCHESTRATOR_EMBEDDED_NATS_LISTEN", def.NATS.EmbeddedListen, "where the embedded NATS server listens for outside clients; off for none")
	fs.stringVar(&cfg.NATS.CredsFile, "nats-creds", "NATS_CREDS", def.NATS.CredsFile, "NATS credentials file (JWT and seed)")
	fs.stringVar(&cfg.NATS.NKeyFile, "nats-nkey", "NATS_NKEY", def.NATS.NKeyFile, "file holding the NKey user seed (SU...) to sign in to NATS with")
	fs.stringVar(&cfg.NATS.TLSCA, "nats-tls-ca", "NATS_TLS_CA", def.NATS.TLSCA, "CA certificate file to verify the NATS server")
	fs.stringVar(&cfg.NATS.TLSCert, "nats-tls-cert", "NATS_TLS_CERT", def.NATS.TLSCert, "client certificate file for NATS")
	fs.stringVar(&cfg.NATS.TLSKey, "nats-tls-key", "NATS_TLS_KEY", def.NATS.TLSKey, "client key file for NATS")
	fs.stringVar(&cfg.NATS.User, "nats-user", "NATS_USER", def.NATS.User, "NATS user name")
	natsPassword := fs.secret("nats-password", "NATS_PASSWORD", "NATS password")
	natsToken := fs.secret("nats-token", "NATS_TOKEN", "NATS authentication token")
	tokens := fs.secrets("webhook-token", "ORCHESTRATOR_WEBHOOK_TOKEN", "token of the TFE notification configurations, valid for every organization (prefer --webhook-org-token); webhooks must be signed with one")
	orgTokens := fs.secrets("webhook-org-token", "ORCHESTRATOR_WEBHOOK_ORG_TOKEN", "token of the TFE notification configurations of some organizations, ORG[,ORG...]=TOKEN (all after the first = is the token); an event signed with it must be of one of them")
	apiRead := fs.secrets("api-read-token", "ORCHESTRATOR_API_READ_TOKEN", "bearer token of the operator API and web page that may read cascades (name:secret or secret)")
	apiOperate := fs.secrets("api-operate-token", "ORCHESTRATOR_API_OPERATE_TOKEN", "bearer token of the operator API and web page that may also use the controls: pause, cancel, retry (name:secret or secret)")
	fs.intVar(&cfg.API.MaxStreams, "api-max-watch-streams", "ORCHESTRATOR_API_MAX_WATCH_STREAMS", def.API.MaxStreams, "watch streams of the operator API open at once, all tokens together; more get 429")
	fs.intVar(&cfg.API.MaxStreamsPerToken, "api-max-watch-streams-per-token", "ORCHESTRATOR_API_MAX_WATCH_STREAMS_PER_TOKEN", def.API.MaxStreamsPerToken, "watch streams of the operator API one token may hold open at once; more get 429")
	fs.boolVar(&cfg.Webhook.SkipSignature, "insecure-skip-signature", "ORCHESTRATOR_INSECURE_SKIP_SIGNATURE", def.Webhook.SkipSignature, "accept unsigned webhooks when no token is set (never in production)")
	fs.Int64Var(&cfg.Webhook.MaxBodyBytes, "webhook-max-body", def.Webhook.MaxBodyBytes, "largest webhook body accepted, in bytes")
	fs.mirror("webhook-max-body", "ORCHESTRATOR_WEBHOOK_MAX_BODY")
	fs.intVar(&cfg.Webhook.MaxConcurrent, "webhook-max-concurrent", "ORCHESTRATOR_WEBHOOK_MAX_CONCURRENT", def.Webhook.MaxConcurrent, "webhook requests read at once before their signatures are checked; more get 503")
	fs.Int64Var(&cfg.Webhook.MaxPendingBytes, "webhook-max-pending-bytes", def.Webhook.MaxPendingBytes, "memory the bodies of webhook requests not yet verified may hold, in bytes; more get 503")
	fs.mirror("webhook-max-pending-bytes", "ORCHESTRATOR_WEBHOOK_MAX_PENDING_BYTES")
	fs.durationVar(&cfg.Webhook.ReadTimeout, "webhook-read-timeout", "ORCHESTRATOR_WEBHOOK_READ_TIMEOUT", def.Webhook.ReadTimeout, "how long a webhook may take to send its body")
	fs.stringVar(&cfg.Stream.Name, "stream-name", "ORCHESTRATOR_STREAM_NAME", def.Stream.Name, "JetStream stream of run events")
	fs.stringVar(&cfg.Stream.Retention, "stream-retention", "ORCHESTRATOR_STREAM_RETENTION", def.Stream.Retention, "stream retention: limits, interest or workqueue")
	fs.durationVar(&cfg.Stream.MaxAge, "stream-max-age", "ORCHESTRATOR_STREAM_MAX_AGE", def.Stream.MaxAge, "how long run events are kept")
	fs.durationVar(&cfg.Stream.DuplicateWindow, "stream-duplicate-window", "ORCHESTRATOR_STREAM_DUPLICATE_WINDOW", def.Stream.DuplicateWindow, "how long a redelivered notification is recognised as a duplicate")
	fs.intVar(&cfg.Stream.Replicas, "stream-replicas", "ORCHESTRATOR_STREAM_REPLICAS", def.Stream.Replicas, "stream replicas (3 in a NATS cluster)")
	fs.stringVar(&cfg.TFE.Address, "tfe-address", "TFE_ADDRESS", def.TFE.Address, "TFE or HCP Terraform address")
	tfeToken := fs.secret("tfe-token", "TFE_TOKEN", "TFE API token the dispatcher creates runs with; without it the daemon only ingests")
	fs.Float64Var(&cfg.TFE.RateLimit, "tfe-rate-limit", def.TFE.RateLimit, "requests per second to TFE of the whole deployment, all replicas together: each takes an equal share, agreed through JetStream (0: 0.9 × the X-RateLimit-Limit TFE advertises, 30 when none)")
	fs.mirror("tfe-rate-limit", "ORCHESTRATOR_TFE_RATE_LIMIT")
	fs.boolVar(&cfg.Dispatcher.DryRun, "dry-run", "ORCHESTRATOR_DRY_RUN", def.Dispatcher.DryRun, "decide and log every cascade step; write nothing to TFE")
	fs.durationVar(&cfg.GraphCacheTTL, "graph-cache-ttl", "ORCHESTRATOR_GRAPH_CACHE_TTL", def.GraphCacheTTL, "how long a workspace's run triggers are trusted before they are read again")
	fs.intVar(&cfg.Dispatcher.MaxInFlight, "max-dispatch-in-flight", "ORCHESTRATOR_MAX_DISPATCH_IN_FLIGHT", def.Dispatcher.MaxInFlight, "TFE writes (run creations, discards, applies) in flight at once for one cascade")
	fs.intVar(&cfg.Dispatcher.Workers, "reconcile-workers", "ORCHESTRATOR_RECONCILE_WORKERS", def.Dispatcher.Workers, "cascades this replica reconciles at once")
	fs.durationVar(&cfg.Dispatcher.Debounce, "reconcile-debounce", "ORCHESTRATOR_RECONCILE_DEBOUNCE", def.Dispatcher.Debounce, "events about a cascade that come within this long are read in one look (fewer API calls; keep it well under a plan's duration)")
	fs.durationVar(&cfg.Dispatcher.AckWait, "ack-wait", "ORCHESTRATOR_ACK_WAIT", def.Dispatcher.AckWait, "how long a run event may be handled before JetStream delivers it again")
	fs.intVar(&cfg.Dispatcher.MaxDeliver, "max-event-deliveries", "ORCHESTRATOR_MAX_EVENT_DELIVERIES", def.Dispatcher.MaxDeliver, "deliveries of a run event that keeps failing before it is dropped with an alert")
	fs.durationVar(&cfg.Dispatcher.Policy.Recheck, "reconcile-interval", "ORCHESTRATOR_RECONCILE_INTERVAL", def.Dispatcher.Policy.Recheck, "how often every open cascade is looked at in full, whatever the events say: a lost webhook delays a cascade at most this")
	fs.durationVar(&cfg.Dispatcher.LeaseTTL, "lease-ttl", "ORCHESTRATOR_LEASE_TTL", def.Dispatcher.LeaseTTL, "a replica that stops renewing its lease on a cascade is replaced after this")
	fs.durationVar(&cfg.Dispatcher.Policy.LockedRetry, "locked-retry", "ORCHESTRATOR_LOCKED_RETRY", def.Dispatcher.Policy.LockedRetry, "how often a member held by a person's lock or run is checked again")
	fs.durationVar(&cfg.Dispatcher.Policy.LockedAlertAfter, "locked-alert-after", "ORCHESTRATOR_LOCKED_ALERT_AFTER", def.Dispatcher.Policy.LockedAlertAfter, "alert when a member stays held by a person's lock or run this long")
	applyPolicy := (*string)(&cfg.Dispatcher.Policy.Apply)
	fs.stringVar(applyPolicy, "apply-policy", "ORCHESTRATOR_APPLY_POLICY", string(def.Dispatcher.Policy.Apply), "when cascade runs apply without a person: workspace (as TFE applies a run-trigger run: when the workspace has auto-apply-run-trigger), always or never")
	fs.durationVar(&cfg.Dispatcher.Policy.ApprovalReminder, "approval-reminder", "ORCHESTRATOR_APPROVAL_REMINDER", def.Dispatcher.Policy.ApprovalReminder, "remind operators of a cascade run waiting for a person this often")
	fs.durationVar(&cfg.Dispatcher.Policy.NativeGrace, "native-run-grace", "ORCHESTRATOR_NATIVE_RUN_GRACE", def.Dispatcher.Policy.NativeGrace, "how long after a member's last upstream applied the run TFE's run trigger queues is waited for before the cascade creates one")
	fs.durationVar(&cfg.Dispatcher.RootMaxAge, "root-max-age", "ORCHESTRATOR_ROOT_MAX_AGE", def.Dispatcher.RootMaxAge, "a run that applied longer ago than this starts no cascade, however late its webhook comes")
	fs.intVar(&cfg.Dispatcher.GuardLimit, "guard-limit", "ORCHESTRATOR_GUARD_LIMIT", def.Dispatcher.GuardLimit, "blast-radius guard: a cascade of more members than this waits for an operator's go (0: no guard)")
	fs.boolVar(&cfg.Dispatcher.NoChangesStarts, "no-changes-starts-cascade", "ORCHESTRATOR_NO_CHANGES_STARTS_CASCADE", def.Dispatcher.NoChangesStarts, "a run that finishes with no changes starts a cascade too")
	fs.boolVar(&cfg.Dispatcher.Policy.NoHolds, "no-holds", "ORCHESTRATOR_NO_HOLDS", def.Dispatcher.Policy.NoHolds, "do not lock members that TFE's run triggers can queue runs in too early (C13); such runs are then only stopped when a look finds them, in time only while looks come faster than runs plan")
	runWhen := (*string)(&cfg.Dispatcher.Policy.RunWhen)
	fs.stringVar(runWhen, "run-when", "ORCHESTRATOR_RUN_WHEN", string(def.Dispatcher.Policy.RunWhen), "when a member whose upstreams finished runs: changes (an upstream applied changes), outputs (an upstream that applied changed an output) or always; the tags cascade-run-always and cascade-run-on-outputs override it per workspace")
	fs.boolVar(&cfg.Dispatcher.Policy.RunUnchanged, "run-unchanged", "ORCHESTRATOR_RUN_UNCHANGED", def.Dispatcher.Policy.RunUnchanged, "deprecated: --run-when always")
	fs.durationVar(&cfg.Dispatcher.StateTTL, "state-ttl", "ORCHESTRATOR_STATE_TTL", def.Dispatcher.StateTTL, "how long cascade state is kept")
	fs.durationVar(&cfg.Dispatcher.AuditRetention, "audit-retention", "ORCHESTRATOR_AUDIT_RETENTION", def.Dispatcher.AuditRetention, "how long the audit trail of the operators' controls is kept (at least 1h)")
	alertWebhook := fs.secret("alert-webhook-url", "ORCHESTRATOR_ALERT_WEBHOOK_URL", "send alerts as JSON to this URL")
	alertSlack := fs.secret("alert-slack-url", "ORCHESTRATOR_ALERT_SLACK_URL", "send alerts to this Slack-style incoming webhook")
	fs.durationVar(&cfg.Alerts.Window, "alert-window", "ORCHESTRATOR_ALERT_WINDOW", def.Alerts.Window, "an alert with the same key is sent once within this window")
	fs.boolVar(&cfg.DisableWatchdog, "no-watchdog", "ORCHESTRATOR_NO_WATCHDOG", def.DisableWatchdog, "do not run the stuck-run watchdog")
	fs.durationVar(&cfg.Watchdog.Interval, "watchdog-interval", "ORCHESTRATOR_WATCHDOG_INTERVAL", def.Watchdog.Interval, "how often the watchdog scans runs (one admin runs list per 100 active runs)")
	fs.Var(&cfg.Watchdog.Budgets, "watchdog-budget", "budget of a status group, GROUP=DURATION (repeatable; comma-separated in the environment); groups: queued, planning, applying, awaiting")
	fs.mirror("watchdog-budget", "ORCHESTRATOR_WATCHDOG_BUDGET")
	fs.boolVar(&cfg.Watchdog.AllowApplying, "watchdog-allow-applying", "ORCHESTRATOR_WATCHDOG_ALLOW_APPLYING", def.Watchdog.AllowApplying, "let the watchdog force-cancel runs stuck in applying (can lose state)")
	fs.stringVar(&cfg.Watchdog.Scan, "watchdog-scan", "ORCHESTRATOR_WATCHDOG_SCAN", def.Watchdog.Scan, "how the watchdog finds runs: admin (the admin runs API, TFE with a site-admin token) or workspaces (each workspace's current run)")
	fs.Var((*listValue)(&cfg.Watchdog.Organizations), "watchdog-organization", "organizations the watchdog scans in workspaces mode (repeatable; comma-separated in the environment)")
	fs.mirror("watchdog-organization", "ORCHESTRATOR_WATCHDOG_ORGANIZATION")
	fs.durationVar(&cfg.Watchdog.LeaseTTL, "watchdog-lease-ttl", "ORCHESTRATOR_WATCHDOG_LEASE_TTL", def.Watchdog.LeaseTTL, "a watchdog leader that stops renewing loses the lease after this")
	fs.durationVar(&cfg.ShutdownTimeout, "shutdown-timeout", "ORCHESTRATOR_SHUTDOWN_TIMEOUT", def.ShutdownTimeout, "how long an orderly shutdown may take")
	return func() (app.Config, error) {
		if cfg.Dispatcher.Policy.RunUnchanged {
			switch cfg.Dispatcher.Policy.RunWhen {
			case cascade.RunWhenChanges, cascade.RunWhenAlways:
				cfg.Dispatcher.Policy.RunWhen = cascade.RunWhenAlways
			default:
				return app.Config{}, usagef("--run-unchanged (deprecated: --run-when always) contradicts --run-when %s", cfg.Dispatcher.Policy.RunWhen)
			}
		}
		if err := fs.positive("http-idle-timeout", "webhook-max-body", "webhook-max-concurrent", "webhook-max-pending-bytes", "webhook-read-timeout",
			"stream-max-age", "stream-duplicate-window", "stream-replicas", "graph-cache-ttl", "max-dispatch-in-flight",
			"ack-wait", "reconcile-interval", "locked-retry", "locked-alert-after", "state-ttl", "reconcile-workers",
			"max-event-deliveries", "lease-ttl", "approval-reminder", "native-run-grace", "audit-retention", "root-max-age", "reconcile-debounce",
			"alert-window", "watchdog-interval", "watchdog-lease-ttl", "shutdown-timeout", "api-max-watch-streams",
			"api-max-watch-streams-per-token"); err != nil {
			return app.Config{}, err
		}
		var err error
		if cfg.API.ReadTokens, err = apiRead(); err != nil {
			return app.Config{}, err
		}
		if cfg.API.OperateTokens, err = apiOperate(); err != nil {
			return app.Config{}, err
		}
		if cfg.Webhook.Tokens, err = tokens(); err != nil {
			return app.Config{}, err
		}
		if cfg.WebhookOrgTokens, err = orgTokens(); err != nil {
			return app.Config{}, err
		}
		if cfg.NATS.Password, err = natsPassword(); err != nil {
			return app.Config{}, err
		}
		if cfg.NATS.Token, err = natsToken(); err != nil {
			return app.Config{}, err
		}
		if cfg.TFE.Token, err = tfeToken(); err != nil {
			return app.Config{}, err
		}
		if cfg.Alerts.WebhookURL, err = alertWebhook(); err != nil {
			return app.Config{}, err
		}
		if cfg.Alerts.SlackURL, err = alertSlack(); err != nil {
			return app.Config{}, err
		}
		return cfg, nil
	}
}
