// Package app is the orchestrator daemon as a value: configuration in, a
// Run that serves until its context ends, so tests start the whole daemon
// in-process exactly as `orchestrator serve` does.
//
// Run guarantees an orderly shutdown: it stops taking webhooks, lets
// in-flight requests finish their publishes, drains the NATS connection,
// then stops the embedded NATS server, all within ShutdownTimeout.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	tfe "github.com/hashicorp/go-tfe"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
	"github.com/tfe-orchestrator/orchestrator/internal/api"
	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/natsembed"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
	"github.com/tfe-orchestrator/orchestrator/internal/tfegraph"
	"github.com/tfe-orchestrator/orchestrator/internal/watchdog"
	"github.com/tfe-orchestrator/orchestrator/internal/web"
)

// App is the daemon.
type App struct {
	cfg      Config
	log      *zap.Logger
	registry *prometheus.Registry

	ready    chan struct{}
	mu       sync.Mutex
	httpAddr string
	natsURL  string
	tfeAuth  *tfeAuth          // set before Ready when a TFE token is given
	embedded *natsembed.Server // while Run runs, when NATS is embedded
	dirLock  *dirLock          // held with embedded
	engine   *dispatcher.Dispatcher
}

// Cascades is the cascade engine's read model (Snapshot, List, Watch...),
// once Ready; nil when the daemon only ingests. Its controls are the
// operator API's.
func (a *App) Cascades() *dispatcher.Reads {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.engine == nil {
		return nil
	}
	return a.engine.Reads()
}

// New checks the configuration and returns the daemon, not yet running.
func New(cfg Config, log *zap.Logger) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &App{cfg: cfg.withDefaults(), log: log, registry: prometheus.NewRegistry(), ready: make(chan struct{})}
	a.registerBuildInfo()
	return a, nil
}

// Ready is closed once the daemon serves HTTP.
func (a *App) Ready() <-chan struct{} { return a.ready }

// HTTPAddr is the address the HTTP server listens on, once Ready.
func (a *App) HTTPAddr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.httpAddr
}

// NATSURL is the URL of the embedded server's listener, once Ready; empty
// when the daemon uses an outside NATS or the listener is off.
func (a *App) NATSURL() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.natsURL
}

