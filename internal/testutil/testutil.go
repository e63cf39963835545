// Package testutil holds what the tests of several packages share: waiting
// on a condition with a deadline, a real JetStream embedded in the test
// process, a notifier that records alerts, and a watch on the alerts a
// running daemon sends operators. It is imported by tests only.
package testutil

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
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

// AlertWatch sees the alerts a running daemon sends where an operator
// would: on the NATS subjects orchestrator.alerts.<kind>, and at a generic
// webhook sink (an HTTP server of the test's). Start it before the daemon
// to give the daemon its URL, subscribe once the daemon's NATS is up, then
// Expect each kind the test causes:
//
//	w := testutil.NewAlertWatch(t)
//	cfg.Alerts.WebhookURL = w.SinkURL()
//	... start the daemon, connect to its NATS ...
//	w.Subscribe(t, nc)
//	... cause the condition ...
//	w.Expect(t, alerts.KindWebhookRejected, 10*time.Second)
type AlertWatch struct {
	sink *httptest.Server

	mu     sync.Mutex
	onNATS []SeenAlert
	atSink []alerts.Alert
}

// SeenAlert is an alert read from NATS, with the subject it came on.
type SeenAlert struct {
	Subject string
	alerts.Alert
}

// NewAlertWatch starts the webhook sink; it stops when the test ends.
func NewAlertWatch(t testing.TB) *AlertWatch {
	t.Helper()
	w := &AlertWatch{}
	w.sink = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var a alerts.Alert
		b, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || json.Unmarshal(b, &a) != nil {
			http.Error(rw, "want a POSTed alert", http.StatusBadRequest)
			return
		}
		w.mu.Lock()
		w.atSink = append(w.atSink, a)
		w.mu.Unlock()
	}))
	t.Cleanup(w.sink.Close)
	return w
}

// SinkURL is the URL to give as the generic webhook sink
// (--alert-webhook-url).
func (w *AlertWatch) SinkURL() string { return w.sink.URL }

// Subscribe listens on orchestrator.alerts.> through nc, a connection to
// the daemon's NATS.
func (w *AlertWatch) Subscribe(t testing.TB, nc *nats.Conn) {
	t.Helper()
	sub, err := nc.Subscribe(alerts.Subject+".>", func(m *nats.Msg) {
		var a alerts.Alert
		if json.Unmarshal(m.Data, &a) != nil {
			return
		}
		w.mu.Lock()
		w.onNATS = append(w.onNATS, SeenAlert{Subject: m.Subject, Alert: a})
		w.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil { // the subscription is in place on return
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
}

// Expect waits until an alert of kind has arrived both on the subject
// orchestrator.alerts.<kind> and at the sink, and returns the first of each.
// It fails the test when either has not within timeout.
func (w *AlertWatch) Expect(t testing.TB, kind string, timeout time.Duration) (onNATS SeenAlert, atSink alerts.Alert) {
	t.Helper()
	var natsOK, sinkOK bool
	WaitFor(t, "a "+kind+" alert on NATS and at the webhook sink", timeout, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, a := range w.onNATS {
			if a.Kind == kind && !natsOK {
				onNATS, natsOK = a, true
			}
		}
		for _, a := range w.atSink {
			if a.Kind == kind && !sinkOK {
				atSink, sinkOK = a, true
			}
		}
		return natsOK && sinkOK
	})
	if want := alerts.Subject + "." + kind; onNATS.Subject != want {
		t.Errorf("a %s alert came on %s, want %s", kind, onNATS.Subject, want)
	}
	return onNATS, atSink
}
