package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

func tfesimCommand() *command {
	return &command{
		name:    "tfesim",
		summary: "serve the TFE simulator (for local development, tests and the demo)",
		setup: func(fs *flagSet) func(*runEnv) error {
			var listen, scenario, address string
			var rateLimit int
			fs.stringVar(&listen, "listen", "TFESIM_LISTEN", "127.0.0.1:8081", "address to listen on")
			fs.stringVar(&scenario, "scenario", "TFESIM_SCENARIO", "", "scenario YAML file to load at start")
			fs.stringVar(&address, "address", "TFESIM_ADDRESS", "", "base URL clients reach the simulator at, used in notification run_url (default http://LISTEN)")
			fs.intVar(&rateLimit, "rate-limit", "TFESIM_RATE_LIMIT", 30, "API requests per second allowed per token; negative disables the limit")
			token := fs.secret("token", "TFESIM_TOKEN", "site-admin API token the simulator accepts (required)")
			return func(env *runEnv) error {
				tok, err := token()
				if err != nil {
					return err
				}
				if tok == "" {
					return usagef("--token (or $TFESIM_TOKEN, or --token-file) is required")
				}
				if rateLimit == 0 {
					return usagef("--rate-limit must not be 0; use a negative value to disable it")
				}
				if err := listenAddress(listen); err != nil {
					return usagef("--listen %q: %v", listen, err)
				}
				if address != "" {
					if err := httpURL(address); err != nil {
						return usagef("--address %q: %v", address, err)
					}
				}
				if scenario != "" {
					// Loaded into a simulator of its own first, so that a bad
					// scenario is a usage error before anything listens.
					probe, err := tfesim.New(tfesim.Options{Token: tok})
					if err != nil {
						return err
					}
					if err := probe.LoadScenarioFile(scenario); err != nil {
						return usagef("--scenario: %v", err)
					}
				}
				return serveSim(env, listen, address, scenario, tok, rateLimit)
			}
		},
	}
}

func serveSim(env *runEnv, listen, address, scenario, token string, rateLimit int) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if address == "" {
		address = "http://" + ln.Addr().String()
	}
	sim, err := tfesim.New(tfesim.Options{Token: token, RateLimit: rateLimit, Logger: env.log, Address: address})
	if err != nil {
		ln.Close()
		return err
	}
	if scenario != "" {
		if err := sim.LoadScenarioFile(scenario); err != nil {
			ln.Close()
			return err
		}
	}
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(env.stdout, "tfesim listening on %s\n", address)
	env.log.Info("tfesim serving", zap.String("address", address), zap.String("scenario", scenario))

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
