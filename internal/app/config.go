package app

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	tfe "github.com/hashicorp/go-tfe"
	"github.com/nats-io/nats.go"

	"github.com/tfe-orchestrator/orchestrator/internal/api"
	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/watchdog"
)

// Config is the daemon's configuration. Zero fields take the defaults.
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

// DefaultHTTPIdleTimeout is how long a keep-alive connection of the HTTP
// server may stay idle. TFE opens a connection per delivery; a scraper
// comes back well within it.
const DefaultHTTPIdleTimeout = 30 * time.Second

func (c *Config) withDefaults() Config {
	out := *c
	if out.HTTPListen == "" {
		out.HTTPListen = ":8080"
	}
	if out.HTTPIdleTimeout == 0 {
		out.HTTPIdleTimeout = DefaultHTTPIdleTimeout
	}
	if out.Version == "" {
		out.Version = "dev"
	}
	if out.DataDir == "" {
		out.DataDir = "data"
	}
	if out.NATS.EmbeddedListen == "" {
		out.NATS.EmbeddedListen = "127.0.0.1:4222"
	}
	if out.ShutdownTimeout == 0 {
		out.ShutdownTimeout = 20 * time.Second
	}
	if out.GraphCacheTTL == 0 {
		out.GraphCacheTTL = 5 * time.Minute
	}
	if out.TFE.Address == "" {
		out.TFE.Address = tfe.DefaultAddress
	}
	if out.TFE.CheckInterval == 0 {
		out.TFE.CheckInterval = time.Minute
	}
	return out
}

// Validate reports the first setting that cannot work, naming the flag of
// `orchestrator serve` that sets it and what it accepts. Everything is
// checked here, before anything starts, so that a mistake is a usage error
// and not a component that fails (or quietly does something else) later.
// Zero values are the defaults; the command line refuses an explicit zero
// where it would make no sense.
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
			return fmt.Errorf("%s (%s) must not be negative", f.flag, duration(f.v))
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
	for _, f := range []struct {
		flag string
		v    int64
	}{
		{"--webhook-max-body", w.MaxBodyBytes}, {"--webhook-max-concurrent", int64(w.MaxConcurrent)},
		{"--webhook-max-pending-bytes", w.MaxPendingBytes},
	} {
		if f.v < 0 {
			return fmt.Errorf("%s (%d) must not be negative", f.flag, f.v)
		}
	}
	if w.ReadTimeout < 0 {
		return fmt.Errorf("--webhook-read-timeout (%s) must not be negative", duration(w.ReadTimeout))
	}
	body, pending := w.MaxBodyBytes, w.MaxPendingBytes
	if body == 0 {
		body = events.DefaultMaxBodyBytes
	}
	if pending != 0 && pending < body {
		return fmt.Errorf("--webhook-max-pending-bytes (%d) must be at least --webhook-max-body (%d)", pending, body)
	}
	return w.Validate()
}

func (c *Config) validateStream() error {
	s := c.Stream
	if s.Name != "" && !plainName(s.Name, 255) {
		return fmt.Errorf("--stream-name %q: letters, digits, - and _ only", s.Name)
	}
	switch s.Retention {
	case "", "limits", "interest", "workqueue":
	default:
		return fmt.Errorf("--stream-retention must be limits, interest or workqueue, not %q", s.Retention)
	}
	maxAge, window := s.MaxAge, s.DuplicateWindow
	switch {
	case maxAge < 0:
		return fmt.Errorf("--stream-max-age (%s) must not be negative", duration(maxAge))
	case window < 0:
		return fmt.Errorf("--stream-duplicate-window (%s) must not be negative", duration(window))
	}
	if maxAge == 0 {
		maxAge = events.DefaultMaxAge
	}
	if window == 0 {
		window = events.DefaultDuplicateWindow
	}
	if window > maxAge {
		return fmt.Errorf("--stream-duplicate-window (%s) must not be longer than --stream-max-age (%s)", duration(window), duration(maxAge))
	}
	if s.Replicas < 0 || s.Replicas > 5 {
		return fmt.Errorf("--stream-replicas must be from 1 to 5, not %d", s.Replicas)
	}
	return s.Validate()
}

