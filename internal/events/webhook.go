package events

import (
	"context"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
	"github.com/tfe-orchestrator/orchestrator/internal/ratelog"
	"github.com/tfe-orchestrator/orchestrator/internal/setting"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient/runstatus"
)

// SignatureHeader carries hex(HMAC-SHA512(token, body)).
const SignatureHeader = "X-TFE-Notification-Signature"

// Results of a webhook request, the values of the result label.
const (
	ResultPublished        = "published"
	ResultVerification     = "verification"
	ResultIgnored          = "ignored"
	ResultMissingSignature = "missing_signature"
	ResultBadSignature     = "bad_signature"
	ResultWrongOrg         = "wrong_organization"
	ResultMalformed        = "malformed"
	ResultBadShape         = "bad_shape"
	ResultTooLarge         = "too_large"
	ResultMethodNotAllowed = "method_not_allowed"
	ResultNotFound         = "not_found"
	ResultUnavailable      = "unavailable"
	ResultBusy             = "busy"
	ResultReadTimeout      = "read_timeout"
)

// EventPublisher stores a run event durably; *Publisher is one.
type EventPublisher interface {
	Publish(ctx context.Context, ev *RunEvent) (duplicate bool, err error)
}

// WebhookOptions configure the webhook handler. A zero limit or timeout
// takes its default (DefaultWebhookOptions); none is turned off by 0, and a
// negative one is refused.
type WebhookOptions struct {
	// Tokens are the notification configurations' tokens; a request must be
	// signed with one of them or of OrgTokens. Several allow rotation. A
	// token here signs events of any organization.
	Tokens []string
	// OrgTokens are tokens bound to organizations: an event signed with one
	// is accepted only when it names one of its organizations.
	OrgTokens []OrgToken
	// SkipSignature accepts unsigned requests. Only for when no token is set.
	SkipSignature bool
	// MaxBodyBytes limits the request body; default 1 MiB. A body that
	// declares more is refused before it is read.
	MaxBodyBytes int64
	// MaxConcurrent bounds the requests being read and checked at once.
	// Until its signature verifies, a request is anyone's: beyond this,
	// requests are answered 503 with Retry-After at once; default 64.
	MaxConcurrent int
	// MaxPendingBytes bounds the memory the bodies of those requests hold
	// before their signatures are checked: a request reserves its
	// Content-Length (MaxBodyBytes+1 without one) before reading, and is
	// answered 503 when the reservation does not fit; default 16 MiB. It
	// must be at least MaxBodyBytes.
	MaxPendingBytes int64
	// ReadTimeout bounds the time a request may take to send its body, so
	// that a slow sender cannot keep its reservation; default 10s.
	ReadTimeout time.Duration
	// PublishTimeout bounds the wait for JetStream's acknowledgement;
	// default 5s.
	PublishTimeout time.Duration
	// Now is the clock that stamps receive times; default time.Now.
	Now func() time.Time
	// Alerts, when set, hears of rejected webhooks (signature and body
	// problems, not unknown paths); its de-duplication window keeps a flood
	// to one alert per kind of rejection.
	Alerts alerts.Notifier
	// RejectLogBurst and RejectLogEvery bound the log lines of refused
	// requests and unknown paths: RejectLogBurst at once, then one per
	// RejectLogEvery (clocked by Now); the lines held back are counted in
	// the next one. Defaults 10 and 1s.
	RejectLogBurst int
	RejectLogEvery time.Duration
}

// OrgToken is a notification token bound to the organizations whose
// events it may sign.
type OrgToken struct {
	Organizations []string
	Token         string
}

// ParseOrgToken reads a token bound to organizations as operators give it:
// ORG[,ORG...]=TOKEN. The organizations are TFE organization names
// (letters, digits, - and _), which hold neither ',' nor '=': the first '='
// ends them, and everything after it is the token, never split, whatever
// it holds. The errors never show the value.
func ParseOrgToken(s string) (OrgToken, error) {
	orgs, token, ok := strings.Cut(s, "=")
	if !ok {
		return OrgToken{}, errors.New("want ORGANIZATION[,ORGANIZATION...]=TOKEN (the value is not shown: it holds a secret)")
	}
	var t OrgToken
	for _, org := range strings.Split(orgs, ",") {
		org = strings.TrimSpace(org)
		if !ValidName(org, maxOrganizationName) {
			return OrgToken{}, errors.New("before '=': want TFE organization names (letters, digits, - and _) separated by commas (the value is not shown: it may hold a secret)")
		}
		if !slices.Contains(t.Organizations, org) {
			t.Organizations = append(t.Organizations, org)
		}
	}
	t.Token = strings.TrimSpace(token)
	if t.Token == "" {
		return OrgToken{}, errors.New("the token after '=' is empty")
	}
	return t, nil
}

