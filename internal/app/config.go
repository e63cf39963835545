package app

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	tfe "github.com/hashicorp/go-tfe"
	"github.com/nats-io/nats.go"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
	"github.com/tfe-orchestrator/orchestrator/internal/api"
	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/setting"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
	"github.com/tfe-orchestrator/orchestrator/internal/tfegraph"
	"github.com/tfe-orchestrator/orchestrator/internal/watchdog"
)

// Config is the daemon's configuration. A zero field takes its default,
// DefaultConfig's, except where its comment (or its component's) says what
// 0 means instead: Dispatcher.GuardLimit 0 is no guard, TFE.RateLimit 0
// asks TFE.
type Config struct {
	// Version is the binary's version, for the startup line and
	// orchestrator_build_info.
	Version string
	// HTTPListen is the address of the webhook, health and metrics server;
	// default ":8080".
	HTTPListen string
	// HTTPIdleTimeout closes a keep-alive connection of that server once
	// it has been idle this long; default 30s.
	HTTPIdleTimeout time.Duration
	// PublicURL is where operators reach the daemon (its operator page is
	// PublicURL/ui/): alerts link to a cascade's page, and the status
	// tells the CLI. Empty: no links.
	PublicURL string
	// DataDir holds the embedded NATS server's store; default "data".
	DataDir string
	NATS    NATSConfig
	// Webhook configures the webhook. Its Tokens sign events of any
	// organization.
	Webhook events.WebhookOptions
	// WebhookOrgTokens are notification tokens bound to organizations, as
	// operators give them: ORG[,ORG...]=TOKEN (events.ParseOrgToken). An
	// event signed with one must be of one of its organizations.
	WebhookOrgTokens []string
	Stream           events.StreamOptions
	// TFE is where cascades create runs. Without a token the daemon only
	// ingests.
	TFE        TFEConfig
	Dispatcher dispatcher.Options
	// Watchdog configures the stuck-run watchdog; it runs when a TFE token
	// is set, the installation has the admin API, and it is not disabled.
	Watchdog        watchdog.Options
	DisableWatchdog bool
	Alerts          AlertsConfig
	// API is the operator API and its web page; off without tokens.
	API APIConfig
	// GraphCacheTTL is how long a workspace's run triggers are trusted;
	// default 5m.
	GraphCacheTTL time.Duration
	// ShutdownTimeout bounds the orderly shutdown; default 20s.
	ShutdownTimeout time.Duration
}

// TFEConfig says how to reach TFE.
type TFEConfig struct {
	Address string
	Token   string
	// RateLimit is the requests per second to TFE of the whole deployment:
	// the replicas that share the JetStream take an equal share each, and
	// every part of a replica draws from its share. 0 takes 0.9 × what TFE
	// advertises in X-RateLimit-Limit (30 when it advertises nothing).
	RateLimit float64
	// CheckInterval is how often a token TFE refused is tried again, so
	// that a fixed token recovers without a restart; default 1m.
	CheckInterval time.Duration
}

// APIConfig holds the operator API's bearer tokens, by role, as operators
// give them ("name:secret" or a bare secret).
type APIConfig struct {
	ReadTokens    []string
	OperateTokens []string
	// MaxStreams and MaxStreamsPerToken cap the watch streams open at
	// once, in all and per token; 0: api.DefaultMaxStreams,
	// api.DefaultMaxStreamsPerToken.
	MaxStreams, MaxStreamsPerToken int
}

// tokens parses the API tokens of both roles.
func (c APIConfig) tokens() ([]api.Token, error) {
	read, err := api.ParseTokens(api.RoleRead, c.ReadTokens)
	if err != nil {
		return nil, fmt.Errorf("--api-read-token: %w", err)
	}
	operate, err := api.ParseTokens(api.RoleOperate, c.OperateTokens)
	if err != nil {
		return nil, fmt.Errorf("--api-operate-token: %w", err)
	}
	return append(read, operate...), nil
}

// AlertsConfig says where alerts go besides the log and NATS.
type AlertsConfig struct {
	WebhookURL string // generic JSON webhook
	SlackURL   string // Slack-style incoming webhook
	// Window: the same alert key is sent once within it; default 15m.
	Window time.Duration
}

