package events_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
)

// Replicas setting the stream and a bucket up at once all succeed, and
// find them as asked for.
func TestEnsureConcurrently(t *testing.T) {
	js, _ := testutil.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const replicas = 8
	errs := make(chan error, 2*replicas)
	var wg sync.WaitGroup
	for range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := events.EnsureStream(ctx, js, events.StreamOptions{MaxAge: time.Hour})
			errs <- err
			_, err = events.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{Bucket: "state", TTL: time.Hour, History: 1})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s, err := js.Stream(ctx, events.DefaultStreamName)
	if err != nil || s.CachedInfo().Config.MaxAge != time.Hour {
		t.Fatalf("stream: %v", err)
	}
	if _, err := js.KeyValue(ctx, "state"); err != nil {
		t.Fatal(err)
	}
}

// An error no retry mends comes back at once, not at the deadline: here
// another stream holds the subjects.
func TestEnsureGivesUpAtOnceOnAConflict(t *testing.T) {
	js, _ := testutil.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OTHER", Subjects: []string{events.SubjectPrefix + ".>"}}); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	_, err := events.EnsureStream(ctx, js, events.StreamOptions{})
	if err == nil {
		t.Fatal("a stream over another's subjects was set up")
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("gave up after %s (%v)", took, err)
	}
}

// A consumer of a single server has its leader at once.
func TestConsumerReadyOnOneServer(t *testing.T) {
	js, _ := testutil.JetStream(t)
	ctx := context.Background()
	if _, err := events.EnsureStream(ctx, js, events.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, events.DefaultStreamName, jetstream.ConsumerConfig{Durable: "ready"})
	if err != nil {
		t.Fatal(err)
	}
	if err := events.ConsumerReady(ctx, cons); err != nil {
		t.Fatal(err)
	}
}
