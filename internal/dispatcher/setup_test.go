package dispatcher_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/watchdog"
)

// A first install: three replicas start at once on a fresh three-node
// cluster, each connected to another node, and each sets the stream and
// every bucket up, three replicas each. All three start, within the
// daemon's setup deadline, and find the same stream and buckets.
func TestFirstInstallOfThreeReplicasConverges(t *testing.T) {
	servers := cluster(t)
	js := make([]jetstream.JetStream, len(servers))
	for i := range servers {
		js[i] = connect(t, servers, i)
	}
	start := make(chan struct{})
	errs := make([]error, len(servers))
	took := make([]time.Duration, len(servers))
	var wg sync.WaitGroup
	for i := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			began := time.Now()
			// The daemon's own deadline for setting the stream up.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			errs[i] = setup(ctx, js[i], i)
			took[i] = time.Since(began)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v (after %s)", i, err, took[i].Round(time.Millisecond))
		} else {
			t.Logf("replica %d set up in %s", i, took[i].Round(time.Millisecond))
		}
	}
	for _, name := range []string{events.DefaultStreamName, "KV_cascades", "KV_cascade-leases", "KV_cascade-controls", "KV_cascade-audit", "KV_watchdog", "KV_watchdog-claims"} {
		st, err := js[0].Stream(context.Background(), name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := st.CachedInfo().Config.Replicas; got != 3 {
			t.Errorf("%s: %d replicas, want 3", name, got)
		}
	}
}

// setup is what a replica does first: the stream, the engine's buckets and
// the watchdog's.
func setup(ctx context.Context, js jetstream.JetStream, i int) error {
	if _, err := events.EnsureStream(ctx, js, events.StreamOptions{Replicas: 3}); err != nil {
		return err
	}
	if _, err := dispatcher.New(ctx, dispatcher.Options{Replicas: 3}, dispatcher.Deps{JetStream: js}); err != nil {
		return err
	}
	if _, err := watchdog.New(ctx, watchdog.Options{Replicas: 3, Instance: fmt.Sprintf("w%d", i)}, watchdog.Deps{JetStream: js}); err != nil {
		return err
	}
	return nil
}
