package tfesim

import (
	"net/http"
	"time"
)

// Timing is how long a run spends in each phase that moves on its own. The
// zero value makes every phase instant, which is what most tests want.
type Timing struct {
	// Queue is the time a run waits for a worker: once in plan_queued and
	// again in apply_queued.
	Queue time.Duration `yaml:"queue"`
	// Plan is the time a run spends planning.
	Plan time.Duration `yaml:"plan"`
	// Apply is the time a run spends applying.
	Apply time.Duration `yaml:"apply"`
	// StateProcessing is the time after an apply during which its state
	// version reads resources-processed false, shows no outputs, and the
	// workspace's current-state-version-outputs answers 503.
	StateProcessing time.Duration `yaml:"state_processing"`
}

// DefaultTiming is the timing of a simulator whose Options.Timing is nil:
// a small real run, slow enough that every transient status can be seen
// and cancelled by a client polling once a second, whose state is
// processed a second after it applies.
func DefaultTiming() Timing {
	return Timing{Queue: time.Second, Plan: 4 * time.Second, Apply: 4 * time.Second, StateProcessing: time.Second}
}

func (t Timing) validate() error {
	if t.Queue < 0 || t.Plan < 0 || t.Apply < 0 || t.StateProcessing < 0 {
		return errUnprocessable("durations must not be negative")
	}
	return nil
}

// Timing returns the phase durations runs use where their workspace's
// behaviour does not set its own.
func (s *Sim) Timing() Timing {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.timing
}

// SetTiming changes the phase durations from the next transition on. A
// transition already scheduled keeps its due time.
func (s *Sim) SetTiming(t Timing) error {
	if err := t.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timing = t
	return nil
}

// planDuration is how long r plans: its workspace's behaviour when set,
// the simulator's timing otherwise.
func (s *Sim) planDuration(r *run) time.Duration {
	if ms := r.ws.behavior.PlanDurationMS; ms > 0 {
		return time.Duration(ms) * time.Millisecond
	}
	return s.timing.Plan
}

func (s *Sim) applyDuration(r *run) time.Duration {
	if ms := r.ws.behavior.ApplyDurationMS; ms > 0 {
		return time.Duration(ms) * time.Millisecond
	}
	return s.timing.Apply
}

// timingJSON is Timing on the control API, in milliseconds like Behavior.
type timingJSON struct {
	QueueMS           int64 `json:"queue_ms"`
	PlanMS            int64 `json:"plan_ms"`
	ApplyMS           int64 `json:"apply_ms"`
	StateProcessingMS int64 `json:"state_processing_ms"`
}

func (j timingJSON) timing() Timing {
	return Timing{
		Queue:           time.Duration(j.QueueMS) * time.Millisecond,
		Plan:            time.Duration(j.PlanMS) * time.Millisecond,
		Apply:           time.Duration(j.ApplyMS) * time.Millisecond,
		StateProcessing: time.Duration(j.StateProcessingMS) * time.Millisecond,
	}
}

func toTimingJSON(t Timing) timingJSON {
	return timingJSON{
		QueueMS: t.Queue.Milliseconds(), PlanMS: t.Plan.Milliseconds(), ApplyMS: t.Apply.Milliseconds(),
		StateProcessingMS: t.StateProcessing.Milliseconds(),
	}
}

func (s *Sim) getTiming(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, toTimingJSON(s.Timing()))
	return nil
}

func (s *Sim) putTiming(w http.ResponseWriter, r *http.Request) error {
	var j timingJSON
	if err := decodeJSON(r, &j); err != nil {
		return err
	}
	if err := s.SetTiming(j.timing()); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, j)
	return nil
}
