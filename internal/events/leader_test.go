package events_test

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
)

// The leader's answer is the key's last write: a value at its revision, a
// deleted key as missing with the marker's revision (a write on which
// creates it again), and a key never written as missing.
func TestLastEntryFromTheLeader(t *testing.T) {
	js, nc := testutil.JetStream(t)
	ctx := context.Background()
	kv, err := events.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{Bucket: "leader-test", History: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.LastEntry(ctx, nc, kv, "k"); !errors.Is(err, jetstream.ErrKeyNotFound) || events.DeletedAt(err) != 0 {
		t.Fatalf("never written: got %v, want not found and no marker", err)
	}
	if _, err := kv.Put(ctx, "k", []byte("one")); err != nil {
		t.Fatal(err)
	}
	rev, err := kv.Put(ctx, "k", []byte("two"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := events.LastEntry(ctx, nc, kv, "k")
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Value()) != "two" || e.Revision() != rev || e.Key() != "k" || e.Operation() != jetstream.KeyValuePut {
		t.Fatalf("got %q at %d (%s), want \"two\" at %d", e.Value(), e.Revision(), e.Operation(), rev)
	}
	if err := kv.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	_, err = events.LastEntry(ctx, nc, kv, "k")
	marker := events.DeletedAt(err)
	if !errors.Is(err, jetstream.ErrKeyNotFound) || marker <= rev {
		t.Fatalf("deleted: got %v (marker %d), want not found with a marker after %d", err, marker, rev)
	}
	if _, err := kv.Update(ctx, "k", []byte("three"), marker); err != nil {
		t.Fatalf("write on the marker's revision: %v", err)
	}
	if e, err := events.LastEntry(ctx, nc, kv, "k"); err != nil || string(e.Value()) != "three" {
		t.Fatalf("after the write on the marker: got %v, %v", e, err)
	}
}
