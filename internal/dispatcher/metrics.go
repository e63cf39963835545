package dispatcher

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the cascade engine's Prometheus metrics.
type Metrics struct {
	started       prometheus.Counter
	finished      *prometheus.CounterVec
	dispatched    prometheus.Counter
	adopted       prometheus.Counter
	superseded    prometheus.Counter
	holds         *prometheus.CounterVec
	looks         prometheus.Counter
	reads         prometheus.Counter
	events        *prometheus.CounterVec
	malformed     prometheus.Counter
	createSeconds prometheus.Histogram
	lookSeconds   prometheus.Histogram
	open          *prometheus.GaugeVec
	members       *prometheus.GaugeVec
}

// NewMetrics registers the engine's metrics with reg; nil registers
// nowhere.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		started: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orchestrator_cascades_started_total", Help: "Cascades started.",
		}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orchestrator_cascades_finished_total", Help: "Cascades finished, by outcome (applied, incomplete, cancelled, dry_run): each once, when it first finishes (a retry that reopens it does not count it again).",
		}, []string{"outcome"}),
		dispatched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orchestrator_runs_dispatched_total", Help: "Runs created by cascades.",
		}),
		adopted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orchestrator_runs_adopted_total", Help: "Runs TFE's run triggers queued after a member's upstreams finished, taken as the member's run.",
		}),
		holds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orchestrator_holds_total", Help: "Member workspaces the cascade engine locked (taken) and unlocked (released), so that runs queued too early wait pending until stopped.",
		}, []string{"action"}),
		superseded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orchestrator_native_runs_superseded_total", Help: "Runs stopped (discarded or cancelled) because they would have run out of order or in a member that does not run.",
		}),
		looks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orchestrator_cascade_looks_total", Help: "Reconciliations of a cascade.",
		}),
		reads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orchestrator_cascade_reads_total", Help: "TFE API reads made by cascade reconciliations.",
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orchestrator_run_events_handled_total", Help: "Run events the engine consumed, by result (handled, retried, rejected, dropped).",
		}, []string{"result"}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orchestrator_cascade_records_malformed_total", Help: "Cascade records in KV that could not be read and were set aside.",
		}),
		createSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "orchestrator_run_create_duration_seconds", Help: "Time TFE took to create a run.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		lookSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "orchestrator_cascade_look_duration_seconds", Help: "Time one reconciliation of a cascade took, TFE calls included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orchestrator_cascades_open", Help: "Cascades the engine keeps that are not done, by state (running, set_aside); the same on every replica.",
		}, []string{"state"}),
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orchestrator_cascade_members", Help: "Members of the open cascades, by member state; the same on every replica.",
		}, []string{"state"}),
	}
	if reg != nil {
		reg.MustRegister(m.started, m.finished, m.dispatched, m.adopted, m.superseded, m.holds, m.looks, m.reads, m.events, m.malformed, m.createSeconds, m.lookSeconds, m.open, m.members)
	}
	return m
}
