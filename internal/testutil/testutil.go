// Package testutil holds what the tests of several packages share: waiting
// on a condition with a deadline, a real JetStream embedded in the test
// process, and a notifier that records alerts. It is imported by tests
// only.
package testutil

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
	"github.com/tfe-orchestrator/orchestrator/internal/natsembed"
)

// WaitFor polls cond every few milliseconds until it holds, and fails the
// test when timeout passes first. It waits on a condition, never for a
// fixed time.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// JetStream starts an embedded JetStream server with its store in a
// temporary directory and connects to it in-process; both end with the
// test.
func JetStream(t testing.TB) (jetstream.JetStream, *nats.Conn) {
	t.Helper()
	ns, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js, nc
}

// Alerts is an alerts.Notifier that records what it is given.
type Alerts struct {
	mu   sync.Mutex
	list []alerts.Alert
}

// Raise records a.
func (l *Alerts) Raise(_ context.Context, a alerts.Alert) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.list = append(l.list, a)
}

// Of returns the alerts of a kind, in the order raised.
func (l *Alerts) Of(kind string) []alerts.Alert {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []alerts.Alert
	for _, a := range l.list {
		if a.Kind == kind {
			out = append(out, a)
		}
	}
	return out
}