// NATSConfig says which NATS to use. Without a URL the daemon runs an
// embedded JetStream server.
type NATSConfig struct {
	URL string
	// EmbeddedListen is where the embedded server listens for outside
	// clients such as the nats CLI; "off" for none; default 127.0.0.1:4222.
	EmbeddedListen string
	CredsFile      string
	// NKeyFile holds an NKey user seed (SU...) to sign in with.
	NKeyFile string
	TLSCA    string
	TLSCert  string
	TLSKey   string
	User     string
	Password string
	Token    string
}

// Defaults of the daemon's own settings; the components' are theirs
// (DefaultConfig gathers both).
const (
	// DefaultHTTPListen is where the webhook, health and metrics server
	// listens.
	DefaultHTTPListen = ":8080"
	// DefaultHTTPIdleTimeout is how long a keep-alive connection of the
	// HTTP server may stay idle. TFE opens a connection per delivery; a
	// scraper comes back well within it.
	DefaultHTTPIdleTimeout = 30 * time.Second
	// DefaultDataDir holds the embedded NATS server's store.
	DefaultDataDir = "data"
	// DefaultEmbeddedListen is where the embedded NATS server listens for
	// outside clients.
	DefaultEmbeddedListen = "127.0.0.1:4222"
	// DefaultShutdownTimeout bounds the orderly shutdown.
	DefaultShutdownTimeout = 20 * time.Second
	// DefaultTFEAddress is HCP Terraform's.
	DefaultTFEAddress = tfe.DefaultAddress
	// DefaultTokenCheckInterval is how often a token TFE refused is tried
	// again.
	DefaultTokenCheckInterval = time.Minute
)

// DefaultConfig is the configuration every zero field of a Config stands
// for: the daemon's defaults and each component's, read from the
// component (dispatcher.DefaultOptions, watchdog.DefaultOptions, ...), so
// that each default is written once. It is what `orchestrator serve`'s
// flags default to. Zero fields that mean "off" or "ask TFE" (GuardLimit,
// TFE.RateLimit) stay zero.
func DefaultConfig() Config {
	return Config{
		Version:         "dev",
		HTTPListen:      DefaultHTTPListen,
		HTTPIdleTimeout: DefaultHTTPIdleTimeout,
		DataDir:         DefaultDataDir,
		NATS:            NATSConfig{EmbeddedListen: DefaultEmbeddedListen},
		Webhook:         events.DefaultWebhookOptions(),
		Stream:          events.DefaultStreamOptions(),
		TFE:             TFEConfig{Address: DefaultTFEAddress, CheckInterval: DefaultTokenCheckInterval},
		Dispatcher:      dispatcher.DefaultOptions(),
		Watchdog:        watchdog.DefaultOptions(),
		Alerts:          AlertsConfig{Window: alerts.DefaultWindow},
		API:             APIConfig{MaxStreams: api.DefaultMaxStreams, MaxStreamsPerToken: api.DefaultMaxStreamsPerToken},
		GraphCacheTTL:   tfegraph.DefaultTTL,
		ShutdownTimeout: DefaultShutdownTimeout,
	}
}

// withDefaults fills the daemon's own zero settings; the components fill
// theirs.
func (c *Config) withDefaults() Config {
	out, def := *c, DefaultConfig()
	if out.HTTPListen == "" {
		out.HTTPListen = def.HTTPListen
	}
	if out.HTTPIdleTimeout == 0 {
		out.HTTPIdleTimeout = def.HTTPIdleTimeout
	}
	if out.Version == "" {
		out.Version = def.Version
	}
	if out.DataDir == "" {
		out.DataDir = def.DataDir
	}
	if out.NATS.EmbeddedListen == "" {
		out.NATS.EmbeddedListen = def.NATS.EmbeddedListen
	}
	if out.ShutdownTimeout == 0 {
		out.ShutdownTimeout = def.ShutdownTimeout
	}
	if out.GraphCacheTTL == 0 {
		out.GraphCacheTTL = def.GraphCacheTTL
	}
	if out.TFE.Address == "" {
		out.TFE.Address = def.TFE.Address
	}
	if out.TFE.CheckInterval == 0 {
		out.TFE.CheckInterval = def.TFE.CheckInterval
	}
	return out
}

