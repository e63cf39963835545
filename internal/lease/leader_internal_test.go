package lease

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
)

// What the leader says decides a take that failed on a replica's answer:
// nothing there, a create; a delete marker, a write on its revision; a
// live entry, held.
func TestTakeOnLeader(t *testing.T) {
	ctx := context.Background()
	js, nc := testutil.JetStream(t)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "leases", TTL: time.Minute, History: 1})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := takeOnLeader(ctx, nc, kv, "lease.c-1", "one")
	if err != nil {
		t.Fatalf("a key never written: %v, want it taken", err)
	}
	if _, err := takeOnLeader(ctx, nc, kv, "lease.c-1", "two"); !errors.Is(err, jetstream.ErrKeyExists) {
		t.Fatalf("a key held: %v, want ErrKeyExists", err)
	}
	if err := kv.Delete(ctx, "lease.c-1", jetstream.LastRevision(rev)); err != nil {
		t.Fatal(err)
	}
	rev2, err := takeOnLeader(ctx, nc, kv, "lease.c-1", "two")
	if err != nil || rev2 <= rev {
		t.Fatalf("a key released: revision %d, %v; want it taken after %d", rev2, err, rev)
	}
	e, err := kv.Get(ctx, "lease.c-1")
	if err != nil || string(e.Value()) != "two" {
		t.Fatalf("the lease's key holds %v (%v), want two", e, err)
	}
	l, ok, err := AcquireOn(ctx, nc, kv, "lease.c-1", "three", time.Minute, nil)
	if err != nil || ok || l != nil {
		t.Fatalf("a lease held: %v %v %v, want not taken", l, ok, err)
	}
}
