package dispatcher_test

import (
	"context"
	"testing"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/graph"
	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
)

// What one replica stores another loads; an entry that is not what the
// store writes (someone with access to NATS, an older version) is ignored.
func TestGraphShare(t *testing.T) {
	js, _ := testutil.JetStream(t)
	ctx := context.Background()
	a, err := dispatcher.NewGraphShare(ctx, js, "run-triggers", time.Minute, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := dispatcher.NewGraphShare(ctx, js, "run-triggers", time.Minute, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	targets := []graph.Workspace{{ID: "ws-bbbbbbbbbbbbbbbb", Name: "b"}}
	a.Store(ctx, "ws-aaaaaaaaaaaaaaaa", targets, at)
	got, fetched, ok := b.Load(ctx, "ws-aaaaaaaaaaaaaaaa")
	if !ok || !fetched.Equal(at) || len(got) != 1 || got[0] != targets[0] {
		t.Errorf("got %v %s %v, want %v %s", got, fetched, ok, targets, at)
	}
	if _, _, ok := b.Load(ctx, "ws-cccccccccccccccc"); ok {
		t.Error("a workspace nobody stored was found")
	}
	kv, err := js.KeyValue(ctx, "run-triggers")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"{not json", `{"fetched":"2026-12-03T10:00:00Z","targets":[{"id":"ws-*","name":"x"}]}`, `{"targets":[]}`} {
		if _, err := kv.Put(ctx, "ws-dddddddddddddddd", []byte(bad)); err != nil {
			t.Fatal(err)
		}
		if _, _, ok := b.Load(ctx, "ws-dddddddddddddddd"); ok {
			t.Errorf("entry %q was used", bad)
		}
	}
}