// Run starts the daemon and serves until ctx ends or a part fails.
func (a *App) Run(ctx context.Context) error {
	a.logStart()
	if a.cfg.Webhook.SkipSignature {
		a.log.Warn("webhook signatures are not checked (--insecure-skip-signature): whoever reaches the http port can start cascades; never in production",
			zap.String("http", a.cfg.HTTPListen))
	}
	if n := len(a.cfg.Webhook.Tokens); n > 0 {
		a.log.Warn("webhook tokens not bound to an organization (--webhook-token) sign events of every organization: "+
			"one organization's token can start cascades in another; bind each with --webhook-org-token ORG=TOKEN",
			zap.Int("tokens", n))
	}
	if a.cfg.Dispatcher.Policy.RunUnchanged {
		a.log.Warn("--run-unchanged is deprecated: it runs as --run-when always, which replaces it",
			zap.String("run_when", string(a.cfg.Dispatcher.Policy.WithDefaults().RunWhen)))
	}
	var embedded *natsembed.Server
	if a.cfg.NATS.URL == "" {
		var err error
		if embedded, err = a.startEmbedded(); err != nil {
			return err
		}
		defer func() {
			a.mu.Lock()
			a.embedded = nil
			lock := a.dirLock
			a.mu.Unlock()
			embedded.Shutdown()
			lock.release() // after the store is flushed
		}()
	}

	nc, err := a.connect(embedded)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	setupCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	stream, err := events.EnsureStream(setupCtx, js, a.cfg.Stream)
	cancel()
	if err != nil {
		return err
	}
	streamName := stream.CachedInfo().Config.Name

	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "orchestrator_jetstream_connected",
		Help: "1 while the NATS connection is up, 0 otherwise.",
	}, func() float64 {
		if nc.IsConnected() {
			return 1
		}
		return 0
	}))
	// The alert pipeline comes first: every part is given it when built.
	notifier := a.alertPipeline(nc)
	metrics := events.NewMetrics(a.registry)
	webhookOpts, err := a.cfg.webhookOptions()
	if err != nil {
		return err
	}
	webhookOpts.Alerts = notifier
	webhook, err := events.NewWebhook(webhookOpts, events.NewPublisher(js, streamName), metrics, a.log.Named("webhook"))
	if err != nil {
		return err
	}
	var disp *dispatcher.Dispatcher
	var dog *watchdog.Watchdog
	var client *tfe.Client
	var budget *tfeclient.JetStreamShared
	if a.cfg.TFE.Token != "" {
		a.tfeAuth = newTFEAuth(a.log.Named("tfe"), notifier, a.registry)
		if client, budget, err = a.tfeClient(ctx, js); err != nil {
			return err
		}
		// Checked now, so that a wrong token shows at once in /readyz, the
		// metric and an alert, not as runs that never come.
		a.tfeAuth.check(ctx, client.Users)
		if disp, err = a.newDispatcher(ctx, client, js, notifier); err != nil {
			return err
		}
		if dog, err = a.newWatchdog(ctx, client, js, notifier); err != nil {
			return err
		}
	} else {
		a.log.Warn("no TFE token: ingesting events only, no cascades are dispatched")
	}

	mux := http.NewServeMux()
	mux.Handle("/webhooks/tfe", webhook)
	mux.HandleFunc("GET /favicon.ico", favicon)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	ready := a.readiness(nc, js, streamName)
	mux.HandleFunc("GET /readyz", readyz(ready))
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{Registry: a.registry}))
	if err := a.mountAPI(mux, disp, ready, ctx.Done()); err != nil {
		return err
	}
	mux.Handle("/", webhook.NotFound())

	ln, err := net.Listen("tcp", a.cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", a.cfg.HTTPListen, err)
	}
	srv := &http.Server{
		Handler: mux,
		// Headers are small (TFE's, a probe's, a scrape's): 64 KiB instead of
		// net/http's 1 MiB, sent within 10s. The webhook bounds the time of
		// its body itself (--webhook-read-timeout); ReadTimeout backs it.
		MaxHeaderBytes:    64 << 10,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// An answer waits at most for a publish (5s) after the body.
		WriteTimeout: time.Minute,
		// A keep-alive connection nobody uses is closed: idle connections
		// cost a file descriptor and memory each, and anyone can open them.
		IdleTimeout: a.cfg.HTTPIdleTimeout,
	}
	a.mu.Lock()
	a.httpAddr = ln.Addr().String()
	a.engine = disp
	a.mu.Unlock()
	a.log.Info("serving", zap.String("http", ln.Addr().String()), zap.String("stream", streamName))
	close(a.ready)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return notifier.Run(gctx) })
	if client != nil {
		g.Go(func() error { return a.tfeAuth.run(gctx, client.Users, a.cfg.TFE.CheckInterval) })
		g.Go(func() error { return budget.Run(gctx) })
	}
	if disp != nil {
		g.Go(func() error { return disp.Run(gctx) })
	}
	if dog != nil {
		g.Go(func() error { return dog.Run(gctx) })
	}
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		return a.shutdown(srv, nc)
	})
	return g.Wait()
}

// mountAPI serves the operator API under /api/ and its web page under
// /ui/ (GET / leads there) when it has tokens; without any both answer
// that they are off.
func (a *App) mountAPI(mux *http.ServeMux, disp *dispatcher.Dispatcher, ready func(context.Context) string, stop <-chan struct{}) error {
	tokens, err := a.cfg.API.tokens()
	if err != nil {
		return err
	}
	page := web.Handler(len(tokens) > 0) // the page only where the API is on
	mux.Handle(web.Path, page)
	mux.Handle("GET /{$}", page)
	if len(tokens) == 0 {
		mux.HandleFunc("/api/", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error": "the operator API is off: start serve with --api-read-token or --api-operate-token"}` + "\n"))
		})
		return nil
	}
	srv, err := api.New(api.Options{Tokens: tokens, Stop: stop, Ready: ready, Log: a.log.Named("api"), Registerer: a.registry,
		MaxStreams: a.cfg.API.MaxStreams, MaxStreamsPerToken: a.cfg.API.MaxStreamsPerToken, PublicURL: a.cfg.PublicURL,
		Reads: func() api.Reads {
			if disp == nil {
				return nil
			}
			return disp.Reads()
		},
		Operations: func() api.Operations {
			if disp == nil {
				return nil
			}
			return disp.Controls()
		}})
	if err != nil {
		return err
	}
	mux.Handle("/api/", srv)
	return nil
}

