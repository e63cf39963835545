package dispatcher

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the dispatcher's Prometheus metrics.
type Metrics struct {
	cascadesStarted  prometheus.Counter
	cascadesFinished *prometheus.CounterVec
	dispatched       prometheus.Counter
	superseded       prometheus.Counter
	reconciled       prometheus.Counter
	createSeconds    prometheus.Histogram
}

// NewMetrics registers the dispatcher's metrics with reg; nil registers
// nowhere.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		cascadesStarted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orchestrator_cascades_started_total", Help: "Cascades started.",
		}),
		cascadesFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orchestrator_cascades_finished_total", Help: "Cascades finished, by outcome (applied, incomplete, dry_run).",
		}, []string{"outcome"}),
		dispatched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orchestrator_runs_dispatched_total", Help: "Runs created by cascades.",
		}),
		superseded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orchestrator_native_runs_superseded_total", Help: "Runs queued by TFE's native run triggers and discarded or cancelled.",
		}),
		reconciled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orchestrator_runs_reconciled_total", Help: "Run statuses read through the API because no event came.",
		}),
		createSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "orchestrator_run_create_duration_seconds", Help: "Time TFE took to create a run.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.cascadesStarted, m.cascadesFinished, m.dispatched, m.superseded, m.reconciled, m.createSeconds)
	}
	return m
}
