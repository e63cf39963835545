package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/tfe-orchestrator/orchestrator/internal/app"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// simConfig is what `orchestrator tfesim` runs with.
type simConfig struct {
	listen, address, scenario, token string
	rateLimit                        int
	timing                           tfesim.Timing
	// timingSet lists the phases the command line or environment set;
	// those win over a scenario's timing.
	timingSet map[string]bool
}

func tfesimCommand() *command {
	return &command{
		name:    "tfesim",
		summary: "serve the TFE simulator (for local development, tests and the demo)",
		setup: func(fs *flagSet) func(*runEnv) error {
			var cfg simConfig
			def := tfesim.DefaultTiming()
			fs.stringVar(&cfg.listen, "listen", "TFESIM_LISTEN", "127.0.0.1:8081", "address to listen on")
			fs.stringVar(&cfg.scenario, "scenario", "TFESIM_SCENARIO", "", "scenario YAML file to load at start")
			fs.stringVar(&cfg.address, "address", "TFESIM_ADDRESS", "", "base URL clients reach the simulator at, used in notification run_url (default http://LISTEN)")
			fs.intVar(&cfg.rateLimit, "rate-limit", "TFESIM_RATE_LIMIT", 30, "API requests per second allowed per token; negative disables the limit")
			fs.durationVar(&cfg.timing.Queue, "queue-duration", "TFESIM_QUEUE_DURATION", def.Queue, "time a run waits in plan_queued, and again in apply_queued; 0 is instant (overrides a scenario's timing)")
			fs.durationVar(&cfg.timing.Plan, "plan-duration", "TFESIM_PLAN_DURATION", def.Plan, "time a run plans where its workspace's behaviour sets none (overrides a scenario's timing)")
			fs.durationVar(&cfg.timing.Apply, "apply-duration", "TFESIM_APPLY_DURATION", def.Apply, "time a run applies where its workspace's behaviour sets none (overrides a scenario's timing)")
			fs.durationVar(&cfg.timing.StateProcessing, "state-processing-duration", "TFESIM_STATE_PROCESSING_DURATION", def.StateProcessing, "time after an apply before its state version's outputs are processed; current-state-version-outputs answers 503 until then (overrides a scenario's timing)")
			token := fs.secret("token", "TFESIM_TOKEN", "site-admin API token the simulator accepts (required)")
			return func(env *runEnv) error {
				tok, err := token()
				if err != nil {
					return err
				}
				if tok == "" {
					return usagef("--token (or $TFESIM_TOKEN, or --token-file) is required")
				}
				if cfg.rateLimit == 0 {
					return usagef("--rate-limit must not be 0; use a negative value to disable it")
				}
				if cfg.timing.Queue < 0 || cfg.timing.Plan < 0 || cfg.timing.Apply < 0 || cfg.timing.StateProcessing < 0 {
					return usagef("--queue-duration, --plan-duration, --apply-duration and --state-processing-duration must not be negative")
				}
				if err := listenAddress(cfg.listen); err != nil {
					return usagef("--listen %q: %v", cfg.listen, err)
				}
				if cfg.address != "" {
					if err := app.CheckHTTPURL(cfg.address); err != nil {
						return usagef("--address %q: %v", cfg.address, err)
					}
				}
				if cfg.scenario != "" {
					// Loaded into a simulator of its own first, so that a bad
					// scenario is a usage error before anything listens.
					probe, err := tfesim.New(tfesim.Options{Token: tok})
					if err != nil {
						return err
					}
					if err := probe.LoadScenarioFile(cfg.scenario); err != nil {
						return usagef("--scenario: %v", err)
					}
				}
				cfg.token = tok
				cfg.timingSet = map[string]bool{}
				fs.Visit(func(f *flag.Flag) { cfg.timingSet[f.Name] = true }) // flags set from the environment count too
				return serveSim(env, cfg)
			}
		},
	}
}

// Server timeouts. Reads are bounded like the daemon's; a write may take
// as long as the slowest handler: verifying a notification configuration
// waits up to 30s for the receiver, plus any injected latency.
const (
	simReadHeaderTimeout = 10 * time.Second
	simReadTimeout       = time.Minute // configuration uploads of up to 64 MiB
	simWriteTimeout      = 2 * time.Minute
	simIdleTimeout       = 2 * time.Minute
)

func newSimServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: simReadHeaderTimeout,
		ReadTimeout:       simReadTimeout,
		WriteTimeout:      simWriteTimeout,
		IdleTimeout:       simIdleTimeout,
	}
}

// applyTimingFlags gives the phases set on the command line or in the
// environment precedence over the scenario's timing; the others keep the
// scenario's, or the defaults.
func applyTimingFlags(sim *tfesim.Sim, cfg simConfig) error {
	t := sim.Timing()
	if cfg.timingSet["queue-duration"] {
		t.Queue = cfg.timing.Queue
	}
	if cfg.timingSet["plan-duration"] {
		t.Plan = cfg.timing.Plan
	}
	if cfg.timingSet["apply-duration"] {
		t.Apply = cfg.timing.Apply
	}
	if cfg.timingSet["state-processing-duration"] {
		t.StateProcessing = cfg.timing.StateProcessing
	}
	return sim.SetTiming(t)
}

func serveSim(env *runEnv, cfg simConfig) error {
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	address := cfg.address
	if address == "" {
		address = "http://" + ln.Addr().String()
	}
	sim, err := tfesim.New(tfesim.Options{Token: cfg.token, RateLimit: cfg.rateLimit, Logger: env.log, Address: address, Timing: &cfg.timing})
	if err != nil {
		ln.Close()
		return err
	}
	if cfg.scenario != "" {
		if err := sim.LoadScenarioFile(cfg.scenario); err != nil {
			ln.Close()
			return err
		}
	}
	if err := applyTimingFlags(sim, cfg); err != nil {
		ln.Close()
		return err
	}
	srv := newSimServer(sim.Handler())
	fmt.Fprintf(env.stdout, "tfesim listening on %s\n", address)
	t := sim.Timing()
	env.log.Info("tfesim serving", zap.String("address", address), zap.String("scenario", cfg.scenario),
		zap.Duration("queue", t.Queue), zap.Duration("plan", t.Plan), zap.Duration("apply", t.Apply),
		zap.Duration("state_processing", t.StateProcessing))

	g, ctx := errgroup.WithContext(env.ctx)
	g.Go(func() error { return sim.Run(ctx) })
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(shutdownCtx)
	})
	err = g.Wait()
	env.log.Info("tfesim stopped")
	return err
}