// SeedFileName is the file in the data directory that holds the NKey user
// seed of the embedded NATS server: the credentials of the daemon and of
// the operator's nats CLI (--nkey).
const SeedFileName = "nats-user.nk"

// startEmbedded starts the embedded NATS server, with its store and the
// seed of its one user in the data directory, both readable by the owner
// only; the seed is made on the first start and kept.
func (a *App) startEmbedded() (*natsembed.Server, error) {
	store := filepath.Join(a.cfg.DataDir, "nats")
	if err := os.MkdirAll(store, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	lock, err := lockDataDir(a.cfg.DataDir)
	if err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			lock.release()
		}
	}()
	seedPath := filepath.Join(a.cfg.DataDir, SeedFileName)
	seed, created, err := natsembed.LoadOrCreateSeed(seedPath)
	if err != nil {
		return nil, err
	}
	if created {
		a.log.Info("embedded NATS user seed created", zap.String("file", seedPath))
	}
	embedded, err := natsembed.Start(natsembed.Options{StoreDir: store, Listen: a.cfg.NATS.EmbeddedListen, Seed: seed, Logger: a.log.Named("nats-server")})
	if err != nil {
		if a.cfg.NATS.EmbeddedListen != "off" {
			return nil, fmt.Errorf("%w (--embedded-nats-listen %s)", err, a.cfg.NATS.EmbeddedListen)
		}
		return nil, err
	}
	started = true
	a.mu.Lock()
	a.embedded = embedded
	a.dirLock = lock
	a.natsURL = embedded.ClientURL()
	a.mu.Unlock()
	a.log.Info("embedded NATS started", zap.String("store", store), zap.String("url", embedded.ClientURL()),
		zap.String("nkey_seed_file", seedPath))
	return embedded, nil
}

// ConnectNATS opens a connection of the caller's own to the NATS the
// daemon uses, with the daemon's credentials: in the process for the
// embedded server, with the configured authentication for --nats-url. It
// works once Ready and while Run runs.
func (a *App) ConnectNATS(opts ...nats.Option) (*nats.Conn, error) {
	a.mu.Lock()
	embedded := a.embedded
	a.mu.Unlock()
	if embedded != nil {
		return embedded.Connect(opts...)
	}
	if a.cfg.NATS.URL == "" {
		return nil, errors.New("connect to NATS: the daemon is not running")
	}
	auth, err := a.natsAuth()
	if err != nil {
		return nil, err
	}
	return nats.Connect(a.cfg.NATS.URL, append(auth, opts...)...)
}

