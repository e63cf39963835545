package tfeclient_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	tu "github.com/tfe-orchestrator/orchestrator/internal/testutil"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
)

// replica is one replica's part of the budget: its place in the bucket,
// running until the test ends or it is stopped.
type replica struct {
	shared *tfeclient.JetStreamShared
	stop   func()
}

func joinReplicas(t *testing.T, js jetstream.JetStream, n int) []replica {
	t.Helper()
	var out []replica
	for range n {
		ctx, cancel := context.WithCancel(context.Background())
		s, err := tfeclient.JoinJetStream(ctx, js, tfeclient.JetStreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		var once sync.Once
		stop := func() {
			once.Do(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("replica %s: %v", s.ID(), err)
				}
			})
		}
		t.Cleanup(stop)
		out = append(out, replica{s, stop})
	}
	for _, r := range out {
		tu.WaitFor(t, "every replica to see the others", 10*time.Second, func() bool { return r.shared.Replicas() == n })
	}
	return out
}

// Three replicas on one token, each with its own limiter, take TFE's 30
// requests/s together: hammered at once they keep the 429s under 1% (each
// on its own would take 27/s, 81/s together). A replica that stops gives
// its share back to the others at once.
func TestReplicasShareTheLimit(t *testing.T) {
	js, _ := tu.JetStream(t)
	sim, url := startSim(t, 30, nil)
	replicas := joinReplicas(t, js, 3)
	var limiters []*tfeclient.Limiter
	var clients []func(context.Context) error
	for _, r := range replicas {
		l := tfeclient.NewLimiter(tfeclient.LimiterOptions{Shared: r.shared}) // 0.9 × the advertised 30
		c := client(t, url, tfeclient.Options{Limiter: l})
		limiters = append(limiters, l)
		clients = append(clients, func(ctx context.Context) error { _, err := c.Users.ReadCurrent(ctx); return err })
	}
	for _, l := range limiters {
		if got := l.Share(); got != 9 {
			t.Fatalf("share %v, want 27/3 = 9", got)
		}
	}
	sim.ResetStats()

	const perReplica = 100
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for _, call := range clients {
		var left atomic.Int64
		left.Store(perReplica)
		for range 4 { // several callers per replica
			wg.Add(1)
			go func() {
				defer wg.Done()
				for left.Add(-1) >= 0 {
					if err := call(ctx); err != nil {
						failed.Add(1)
						t.Errorf("request: %v", err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	st := sim.Stats()
	total := 0
	for route, n := range st.Requests {
		if !strings.Contains(route, "ping") {
			total += n
		}
	}
	t.Logf("%d requests in %s (%.1f/s), %d answered 429", total, time.Since(start).Round(time.Millisecond),
		float64(total)/time.Since(start).Seconds(), st.RateLimited)
	if failed.Load() > 0 {
		t.FailNow()
	}
	if st.RateLimited*100 > total {
		t.Errorf("%d of %d requests answered 429, want at most 1%%", st.RateLimited, total)
	}

	// Stopping removes the replica's key: the others see it gone well
	// before its heartbeat would expire.
	replicas[2].stop()
	for _, l := range limiters[:2] {
		tu.WaitFor(t, "the others to take the stopped replica's share", tfeclient.DefaultHeartbeat, func() bool { return l.Share() == 13.5 })
	}
}

// A 429 one replica gets holds every replica back for the wait TFE asked
// for: another's request due before it ends is not sent at all, and one
// with time to wait goes after it.
func TestA429BacksEveryReplicaOff(t *testing.T) {
	js, _ := tu.JetStream(t)
	replicas := joinReplicas(t, js, 3)
	// The first replica's TFE answers every API request 429, asking for 2s.
	_, limitedURL := startSim(t, -1, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/ping") {
				next.ServeHTTP(w, r)
				return
			}
			w.Header().Set("X-RateLimit-Reset", "2.000")
			http.Error(w, `{"errors":[{"status":"429","title":"Too many requests"}]}`, http.StatusTooManyRequests)
		})
	})
	sim, url := startSim(t, -1, nil)
	first := client(t, limitedURL, tfeclient.Options{Limiter: tfeclient.NewLimiter(tfeclient.LimiterOptions{Shared: replicas[0].shared})})
	second := client(t, url, tfeclient.Options{Limiter: tfeclient.NewLimiter(tfeclient.LimiterOptions{Shared: replicas[1].shared})})
	third := client(t, url, tfeclient.Options{Limiter: tfeclient.NewLimiter(tfeclient.LimiterOptions{Shared: replicas[2].shared})})
	sim.ResetStats()

	asked := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := first.Users.ReadCurrent(ctx); err == nil {
		t.Fatal("a request answered 429 succeeded")
	}
	until := asked.Add(1900 * time.Millisecond)
	for _, r := range replicas[1:] {
		tu.WaitFor(t, "the other replicas to learn of the back-off", 10*time.Second, func() bool { return r.shared.BackoffUntil().After(until) })
	}

	ctx, cancel = context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := second.Users.ReadCurrent(ctx); !errors.Is(err, tfeclient.ErrNotSent) {
		t.Fatalf("another replica's request due before the back-off ends: %v, want ErrNotSent", err)
	}
	if n := apiRequests(sim); n != 0 {
		t.Fatalf("TFE saw %d requests during the back-off, want none", n)
	}

	end := replicas[2].shared.BackoffUntil()
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := third.Users.ReadCurrent(ctx); err != nil {
		t.Fatalf("a request with time to wait out the back-off: %v", err)
	}
	if now := time.Now(); now.Before(end) {
		t.Fatalf("a request went %s before the back-off ended", end.Sub(now))
	}
	if n := apiRequests(sim); n != 1 {
		t.Fatalf("TFE saw %d requests, want 1", n)
	}
}

// A replica that stops without a word (its process killed) is counted
// until three heartbeats pass without one from it.
func TestASilentReplicaIsForgotten(t *testing.T) {
	js, _ := tu.JetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const hb = 200 * time.Millisecond
	s, err := tfeclient.JoinJetStream(ctx, js, tfeclient.JetStreamOptions{Heartbeat: hb})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	kv, err := js.KeyValue(ctx, tfeclient.DefaultBudgetBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "replica.killed", []byte("x")); err != nil {
		t.Fatal(err)
	}
	tu.WaitFor(t, "the other replica to be counted", 10*time.Second, func() bool { return s.Replicas() == 2 })
	seen := time.Now()
	tu.WaitFor(t, "the silent replica to be forgotten", 10*time.Second, func() bool { return s.Replicas() == 1 })
	if gone := time.Since(seen); gone < 2*hb {
		t.Errorf("a replica heard of %s ago was forgotten, want after 3 heartbeats (%s)", gone, 3*hb)
	}
}