// The flags of `orchestrator serve` that set each component's options, by
// the field the component's errors (*setting.Error) name. A field set by
// none is named as the component's option.
var (
	dispatcherFlags = map[string]string{
		"MaxInFlight": "--max-dispatch-in-flight", "Workers": "--reconcile-workers", "MaxDeliver": "--max-event-deliveries",
		"GuardLimit": "--guard-limit", "StateTTL": "--state-ttl", "AckWait": "--ack-wait", "LeaseTTL": "--lease-ttl",
		"RootMaxAge": "--root-max-age", "Debounce": "--reconcile-debounce", "AuditRetention": "--audit-retention",
		"CacheTTL": "--graph-cache-ttl", "Replicas": "--stream-replicas", "Stream": "--stream-name",
		"Policy.Apply": "--apply-policy", "Policy.RunWhen": "--run-when", "Policy.Recheck": "--reconcile-interval",
		"Policy.LockedRetry": "--locked-retry", "Policy.LockedAlertAfter": "--locked-alert-after",
		"Policy.ApprovalReminder": "--approval-reminder", "Policy.NativeGrace": "--native-run-grace",
	}
	watchdogFlags = map[string]string{
		"Interval": "--watchdog-interval", "LeaseTTL": "--watchdog-lease-ttl", "Scan": "--watchdog-scan",
		"Organizations": "--watchdog-organization", "Budgets": "--watchdog-budget",
	}
	streamFlags = map[string]string{
		"Name": "--stream-name", "Retention": "--stream-retention", "MaxAge": "--stream-max-age",
		"DuplicateWindow": "--stream-duplicate-window", "Replicas": "--stream-replicas",
	}
	webhookFlags = map[string]string{
		"MaxBodyBytes": "--webhook-max-body", "MaxConcurrent": "--webhook-max-concurrent",
		"MaxPendingBytes": "--webhook-max-pending-bytes", "ReadTimeout": "--webhook-read-timeout",
	}
	limiterFlags = map[string]string{"Limit": "--tfe-rate-limit"}
)

// flagError says a component's error with the flags' names; an error that
// names no field is put in the component's words.
func flagError(component string, flags map[string]string, err error) error {
	if err == nil {
		return nil
	}
	var se *setting.Error
	if !errors.As(err, &se) {
		return fmt.Errorf("%s: %w", component, err)
	}
	return errors.New(se.Text(func(field string) string {
		if flag, ok := flags[field]; ok {
			return flag
		}
		return "the " + component + "'s " + field
	}))
}

// Validate reports the first setting that cannot work, naming the flag of
// `orchestrator serve` that sets it and what it accepts. Everything is
// checked here, before anything starts, so that a mistake is a usage error
// and not a component that fails (or quietly does something else) later.
// A component's options are checked by the component's own Validate, on
// the options the daemon will give it; this maps the fields its errors
// name to flags, and checks only what is the daemon's: listeners, NATS,
// tokens, URLs. Zero values are the defaults; the command line refuses an
// explicit zero where it would make no sense.
func (c *Config) Validate() error {
	d := c.withDefaults()
	for _, check := range []func() error{d.validateListeners, d.validateNATS, d.validateWebhook, d.validateStream,
		d.validateTFE, d.validateDispatcher, d.validateWatchdog, d.validateAlerts, d.validateAPI} {
		if err := check(); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		flag string
		v    time.Duration
	}{
		{"--graph-cache-ttl", d.GraphCacheTTL}, {"--shutdown-timeout", d.ShutdownTimeout}, {"--alert-window", d.Alerts.Window},
		{"--http-idle-timeout", d.HTTPIdleTimeout},
	} {
		if f.v < 0 {
			return fmt.Errorf("%s (%s) must not be negative", f.flag, setting.Duration(f.v))
		}
	}
	return nil
}

func (c *Config) validateAPI() error {
	tokens, err := c.API.tokens()
	if err != nil {
		return err
	}
	_, err = api.New(api.Options{Tokens: tokens, MaxStreams: c.API.MaxStreams, MaxStreamsPerToken: c.API.MaxStreamsPerToken})
	if err != nil {
		return fmt.Errorf("--api-read-token, --api-operate-token: %w", err)
	}
	return nil
}

