package dispatcher_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// Dispatcher benchmarks through the simulator (no injected latency, no
// rate limit, native run triggers off), the real webhook handler and an
// embedded JetStream:
//
//	go test ./internal/dispatcher -run '^$' -bench . -benchtime 1x
//
// Each iteration is a whole cascade; the numbers that matter are the
// reported metrics.

// layered returns a root and layers×width workspaces; each workspace of a
// layer has two upstreams in the layer before (the root for the first).
func layered(layers, width int) org {
	o := org{workspaces: []tfesim.WorkspaceSpec{ws("root", 0, 0)}}
	name := func(l, i int) string { return fmt.Sprintf("l%02d-%03d", l, i) }
	for l := range layers {
		for i := range width {
			o.workspaces = append(o.workspaces, ws(name(l, i), 0, 0))
			if l == 0 {
				o.edges = append(o.edges, [2]string{"root", name(l, i)})
				continue
			}
			o.edges = append(o.edges, [2]string{name(l-1, i), name(l, i)}, [2]string{name(l-1, (i+1)%width), name(l, i)})
		}
	}
	return o
}

// runCascade starts a cascade from root and waits, through the KV state
// (no API call), until it is done.
func runCascade(b *testing.B, h *harness, root string, timeout time.Duration) string {
	b.Helper()
	r, err := h.client.Runs.Create(h.ctx, tfe.RunCreateOptions{Workspace: &tfe.Workspace{ID: h.id(root)}})
	if err != nil {
		b.Fatal(err)
	}
	id := dispatcher.CascadeID(r.ID)
	deadline := time.Now().Add(timeout)
	for !cascadeDone(h, id) {
		if time.Now().After(deadline) {
			b.Fatalf("cascade %s not done in %s", id, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return r.ID
}

func totalRequests(st tfesim.Stats) int {
	n := 0
	for route, c := range st.Requests {
		if route != "GET /api/v2/ping" {
			n += c
		}
	}
	return n
}

func benchHarness(b *testing.B, o org) *harness {
	h := newHarness(b, o, tfesim.Options{NoNativeRunTriggers: true})
	opts := dispatcher.Options{MaxInFlight: 8}
	h.dispatcher(opts, nil)
	return h
}

// BenchmarkCascade1000 runs a cascade of 1,000 workspaces (10 layers of
// 100, each with two upstreams) twice: cold, then with warm caches; it
// reports the warm cascade's wall time and API calls per dispatched run.
func BenchmarkCascade1000(b *testing.B) {
	h := benchHarness(b, layered(10, 100))
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		runCascade(b, h, "root", 5*time.Minute)
		cold := time.Since(start)
		h.sim.ResetStats()
		start = time.Now()
		runCascade(b, h, "root", 5*time.Minute)
		warm := time.Since(start)
		calls := totalRequests(h.sim.Stats()) - 1 // the root run the benchmark created
		b.ReportMetric(cold.Seconds(), "cold-s")
		b.ReportMetric(warm.Seconds(), "warm-s")
		b.ReportMetric(float64(calls)/1000, "calls/run")
	}
}

// BenchmarkEventToRunCreated measures, in a chain of 100 workspaces, the
// time from the webhook that a run applied being received (the event's
// received_at) to the next workspace's run being created (the simulator's
// created-at): stream, dispatcher, state and the create call. Reported as
// an upper bound, since created-at has millisecond precision.
func BenchmarkEventToRunCreated(b *testing.B) {
	o := chain(101)
	for i := range o.workspaces {
		o.workspaces[i].Behavior = tfesim.Behavior{}
	}
	h := benchHarness(b, o)
	runCascade(b, h, "c00", 2*time.Minute) // warm the caches
	b.ResetTimer()
	for b.Loop() {
		rootRun := runCascade(b, h, "c00", 2*time.Minute)
		b.StopTimer()
		received := appliedReceived(b, h)
		var lat []time.Duration
		prev := rootRun
		for i := 1; i < 101; i++ {
			rs := h.cascadeRuns(fmt.Sprintf("c%02d", i))
			if len(rs) == 0 {
				b.Fatalf("c%02d has no cascade run", i)
			}
			r := rs[0] // newest first: this cascade's
			at, ok := received[prev]
			if !ok {
				b.Fatalf("no applied event stored for %s", prev)
			}
			// created-at has millisecond precision, truncated: the end of
			// its millisecond bounds the latency from above.
			lat = append(lat, r.CreatedAt.Add(time.Millisecond-time.Nanosecond).Sub(at))
			prev = r.ID
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		b.StartTimer()
	}
}

// appliedReceived maps run IDs to when their applied webhook was received.
func appliedReceived(b *testing.B, h *harness) map[string]time.Time {
	stream, err := h.js.Stream(h.ctx, "RUN_EVENTS")
	if err != nil {
		b.Fatal(err)
	}
	info, err := stream.Info(h.ctx)
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]time.Time{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		msg, err := stream.GetMsg(h.ctx, seq)
		if err != nil {
			b.Fatal(err)
		}
		var ev events.RunEvent
		if err := json.Unmarshal(msg.Data, &ev); err != nil {
			b.Fatal(err)
		}
		if ev.Status == "applied" {
			out[ev.RunID] = ev.ReceivedAt
		}
	}
	return out
}
