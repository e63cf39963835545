package dispatcher

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
)

// gauges keeps orchestrator_cascades_open and orchestrator_cascade_members
// from a watch of every cascade's meta: each replica shows the whole
// engine, whichever replica wrote.
func (d *Dispatcher) gauges(ctx context.Context) {
	for ctx.Err() == nil {
		if err := d.watchMetas(ctx); err != nil && ctx.Err() == nil {
			d.log.Warn("watch of cascade states for the metrics ended; starting it again", zap.Error(err))
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (d *Dispatcher) watchMetas(ctx context.Context) error {
	w, err := d.store.metaWatch(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	open := map[string]Meta{} // open cascades by ID
	ready := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e == nil {
				ready = true
				d.setGauges(open)
				continue
			}
			if id, m, ok := metaOf(e); !ok || m.State == StateDone {
				delete(open, id)
			} else {
				open[id] = m
			}
			if ready {
				d.setGauges(open)
			}
		}
	}
}

func (d *Dispatcher) setGauges(open map[string]Meta) {
	cascades := map[string]float64{StateRunning: 0, StateSetAside: 0}
	members := map[string]float64{}
	for _, s := range cascade.States {
		members[string(s)] = 0
	}
	for _, m := range open {
		cascades[m.State]++
		for st, n := range m.Counts {
			if _, known := members[st]; known {
				members[st] += float64(n)
			}
		}
	}
	for st, n := range cascades {
		d.metrics.open.WithLabelValues(st).Set(n)
	}
	for st, n := range members {
		d.metrics.members.WithLabelValues(st).Set(n)
	}
}
