package tfesim

import (
	"maps"
	"net/http"
	"time"
)

// Faults are injected into every API request (not into /_sim/ or ping).
type Faults struct {
	// LatencyMS delays every API answer by this many milliseconds.
	LatencyMS int64 `json:"latency_ms"`
	// ErrorRate is the fraction, 0 to 1, of API requests answered 503.
	ErrorRate float64 `json:"error_rate"`
	// RateLimit, when set, replaces the per-token requests per second;
	// negative disables rate limiting.
	RateLimit int `json:"rate_limit,omitempty"`
}

// SetFaults replaces the injected faults.
func (s *Sim) SetFaults(f Faults) error {
	if f.LatencyMS < 0 || f.ErrorRate < 0 || f.ErrorRate > 1 {
		return errUnprocessable("latency_ms must not be negative and error_rate must be within [0, 1]")
	}
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	s.faults = f
	return nil
}

// Faults returns the injected faults in force.
func (s *Sim) Faults() Faults {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	f := s.faults
	if f.RateLimit == 0 {
		f.RateLimit = s.opts.RateLimit
	}
	return f
}

func (s *Sim) currentRateLimit() int { return s.Faults().RateLimit }

// injectFault delays the request and may answer it with a 503. It reports
// whether it answered.
func (s *Sim) injectFault(w http.ResponseWriter) bool {
	s.faultMu.Lock()
	f := s.faults
	fail := f.ErrorRate > 0 && s.rng.Float64() < f.ErrorRate
	s.faultMu.Unlock()
	if f.LatencyMS > 0 {
		time.Sleep(time.Duration(f.LatencyMS) * time.Millisecond)
	}
	if !fail {
		return false
	}
	s.count(func(st *Stats) { st.InjectedErrors++ })
	writeError(w, &httpError{http.StatusServiceUnavailable, "service unavailable", "injected fault"})
	return true
}

// Stats counts what the simulator served.
type Stats struct {
	// Requests counts requests by route pattern, e.g.
	// "GET /api/v2/workspaces/{id}/run-triggers".
	Requests       map[string]int `json:"requests"`
	RateLimited    int            `json:"rate_limited"`
	InjectedErrors int            `json:"injected_errors"`
	Notifications  struct {
		Delivered int `json:"delivered"`
		Failed    int `json:"failed"`
		Dropped   int `json:"dropped"`
	} `json:"notifications"`
}

func newStats() Stats { return Stats{Requests: map[string]int{}} }

func (s *Sim) count(f func(*Stats)) {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	f(&s.stats)
}

func (s *Sim) countRequest(route string) { s.count(func(st *Stats) { st.Requests[route]++ }) }

// Stats returns a copy of the counters.
func (s *Sim) Stats() Stats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	out := s.stats
	out.Requests = maps.Clone(s.stats.Requests)
	return out
}

// ResetStats sets every counter to zero.
func (s *Sim) ResetStats() {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	s.stats = newStats()
}