func (o *WebhookOptions) validate() error {
	if len(o.Tokens) == 0 && len(o.OrgTokens) == 0 && !o.SkipSignature {
		return errors.New("a webhook token is required unless signatures are skipped")
	}
	for _, t := range o.Tokens {
		if t == "" {
			return errors.New("a webhook token is empty")
		}
	}
	for _, t := range o.OrgTokens {
		if t.Token == "" {
			return errors.New("a webhook token is empty")
		}
		if len(t.Organizations) == 0 {
			return errors.New("a webhook token bound to organizations names none")
		}
		for _, org := range t.Organizations {
			if !ValidName(org, maxOrganizationName) {
				return fmt.Errorf("%q is not a TFE organization name (letters, digits, - and _)", org)
			}
		}
	}
	for _, f := range []struct {
		field string
		v     int64
	}{
		{"MaxBodyBytes", o.MaxBodyBytes}, {"MaxConcurrent", int64(o.MaxConcurrent)}, {"MaxPendingBytes", o.MaxPendingBytes},
		{"RejectLogBurst", int64(o.RejectLogBurst)},
	} {
		if f.v < 0 {
			return setting.Errorf("{"+f.field+"} (%d) must not be negative", f.v)
		}
	}
	for _, f := range []struct {
		field string
		v     time.Duration
	}{{"ReadTimeout", o.ReadTimeout}, {"PublishTimeout", o.PublishTimeout}, {"RejectLogEvery", o.RejectLogEvery}} {
		if f.v < 0 {
			return setting.Errorf("{"+f.field+"} (%s) must not be negative", setting.Duration(f.v))
		}
	}
	d := o.withDefaults()
	if d.MaxPendingBytes < d.MaxBodyBytes {
		return setting.Errorf("{MaxPendingBytes} (%d) must be at least {MaxBodyBytes} (%d)", d.MaxPendingBytes, d.MaxBodyBytes)
	}
	return nil
}

// Defaults of WebhookOptions.
const (
	DefaultMaxBodyBytes    = 1 << 20
	DefaultMaxConcurrent   = 64
	DefaultMaxPendingBytes = 16 << 20
	DefaultReadTimeout     = 10 * time.Second
	DefaultPublishTimeout  = 5 * time.Second
)

// DefaultWebhookOptions are the limits a zero field takes (MaxPendingBytes:
// at least MaxBodyBytes); the log bounds are ratelog's defaults.
func DefaultWebhookOptions() WebhookOptions {
	return WebhookOptions{MaxBodyBytes: DefaultMaxBodyBytes, MaxConcurrent: DefaultMaxConcurrent, MaxPendingBytes: DefaultMaxPendingBytes,
		ReadTimeout: DefaultReadTimeout, PublishTimeout: DefaultPublishTimeout}
}

