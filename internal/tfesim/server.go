package tfesim

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Response headers TFE sends on every API answer.
const (
	headerRateLimit = "X-RateLimit-Limit"
	headerRateReset = "X-RateLimit-Reset"
	apiPrefix       = "/api/v2"
)

type principal struct {
	token string
	user  *user
}

func (p principal) admin() bool { return p.user != nil && p.user.siteAdmin }

// Handler returns the simulator's HTTP handler: the TFE API under /api/v2,
// the configuration-version upload URLs, and the control API under /_sim/.
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	s.routes(mux)
	return mux
}

// handle registers an API route. Every API request is authenticated,
// rate limited per token, subject to injected faults and counted by route.
func (s *Sim) handle(mux *http.ServeMux, pattern string, h func(http.ResponseWriter, *http.Request) error) {
	method, path, _ := strings.Cut(pattern, " ")
	full := method + " " + apiPrefix + path
	adminOnly := strings.HasPrefix(path, "/admin/")
	mux.HandleFunc(full, func(w http.ResponseWriter, r *http.Request) {
		s.countRequest(full)
		s.setRateHeaders(w)
		p, ok := s.authenticate(r)
		if !ok {
			writeError(w, &httpError{http.StatusUnauthorized, "unauthorized", ""})
			return
		}
		if !s.allow(w, p) {
			return
		}
		if s.injectFault(w) {
			return
		}
		if adminOnly && !p.admin() {
			writeError(w, errNotFound())
			return
		}
		if err := h(w, withPrincipal(r, p)); err != nil {
			writeError(w, err)
		}
	})
}

// handleOpen registers a route outside the API's auth and limits.
func (s *Sim) handleOpen(mux *http.ServeMux, pattern string, h func(http.ResponseWriter, *http.Request) error) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		s.countRequest(pattern)
		if err := h(w, r); err != nil {
			writeError(w, err)
		}
	})
}

