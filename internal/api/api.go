// Package api is the operator API: cascades as the engine's read model
// shows them, "why" for a workspace, the operators' controls, what is in
// force (status) and the audit trail of the controls, over versioned JSON
// on HTTP (documented in docs/api.md). The CLI and the web page use it,
// through Client or from the browser.
//
// It guarantees that nothing is read or changed without a bearer token of
// the right role (tokens compared in constant time, never logged), that
// every error is JSON a person can act on, and that it never touches the
// engine's storage. It sees the engine through two interfaces only: Reads,
// the read model, which changes nothing, and Operations, the operators'
// controls, which only requests of the operate role are given. A
// cascade ID, workspace or organization that cannot be one (a NATS
// wildcard, a dot, a space, too long) is answered 400 before anything is
// looked up, a well-formed one the engine does not keep 404. A control's
// fields are bounded (a why of dispatcher.MaxWhy characters, a body of 64
// KiB, a list's of 1 MiB) and one over is answered 400 naming the field;
// an organization TFE does not know, 422. Requests
// without a valid token are logged within a bound (internal/ratelog), their
// paths cut short. Watch streams are capped, per token and in all (MaxStreamsPerToken,
// MaxStreams); one over a cap is answered 429 with Retry-After, and the
// streams open cost the engine one KV watch between them, so readers never
// hold up the engine or the controls.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/ratelog"
)

// Reads is what the API reads of the cascade engine: its read model
// (*dispatcher.Reads). Nothing in it changes a cascade or a control.
type Reads interface {
	List(ctx context.Context, f dispatcher.Filter) ([]dispatcher.Summary, error)
	Snapshot(ctx context.Context, id string) (*dispatcher.View, error)
	Watch(ctx context.Context, id string) (<-chan *dispatcher.View, error)
	Why(ctx context.Context, org, workspace string) (*dispatcher.Why, error)
	Paused(ctx context.Context) (map[string]dispatcher.Control, error)
	Exclusions(ctx context.Context) ([]dispatcher.Exclusion, error)
	Freezes(ctx context.Context) ([]dispatcher.Freeze, error)
	Audit(ctx context.Context, f dispatcher.AuditFilter) ([]dispatcher.AuditRecord, error)
	Status(ctx context.Context) (*dispatcher.Status, error)
}

// Operations is what the API changes through the cascade engine: the
// operators' controls (*dispatcher.Controls), each checked, stored and
// kept in the audit trail by the engine.
type Operations interface {
	Pause(ctx context.Context, org string, c dispatcher.Control) error
	Resume(ctx context.Context, org string, c dispatcher.Control) (*dispatcher.Control, error)
	Cancel(ctx context.Context, id string, c dispatcher.Control) error
	Retry(ctx context.Context, id, workspaceID string, c dispatcher.Control) (*dispatcher.RetryResult, error)
	Approve(ctx context.Context, id string, c dispatcher.Control) error
	SetExclusions(ctx context.Context, excl []dispatcher.Exclusion, c dispatcher.Control) ([]dispatcher.AuditRecord, error)
	SetFreezes(ctx context.Context, fs []dispatcher.Freeze, c dispatcher.Control) ([]dispatcher.AuditRecord, error)
}

// Options configure the API.
type Options struct {
	Tokens []Token
	// Reads returns the engine's read model, and Operations its controls,
	// or nil while there is no engine (the daemon ingests only, without a
	// TFE token). A read needs Reads; a control needs both.
	Reads      func() Reads
	Operations func() Operations
	// Ready says whether the daemon is ready, as /readyz does: "" when it
	// is, else what is wrong. Nil: status says readiness is not reported.
	Ready func(context.Context) string
	// Stop ends the watch streams (the server is shutting down).
	Stop <-chan struct{}
	// KeepAlive is how often a watch stream sends a comment; default 15s.
	KeepAlive time.Duration
	// MaxStreams caps the watch streams open at once, all tokens together
	// (default DefaultMaxStreams); MaxStreamsPerToken caps those of one
	// token (default DefaultMaxStreamsPerToken). A watch over either cap
	// is answered 429 with Retry-After.
	MaxStreams, MaxStreamsPerToken int
	// PublicURL is where operators reach the daemon; the status says it,
	// so that the CLI can print a cascade's page.
	PublicURL string

	Log *zap.Logger
	// Registerer receives orchestrator_api_requests_total and
	// orchestrator_api_watch_streams; nil: none.
	Registerer prometheus.Registerer
}

// Defaults of the caps on watch streams.
const (
	DefaultMaxStreams         = 1000
	DefaultMaxStreamsPerToken = 50
)

// streamRetryAfter is what a watch over a cap is told to wait, in seconds.
const streamRetryAfter = 30

// Server is the API's HTTP handler, for the paths under /api/.
type Server struct {
	opts     Options
	keys     *keyring
	mux      *http.ServeMux
	requests *prometheus.CounterVec
	// refused bounds the log of requests without a valid token: anyone
	// can send them.
	refused *ratelog.Limiter
	streams streams
}

// streams counts the watch streams open, in all and by token.
type streams struct {
	mu      sync.Mutex
	total   int
	byToken map[string]int
	open    prometheus.Gauge
}

