// Package simtest serves the TFE simulator to tests: a tfesim.Sim behind a
// real HTTP server, its lifecycle running, and an unmodified go-tfe client
// talking to it over HTTP. Everything Start starts ends with the test: the
// lifecycle stops and the server closes before the test's earlier cleanups
// run. It is imported by tests only.
package simtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// Token is the site-admin token of a simulator whose Options name none.
const Token = "sim-token"

// Server is a simulator served over HTTP for one test.
type Server struct {
	Sim *tfesim.Sim
	// URL is the server's base URL, the address go-tfe is given.
	URL string
	// Client is a go-tfe client with the site-admin token.
	Client *tfe.Client
	// Clock is the simulator's clock when the test gave it a ManualClock,
	// nil on the wall clock.
	Clock *tfesim.ManualClock
}

// Options are how StartWith serves the simulator, beyond tfesim.Options.
type Options struct {
	// Wrap, when set, stands in front of the simulator's handler: a fault,
	// a counter, a proxy's behaviour.
	Wrap func(http.Handler) http.Handler
	// KeepRateLimit keeps the simulator's rate limit as Options.RateLimit
	// says (zero: TFE's 30 a second). Otherwise a zero RateLimit means none:
	// a test that is not about the rate limit should not wait on it.
	KeepRateLimit bool
}

// Start builds a simulator from opts, serves it on a real HTTP server and
// runs its lifecycle until the test ends. Where opts leaves them zero, the
// token is Token, the rate limit is off (see Options.KeepRateLimit) and
// every phase of a run is instant (Timing{}; a workspace's Behavior may
// still time its runs).
func Start(t testing.TB, opts tfesim.Options) *Server {
	t.Helper()
	return StartWith(t, opts, Options{})
}

// StartWith is Start served as o says.
func StartWith(t testing.TB, opts tfesim.Options, o Options) *Server {
	t.Helper()
	if opts.Token == "" {
		opts.Token = Token
	}
	if opts.RateLimit == 0 && !o.KeepRateLimit {
		opts.RateLimit = -1
	}
	if opts.Timing == nil {
		opts.Timing = &tfesim.Timing{}
	}
	sim, err := tfesim.New(opts)
	if err != nil {
		t.Fatalf("new simulator: %v", err)
	}
	var h http.Handler = sim.Handler()
	if o.Wrap != nil {
		h = o.Wrap(h)
	}
	srv := httptest.NewServer(h)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sim.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
	})
	s := &Server{Sim: sim, URL: srv.URL}
	s.Clock, _ = opts.Clock.(*tfesim.ManualClock)
	s.Client = s.NewClient(t, opts.Token)
	return s
}

// NewClient returns a go-tfe client of the server for token (a user's, or
// one the simulator refuses), with a timeout generous enough for a loaded
// machine.
func (s *Server) NewClient(t testing.TB, token string) *tfe.Client {
	t.Helper()
	c, err := tfe.NewClient(&tfe.Config{Address: s.URL, Token: token, HTTPClient: &http.Client{Timeout: 30 * time.Second}})
	if err != nil {
		t.Fatalf("new go-tfe client: %v", err)
	}
	return c
}