func (s *Sim) routes(mux *http.ServeMux) {
	s.handleOpen(mux, "GET "+apiPrefix+"/ping", s.ping)

	s.handle(mux, "GET /account/details", s.accountDetails)
	s.handle(mux, "GET /users/{id}", s.showUser)

	s.handle(mux, "POST /organizations", s.createOrganization)
	s.handle(mux, "GET /organizations", s.listOrganizations)
	s.handle(mux, "GET /organizations/{org}", s.showOrganization)
	s.handle(mux, "PATCH /organizations/{org}", s.updateOrganization)
	s.handle(mux, "DELETE /organizations/{org}", s.deleteOrganization)

	s.handle(mux, "POST /organizations/{org}/workspaces", s.createWorkspace)
	s.handle(mux, "GET /organizations/{org}/workspaces", s.listWorkspaces)
	s.handle(mux, "GET /organizations/{org}/workspaces/{name}", s.showWorkspace)
	s.handle(mux, "PATCH /organizations/{org}/workspaces/{name}", s.updateWorkspace)
	s.handle(mux, "DELETE /organizations/{org}/workspaces/{name}", s.deleteWorkspace)
	s.handle(mux, "POST /organizations/{org}/workspaces/{name}/actions/safe-delete", s.safeDeleteWorkspace)
	s.handle(mux, "GET /workspaces/{id}", s.showWorkspace)
	s.handle(mux, "PATCH /workspaces/{id}", s.updateWorkspace)
	s.handle(mux, "DELETE /workspaces/{id}", s.deleteWorkspace)
	s.handle(mux, "POST /workspaces/{id}/actions/safe-delete", s.safeDeleteWorkspace)
	s.handle(mux, "POST /workspaces/{id}/actions/lock", s.lockWorkspace)
	s.handle(mux, "POST /workspaces/{id}/actions/unlock", s.unlockWorkspace)
	s.handle(mux, "POST /workspaces/{id}/actions/force-unlock", s.forceUnlockWorkspace)
	s.handle(mux, "GET /workspaces/{id}/relationships/tags", s.listWorkspaceTags)
	s.handle(mux, "POST /workspaces/{id}/relationships/tags", s.addWorkspaceTags)
	s.handle(mux, "DELETE /workspaces/{id}/relationships/tags", s.removeWorkspaceTags)

	s.handle(mux, "POST /workspaces/{id}/run-triggers", s.createRunTrigger)
	s.handle(mux, "GET /workspaces/{id}/run-triggers", s.listRunTriggers)
	s.handle(mux, "GET /run-triggers/{id}", s.showRunTrigger)
	s.handle(mux, "DELETE /run-triggers/{id}", s.deleteRunTrigger)

	s.handle(mux, "POST /runs", s.createRun)
	s.handle(mux, "GET /runs/{id}", s.showRun)
	s.handle(mux, "GET /workspaces/{id}/runs", s.listRuns)
	s.handle(mux, "POST /runs/{id}/actions/apply", s.runAction(s.applyRun))
	s.handle(mux, "POST /runs/{id}/actions/cancel", s.runAction(s.cancelRun))
	s.handle(mux, "POST /runs/{id}/actions/discard", s.runAction(s.discardRun))
	s.handle(mux, "POST /runs/{id}/actions/force-cancel", s.runAction(s.forceCancelRun))
	s.handle(mux, "GET /runs/{id}/comments", s.listComments)
	s.handle(mux, "POST /runs/{id}/comments", s.createComment)
	s.handle(mux, "GET /comments/{id}", s.showComment)

	s.handle(mux, "POST /workspaces/{id}/configuration-versions", s.createConfigVersion)
	s.handle(mux, "GET /workspaces/{id}/configuration-versions", s.listConfigVersions)
	s.handle(mux, "GET /configuration-versions/{id}", s.showConfigVersion)
	s.handleOpen(mux, "PUT /_archivist/v1/object/{secret}", s.uploadConfigVersion)

	s.handle(mux, "GET /workspaces/{id}/current-state-version", s.showCurrentStateVersion)
	s.handle(mux, "GET /workspaces/{id}/current-state-version-outputs", s.showCurrentOutputs)
	s.handle(mux, "GET /state-versions", s.listStateVersions)
	s.handle(mux, "GET /state-versions/{id}", s.showStateVersion)
	s.handle(mux, "GET /state-versions/{id}/outputs", s.listStateVersionOutputs)
	s.handle(mux, "GET /state-version-outputs/{id}", s.showStateVersionOutput)
	s.handleOpen(mux, "GET /_archivist/v1/object/{secret}", s.downloadState)

	s.handle(mux, "POST /workspaces/{id}/notification-configurations", s.createNotificationConfig)
	s.handle(mux, "GET /workspaces/{id}/notification-configurations", s.listNotificationConfigs)
	s.handle(mux, "GET /notification-configurations/{id}", s.showNotificationConfig)
	s.handle(mux, "PATCH /notification-configurations/{id}", s.updateNotificationConfig)
	s.handle(mux, "DELETE /notification-configurations/{id}", s.deleteNotificationConfig)
	s.handle(mux, "POST /notification-configurations/{id}/actions/verify", s.verifyNotificationConfig)

	s.handle(mux, "GET /admin/runs", s.adminListRuns)
	s.handle(mux, "POST /admin/runs/{id}/actions/force-cancel", s.adminForceCancel)
	s.handle(mux, "GET /admin/terraform-versions", s.listToolVersions)
	s.handle(mux, "POST /admin/terraform-versions", s.createToolVersion)
	s.handle(mux, "GET /admin/terraform-versions/{id}", s.showToolVersion)
	s.handle(mux, "PATCH /admin/terraform-versions/{id}", s.updateToolVersion)
	s.handle(mux, "DELETE /admin/terraform-versions/{id}", s.deleteToolVersion)

	s.control(mux)

	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.countRequest("unmatched")
		writeError(w, errNotFound())
	})
}

func (s *Sim) ping(w http.ResponseWriter, _ *http.Request) error {
	s.setRateHeaders(w)
	w.Header().Set("TFP-API-Version", "2.6")
	w.Header().Set("TFP-AppName", "Terraform Enterprise")
	w.Header().Set("X-TFE-Version", "v202411-1")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Sim) setRateHeaders(w http.ResponseWriter) {
	if s.opts.RateLimit > 0 {
		w.Header().Set(headerRateLimit, fmt.Sprint(s.opts.RateLimit))
	}
}

func (s *Sim) authenticate(r *http.Request) (principal, bool) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return principal{}, false
	}
	// Compare with every token, in constant time, so that timing tells
	// nothing about which one came close.
	var found principal
	for known, u := range s.users {
		if subtle.ConstantTimeCompare([]byte(token), []byte(known)) == 1 {
			found = principal{token: token, user: u}
		}
	}
	return found, found.user != nil
}