// natsAuth are the options that authenticate to the NATS of --nats-url.
func (a *App) natsAuth() ([]nats.Option, error) {
	c := a.cfg.NATS
	var opts []nats.Option
	if c.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	if c.NKeyFile != "" {
		opt, err := nats.NkeyOptionFromSeed(c.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("read --nats-nkey: %w", err)
		}
		opts = append(opts, opt)
	}
	if c.TLSCA != "" {
		opts = append(opts, nats.RootCAs(c.TLSCA))
	}
	if c.TLSCert != "" {
		opts = append(opts, nats.ClientCert(c.TLSCert, c.TLSKey))
	}
	if c.User != "" {
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.Token != "" {
		opts = append(opts, nats.Token(c.Token))
	}
	return opts, nil
}

// alertPipeline sends alerts to the log, NATS and the configured sinks.
func (a *App) alertPipeline(nc *nats.Conn) *alerts.Pipeline {
	var sinks []alerts.Sink
	client := &http.Client{Timeout: 10 * time.Second}
	if u := a.cfg.Alerts.WebhookURL; u != "" {
		sinks = append(sinks, &alerts.Webhook{URL: u, Client: client})
	}
	if u := a.cfg.Alerts.SlackURL; u != "" {
		sinks = append(sinks, &alerts.Slack{URL: u, Client: client})
	}
	basic := &alerts.Basic{Log: a.log.Named("alerts"), Conn: nc}
	return alerts.NewPipeline(alerts.PipelineOptions{Window: a.cfg.Alerts.Window, PublicURL: a.cfg.PublicURL}, basic, sinks, a.registry)
}

// newWatchdog sets the watchdog up where the admin API is there to serve it.
func (a *App) newWatchdog(ctx context.Context, client *tfe.Client, js jetstream.JetStream, notifier alerts.Notifier) (*watchdog.Watchdog, error) {
	opts := a.cfg.Watchdog
	opts.DryRun = opts.DryRun || a.cfg.Dispatcher.DryRun
	if opts.Address == "" {
		opts.Address = strings.TrimRight(a.cfg.TFE.Address, "/") // run links in its alerts
	}
	if opts.Replicas == 0 {
		opts.Replicas = a.cfg.Stream.Replicas // its buckets are replicated as the stream
	}
	if opts.Stream == "" {
		opts.Stream = a.cfg.Stream.Name
		if opts.Stream == "" {
			opts.Stream = events.DefaultStreamName
		}
	}
	switch {
	case a.cfg.DisableWatchdog:
		return nil, nil
	case opts.Scan != watchdog.ScanWorkspaces && !client.IsEnterprise() && len(opts.Organizations) > 0:
		a.log.Info("no admin API on this TFE (HCP Terraform?): the watchdog reads each workspace's current run")
		opts.Scan = watchdog.ScanWorkspaces
	case opts.Scan != watchdog.ScanWorkspaces && !client.IsEnterprise():
		a.log.Warn("no admin API on this TFE (HCP Terraform?) and no --watchdog-organization: the stuck-run watchdog is off")
		return nil, nil
	}
	api := tfeclient.New(client)
	return watchdog.New(ctx, opts, watchdog.Deps{
		JetStream: js, AdminRuns: api, Runs: api, Workspaces: api, Alerts: notifier,
		Log: a.log.Named("watchdog"), Registerer: a.registry,
	})
}

// tfeClient connects to TFE: one go-tfe client for the process, so that
// every request of the process (engine, graph reads, watchdog) waits for
// its turn in this replica's share of the deployment's rate limit, which
// the replicas share through the KV bucket tfe-budget; and one transport,
// tfeclient's, where every request sent to TFE is counted and every
// refusal of the token seen.
func (a *App) tfeClient(ctx context.Context, js jetstream.JetStream) (*tfe.Client, *tfeclient.JetStreamShared, error) {
	// The watch made here lives with ctx: JetStream's own timeout (5s)
	// bounds each call.
	budget, err := tfeclient.JoinJetStream(ctx, js, tfeclient.JetStreamOptions{
		Replicas: max(1, a.cfg.Stream.Replicas), Log: a.log.Named("tfe"),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("share the TFE rate limit: %w", err)
	}
	limiter := tfeclient.NewLimiter(tfeclient.LimiterOptions{Limit: a.cfg.TFE.RateLimit, Shared: budget, Registerer: a.registry})
	client, err := tfeclient.NewClient(tfe.Config{Address: a.cfg.TFE.Address, Token: a.cfg.TFE.Token, RetryServerErrors: true,
		HTTPClient: &http.Client{Timeout: 60 * time.Second}},
		tfeclient.Options{Next: http.DefaultTransport, Limiter: limiter, Registerer: a.registry, Refused: a.tfeAuth.refused})
	if err != nil {
		return nil, nil, fmt.Errorf("connect to TFE at %s: %w", a.cfg.TFE.Address, err)
	}
	a.log.Info("tfe rate limit", zap.Float64("deployment", limiter.Limit()), zap.Int("replicas", limiter.Replicas()),
		zap.Float64("this_replica", limiter.Share()), zap.Bool("configured", a.cfg.TFE.RateLimit > 0))
	return client, budget, nil
}

// newDispatcher sets the dispatcher up.
func (a *App) newDispatcher(ctx context.Context, client *tfe.Client, js jetstream.JetStream, notifier alerts.Notifier) (*dispatcher.Dispatcher, error) {
	api := tfeclient.New(client)
	var tools dispatcher.ToolVersions
	if client.IsEnterprise() {
		tools = api
	}
	opts := a.cfg.dispatcherOptions()
	// Replicas share the run triggers they read, for the cache's TTL.
	shared, err := dispatcher.NewGraphShare(ctx, js, "run-triggers", a.cfg.GraphCacheTTL, opts.Replicas, a.log.Named("graph"))
	if err != nil {
		return nil, err
	}
	return dispatcher.New(ctx, opts, dispatcher.Deps{
		JetStream: js, Runs: api, Workspaces: api, ToolVersions: tools, Users: api,
		Organizations: api, StateVersions: api,
		Planner: tfegraph.NewCache(api, a.cfg.GraphCacheTTL, nil).WithShared(shared),
		Alerts:  notifier, Log: a.log.Named("dispatcher"), Metrics: dispatcher.NewMetrics(a.registry),
	})
}

// shutdown stops taking requests, waits for in-flight ones (and so their
// publishes), then drains the NATS connection.
func (a *App) shutdown(srv *http.Server, nc *nats.Conn) error {
	a.log.Info("shutting down")
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	httpErr := srv.Shutdown(ctx)
	if nc.IsClosed() {
		return httpErr
	}
	closed := make(chan struct{})
	closedLog := nc.Opts.ClosedCB
	nc.SetClosedHandler(func(c *nats.Conn) {
		if closedLog != nil {
			closedLog(c)
		}
		close(closed)
	})
	if err := nc.Drain(); err != nil {
		// Not connected: nothing is in flight to drain.
		a.log.Warn("nats not drained", zap.Error(err))
		nc.Close()
	}
	select {
	case <-closed:
	case <-ctx.Done():
		return errors.Join(httpErr, errors.New("NATS drain did not finish in time"))
	}
	if httpErr != nil {
		return fmt.Errorf("http shutdown: %w", httpErr)
	}
	return nil
}

func (a *App) connect(embedded *natsembed.Server) (*nats.Conn, error) {
	log := a.log.Named("nats")
	opts := []nats.Option{
		nats.Name("tfe-orchestrator"),
		nats.MaxReconnects(-1),
		// What goes wrong on the connection after it is up is logged, once,
		// here: slow consumers, permission violations, lost connections.
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			fields := []zap.Field{zap.Error(err)}
			if sub != nil {
				fields = append(fields, zap.String("subject", sub.Subject))
			}
			log.Error("nats error", fields...)
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", zap.Error(err))
			} else {
				log.Info("nats disconnected")
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", zap.String("url", c.ConnectedUrlRedacted())) }),
		nats.ClosedHandler(func(c *nats.Conn) {
			if err := c.LastError(); err != nil {
				log.Warn("nats connection closed", zap.Error(err))
			} else {
				log.Info("nats connection closed")
			}
		}),
	}
	if embedded != nil {
		nc, err := embedded.Connect(opts...)
		if err != nil {
			return nil, fmt.Errorf("connect to embedded NATS: %w", err)
		}
		return nc, nil
	}
	auth, err := a.natsAuth()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(a.cfg.NATS.URL, append(opts, auth...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	log.Info("nats connected", zap.String("url", nc.ConnectedUrlRedacted()))
	return nc, nil
}

// readiness says what keeps the daemon from being ready ("" when it is):
// NATS not connected, the stream unavailable, TFE refusing the token.
func (a *App) readiness(nc *nats.Conn, js jetstream.JetStream, stream string) func(context.Context) string {
	return func(ctx context.Context) string {
		if !nc.IsConnected() {
			return "NATS not connected"
		}
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if _, err := js.Stream(ctx, stream); err != nil {
			return "stream " + stream + " unavailable"
		}
		if a.tfeAuth != nil {
			if problem := a.tfeAuth.Problem(); problem != "" {
				return problem
			}
		}
		return ""
	}
}

// readyz answers 200 while the daemon is ready, else 503 saying why.
func readyz(ready func(context.Context) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if problem := ready(r.Context()); problem != "" {
			http.Error(w, problem, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	}
}
