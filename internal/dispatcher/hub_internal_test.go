package dispatcher

import (
	"context"
	"testing"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
)

// The shared watch of the readers ends (as a KV watch does when its
// connection goes): it is made again, and the readers see the changes made
// meanwhile and after.
func TestSharedWatchIsMadeAgainWhenItEnds(t *testing.T) {
	js, _ := testutil.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := New(ctx, Options{}, Deps{JetStream: js})
	if err != nil {
		t.Fatal(err)
	}
	p := &cascade.Plan{ID: "c-run-x", Organization: "acme", Root: cascade.Root{RunID: "run-x", WorkspaceID: "ws-root", WorkspaceName: "root"},
		StartedAt: time.Now(), Members: []cascade.Member{{WorkspaceID: "ws-a", Name: "a", Upstreams: []string{"ws-root"}}}}
	if _, err := d.store.createPlan(ctx, p); err != nil {
		t.Fatal(err)
	}
	views, err := d.reads.Watch(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	var rev uint64
	see := func(reason string) {
		t.Helper()
		if rev, err = d.store.putMember(ctx, p.ID, "ws-a", cascade.Status{State: cascade.Ready, Reason: reason}, rev); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, "the reader to see "+reason, 30*time.Second, func() bool {
			select {
			case v := <-views:
				return v.Members[0].Reason == reason
			default:
				return false
			}
		})
	}
	see("first")

	d.reads.watchers.mu.Lock()
	r := d.reads.watchers.run
	old := r.w
	d.reads.watchers.mu.Unlock()
	if old == nil {
		t.Fatal("no shared watch open while a reader watches")
	}
	if err := old.Stop(); err != nil {
		t.Fatal(err)
	}
	see("while the watch was made again")
	testutil.WaitFor(t, "the shared watch to be made again", 30*time.Second, func() bool {
		d.reads.watchers.mu.Lock()
		defer d.reads.watchers.mu.Unlock()
		return r.w != nil && r.w != old
	})
	see("after")
}