// allow applies the per-token rate limit. It uses the wall clock whatever
// clock drives runs: rate limiting is about real request traffic.
func (s *Sim) allow(w http.ResponseWriter, p principal) bool {
	limit := s.currentRateLimit()
	if limit <= 0 {
		return true
	}
	s.limMu.Lock()
	lim := s.limiters[p.token]
	if lim == nil || int(lim.Limit()) != limit {
		lim = rate.NewLimiter(rate.Limit(limit), limit)
		s.limiters[p.token] = lim
	}
	now := time.Now()
	res := lim.ReserveN(now, 1)
	delay := res.DelayFrom(now)
	if delay > 0 {
		res.CancelAt(now)
	}
	s.limMu.Unlock()
	if delay <= 0 {
		return true
	}
	s.count(func(st *Stats) { st.RateLimited++ })
	w.Header().Set(headerRateReset, fmt.Sprintf("%.3f", delay.Seconds()))
	// The error object of TFE's API documentation (Rate Limiting).
	writeError(w, &httpError{http.StatusTooManyRequests, "Too many requests", "You have exceeded the API's rate limit."})
	return false
}

// control serves the simulator's own API under /_sim/, behind the admin token.
func (s *Sim) control(mux *http.ServeMux) {
	guard := func(h func(http.ResponseWriter, *http.Request) error) func(http.ResponseWriter, *http.Request) error {
		return func(w http.ResponseWriter, r *http.Request) error {
			if p, ok := s.authenticate(r); !ok || !p.admin() {
				return &httpError{http.StatusUnauthorized, "unauthorized", ""}
			}
			return h(w, r)
		}
	}
	s.handleOpen(mux, "PUT /_sim/workspaces/{id}/behavior", guard(s.putBehavior))
	s.handleOpen(mux, "GET /_sim/workspaces/{id}/behavior", guard(s.getBehavior))
	s.handleOpen(mux, "GET /_sim/faults", guard(s.getFaults))
	s.handleOpen(mux, "PUT /_sim/faults", guard(s.putFaults))
	s.handleOpen(mux, "GET /_sim/timing", guard(s.getTiming))
	s.handleOpen(mux, "PUT /_sim/timing", guard(s.putTiming))
	s.handleOpen(mux, "GET /_sim/stats", guard(s.getStats))
	s.handleOpen(mux, "DELETE /_sim/stats", guard(s.resetStats))
}

func decodeJSON(r *http.Request, dst any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	dec.UseNumber() // output values keep their numbers exact
	if err := dec.Decode(dst); err != nil {
		return errBadRequest("malformed JSON: " + err.Error())
	}
	return nil
}

func (s *Sim) putBehavior(w http.ResponseWriter, r *http.Request) error {
	var b Behavior
	if err := decodeJSON(r, &b); err != nil {
		return err
	}
	if err := s.SetBehavior(r.PathValue("id"), b); err != nil {
		return err
	}
	return s.getBehavior(w, r)
}

func (s *Sim) getBehavior(w http.ResponseWriter, r *http.Request) error {
	s.mu.Lock()
	ws := s.workspaces[r.PathValue("id")]
	var b Behavior
	if ws != nil {
		b = ws.behavior
	}
	s.mu.Unlock()
	if ws == nil {
		return errNotFound()
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

// SetBehavior changes how the runs of workspace id play out from now on,
// the outputs its next applies write included (b.Outputs nil: none).
func (s *Sim) SetBehavior(id string, b Behavior) error {
	b, err := b.normalized()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ws := s.workspaces[id]
	if ws == nil {
		return errNotFound()
	}
	now := s.now()
	ws.behavior = b
	// A run that was held in a status it is no longer told to stay in moves
	// on; one whose cancel it ignored ends canceled now.
	for _, r := range ws.runs {
		if !stuckable[r.status] || !r.nextAt.IsZero() || r.status == b.StuckIn {
			continue
		}
		if r.cancelRequested {
			s.finish(r, StatusCanceled, now)
		} else {
			s.waitUntil(r, now)
		}
	}
	return nil
}

func (s *Sim) getFaults(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, s.Faults())
	return nil
}

func (s *Sim) putFaults(w http.ResponseWriter, r *http.Request) error {
	var f Faults
	if err := decodeJSON(r, &f); err != nil {
		return err
	}
	if err := s.SetFaults(f); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, f)
	return nil
}

func (s *Sim) getStats(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, s.Stats())
	return nil
}

func (s *Sim) resetStats(w http.ResponseWriter, _ *http.Request) error {
	s.ResetStats()
	w.WriteHeader(http.StatusNoContent)
	return nil
}