func (c *Config) validateListeners() error {
	if err := hostPort(c.HTTPListen); err != nil {
		return fmt.Errorf("--http-listen %q: %w", c.HTTPListen, err)
	}
	if c.DataDir == "" {
		return errors.New("--data-dir must not be empty")
	}
	return nil
}

// hostPort checks a listen address: host:port, the host possibly empty,
// the port a number (0 picks one).
func hostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port, e.g. 127.0.0.1:8080 or :8080")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return errors.New("the port must be a number from 0 to 65535")
	}
	return nil
}

func (c *Config) validateNATS() error {
	n := c.NATS
	if n.EmbeddedListen != "off" {
		if err := hostPort(n.EmbeddedListen); err != nil {
			return fmt.Errorf("--embedded-nats-listen %q: %w, or off", n.EmbeddedListen, err)
		}
	}
	outside := map[string]string{"--nats-creds": n.CredsFile, "--nats-nkey": n.NKeyFile, "--nats-user": n.User, "--nats-password": n.Password,
		"--nats-token": n.Token, "--nats-tls-ca": n.TLSCA, "--nats-tls-cert": n.TLSCert, "--nats-tls-key": n.TLSKey}
	if n.URL == "" {
		for _, flag := range sortedKeys(outside) {
			if outside[flag] != "" {
				return fmt.Errorf("%s applies to the NATS of --nats-url; the embedded server makes its own credentials", flag)
			}
		}
		return nil
	}
	for _, u := range strings.Split(n.URL, ",") {
		if err := natsURL(strings.TrimSpace(u)); err != nil {
			return fmt.Errorf("--nats-url: %w", err)
		}
	}
	var methods []string
	for _, m := range []struct{ flag, v string }{{"--nats-creds", n.CredsFile}, {"--nats-nkey", n.NKeyFile}, {"--nats-user", n.User}, {"--nats-token", n.Token}} {
		if m.v != "" {
			methods = append(methods, m.flag)
		}
	}
	switch {
	case len(methods) > 1:
		return fmt.Errorf("give one NATS authentication, not %s", strings.Join(methods, " and "))
	case n.Password != "" && n.User == "":
		return errors.New("--nats-password needs --nats-user")
	case n.User != "" && n.Password == "":
		return errors.New("--nats-user needs --nats-password (or --nats-password-file)")
	case (n.TLSCert == "") != (n.TLSKey == ""):
		return errors.New("--nats-tls-cert and --nats-tls-key go together")
	}
	if n.NKeyFile != "" {
		// Read now, so that a wrong file is a usage error; never shown.
		if _, err := nats.NkeyOptionFromSeed(n.NKeyFile); err != nil {
			if _, serr := os.Stat(n.NKeyFile); serr != nil {
				return fmt.Errorf("--nats-nkey: %w", serr)
			}
			return fmt.Errorf("--nats-nkey %s does not hold an NKey user seed (SU...)", n.NKeyFile)
		}
	}
	for _, f := range []struct{ flag, path string }{{"--nats-creds", n.CredsFile}, {"--nats-tls-ca", n.TLSCA},
		{"--nats-tls-cert", n.TLSCert}, {"--nats-tls-key", n.TLSKey}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("%s: %w", f.flag, err)
		}
	}
	return nil
}

// natsURL checks one server URL of --nats-url. The URL may hold a password:
// only its redacted form goes into the error.
func natsURL(s string) error {
	if !strings.Contains(s, "://") {
		s = "nats://" + s // as nats.go reads host:port
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("a server is not a URL")
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return fmt.Errorf("%s: the scheme must be nats, tls, ws or wss", u.Redacted())
	}
	if u.Host == "" {
		return fmt.Errorf("%s: no host", u.Redacted())
	}
	return nil
}

