package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/ratelog"
)

// WhoAmI is the token's name and role: the page shows the controls only
// to the operate role.
type WhoAmI struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

func (s *Server) whoami(c *call) (int, any) {
	return http.StatusOK, WhoAmI{Name: c.who, Role: c.role.String()}
}

// CascadeList is the answer to a list.
type CascadeList struct {
	Cascades []dispatcher.Summary `json:"cascades"`
}

func (s *Server) list(c *call) (int, any) {
	q := c.r.URL.Query()
	f := dispatcher.Filter{Organization: q.Get("organization"), Workspace: q.Get("workspace"), State: q.Get("state")}
	switch f.State {
	case "", dispatcher.StateRunning, dispatcher.StateDone, dispatcher.StateSetAside:
	default:
		return http.StatusBadRequest, fmt.Errorf("state %q: want running, done or set_aside", f.State)
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return http.StatusBadRequest, fmt.Errorf("since %q: want a time as RFC 3339 (2026-11-23T10:00:00Z)", v)
		}
		f.Since = t
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return http.StatusBadRequest, fmt.Errorf("limit %q: want a number from 1 to 1000", v)
		}
		limit = n
	}
	list, err := c.reads.List(c.r.Context(), f)
	if err != nil {
		return failed(err)
	}
	if len(list) > limit {
		list = list[:limit]
	}
	if list == nil {
		list = []dispatcher.Summary{}
	}
	return http.StatusOK, CascadeList{Cascades: list}
}

func (s *Server) show(c *call) (int, any) {
	v, err := c.reads.Snapshot(c.r.Context(), c.r.PathValue("id"))
	if err != nil {
		return failed(err)
	}
	return http.StatusOK, v
}

// watch streams a cascade's views as server-sent events until the client
// goes, or the server stops; 429 with Retry-After over a cap of streams.
func (s *Server) watch(c *call) (int, any) {
	ctx := c.r.Context()
	if !s.takeStream(c.who) {
		c.w.Header().Set("Retry-After", strconv.Itoa(streamRetryAfter))
		s.opts.Log.Debug("watch stream refused: too many open", zap.String("token", c.who))
		return http.StatusTooManyRequests, fmt.Errorf("too many watch streams open (at most %d for token %s, %d in all); close one or try again in %d s",
			s.opts.MaxStreamsPerToken, c.who, s.opts.MaxStreams, streamRetryAfter)
	}
	defer s.releaseStream(c.who)
	views, err := c.reads.Watch(ctx, c.r.PathValue("id"))
	if err != nil {
		return failed(err)
	}
	rc := http.NewResponseController(c.w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives the server's write timeout
	h := c.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	c.w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	tick := time.NewTicker(s.opts.KeepAlive)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return 0, nil
		case <-s.opts.Stop:
			return 0, nil
		case <-tick.C:
			_, err = fmt.Fprint(c.w, ": keep-alive\n\n")
		case v, ok := <-views:
			if !ok {
				return 0, nil
			}
			data, merr := jsonLine(v)
			if merr != nil {
				return 0, nil
			}
			_, err = fmt.Fprintf(c.w, "event: view\ndata: %s\n\n", data)
		}
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			return 0, nil // the client went away
		}
	}
}

func (s *Server) why(c *call) (int, any) {
	w, err := c.reads.Why(c.r.Context(), c.r.URL.Query().Get("organization"), c.r.PathValue("workspace"))
	if err != nil {
		return failed(err)
	}
	return http.StatusOK, w
}

// Controls is what operators decided that holds now.
type Controls struct {
	// Paused: by organization, "" for everywhere.
	Paused     map[string]dispatcher.Control `json:"paused"`
	Freezes    []dispatcher.Freeze           `json:"freezes"`
	Exclusions []dispatcher.Exclusion        `json:"exclusions"`
	// Changes, in the answer to a list replaced: the freeze windows or
	// exclusions added and removed, as the audit trail records them.
	Changes []dispatcher.AuditRecord `json:"changes,omitempty"`
}