// takeStream reserves a stream for token who; false when a cap is reached.
func (s *Server) takeStream(who string) bool {
	st := &s.streams
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.total >= s.opts.MaxStreams || st.byToken[who] >= s.opts.MaxStreamsPerToken {
		return false
	}
	st.total++
	st.byToken[who]++
	st.open.Set(float64(st.total))
	return true
}

func (s *Server) releaseStream(who string) {
	st := &s.streams
	st.mu.Lock()
	defer st.mu.Unlock()
	st.total--
	if st.byToken[who]--; st.byToken[who] == 0 {
		delete(st.byToken, who)
	}
	st.open.Set(float64(st.total))
}

// New checks the tokens and returns the API.
func New(opts Options) (*Server, error) {
	keys, err := newKeyring(opts.Tokens)
	if err != nil {
		return nil, err
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = 15 * time.Second
	}
	if opts.MaxStreams < 0 || opts.MaxStreamsPerToken < 0 {
		return nil, errors.New("the caps on watch streams must not be negative")
	}
	if opts.MaxStreams == 0 {
		opts.MaxStreams = DefaultMaxStreams
	}
	if opts.MaxStreamsPerToken == 0 {
		opts.MaxStreamsPerToken = DefaultMaxStreamsPerToken
	}
	if opts.Reads == nil {
		opts.Reads = func() Reads { return nil }
	}
	if opts.Operations == nil {
		opts.Operations = func() Operations { return nil }
	}
	s := &Server{opts: opts, keys: keys, mux: http.NewServeMux(), refused: ratelog.New(0, 0, nil),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orchestrator_api_requests_total",
			Help: "Operator API requests by route and status code.",
		}, []string{"route", "code"}),
		streams: streams{byToken: map[string]int{}, open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orchestrator_api_watch_streams",
			Help: "Watch streams of the operator API open now.",
		})},
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(s.requests, s.streams.open)
	}
	s.route("GET /api/v1/whoami", RoleRead, s.whoami)
	s.route("GET /api/v1/cascades", RoleRead, s.list)
	s.route("GET /api/v1/cascades/{id}", RoleRead, s.show)
	s.route("GET /api/v1/cascades/{id}/watch", RoleRead, s.watch)
	s.route("GET /api/v1/why/{workspace}", RoleRead, s.why)
	s.route("GET /api/v1/cascades/{id}/audit", RoleRead, s.cascadeAudit)
	s.route("GET /api/v1/controls", RoleRead, s.controls)
	s.route("GET /api/v1/status", RoleRead, s.status)
	s.route("GET /api/v1/audit", RoleRead, s.audit)
	s.route("POST /api/v1/pause", RoleOperate, s.pause)
	s.route("POST /api/v1/resume", RoleOperate, s.resume)
	s.route("POST /api/v1/cascades/{id}/cancel", RoleOperate, s.cancel)
	s.route("POST /api/v1/cascades/{id}/retry", RoleOperate, s.retry)
	s.route("POST /api/v1/cascades/{id}/approve", RoleOperate, s.approve)
	s.route("PUT /api/v1/freezes", RoleOperate, s.setFreezes)
	s.route("PUT /api/v1/exclusions", RoleOperate, s.setExclusions)
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		s.requests.WithLabelValues("other", "404").Inc()
		writeError(w, http.StatusNotFound, "no such API path: "+ratelog.Clean(r.Method, 16)+" "+ratelog.Clean(r.URL.Path, maxShown)+" (see docs/api.md)")
	})
	return s, nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// call is one authenticated request: who made it, with what role, and
// the engine's read model and, for a request that needs the operate role,
// its controls.
type call struct {
	w     http.ResponseWriter
	r     *http.Request
	who   string
	role  Role
	reads Reads
	ops   Operations // nil for a request that needs only the read role
}

// route registers a handler that runs only for a token of at least role,
// with the engine running.
func (s *Server) route(pattern string, role Role, h func(*call) (int, any)) {
	label := pattern[strings.Index(pattern, " ")+1:]
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		code := s.serve(w, r, role, h)
		s.requests.WithLabelValues(label, strconv.Itoa(code)).Inc()
	})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, role Role, h func(*call) (int, any)) int {
	w.Header().Set("Cache-Control", "no-store")
	who, got := s.keys.who(r)
	switch {
	case got == 0:
		s.refused.Warn(s.opts.Log, "API request refused: no valid token", zap.String("path", ratelog.Clean(r.URL.Path, maxShown)),
			zap.String("remote", r.RemoteAddr))
		w.Header().Set("WWW-Authenticate", `Bearer realm="orchestrator"`)
		if _, secret, _ := strings.Cut(r.Header.Get("Authorization"), " "); strings.TrimSpace(secret) != "" {
			return writeError(w, http.StatusUnauthorized, "the bearer token is none of this server's API tokens")
		}
		return writeError(w, http.StatusUnauthorized, "a bearer token is needed (Authorization: Bearer <token>)")
	case got < role:
		s.opts.Log.Warn("API request refused: role too weak", zap.String("path", ratelog.Clean(r.URL.Path, maxShown)), zap.String("token", who))
		return writeError(w, http.StatusForbidden, fmt.Sprintf("token %s has the %s role; this needs %s", who, got, role))
	}
	// IDs and names are checked before anything is looked up: one that
	// cannot be a cascade's or a workspace's is the caller's mistake (400),
	// never the engine's trouble.
	if err := checkNames(r); err != nil {
		return writeError(w, http.StatusBadRequest, err.Error())
	}
	c := &call{w: w, r: r, who: who, role: got, reads: s.opts.Reads()}
	if role >= RoleOperate {
		c.ops = s.opts.Operations()
	}
	if c.reads == nil || (role >= RoleOperate && c.ops == nil) {
		return writeError(w, http.StatusServiceUnavailable, "the cascade engine is not running here (the daemon has no --tfe-token)")
	}
	code, body := h(c)
	if code == 0 { // the handler answered itself (a stream)
		return http.StatusOK
	}
	if err, ok := body.(error); ok {
		if code >= 500 {
			s.opts.Log.Error("API request failed", zap.String("path", ratelog.Clean(r.URL.Path, maxShown)), zap.Error(err))
		}
		return writeError(w, code, err.Error())
	}
	return writeJSON(w, code, body)
}

