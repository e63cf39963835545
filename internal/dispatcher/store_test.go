package dispatcher

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/graph"
	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
)

// What is read back from KV is a wire like any other: these tests write
// what a bug, an older version or someone with access to NATS could, and
// check that nothing is acted on and nothing panics.

func newTestDispatcher(t *testing.T, js jetstream.JetStream, rec *testutil.Alerts) *Dispatcher {
	t.Helper()
	d, err := New(context.Background(), Options{LeaseTTL: time.Second}, Deps{JetStream: js, Alerts: rec, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func testPlan(t *testing.T) *cascade.Plan {
	t.Helper()
	ws := []graph.Workspace{{ID: "ws-aaaaaaaaaaaaaaaa", Name: "a"}, {ID: "ws-bbbbbbbbbbbbbbbb", Name: "b"}}
	g, err := graph.New(ws, []graph.Edge{{Source: ws[0].ID, Target: ws[1].ID}})
	if err != nil {
		t.Fatal(err)
	}
	gp, err := g.Plan(ws[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	return cascade.NewPlan(g, gp, cascade.Root{WorkspaceID: ws[0].ID, WorkspaceName: "a", RunID: "run-rrrrrrrrrrrrrrrr", FinishedAt: now, Status: "applied"}, "acme", now, false)
}

func TestMalformedRecordsAreSetAside(t *testing.T) {
	for _, tc := range []struct {
		name  string
		key   func(p *cascade.Plan) string
		value string
	}{
		{"a member status that is not JSON", func(p *cascade.Plan) string { return memberKey(p.ID, p.Members[0].WorkspaceID) }, "{not json"},
		{"a member in a state that does not exist", func(p *cascade.Plan) string { return memberKey(p.ID, p.Members[0].WorkspaceID) }, `{"state":"launched"}`},
		{"a member running without a run", func(p *cascade.Plan) string { return memberKey(p.ID, p.Members[0].WorkspaceID) }, `{"state":"running"}`},
		{"a member with unknown fields", func(p *cascade.Plan) string { return memberKey(p.ID, p.Members[0].WorkspaceID) }, `{"state":"waiting","dispatch_to":"ws-evil"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js, _ := testutil.JetStream(t)
			rec := &testutil.Alerts{}
			d := newTestDispatcher(t, js, rec)
			ctx := context.Background()
			p := testPlan(t)
			if _, err := d.store.createPlan(ctx, p); err != nil {
				t.Fatal(err)
			}
			if err := d.begin(ctx, p); err != nil {
				t.Fatal(err)
			}
			if _, err := d.store.kv.Put(ctx, tc.key(p), []byte(tc.value)); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if err := d.Reconcile(ctx, p.ID); err != nil {
					t.Fatalf("look: %v", err)
				}
			}
			m, _, err := d.store.meta(ctx, p.ID)
			if err != nil {
				t.Fatal(err)
			}
			if m.State != StateSetAside || !strings.Contains(m.Reason, "malformed") {
				t.Errorf("meta: got %+v, want the cascade set aside", m)
			}
			if got := rec.Of(alerts.KindMalformedState); len(got) != 1 {
				t.Errorf("alerts: got %d malformed_state, want 1", len(got))
			}
		})
	}
}

func TestMalformedIndexRecordsAreForgotten(t *testing.T) {
	js, _ := testutil.JetStream(t)
	rec := &testutil.Alerts{}
	d := newTestDispatcher(t, js, rec)
	ctx := context.Background()
	for _, kv := range [][2]string{
		{wsKey("ws-aaaaaaaaaaaaaaaa"), `["evil"]`},
		{dueKey("c-run-xxxxxxxxxxxxxxxx"), `{"at":"yesterday"}`},
		{runKey("run-xxxxxxxxxxxxxxxx"), `[]`},
	} {
		if _, err := d.store.kv.Put(ctx, kv[0], []byte(kv[1])); err != nil {
			t.Fatal(err)
		}
	}
	if ids, _, err := d.store.owners(ctx, "ws-aaaaaaaaaaaaaaaa", 0); err != nil || len(ids) != 0 {
		t.Errorf("owners: got %v, %v; want none", ids, err)
	}
	if dv, _, err := d.store.due(ctx, "c-run-xxxxxxxxxxxxxxxx", 0); err != nil || !dv.Full {
		t.Errorf("due: got %+v, %v; want a full look", dv, err)
	}
	if _, ours, err := d.store.runOwner(ctx, "run-xxxxxxxxxxxxxxxx"); err != nil || !ours {
		t.Errorf("run owner: got %v, %v; want it kept from starting a cascade", ours, err)
	}
	if got := len(rec.Of(alerts.KindMalformedState)); got != 3 {
		t.Errorf("alerts: got %d, want 3", got)
	}
}

// FuzzRecords feeds arbitrary bytes to every decoder of what is read back
// from KV: none may panic, and what decodes must validate or be refused.
func FuzzRecords(f *testing.F) {
	p, _ := json.Marshal(testPlanForFuzz())
	for _, seed := range []string{
		string(p), `{"state":"running","run_id":"run-x"}`, `{"state":"waiting"}`, `{"at":"2026-01-01T00:00:00Z","dirty":["ws-a"]}`,
		`["c-run-a"]`, `{"cascade":"c-run-a","workspace":"ws-a"}`, `{"by":"ops","why":"x","at":"2026-01-01T00:00:00Z"}`,
		`{"state":"done","members":3}`, `null`, `[]`, `{}`, "\x00", `{"members":[{"workspace_id":"ws-b","upstreams":["ws-b"]}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var pl cascade.Plan
		if decode(data, &pl) == nil {
			_ = pl.Validate()
			if pl.Validate() == nil {
				for i := range pl.Members {
					_ = cascade.Initial(&pl, i)
					_ = cascade.Done(&pl, make([]cascade.Status, len(pl.Members)), i)
				}
			}
		}
		var st cascade.Status
		if decode(data, &st) == nil {
			_ = st.Validate()
		}
		var m Meta
		if decode(data, &m) == nil {
			_ = m.validate()
		}
		var dv due
		_ = decode(data, &dv)
		var ids []string
		_ = decode(data, &ids)
		var rr runRecord
		_ = decode(data, &rr)
		var c Control
		if decode(data, &c) == nil {
			_ = c.validate()
		}
		var fs []Freeze
		_ = decode(data, &fs)
		var xs []Exclusion
		_ = decode(data, &xs)
	})
}

func testPlanForFuzz() *cascade.Plan {
	ws := []graph.Workspace{{ID: "ws-a", Name: "a"}, {ID: "ws-b", Name: "b"}}
	g, _ := graph.New(ws, []graph.Edge{{Source: "ws-a", Target: "ws-b"}})
	gp, _ := g.Plan("ws-a")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return cascade.NewPlan(g, gp, cascade.Root{WorkspaceID: "ws-a", WorkspaceName: "a", RunID: "run-a", FinishedAt: now, Status: "applied"}, "acme", now, false)
}

// A look that starts when ws-a is dirty settles after events came during
// it: nothing they asked for is forgotten, also for ws-a itself, already
// dirty (the look may have read it before what the event tells happened).
func TestDueSettlesWithoutLosingEvents(t *testing.T) {
	for _, during := range [][]string{{"ws-a"}, {"ws-a", "ws-b"}} {
		t.Run(strings.Join(during, ","), func(t *testing.T) {
			js, _ := testutil.JetStream(t)
			d := newTestDispatcher(t, js, &testutil.Alerts{})
			ctx := context.Background()
			now := time.Now()
			if err := d.store.markDirty(ctx, "c-1", "ws-a", now, false); err != nil {
				t.Fatal(err)
			}
			dv, rev, err := d.store.due(ctx, "c-1", 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, ws := range during {
				if err := d.store.markDirty(ctx, "c-1", ws, now.Add(time.Second), false); err != nil {
					t.Fatal(err)
				}
			}
			if err := d.store.settleDue(ctx, "c-1", rev, dv.Dirty, now.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			got, rev, err := d.store.due(ctx, "c-1", 0)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Dirty, during) || got.At.After(now.Add(time.Second)) {
				t.Errorf("due: got %+v; want %v kept and a look soon", got, during)
			}
			if err := d.store.settleDue(ctx, "c-1", rev, got.Dirty, time.Time{}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := d.store.due(ctx, "c-1", 0); !isMissing(err) {
				t.Errorf("a done cascade's due entry was kept: %v", err)
			}
		})
	}
}

// A cascade whose plan or meta cannot be read is looked at once and then
// no more: it is not left due, where the scheduler would look at it again
// at once, without end.
func TestMalformedPlanOrMetaIsNotLookedAtAgain(t *testing.T) {
	for _, key := range []func(id string) string{planKey, metaKey} {
		t.Run(key("x"), func(t *testing.T) {
			js, _ := testutil.JetStream(t)
			d := newTestDispatcher(t, js, &testutil.Alerts{})
			ctx := context.Background()
			p := testPlan(t)
			if _, err := d.store.createPlan(ctx, p); err != nil {
				t.Fatal(err)
			}
			if err := d.begin(ctx, p); err != nil {
				t.Fatal(err)
			}
			if _, err := d.store.kv.Put(ctx, key(p.ID), []byte("{not json")); err != nil {
				t.Fatal(err)
			}
			if err := d.store.markDirty(ctx, p.ID, p.Members[0].WorkspaceID, time.Now(), false); err != nil {
				t.Fatal(err)
			}
			if err := d.Reconcile(ctx, p.ID); err != nil {
				t.Fatal(err)
			}
			if dv, _, err := d.store.due(ctx, p.ID, 0); !isMissing(err) {
				t.Errorf("due after the look: got %+v, %v; want none", dv, err)
			}
		})
	}
}

// The store is the one door to its buckets: no other file of the package
// names one of their keys or reaches into a bucket but through the
// store's methods.
func TestStoreIsTheOnlyDoorToItsBuckets(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	banned := []string{
		"store.kv", "store.ctl", "store.leases", "store.get(", "store.bucket(", "store.scan(", "store.swap",
		`"plan.`, `"meta.`, `"m.`, `"due.`, `"ws.`, `"run.`, `"root.`, `"ctl.`, `"lease.`,
		"planKey(", "metaKey(", "memberKey(", "membersPrefix(", "dueKey(", "wsKey(", "runKey(", "rootKey(",
		"cancelKey(", "retryKey(", "approveKey(", "pauseKey(", "leaseKey(", "freezeKey", "excludeKey", "pauseAllKey",
	}
	checked := 0
	for _, f := range files {
		if f == "store.go" || strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for i, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "//") {
				continue
			}
			for _, b := range banned {
				if strings.Contains(line, b) {
					t.Errorf("%s:%d uses %s: read and write the buckets through the store's methods", f, i+1, b)
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked %d files: the test does not see the package", checked)
	}
}

// A look answers what it was asked from the moment its due entry was
// written (every event it names had come by then, and the look that wrote
// it had acted), so a page of the workspace list read since then serves
// it. Written by this process, that moment is known exactly; written by
// another replica, by that replica's clock, so clockSkew is added.
func TestAskedAtIsWhenTheDueEntryWasWritten(t *testing.T) {
	js, _ := testutil.JetStream(t)
	d := newTestDispatcher(t, js, &testutil.Alerts{})
	other := newTestDispatcher(t, js, &testutil.Alerts{}) // another replica
	ctx := context.Background()
	asked := func() time.Time {
		t.Helper()
		dv, rev, err := d.store.due(ctx, "c-1", 0)
		if err != nil {
			t.Fatal(err)
		}
		return d.store.askedAt("c-1", rev, dv)
	}
	between := func(what string, at, from, to time.Time) {
		t.Helper()
		if at.Before(from) || at.After(to) {
			t.Errorf("%s: asked at %v, want between %v and %v", what, at, from, to)
		}
	}
	before := time.Now()
	if err := d.store.markDirty(ctx, "c-1", "ws-a", time.Now(), false); err != nil {
		t.Fatal(err)
	}
	between("this process's event", asked(), before, time.Now())

	before = time.Now()
	if err := other.store.markDirty(ctx, "c-1", "ws-b", time.Now(), false); err != nil {
		t.Fatal(err)
	}
	between("another replica's event", asked(), before.Add(clockSkew), time.Now().Add(clockSkew))

	before = time.Now()
	dv, rev, err := d.store.due(ctx, "c-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.store.settleDue(ctx, "c-1", rev, dv.Dirty, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	between("a look that settled here", asked(), before, time.Now())

	// A clock behind does not move the time back: the entry keeps the
	// latest it was written at.
	late := time.Now().Add(time.Hour)
	dv, rev, err = d.store.due(ctx, "c-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	dv.AskedAt = late
	if _, err := d.store.swap(ctx, dueKey("c-1"), dv, rev); err != nil {
		t.Fatal(err)
	}
	if err := other.store.markDirty(ctx, "c-1", "ws-b", time.Now(), false); err != nil {
		t.Fatal(err)
	}
	if at := asked(); !at.Equal(late.Add(clockSkew)) {
		t.Errorf("after a write by a clock ahead: asked at %v, want %v", at, late.Add(clockSkew))
	}
}