func (s *Server) controls(c *call) (int, any) {
	ctl, err := s.inForce(c)
	if err != nil {
		return failed(err)
	}
	return http.StatusOK, ctl
}

func (s *Server) inForce(c *call) (*Controls, error) {
	ctx := c.r.Context()
	paused, err := c.reads.Paused(ctx)
	if err != nil {
		return nil, err
	}
	freezes, err := c.reads.Freezes(ctx)
	if err != nil {
		return nil, err
	}
	excl, err := c.reads.Exclusions(ctx)
	if err != nil {
		return nil, err
	}
	if freezes == nil {
		freezes = []dispatcher.Freeze{}
	}
	if excl == nil {
		excl = []dispatcher.Exclusion{}
	}
	return &Controls{Paused: paused, Freezes: freezes, Exclusions: excl}, nil
}

// Status is what is in force (the engine's dispatcher.Status), and
// whether this daemon is ready.
type Status struct {
	dispatcher.Status
	// Readiness: "ready", what keeps the daemon from being ready (as
	// /readyz says it), or "not reported".
	Readiness string `json:"readiness"`
	// PublicURL is where operators reach the daemon (serve --public-url):
	// a cascade's page is PublicURL/ui/#ID. Empty when not set.
	PublicURL string `json:"public_url,omitempty"`
}

func (s *Server) status(c *call) (int, any) {
	st, err := c.reads.Status(c.r.Context())
	if err != nil {
		return failed(err)
	}
	out := Status{Status: *st, Readiness: "not reported", PublicURL: s.opts.PublicURL}
	if s.opts.Ready != nil {
		if out.Readiness = s.opts.Ready(c.r.Context()); out.Readiness == "" {
			out.Readiness = "ready"
		}
	}
	return http.StatusOK, out
}

// AuditTrail is the answer to an audit request: records newest first.
type AuditTrail struct {
	Records []dispatcher.AuditRecord `json:"records"`
}

func (s *Server) audit(c *call) (int, any) {
	q := c.r.URL.Query()
	f := dispatcher.AuditFilter{Organization: q.Get("organization"), Cascade: q.Get("cascade")}
	return s.auditTrail(c, f)
}

// cascadeAudit is the audit trail of one cascade. Records outlive the
// cascade's state (--audit-retention, --state-ttl): a cascade no longer
// kept still has them; one without records that the engine does not keep
// is a 404.
func (s *Server) cascadeAudit(c *call) (int, any) {
	id := c.r.PathValue("id")
	code, body := s.auditTrail(c, dispatcher.AuditFilter{Cascade: id})
	if trail, ok := body.(AuditTrail); ok && len(trail.Records) == 0 {
		if _, err := c.reads.Snapshot(c.r.Context(), id); errors.Is(err, dispatcher.ErrNoCascade) {
			return failed(err)
		}
	}
	return code, body
}

func (s *Server) auditTrail(c *call, f dispatcher.AuditFilter) (int, any) {
	q := c.r.URL.Query()
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return http.StatusBadRequest, fmt.Errorf("since %q: want a time as RFC 3339 (2026-11-23T10:00:00Z)", ratelog.Clean(v, maxShown))
		}
		f.Since = t
	}
	f.Limit = 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return http.StatusBadRequest, fmt.Errorf("limit %q: want a number from 1 to 1000", ratelog.Clean(v, maxShown))
		}
		f.Limit = n
	}
	recs, err := c.reads.Audit(c.r.Context(), f)
	if err != nil {
		return failed(err)
	}
	if recs == nil {
		recs = []dispatcher.AuditRecord{}
	}
	return http.StatusOK, AuditTrail{Records: recs}
}

// Decision is the body of a control: who (optional: the token's name
// stands for it) and why (required).
type Decision struct {
	By  string `json:"by,omitempty"`
	Why string `json:"why"`
}

// maxPerson bounds the name a decision gives (the token's is added).
const maxPerson = 100