func writeJSON(w http.ResponseWriter, code int, v any) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
	return code
}

func writeError(w http.ResponseWriter, code int, msg string) int {
	return writeJSON(w, code, map[string]string{"error": msg})
}

// failed maps an engine error to a status: an unknown cascade is a 404,
// a refused control a 400, a control that does not fit the cascade as it
// stands (a retry of a member that did not fail, an approval of a cascade
// not held) a 409, an organization TFE does not know a 422, the rest the
// engine's trouble.
func failed(err error) (int, any) {
	switch {
	case errors.Is(err, dispatcher.ErrNoCascade):
		return http.StatusNotFound, err
	case errors.Is(err, dispatcher.ErrBadControl):
		return http.StatusBadRequest, err
	case errors.Is(err, dispatcher.ErrConflict):
		return http.StatusConflict, err
	case errors.Is(err, dispatcher.ErrUnknownOrganization):
		return http.StatusUnprocessableEntity, err
	}
	return http.StatusServiceUnavailable, fmt.Errorf("the engine could not answer: %w", err)
}

// Bounds of a request's body: a control's, and a list's (freeze windows,
// exclusions: up to dispatcher.MaxList entries).
const (
	maxBody     = 64 << 10
	maxListBody = 1 << 20
)

// decodeBody reads a JSON body of at most limit bytes into v, refusing
// unknown fields, with errors that name what is wrong.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.Is(err, io.EOF):
			return errors.New("the request needs a JSON body")
		case errors.As(err, &tooLarge):
			return fmt.Errorf("the body is larger than this request takes (%d KiB at most)", limit>>10)
		}
		return fmt.Errorf("the body is not what this request takes: %v", err)
	}
	return nil
}

// jsonLine is v as JSON on one line, for an event stream's data field.
func jsonLine(v any) ([]byte, error) { return json.Marshal(v) }

// maxShown is the most of a request's path or name an error or a log line
// repeats.
const maxShown = 128

// Bounds of the names the API takes: a cascade ID is c- and its root run's
// ID (c-run-8F5JFydVYAmtTjET); organization and workspace names are TFE's
// (letters, digits, - and _), a workspace also by ID (ws-...).
const (
	maxCascadeID = 64
	maxName      = 128
)

// ValidCascadeID reports whether id can be a cascade's: c- then 1 to 62
// letters, digits, - and _. Wildcards, dots, spaces and longer values are
// not IDs.
func ValidCascadeID(id string) bool {
	rest, ok := strings.CutPrefix(id, "c-")
	return ok && len(id) <= maxCascadeID && events.ValidName(rest, maxCascadeID)
}

// checkNames checks the cascade ID, workspace and organization a request
// names in its path or query.
func checkNames(r *http.Request) error {
	if id := r.PathValue("id"); id != "" && !ValidCascadeID(id) {
		return fmt.Errorf("cascade ID %q: want c- then letters, digits, - and _ (e.g. c-run-8F5JFydVYAmtTjET), at most %d characters",
			ratelog.Clean(id, maxShown), maxCascadeID)
	}
	if ws := r.PathValue("workspace"); ws != "" && !events.ValidName(ws, maxName) {
		return fmt.Errorf("workspace %q: want a workspace name or ID (letters, digits, - and _)", ratelog.Clean(ws, maxShown))
	}
	q := r.URL.Query()
	if id := q.Get("cascade"); id != "" && !ValidCascadeID(id) {
		return fmt.Errorf("cascade %q: want a cascade ID, c- then letters, digits, - and _", ratelog.Clean(id, maxShown))
	}
	for _, param := range []string{"organization", "workspace"} {
		if v := q.Get(param); v != "" && !events.ValidName(v, maxName) {
			return fmt.Errorf("%s %q: want a TFE %s name (letters, digits, - and _)", param, ratelog.Clean(v, maxShown), param)
		}
	}
	return nil
}