// webhookOptions are the webhook's options with the tokens bound to
// organizations read.
func (c *Config) webhookOptions() (events.WebhookOptions, error) {
	w := c.Webhook
	w.OrgTokens = slices.Clone(w.OrgTokens)
	for i, s := range c.WebhookOrgTokens {
		t, err := events.ParseOrgToken(s)
		if err != nil {
			return w, fmt.Errorf("--webhook-org-token (the %s given): %w", ordinal(i+1), err)
		}
		w.OrgTokens = append(w.OrgTokens, t)
	}
	return w, nil
}

func ordinal(n int) string {
	switch n {
	case 1:
		return "first"
	case 2:
		return "second"
	case 3:
		return "third"
	}
	return strconv.Itoa(n) + "th"
}

func (c *Config) validateWebhook() error {
	w, err := c.webhookOptions()
	if err != nil {
		return err
	}
	switch {
	case len(w.Tokens) == 0 && len(w.OrgTokens) == 0 && !w.SkipSignature:
		return errors.New("no webhook token: set --webhook-org-token or --webhook-token, or --insecure-skip-signature to accept unsigned webhooks")
	case (len(w.Tokens) > 0 || len(w.OrgTokens) > 0) && w.SkipSignature:
		return errors.New("--insecure-skip-signature with --webhook-token or --webhook-org-token: webhooks are verified when a token is set; give one or the other")
	}
	for _, t := range w.Tokens {
		if strings.TrimSpace(t) == "" {
			return errors.New("--webhook-token: a token is empty")
		}
	}
	return flagError("webhook", webhookFlags, w.Validate())
}

func (c *Config) validateStream() error {
	return flagError("stream", streamFlags, c.Stream.Validate())
}

func (c *Config) validateTFE() error {
	if err := CheckHTTPURL(c.TFE.Address); err != nil {
		return fmt.Errorf("--tfe-address %q: %w", c.TFE.Address, err)
	}
	if err := (tfeclient.LimiterOptions{Limit: c.TFE.RateLimit}).Validate(); err != nil {
		return flagError("TFE rate limiter", limiterFlags, err)
	}
	if c.TFE.CheckInterval < 0 {
		return fmt.Errorf("the TFE token check interval (%s) must not be negative", setting.Duration(c.TFE.CheckInterval))
	}
	return nil
}

// CheckHTTPURL checks an http:// or https:// URL with a host.
func CheckHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("want an http:// or https:// URL")
	}
	return nil
}

// dispatcherOptions are the engine's options as the daemon runs it: what
// it is not told takes the stream's (name, replicas) and the graph cache's
// TTL.
func (c *Config) dispatcherOptions() dispatcher.Options {
	opts := c.Dispatcher
	if opts.CacheTTL == 0 {
		opts.CacheTTL = c.GraphCacheTTL
	}
	if opts.Replicas == 0 {
		opts.Replicas = max(1, c.Stream.Replicas) // state as durable as the events
	}
	if opts.Stream == "" {
		opts.Stream = c.Stream.Name
	}
	if opts.Address == "" {
		opts.Address = strings.TrimRight(c.TFE.Address, "/")
	}
	return opts
}

func (c *Config) validateDispatcher() error {
	o := c.dispatcherOptions()
	return flagError("dispatcher", dispatcherFlags, o.Validate())
}

func (c *Config) validateWatchdog() error {
	w := c.Watchdog
	if c.DisableWatchdog && w.Scan == watchdog.ScanWorkspaces && len(w.Organizations) == 0 {
		w.Scan = "" // a watchdog that does not run scans nothing
	}
	return flagError("watchdog", watchdogFlags, w.Validate())
}

func (c *Config) validateAlerts() error {
	if c.PublicURL != "" {
		if err := CheckHTTPURL(c.PublicURL); err != nil {
			return fmt.Errorf("--public-url %q: %w", c.PublicURL, err)
		}
	}
	// The URLs are secrets (a Slack webhook URL is its own credential):
	// the errors never show them.
	for _, f := range []struct{ flag, v string }{{"--alert-webhook-url", c.Alerts.WebhookURL}, {"--alert-slack-url", c.Alerts.SlackURL}} {
		if f.v == "" {
			continue
		}
		if err := CheckHTTPURL(f.v); err != nil {
			return fmt.Errorf("%s is not an http:// or https:// URL (its value is not shown: it is a secret)", f.flag)
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