// control turns a decision into the engine's record of it: the person's
// name as given, and the token it came with.
func (c *call) control(d Decision) (dispatcher.Control, error) {
	switch n := utf8.RuneCountInString(d.Why); {
	case strings.TrimSpace(d.Why) == "":
		return dispatcher.Control{}, errors.New("why: say why (it is recorded with the control)")
	case n > dispatcher.MaxWhy:
		return dispatcher.Control{}, fmt.Errorf("why: at most %d characters, not %d: say why in short (it is recorded with the control and shown to everyone)", dispatcher.MaxWhy, n)
	}
	if n := utf8.RuneCountInString(d.By); n > maxPerson {
		return dispatcher.Control{}, fmt.Errorf("by: at most %d characters, not %d", maxPerson, n)
	}
	by := c.who
	if d.By != "" && d.By != c.who {
		by = d.By + " (token " + c.who + ")"
	}
	return dispatcher.Control{By: by, Why: d.Why}, nil
}

// read decodes a control's body into req, whose decision is d, and
// returns the engine's record of the decision.
func (c *call) read(req any, d *Decision) (dispatcher.Control, error) {
	if err := decodeBody(c.w, c.r, maxBody, req); err != nil {
		return dispatcher.Control{}, err
	}
	return c.control(*d)
}

// PauseRequest pauses or resumes one organization, or everything.
type PauseRequest struct {
	Decision
	Organization string `json:"organization,omitempty"`
}

// ResumeAnswer is the controls in force after a resume, and the pause it
// lifted: null when nothing was paused there.
type ResumeAnswer struct {
	Controls
	Lifted *dispatcher.Control `json:"lifted"`
}

func (s *Server) pause(c *call) (int, any)  { return s.pausing(c, true) }
func (s *Server) resume(c *call) (int, any) { return s.pausing(c, false) }

func (s *Server) pausing(c *call, pause bool) (int, any) {
	var req PauseRequest
	ctl, err := c.read(&req, &req.Decision)
	if err != nil {
		return http.StatusBadRequest, err
	}
	if req.Organization != "" && !events.ValidName(req.Organization, maxName) {
		return http.StatusBadRequest, fmt.Errorf("organization %q: want a TFE organization name (letters, digits, - and _), or none for everywhere",
			ratelog.Clean(req.Organization, maxShown))
	}
	var lifted *dispatcher.Control
	if pause {
		err = c.ops.Pause(c.r.Context(), req.Organization, ctl)
	} else {
		lifted, err = c.ops.Resume(c.r.Context(), req.Organization, ctl)
	}
	if err != nil {
		return failed(err)
	}
	now, err := s.inForce(c)
	if err != nil {
		return failed(err)
	}
	if pause {
		return http.StatusOK, now
	}
	return http.StatusOK, ResumeAnswer{Controls: *now, Lifted: lifted}
}

// CancelRequest cancels a cascade.
type CancelRequest struct {
	Decision
	// StopRuns: also stop its runs that have not started applying.
	StopRuns bool `json:"stop_runs,omitempty"`
}

func (s *Server) cancel(c *call) (int, any) {
	var req CancelRequest
	ctl, err := c.read(&req, &req.Decision)
	if err != nil {
		return http.StatusBadRequest, err
	}
	ctl.StopRuns = req.StopRuns
	id := c.r.PathValue("id")
	if err := c.ops.Cancel(c.r.Context(), id, ctl); err != nil {
		return failed(err)
	}
	return s.show(c)
}

// RetryRequest runs a failed or blocked member again.
type RetryRequest struct {
	Decision
	// Workspace: the member, by name or ID.
	Workspace string `json:"workspace"`
}

func (s *Server) retry(c *call) (int, any) {
	var req RetryRequest
	ctl, err := c.read(&req, &req.Decision)
	if err != nil {
		return http.StatusBadRequest, err
	}
	id := c.r.PathValue("id")
	v, err := c.reads.Snapshot(c.r.Context(), id)
	if err != nil {
		return failed(err)
	}
	i := slices.IndexFunc(v.Members, func(m dispatcher.MemberView) bool {
		return req.Workspace != "" && (m.Name == req.Workspace || m.WorkspaceID == req.Workspace)
	})
	if i < 0 {
		return http.StatusBadRequest, fmt.Errorf("workspace: %q is not a member of cascade %s", ratelog.Clean(req.Workspace, maxShown), id)
	}
	res, err := c.ops.Retry(c.r.Context(), id, v.Members[i].WorkspaceID, ctl)
	if err != nil {
		return failed(err)
	}
	if v, err = c.reads.Snapshot(c.r.Context(), id); err != nil {
		return failed(err)
	}
	return http.StatusOK, RetryAnswer{View: v, Retry: *res}
}