func (o *WebhookOptions) withDefaults() WebhookOptions {
	d, def := *o, DefaultWebhookOptions()
	if d.MaxBodyBytes == 0 {
		d.MaxBodyBytes = def.MaxBodyBytes
	}
	if d.MaxConcurrent == 0 {
		d.MaxConcurrent = def.MaxConcurrent
	}
	if d.MaxPendingBytes == 0 {
		d.MaxPendingBytes = max(def.MaxPendingBytes, d.MaxBodyBytes)
	}
	if d.ReadTimeout == 0 {
		d.ReadTimeout = def.ReadTimeout
	}
	if d.PublishTimeout == 0 {
		d.PublishTimeout = def.PublishTimeout
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return d
}

// Validate reports the first option that cannot work; a limit that cannot
// work is a *setting.Error naming its field.
func (o *WebhookOptions) Validate() error { return o.validate() }

// Webhook is the handler of POST /webhooks/tfe: it verifies, decodes and
// publishes TFE notifications, and answers 2xx only once every event of the
// request is stored in JetStream.
type Webhook struct {
	opts     WebhookOptions
	keys     []key
	pub      EventPublisher
	log      *zap.Logger
	logLimit *ratelog.Limiter
	metrics  *Metrics
	budget   readBudget
}

// key is one distinct token: the pool of its keyed HMAC-SHA512 hashes, and
// the organizations whose events it signs, nil for any.
type key struct {
	macs *sync.Pool
	orgs map[string]bool
}

// keysOf merges the tokens into one key per distinct token: a token given
// for several organizations signs each of them, and a token given without
// organizations signs any.
func keysOf(anyOrg []string, bound []OrgToken) []key {
	byToken := map[string]*key{}
	var order []string
	add := func(token string, orgs []string) {
		k := byToken[token]
		if k == nil {
			k = &key{orgs: map[string]bool{}}
			byToken[token] = k
			order = append(order, token)
		}
		if orgs == nil {
			k.orgs = nil // any organization
		}
		for _, org := range orgs {
			if k.orgs != nil {
				k.orgs[org] = true
			}
		}
	}
	for _, t := range anyOrg {
		add(t, nil)
	}
	for _, t := range bound {
		add(t.Token, t.Organizations)
	}
	keys := make([]key, 0, len(order))
	for _, token := range order {
		k := byToken[token]
		k.macs = &sync.Pool{New: func() any { return hmac.New(sha512.New, []byte(token)) }}
		keys = append(keys, *k)
	}
	return keys
}

// readBudget counts the requests being read before their signatures are
// checked, and the body bytes they reserved.
type readBudget struct {
	mu                    sync.Mutex
	requests, maxRequests int
	bytes, maxBytes       int64
}

// take reserves a request and n bytes, or nothing when either would not fit.
func (b *readBudget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.requests >= b.maxRequests || b.bytes+n > b.maxBytes {
		return false
	}
	b.requests++
	b.bytes += n
	return true
}

func (b *readBudget) give(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.requests--
	b.bytes -= n
}

// NewWebhook returns the handler. metrics may be shared with NotFound.
func NewWebhook(opts WebhookOptions, pub EventPublisher, metrics *Metrics, log *zap.Logger) (*Webhook, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	h := &Webhook{opts: opts, pub: pub, log: log, metrics: metrics, keys: keysOf(opts.Tokens, opts.OrgTokens),
		logLimit: ratelog.New(opts.RejectLogBurst, opts.RejectLogEvery, opts.Now),
		budget:   readBudget{maxRequests: opts.MaxConcurrent, maxBytes: opts.MaxPendingBytes}}
	return h, nil
}

func (h *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.reject(w, r, http.StatusMethodNotAllowed, ResultMethodNotAllowed, "only POST is allowed")
		return
	}
	receivedAt := h.opts.Now()
	if r.ContentLength > h.opts.MaxBodyBytes {
		h.rejectTooLarge(w, r)
		return
	}
	// Nothing is known of the sender until the signature verifies: the
	// body's memory is reserved first, and a request that does not fit
	// is answered at once rather than read.
	reserved := r.ContentLength
	if reserved < 0 {
		reserved = h.opts.MaxBodyBytes + 1
	}
	if !h.budget.take(reserved) {
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Connection", "close")
		h.reject(w, r, http.StatusServiceUnavailable, ResultBusy, "too many webhook requests being read, retry later")
		return
	}
	h.metrics.unverifiedRequests.Inc()
	h.metrics.unverifiedBytes.Add(float64(reserved))
	released := false
	release := func() {
		if !released {
			released = true
			h.budget.give(reserved)
			h.metrics.unverifiedRequests.Dec()
			h.metrics.unverifiedBytes.Sub(float64(reserved))
		}
	}
	defer release()
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(h.opts.ReadTimeout))
	body, err := readBody(r.Body, reserved, r.ContentLength >= 0)
	if err != nil {
		var netErr interface{ Timeout() bool }
		switch {
		case errors.Is(err, errBodyTooLarge):
			h.rejectTooLarge(w, r)
		case errors.As(err, &netErr) && netErr.Timeout():
			w.Header().Set("Connection", "close")
			h.reject(w, r, http.StatusRequestTimeout, ResultReadTimeout,
				"body not received within "+h.opts.ReadTimeout.String())
		default:
			h.reject(w, r, http.StatusBadRequest, ResultMalformed, "read body: "+err.Error())
		}
		return
	}
	signer, result, ok := h.verify(r, body)
	if !ok {
		reason := "signature does not verify"
		if result == ResultMissingSignature {
			reason = "no " + SignatureHeader + " header"
		}
		h.reject(w, r, http.StatusUnauthorized, result, reason)
		return
	}
	decoded, err := Decode(body, receivedAt)
	// The events hold copies of what they need: the body's reservation
	// goes back before the publish waits on JetStream.
	body = nil
	release()
	if err != nil {
		result := ResultBadShape
		if errors.Is(err, ErrMalformed) {
			result = ResultMalformed
		}
		h.reject(w, r, http.StatusBadRequest, result, err.Error())
		return
	}
	// A token bound to organizations signs their events only: one event of
	// another refuses the whole request, as a bad signature would.
	if signer != nil && signer.orgs != nil {
		for i := range decoded.Events {
			if org := decoded.Events[i].Organization; !signer.orgs[org] {
				h.reject(w, r, http.StatusUnauthorized, ResultWrongOrg, "the signing token is not bound to organization "+org)
				return
			}
		}
	}
	h.metrics.ignored.Add(float64(decoded.Ignored))
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.PublishTimeout)
	defer cancel()
	duplicates := 0
	for i := range decoded.Events {
		ev := &decoded.Events[i]
		start := time.Now()
		dup, err := h.pub.Publish(ctx, ev)
		if ce := h.log.Check(zap.DebugLevel, "run event stored"); ce != nil && err == nil { // no fields built unless debug is on
			ce.Write(zap.String("run_id", ev.RunID), zap.String("workspace", ev.WorkspaceName), zap.String("workspace_id", ev.WorkspaceID),
				zap.String("trigger", ev.Trigger), zap.String("status", ev.Status), zap.Bool("duplicate", dup))
		}
		h.metrics.publishSeconds.Observe(time.Since(start).Seconds())
		if err != nil {
			h.metrics.webhooks.WithLabelValues(ResultUnavailable).Inc()
			h.log.Error("webhook not stored", zap.String("run_id", ev.RunID), zap.String("workspace", ev.WorkspaceName),
				zap.String("workspace_id", ev.WorkspaceID), zap.Error(err))
			writeStatus(w, http.StatusServiceUnavailable, "event store unavailable, retry later")
			return
		}
		if dup {
			duplicates++
		}
		h.metrics.events.WithLabelValues(triggerLabel(ev.Trigger), statusLabel(ev.Status)).Inc()
	}
	switch {
	case len(decoded.Events) > 0:
		h.metrics.webhooks.WithLabelValues(ResultPublished).Inc()
		h.metrics.duplicates.Add(float64(duplicates))
	case decoded.Verification:
		h.metrics.webhooks.WithLabelValues(ResultVerification).Inc()
		h.log.Info("verification payload received")
	default:
		h.metrics.webhooks.WithLabelValues(ResultIgnored).Inc()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	answer := make([]byte, 0, 64)
	answer = strconv.AppendInt(append(answer, `{"duplicates":`...), int64(duplicates), 10)
	answer = strconv.AppendInt(append(answer, `,"ignored":`...), int64(decoded.Ignored), 10)
	answer = strconv.AppendInt(append(answer, `,"stored":`...), int64(len(decoded.Events)-duplicates), 10)
	_, _ = w.Write(append(answer, "}\n"...))
}

