package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
)

// The members read by direct gets, a thousand keys a request, are what a
// KV watch of the cascade's member keys sees: every status and revision,
// members never written or deleted at their initial status, keys of
// other cascades and of workspaces not in the plan left out. A plan of
// 2,500 members takes three requests.
func TestMembersByDirectGetsAreWhatAWatchSees(t *testing.T) {
	js, nc := testutil.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "cascades", History: 1})
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(nc, kv, nil, nil, nil)
	p := &cascade.Plan{ID: "c-run-x", Organization: "acme", Root: cascade.Root{RunID: "run-x", WorkspaceID: "ws-root", WorkspaceName: "root"},
		StartedAt: time.Now()}
	for i := range 2500 {
		p.Members = append(p.Members, cascade.Member{WorkspaceID: fmt.Sprintf("ws-%05d", i), Name: fmt.Sprintf("w%05d", i), Upstreams: []string{"ws-root"}})
	}
	put := func(key string, v cascade.Status) {
		data, _ := json.Marshal(v)
		if _, err := kv.Put(ctx, key, data); err != nil {
			t.Fatal(err)
		}
	}
	for i, m := range p.Members {
		switch {
		case i%3 == 1: // never written
		case i%7 == 0:
			put(memberKey(p.ID, m.WorkspaceID), cascade.Status{State: cascade.Ready, Reason: "soon gone"})
			if err := kv.Delete(ctx, memberKey(p.ID, m.WorkspaceID)); err != nil {
				t.Fatal(err)
			}
		default:
			put(memberKey(p.ID, m.WorkspaceID), cascade.Status{State: cascade.Ready, Reason: fmt.Sprintf("member %d", i), Attempts: i % 5})
		}
	}
	put(memberKey("c-run-y", "ws-00002"), cascade.Status{State: cascade.Failed, Reason: "another cascade"})
	put(memberKey(p.ID, "ws-stranger"), cascade.Status{State: cascade.Failed, Reason: "not a member"})

	began := time.Now()
	st, revs, err := s.members(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	direct := time.Since(began)
	if got := s.ops.Load(); got != 3 {
		t.Errorf("%d requests for 2,500 members, want 3", got)
	}
	began = time.Now()
	wantSt, wantRevs := watchMembers(t, ctx, kv, p)
	watched := time.Since(began)
	t.Logf("2,500 members: direct gets %s, a KV watch %s", direct.Round(time.Microsecond), watched.Round(time.Microsecond))
	written := 0
	for i := range p.Members {
		if st[i].Reason != wantSt[i].Reason || st[i].State != wantSt[i].State || st[i].Attempts != wantSt[i].Attempts || revs[i] != wantRevs[i] {
			t.Fatalf("member %d: got %+v at %d, a watch sees %+v at %d", i, st[i], revs[i], wantSt[i], wantRevs[i])
		}
		if revs[i] != 0 {
			written++
		}
	}
	if written == 0 || written == len(p.Members) {
		t.Fatalf("%d members written: the test reads nothing of interest", written)
	}
}

// watchMembers is how the members were read before: a KV watch of the
// cascade's member keys.
func watchMembers(t *testing.T, ctx context.Context, kv jetstream.KeyValue, p *cascade.Plan) ([]cascade.Status, []uint64) {
	st := make([]cascade.Status, len(p.Members))
	revs := make([]uint64, len(p.Members))
	for i := range p.Members {
		st[i] = cascade.Initial(p, i)
	}
	w, err := kv.Watch(ctx, membersPrefix(p.ID)+"*", jetstream.IgnoreDeletes())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop() }()
	for e := range w.Updates() {
		if e == nil {
			return st, revs
		}
		i := p.Index(strings.TrimPrefix(e.Key(), membersPrefix(p.ID)))
		if i < 0 {
			continue
		}
		if err := json.Unmarshal(e.Value(), &st[i]); err != nil {
			t.Fatal(err)
		}
		revs[i] = e.Revision()
	}
	t.Fatal("the watch ended early")
	return nil, nil
}
