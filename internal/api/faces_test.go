package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
)

// readModel answers what the status and the controls in force read; the
// rest of Reads is not expected to be called.
type readModel struct {
	Reads
	paused map[string]dispatcher.Control
}

func (r *readModel) Status(context.Context) (*dispatcher.Status, error) {
	return &dispatcher.Status{Instance: "replica-1"}, nil
}

func (r *readModel) Paused(context.Context) (map[string]dispatcher.Control, error) {
	return r.paused, nil
}

func (r *readModel) Freezes(context.Context) ([]dispatcher.Freeze, error) { return nil, nil }

func (r *readModel) Exclusions(context.Context) ([]dispatcher.Exclusion, error) { return nil, nil }

// pauses takes pauses into the read model; the rest of Operations is not
// expected to be called.
type pauses struct {
	Operations
	rm *readModel
}

func (p *pauses) Pause(_ context.Context, org string, c dispatcher.Control) error {
	p.rm.paused[org] = c
	return nil
}

// TestReadsAndOperations: a request of the read role is served by the
// read model alone, never given the controls, and answered while the
// controls are missing; a control needs both.
func TestReadsAndOperations(t *testing.T) {
	rm := &readModel{paused: map[string]dispatcher.Control{}}
	var reads Reads = rm
	var ops Operations = &pauses{rm: rm}
	opsAsked := 0
	s, err := New(Options{
		Tokens: []Token{{Name: "viewer", Secret: "read-secret-0123456789", Role: RoleRead}, {Name: "alice", Secret: "operate-secret-0123456", Role: RoleOperate}},
		Reads:  func() Reads { return reads },
		Operations: func() Operations {
			opsAsked++
			return ops
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, secret, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+secret)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w
	}

	if w := do("GET", "/api/v1/status", "read-secret-0123456789", ""); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "replica-1") {
		t.Fatalf("status: %d %s", w.Code, w.Body)
	}
	if opsAsked != 0 {
		t.Errorf("a read asked for the controls %d times", opsAsked)
	}
	if w := do("POST", "/api/v1/pause", "operate-secret-0123456", `{"organization": "acme", "why": "incident"}`); w.Code != http.StatusOK ||
		!strings.Contains(w.Body.String(), `"acme"`) {
		t.Fatalf("pause: %d %s", w.Code, w.Body)
	}
	if c, ok := rm.paused["acme"]; !ok || c.By != "alice" || c.Why != "incident" {
		t.Errorf("the pause reached the controls as %+v (%v), want alice's, for incident", c, ok)
	}
	if opsAsked != 1 {
		t.Errorf("a pause asked for the controls %d times, want once", opsAsked)
	}

	ops = nil // the read model without the controls
	if w := do("GET", "/api/v1/controls", "read-secret-0123456789", ""); w.Code != http.StatusOK {
		t.Errorf("controls in force without the controls: %d %s, want 200", w.Code, w.Body)
	}
	if w := do("POST", "/api/v1/pause", "operate-secret-0123456", `{"why": "incident"}`); w.Code != http.StatusServiceUnavailable {
		t.Errorf("a pause without the controls: %d %s, want 503", w.Code, w.Body)
	}
	reads = nil // no engine
	if w := do("GET", "/api/v1/status", "read-secret-0123456789", ""); w.Code != http.StatusServiceUnavailable ||
		!strings.Contains(w.Body.String(), "not running here") {
		t.Errorf("status without an engine: %d %s, want 503", w.Code, w.Body)
	}
}