var errBodyTooLarge = errors.New("body too large")

// readBody reads a body into one buffer of size bytes, so that what it
// holds is what was reserved. A sized body is its Content-Length, which the
// HTTP server holds it to; an unsized one gets the largest accepted plus
// one, and filling that buffer means it is too large.
func readBody(r io.Reader, size int64, sized bool) ([]byte, error) {
	buf := make([]byte, size)
	n, err := io.ReadFull(r, buf)
	switch {
	case sized && err != nil:
		return nil, err
	case sized:
		return buf, nil
	case err == nil:
		return nil, errBodyTooLarge
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return buf[:n], nil
	}
	return nil, err
}

func (h *Webhook) rejectTooLarge(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Connection", "close")
	h.reject(w, r, http.StatusRequestEntityTooLarge, ResultTooLarge,
		"body exceeds "+strconv.FormatInt(h.opts.MaxBodyBytes, 10)+" bytes")
}

// verify checks the signature against every configured token, each in
// constant time and all of them whichever matches, so the time taken tells
// nothing of the expected values. It returns the key that signed, nil when
// signatures are skipped.
func (h *Webhook) verify(r *http.Request, body []byte) (signer *key, result string, ok bool) {
	if h.opts.SkipSignature && len(h.keys) == 0 {
		return nil, "", true
	}
	header := r.Header.Get(SignatureHeader)
	if header == "" {
		return nil, ResultMissingSignature, false
	}
	got, err := hex.DecodeString(header)
	if err != nil || len(got) != sha512.Size {
		return nil, ResultBadSignature, false
	}
	var sum [sha512.Size]byte
	for i := range h.keys {
		m := h.keys[i].macs.Get().(hash.Hash)
		m.Reset()
		m.Write(body)
		if hmac.Equal(got, m.Sum(sum[:0])) {
			signer = &h.keys[i] // the tokens are distinct: at most one matches
		}
		h.keys[i].macs.Put(m)
	}
	if signer == nil {
		return nil, ResultBadSignature, false
	}
	return signer, "", true
}

