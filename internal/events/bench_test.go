package events_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// The ingest path's own work, without HTTP or JetStream:
//
//	go test ./internal/events -run '^$' -bench . -benchmem

func BenchmarkDecode(b *testing.B) {
	body := payloadFile(b, "run-canceled.json")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := events.Decode(body, received); err != nil {
			b.Fatal(err)
		}
	}
}

var sink []byte // keeps the encoding on the heap, as Publish's is

func BenchmarkEncodeEvent(b *testing.B) {
	d, err := events.Decode(payloadFile(b, "run-canceled.json"), received)
	if err != nil {
		b.Fatal(err)
	}
	ev := &d.Events[0]
	b.ReportAllocs()
	for b.Loop() {
		sink = ev.AppendJSON(make([]byte, 0, 1024))
	}
}

type discard struct{}

func (discard) Publish(context.Context, *events.RunEvent) (bool, error) { return false, nil }

// BenchmarkWebhookHandler is the handler's work for one signed run
// notification (verify, decode, count, answer) with a publisher that
// stores nothing.
func BenchmarkWebhookHandler(b *testing.B) {
	body := payloadFile(b, "run-canceled.json")
	sig := tfesim.Sign(newToken, body)
	h, err := events.NewWebhook(events.WebhookOptions{Tokens: []string{oldToken, newToken}}, discard{},
		events.NewMetrics(prometheus.NewRegistry()), zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/webhooks/tfe", bytes.NewReader(body))
		req.Header.Set(events.SignatureHeader, sig)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}
