package tfeclient_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"
	"github.com/prometheus/client_golang/prometheus"

	tu "github.com/tfe-orchestrator/orchestrator/internal/testutil"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim/simtest"
)

// startSim serves a simulator with the given rate limit (0: TFE's 30,
// negative: none) until the test ends; wrap, when set, stands in front of
// it.
func startSim(t *testing.T, rateLimit int, wrap func(http.Handler) http.Handler) (*tfesim.Sim, string) {
	t.Helper()
	srv := simtest.StartWith(t, tfesim.Options{RateLimit: rateLimit}, simtest.Options{Wrap: wrap, KeepRateLimit: true})
	return srv.Sim, srv.URL
}

func client(t *testing.T, url string, o tfeclient.Options) *tfe.Client {
	t.Helper()
	c, err := tfeclient.NewClient(tfe.Config{Address: url, Token: "sim-token", RetryServerErrors: true,
		HTTPClient: &http.Client{Timeout: 30 * time.Second}}, o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func apiRequests(sim *tfesim.Sim) int {
	n := 0
	for route, c := range sim.Stats().Requests {
		if !strings.Contains(route, "ping") {
			n += c
		}
	}
	return n
}

// A request whose turn comes after its deadline is not sent: TFE sees
// nothing, and the caller gets an error that is ErrNotSent through go-tfe,
// classified NotSent; it took no turn, so the next request goes in it.
func TestRequestPastItsDeadlineIsNotSent(t *testing.T) {
	sim, url := startSim(t, -1, nil)
	l := tfeclient.NewLimiter(tfeclient.LimiterOptions{Limit: 2}) // a turn every 500ms; /ping took the first
	c := client(t, url, tfeclient.Options{Limiter: l})
	sim.ResetStats()

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	rctx, status := tfeclient.Record(ctx)
	_, err := c.Users.ReadCurrent(rctx)
	if !errors.Is(err, tfeclient.ErrNotSent) {
		t.Fatalf("a request due after its deadline: %v, want ErrNotSent", err)
	}
	if got := tfeclient.Classify(err, status); got != tfeclient.NotSent {
		t.Fatalf("classified %v, want NotSent", got)
	}
	if n := apiRequests(sim); n != 0 {
		t.Fatalf("TFE saw %d requests, want none: %v", n, sim.Stats().Requests)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Users.ReadCurrent(ctx); err != nil {
		t.Fatalf("a request with time for its turn: %v", err)
	}
	if n := apiRequests(sim); n != 1 {
		t.Fatalf("TFE saw %d requests, want 1", n)
	}
}

// A request whose caller gives up while it waits is not sent either; go-tfe
// then returns the context's error, and the recorded status still says
// NotSent.
func TestRequestGivenUpWhileWaitingIsNotSent(t *testing.T) {
	sim, url := startSim(t, -1, nil)
	clock := newFakeClockNow()
	l := tfeclient.NewLimiter(tfeclient.LimiterOptions{Limit: 1, Clock: clock}) // /ping took the only turn
	c := client(t, url, tfeclient.Options{Limiter: l})
	sim.ResetStats()

	ctx, cancel := context.WithCancel(context.Background())
	rctx, status := tfeclient.Record(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := c.Users.ReadCurrent(rctx)
		done <- err
	}()
	tu.WaitFor(t, "the request to wait for its turn", 10*time.Second, func() bool { return clock.Sleeping() == 1 })
	cancel()
	err := <-done
	if err == nil {
		t.Fatal("a request whose caller gave up succeeded")
	}
	if got := tfeclient.Classify(err, status); got != tfeclient.NotSent {
		t.Fatalf("%v classified %v, want NotSent", err, got)
	}
	if n := apiRequests(sim); n != 0 {
		t.Fatalf("TFE saw %d requests, want none", n)
	}
}

// failFirst answers the first n API requests 503 and counts them all.
func failFirst(n int64, seen *atomic.Int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/ping") {
				next.ServeHTTP(w, r)
				return
			}
			if seen.Add(1) <= n {
				http.Error(w, `{"errors":[{"status":"503","title":"service unavailable"}]}`, http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// Server errors are retried by the transport, as go-tfe would; a retry the
// limiter cannot send in time leaves the 5xx as the answer (the request
// was sent: what it did is unknown), never ErrNotSent.
func TestServerErrorsAreRetriedInTheirTurn(t *testing.T) {
	var seen atomic.Int64
	_, url := startSim(t, -1, failFirst(2, &seen))
	c := client(t, url, tfeclient.Options{Limiter: tfeclient.NewLimiter(tfeclient.LimiterOptions{Limit: 100})})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Users.ReadCurrent(ctx); err != nil {
		t.Fatalf("after two 503s: %v", err)
	}
	if n := seen.Load(); n != 3 {
		t.Fatalf("TFE saw %d requests, want 3", n)
	}

	seen.Store(0)
	_, url = startSim(t, -1, failFirst(1, &seen))
	c = client(t, url, tfeclient.Options{Limiter: tfeclient.NewLimiter(tfeclient.LimiterOptions{Limit: 100})})
	ctx, cancel = context.WithTimeout(context.Background(), 500*time.Millisecond) // a retry waits 0.7s at least
	defer cancel()
	rctx, status := tfeclient.Record(ctx)
	_, err := c.Users.ReadCurrent(rctx)
	switch {
	case err == nil:
		t.Fatal("a request answered 503 with no time to retry succeeded")
	case errors.Is(err, tfeclient.ErrNotSent):
		t.Fatalf("a request that was sent: %v, want not ErrNotSent", err)
	}
	if got := tfeclient.Classify(err, status); got != tfeclient.Transient || status.Code() != http.StatusServiceUnavailable {
		t.Fatalf("%v classified %v with status %d, want Transient after a 503", err, got, status.Code())
	}
	if n := seen.Load(); n != 1 {
		t.Fatalf("TFE saw %d requests, want 1", n)
	}
}

// Without a configured limit the deployment's is 0.9 × what TFE advertises
// at /ping.
func TestLimitFromPing(t *testing.T) {
	_, url := startSim(t, 50, nil)
	l := tfeclient.NewLimiter(tfeclient.LimiterOptions{})
	client(t, url, tfeclient.Options{Limiter: l})
	if got := l.Limit(); got != 45 {
		t.Fatalf("limit %v, want 0.9 × 50 = 45", got)
	}
}

// Every request sent is counted by endpoint and status, retries and /ping
// included, and every 401 or 403 is reported with its endpoint; a request
// the limiter kept back is neither.
func TestRequestsAreCountedAndRefusalsReported(t *testing.T) {
	var seen atomic.Int64
	_, url := startSim(t, -1, failFirst(1, &seen))
	reg := prometheus.NewRegistry()
	var mu sync.Mutex
	var refused []string
	c := client(t, url, tfeclient.Options{Registerer: reg, Refused: func(endpoint string, code int) {
		mu.Lock()
		defer mu.Unlock()
		refused = append(refused, fmt.Sprintf("%d %s", code, endpoint))
	}})
	ctx := context.Background()
	if _, err := c.Users.ReadCurrent(ctx); err != nil { // 503, then 200
		t.Fatal(err)
	}
	bad, err := tfeclient.NewClient(tfe.Config{Address: url, Token: "wrong", HTTPClient: &http.Client{Timeout: 30 * time.Second}},
		tfeclient.Options{Registerer: prometheus.NewRegistry(), Refused: func(endpoint string, code int) {
			mu.Lock()
			defer mu.Unlock()
			refused = append(refused, fmt.Sprintf("%d %s", code, endpoint))
		}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Runs.Read(ctx, "run-0123456789abcdef"); err == nil {
		t.Fatal("a wrong token was accepted")
	}
	mu.Lock()
	got := strings.Join(refused, ", ")
	mu.Unlock()
	if got != "401 GET /api/v2/runs/:id" {
		t.Errorf("refusals reported: %q, want one 401 of GET /api/v2/runs/:id", got)
	}

	counts := map[string]float64{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "orchestrator_tfe_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			counts[labels["code"]+" "+labels["endpoint"]] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{"204 GET /api/v2/ping": 1, "503 GET /api/v2/account/details": 1, "200 GET /api/v2/account/details": 1}
	if len(counts) != len(want) {
		t.Errorf("counted %v, want %v", counts, want)
	}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("counted %v, want %v", counts, want)
			break
		}
	}
}
