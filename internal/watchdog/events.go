package watchdog

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient/runstatus"
)

// seen is what the run events tell of a run not yet final.
type seen struct {
	status  string
	entered time.Time
	wsID    string
	org     string
}

// tracker keeps, from the run events, when each run entered its status.
// It holds at most max runs: past that, the one that entered its status
// earliest is forgotten (a scan still finds it).
type tracker struct {
	max  int
	mu   sync.Mutex
	runs map[string]seen
}

// observe records one run event; a final status forgets the run.
func (t *tracker) observe(ev *events.RunEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.runs == nil {
		t.runs = map[string]seen{}
	}
	if _, active := GroupOf(ev.Status); !active {
		delete(t.runs, ev.RunID)
		return
	}
	prev, ok := t.runs[ev.RunID]
	if ok && prev.status == ev.Status {
		return
	}
	if ok && ev.UpdatedAt.Before(prev.entered) {
		return // an older event, delivered late
	}
	if !ok && t.max > 0 && len(t.runs) >= t.max {
		t.evictOldest()
	}
	t.runs[ev.RunID] = seen{status: ev.Status, entered: ev.UpdatedAt, wsID: ev.WorkspaceID, org: ev.Organization}
}

// evictOldest forgets the run that entered its status first. It is linear,
// and runs only when the tracker is full.
func (t *tracker) evictOldest() {
	var oldest string
	var at time.Time
	for id, s := range t.runs {
		if oldest == "" || s.entered.Before(at) {
			oldest, at = id, s.entered
		}
	}
	delete(t.runs, oldest)
}

func (t *tracker) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.runs)
}

// overdue lists the runs whose time in their status passes least(status).
func (t *tracker) overdue(now time.Time, least func(status string) time.Duration) map[string]seen {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]seen{}
	for id, s := range t.runs {
		if now.Sub(s.entered) > least(s.status) {
			out[id] = s
		}
	}
	return out
}

func (t *tracker) forget(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.runs, id)
}

// follow feeds the tracker from the run event stream, starting a day back
// so a replica that starts late still knows the runs in flight, until ctx
// ends.
func (w *Watchdog) follow(ctx context.Context) {
	start := w.opts.Now().Add(-24 * time.Hour)
	for ctx.Err() == nil {
		cons, err := w.deps.JetStream.OrderedConsumer(ctx, w.opts.Stream, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{events.SubjectPrefix + ".>"},
			DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
			OptStartTime:   &start,
		})
		if err == nil {
			err = w.consume(ctx, cons)
		}
		if ctx.Err() != nil {
			return
		}
		w.deps.Log.Warn("watchdog: reading run events", zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second): // the stream may not exist yet
		}
	}
}

func (w *Watchdog) consume(ctx context.Context, cons jetstream.Consumer) error {
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		it.Stop()
	}()
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return ctx.Err()
			}
			return err
		}
		var ev events.RunEvent
		if json.Unmarshal(msg.Data(), &ev) == nil {
			w.tracker.observe(&ev)
		}
	}
}

// CheckEvents acts on the runs the events say are over the smallest budget
// of their group, after reading each through the API to confirm where it
// stands. It costs no API call while no run is overdue.
func (w *Watchdog) CheckEvents(ctx context.Context) error {
	w.eventChecks.Add(1)
	if w.deps.Runs == nil {
		return nil
	}
	least := func(s string) time.Duration {
		g, _ := GroupOf(s)
		d := w.opts.Budgets.For(g, 0, 0)
		if s == runstatus.Pending {
			d = min(d, w.opts.Budgets.For(GroupAwaiting, 0, 0))
		}
		return d
	}
	var errs []error
	for id, s := range w.tracker.overdue(w.opts.Now(), least) {
		run, err := w.deps.Runs.ReadRun(ctx, id)
		if err != nil && tfeclient.Classify(err, nil) == tfeclient.Gone {
			w.tracker.forget(id) // TFE no longer knows it (its workspace was deleted)
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, active := GroupOf(run.Status); !active {
			w.tracker.forget(id)
			continue
		}
		c := candidate{id: id, status: run.Status, entered: enteredAt(run), workspaceID: s.wsID, org: s.org, actions: run.Actions}
		if _, err := w.check(ctx, c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// EventChecks counts the event checks made, for tests and debugging.
func (w *Watchdog) EventChecks() int64 { return w.eventChecks.Load() }

// Tracked is the number of runs followed from the events.
func (w *Watchdog) Tracked() int { return w.tracker.size() }
