package dispatcher_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// consumerCount counts the requests to create a consumer of the
// cascades' stream that the test's connection (the engine's) makes: a
// subscriber of the JetStream API's subjects gets them beside the server.
type consumerCount struct {
	t   *testing.T
	js  jetstream.JetStream
	sub *nats.Subscription
}

func countConsumers(t *testing.T, js jetstream.JetStream) *consumerCount {
	c := &consumerCount{t: t, js: js}
	var err error
	if c.sub, err = js.Conn().SubscribeSync("$JS.API.CONSUMER.CREATE.KV_cascades.>"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.sub.Unsubscribe() })
	if err := c.sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatal(err)
	}
	return c
}

// created returns how many consumers were asked for so far: the server
// passes on a connection's messages in order, so after a round trip every
// request sent before is counted.
func (c *consumerCount) created() int {
	c.t.Helper()
	if err := c.js.Conn().Flush(); err != nil {
		c.t.Fatal(err)
	}
	n, _, err := c.sub.Pending()
	if err != nil {
		c.t.Fatal(err)
	}
	return n
}

func (c *consumerCount) open() int {
	c.t.Helper()
	st, err := c.js.Stream(context.Background(), "KV_cascades")
	if err != nil {
		c.t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	return info.State.Consumers
}

// The engine's looks and reads, and any number of readers watching a
// cascade, open no consumer each: looks and snapshots read by direct
// gets, and the readers of a process share one KV watch, gone with the
// last of them. Every reader sees a change, a reader that never reads
// holds none up, and each reader's channel closes when it goes.
func TestReadsAndWatchesOpenNoConsumerEach(t *testing.T) {
	t.Parallel()
	h := newHarness(t, chain(3, personApproves, 200), tfesim.Options{})
	d, _ := h.engine(fastOptions())
	id := cascade.ID(h.start("c00"))
	var first dispatcher.MemberView
	waitFor(t, "the first member to wait for a person", func() bool {
		v, err := d.Reads().Snapshot(h.ctx, id)
		if err != nil || v.Members[0].State != cascade.AwaitingApproval {
			return false
		}
		first = v.Members[0]
		return true
	})
	c := countConsumers(t, h.js)
	baseline := c.open()

	before := c.created()
	for range 50 {
		// The engine's scheduler may be looking at it: that look counts.
		if err := d.Reconcile(h.ctx, id); err != nil && !errors.Is(err, dispatcher.ErrLeaseHeld) {
			t.Fatal(err)
		}
		if _, err := d.Reads().Snapshot(h.ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if list, err := d.Reads().List(h.ctx, dispatcher.Filter{}); err != nil || len(list) != 1 {
		t.Fatalf("list: %v, %v", list, err)
	}
	if _, err := d.Reads().Paused(h.ctx); err != nil {
		t.Fatal(err)
	}
	if n := c.created() - before; n != 0 {
		t.Fatalf("50 looks and snapshots, a list and the pauses created %d consumers, want none", n)
	}

	const readers = 300
	before = c.created()
	ctx, stop := context.WithCancel(h.ctx)
	defer stop()
	latest := make([]atomic.Pointer[dispatcher.View], readers)
	var wg sync.WaitGroup
	for i := range readers {
		views, err := d.Reads().Watch(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := range views {
				latest[i].Store(v)
			}
		}()
	}
	idle, err := d.Reads().Watch(ctx, id) // never read until the end
	if err != nil {
		t.Fatal(err)
	}
	seeAll := func(what string, ok func(*dispatcher.View) bool) {
		t.Helper()
		waitFor(t, what, func() bool {
			for i := range latest {
				if v := latest[i].Load(); v == nil || !ok(v) {
					return false
				}
			}
			return true
		})
	}
	seeAll("every reader to have the cascade's view", func(v *dispatcher.View) bool { return v.ID == id })
	n := c.created() - before
	t.Logf("%d readers: %d consumers created, %d open (%d before)", readers+1, n, c.open(), baseline)
	if n != 1 {
		t.Fatalf("%d readers created %d consumers, want one between them (the shared watch)", readers+1, n)
	}
	if got := c.open(); got > baseline+1 {
		t.Fatalf("%d consumers open with %d readers, %d without", got, readers+1, baseline)
	}

	// A person confirms the first member's run: every reader sees it.
	if err := h.client.Runs.Apply(h.ctx, first.RunID, tfe.RunApplyOptions{Comment: tfe.String("looks good")}); err != nil {
		t.Fatal(err)
	}
	seeAll("every reader to see the first member go on", func(v *dispatcher.View) bool {
		return v.Members[0].State != cascade.AwaitingApproval
	})

	stop()
	wg.Wait() // every reader's channel closed
	waitFor(t, "the idle reader's channel to close", func() bool {
		select {
		case _, ok := <-idle:
			return !ok
		default:
			return false
		}
	})
	waitFor(t, "the shared watch to go with its readers", func() bool { return c.open() == baseline })
}

// The first reader after the last one left starts the shared watch again.
func TestWatchAgainAfterTheLastReader(t *testing.T) {
	t.Parallel()
	h := newHarness(t, chain(2, personApproves, 200), tfesim.Options{})
	d, _ := h.engine(fastOptions())
	id := cascade.ID(h.start("c00"))
	waitFor(t, "the cascade", func() bool { _, err := d.Reads().Snapshot(h.ctx, id); return err == nil })
	for range 3 {
		ctx, stop := context.WithTimeout(h.ctx, 30*time.Second)
		views, err := d.Reads().Watch(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case v := <-views:
			if v == nil || v.ID != id {
				t.Fatalf("got %+v", v)
			}
		case <-ctx.Done():
			t.Fatal("no view")
		}
		stop()
	}
}