// reject answers a request we will not act on, counts it and logs it once,
// within the log's bound: a flood is counted in full in the metrics, and
// written to the log as a few lines and the count of those held back.
// Nothing from the request's headers or body goes into the log, and its
// method and path only cut short, as printable ASCII.
func (h *Webhook) reject(w http.ResponseWriter, r *http.Request, status int, result, reason string) {
	h.metrics.webhooks.WithLabelValues(result).Inc()
	if h.opts.Alerts != nil && result != ResultNotFound && result != ResultMethodNotAllowed {
		h.opts.Alerts.Raise(r.Context(), alerts.Alert{
			Kind: alerts.KindWebhookRejected, Severity: alerts.SeverityWarning,
			Message: fmt.Sprintf("webhook rejected (%s: %s) from %s; more rejections of this kind within the alert window are not reported",
				result, reason, r.RemoteAddr),
			Key: "webhook-rejected/" + result,
		})
	}
	h.logLimit.Warn(h.log, "webhook rejected", zap.String("result", result), zap.Int("status", status),
		zap.String("method", ratelog.Clean(r.Method, maxLoggedMethod)), zap.String("path", ratelog.Clean(r.URL.Path, MaxLoggedPath)),
		zap.String("remote_addr", r.RemoteAddr), zap.String("reason", ratelog.Clean(reason, maxLoggedReason)))
	writeStatus(w, status, reason)
}

// Bounds of what a refused request puts in a log line.
const (
	// MaxLoggedPath is the most of a request's path a log line holds.
	MaxLoggedPath   = 128
	maxLoggedMethod = 16
	maxLoggedReason = 256
)

func writeStatus(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// NotFound answers paths that are not served, counted like rejected webhooks.
func (h *Webhook) NotFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.reject(w, r, http.StatusNotFound, ResultNotFound, "no such path")
	})
}

// LabelOther stands, in a metric label, for a value that came from input
// and is not one of those the label knows: a signed sender can make up run
// statuses, and each new label value would be a series of its own.
const LabelOther = "other"

// statusLabel is the run status as a label value: one of TFE's run
// statuses, or other.
func statusLabel(s string) string {
	if runstatus.Known(s) {
		return s
	}
	return LabelOther
}

// triggerLabel is the trigger as a label value: a run trigger, or other.
func triggerLabel(t string) string {
	if isRunTrigger(t) {
		return t
	}
	return LabelOther
}

// Metrics are the ingest side's Prometheus metrics.
type Metrics struct {
	webhooks       *prometheus.CounterVec
	events         *prometheus.CounterVec
	duplicates     prometheus.Counter
	ignored        prometheus.Counter
	publishSeconds prometheus.Histogram
	// What requests not yet verified hold.
	unverifiedRequests prometheus.Gauge
	unverifiedBytes    prometheus.Gauge
}

// NewMetrics registers the ingest metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orchestrator_webhooks_total",
			Help: "Webhook requests by result.",
		}, []string{"result"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orchestrator_run_events_total",
			Help: "Run events stored in JetStream, by trigger and run status.",
		}, []string{"trigger", "status"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orchestrator_run_events_duplicate_total",
			Help: "Run events JetStream already held (the same notification delivered again).",
		}),
		ignored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orchestrator_notifications_ignored_total",
			Help: "Notifications accepted but not acted on (other payload versions and triggers).",
		}),
		publishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "orchestrator_publish_duration_seconds",
			Help:    "Time from publishing a run event to JetStream's acknowledgement.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		unverifiedRequests: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orchestrator_webhook_unverified_requests",
			Help: "Webhook requests being read whose signatures are not yet checked.",
		}),
		unverifiedBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orchestrator_webhook_unverified_bytes",
			Help: "Bytes reserved for the bodies of webhook requests whose signatures are not yet checked.",
		}),
	}
	reg.MustRegister(m.webhooks, m.events, m.duplicates, m.ignored, m.publishSeconds, m.unverifiedRequests, m.unverifiedBytes)
	return m
}