func (c *Config) validateTFE() error {
	if err := CheckHTTPURL(c.TFE.Address); err != nil {
		return fmt.Errorf("--tfe-address %q: %w", c.TFE.Address, err)
	}
	if r := c.TFE.RateLimit; r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		return fmt.Errorf("--tfe-rate-limit (%v) must be 0 (0.9 × what TFE advertises) or a positive number of requests per second, all replicas together", r)
	}
	if c.TFE.CheckInterval < 0 {
		return fmt.Errorf("the TFE token check interval (%s) must not be negative", duration(c.TFE.CheckInterval))
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

func (c *Config) validateDispatcher() error {
	o := c.Dispatcher
	for _, f := range []struct {
		flag string
		v    int
	}{{"--max-dispatch-in-flight", o.MaxInFlight}, {"--reconcile-workers", o.Workers}, {"--max-event-deliveries", o.MaxDeliver}, {"--guard-limit", o.GuardLimit}} {
		if f.v < 0 {
			return fmt.Errorf("%s (%d) must not be negative", f.flag, f.v)
		}
	}
	if o.MaxDeliver == 1 {
		return errors.New("--max-event-deliveries (1) must be at least 2: an event gets a second chance")
	}
	for _, f := range []struct {
		flag string
		v    time.Duration
	}{
		{"--state-ttl", o.StateTTL}, {"--ack-wait", o.AckWait}, {"--reconcile-interval", o.Policy.Recheck}, {"--lease-ttl", o.LeaseTTL},
		{"--locked-retry", o.Policy.LockedRetry}, {"--locked-alert-after", o.Policy.LockedAlertAfter}, {"--approval-reminder", o.Policy.ApprovalReminder},
		{"--native-run-grace", o.Policy.NativeGrace}, {"--root-max-age", o.RootMaxAge}, {"--reconcile-debounce", o.Debounce},
	} {
		if f.v < 0 {
			return fmt.Errorf("%s (%s) must not be negative", f.flag, duration(f.v))
		}
	}
	switch o.Policy.Apply {
	case "", cascade.ApplyLikeTFE, cascade.ApplyAlways, cascade.ApplyNever:
	default:
		return fmt.Errorf("--apply-policy must be workspace, always or never, not %q", o.Policy.Apply)
	}
	switch o.Policy.RunWhen {
	case "", cascade.RunWhenChanges, cascade.RunWhenOutputs, cascade.RunWhenAlways:
	default:
		return fmt.Errorf("--run-when must be changes, outputs or always, not %q", o.Policy.RunWhen)
	}
	d := o
	def := func(v, fallback time.Duration) time.Duration {
		if v == 0 {
			return fallback
		}
		return v
	}
	ackWait, stateTTL := def(d.AckWait, 30*time.Second), def(d.StateTTL, 7*24*time.Hour)
	rootMaxAge, leaseTTL := def(d.RootMaxAge, 24*time.Hour), def(d.LeaseTTL, 30*time.Second)
	maxDeliver := d.MaxDeliver
	if maxDeliver == 0 {
		maxDeliver = 10
	}
	switch {
	case d.AuditRetention != 0 && d.AuditRetention < time.Hour:
		return fmt.Errorf("--audit-retention (%s) must be at least 1h", duration(d.AuditRetention))
	case ackWait < 100*time.Millisecond:
		return fmt.Errorf("--ack-wait (%s) must be at least 100ms", duration(ackWait))
	case leaseTTL < time.Second:
		return fmt.Errorf("--lease-ttl (%s) must be at least 1s", duration(leaseTTL))
	case stateTTL <= ackWait:
		// A redelivered event finds the cascade it belongs to only while
		// the state is kept.
		return fmt.Errorf("--state-ttl (%s) must be longer than --ack-wait (%s)", duration(stateTTL), duration(ackWait))
	case stateTTL <= time.Duration(maxDeliver)*ackWait:
		return fmt.Errorf("--state-ttl (%s) must outlast every delivery of an event (--max-event-deliveries %d × --ack-wait %s)", duration(stateTTL), maxDeliver, duration(ackWait))
	case stateTTL <= rootMaxAge:
		// A replayed root is refused for its age, or recognised as handled.
		return fmt.Errorf("--state-ttl (%s) must be longer than --root-max-age (%s): a replayed webhook must find its root handled", duration(stateTTL), duration(rootMaxAge))
	}
	return o.Validate()
}

func (c *Config) validateWatchdog() error {
	w := c.Watchdog
	switch {
	case w.Interval < 0:
		return fmt.Errorf("--watchdog-interval (%s) must not be negative", duration(w.Interval))
	case w.LeaseTTL < 0 || (w.LeaseTTL > 0 && w.LeaseTTL < time.Second):
		return fmt.Errorf("--watchdog-lease-ttl (%s) must be at least 1s", duration(w.LeaseTTL))
	}
	switch w.Scan {
	case "", watchdog.ScanAdmin:
	case watchdog.ScanWorkspaces:
		if len(w.Organizations) == 0 && !c.DisableWatchdog {
			return errors.New("--watchdog-scan workspaces needs --watchdog-organization")
		}
	default:
		return fmt.Errorf("--watchdog-scan must be admin or workspaces, not %q", w.Scan)
	}
	for _, org := range w.Organizations {
		if !plainName(org, 128) {
			return fmt.Errorf("--watchdog-organization %q is not a TFE organization name (letters, digits, - and _)", org)
		}
	}
	for _, b := range []struct {
		group string
		v     time.Duration
	}{
		{"queued", w.Budgets.Queued}, {"planning", w.Budgets.Planning}, {"applying", w.Budgets.Applying}, {"awaiting", w.Budgets.Awaiting},
	} {
		if b.v < 0 {
			return fmt.Errorf("--watchdog-budget %s=%s must be positive", b.group, duration(b.v))
		}
	}
	return nil
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

// plainName reports whether s is 1 to max letters, digits, - and _.
func plainName(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// duration formats d as a flag would be written: 168h, not 168h0m0s.
func duration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