// RetryAnswer is the cascade after a retry, and what the retry set in
// motion.
type RetryAnswer struct {
	*dispatcher.View
	Retry dispatcher.RetryResult `json:"retry"`
}

func (s *Server) approve(c *call) (int, any) {
	var req Decision
	ctl, err := c.read(&req, &req)
	if err != nil {
		return http.StatusBadRequest, err
	}
	if err := c.ops.Approve(c.r.Context(), c.r.PathValue("id"), ctl); err != nil {
		return failed(err)
	}
	return s.show(c)
}

// FreezesRequest replaces the freeze windows. Why (with By, optional)
// says why the list changes: the why of the windows it removes, and of
// those it adds without their own.
type FreezesRequest struct {
	Freezes []dispatcher.Freeze `json:"freezes"`
	By      string              `json:"by,omitempty"`
	Why     string              `json:"why,omitempty"`
}

// listChange is the decision a list's replacement comes with: its why,
// or none (then nothing may be removed).
func (c *call) listChange(by, why string) (dispatcher.Control, error) {
	if why == "" {
		return dispatcher.Control{By: c.who}, nil
	}
	return c.control(Decision{By: by, Why: why})
}

func (s *Server) setFreezes(c *call) (int, any) {
	var req FreezesRequest
	if err := decodeBody(c.w, c.r, maxListBody, &req); err != nil {
		return http.StatusBadRequest, err
	}
	change, err := c.listChange(req.By, req.Why)
	if err != nil {
		return http.StatusBadRequest, err
	}
	for i := range req.Freezes {
		f := &req.Freezes[i]
		d := Decision{By: f.By, Why: f.Why}
		if d.Why == "" {
			d = Decision{By: req.By, Why: req.Why}
		}
		ctl, err := c.control(d)
		if err != nil {
			return http.StatusBadRequest, fmt.Errorf("freezes[%d].%v", i, err)
		}
		f.By, f.Why = ctl.By, ctl.Why
	}
	recs, err := c.ops.SetFreezes(c.r.Context(), req.Freezes, change)
	if err != nil {
		return failed(err)
	}
	return s.changed(c, recs)
}

func (s *Server) changed(c *call, recs []dispatcher.AuditRecord) (int, any) {
	now, err := s.inForce(c)
	if err != nil {
		return failed(err)
	}
	now.Changes = recs
	return http.StatusOK, now
}

// ExclusionsRequest replaces the exclusions; Why and By as in a
// FreezesRequest.
type ExclusionsRequest struct {
	Exclusions []dispatcher.Exclusion `json:"exclusions"`
	By         string                 `json:"by,omitempty"`
	Why        string                 `json:"why,omitempty"`
}

func (s *Server) setExclusions(c *call) (int, any) {
	var req ExclusionsRequest
	if err := decodeBody(c.w, c.r, maxListBody, &req); err != nil {
		return http.StatusBadRequest, err
	}
	change, err := c.listChange(req.By, req.Why)
	if err != nil {
		return http.StatusBadRequest, err
	}
	for i := range req.Exclusions {
		x := &req.Exclusions[i]
		d := Decision{By: x.By, Why: x.Why}
		if d.Why == "" {
			d = Decision{By: req.By, Why: req.Why}
		}
		ctl, err := c.control(d)
		if err != nil {
			return http.StatusBadRequest, fmt.Errorf("exclusions[%d].%v", i, err)
		}
		x.By, x.Why = ctl.By, ctl.Why
	}
	recs, err := c.ops.SetExclusions(c.r.Context(), req.Exclusions, change)
	if err != nil {
		return failed(err)
	}
	return s.changed(c, recs)
}
