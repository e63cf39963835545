package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Sink sends alerts somewhere outside the process.
type Sink interface {
	Name() string
	Send(ctx context.Context, a Alert) error
}

// PipelineOptions configure a Pipeline. Zero values take the defaults.
type PipelineOptions struct {
	// Window: an alert whose key was sent within it is not sent again;
	// default DefaultWindow. 0 takes the default; negative refused by the
	// daemon's configuration.
	Window time.Duration
	// Attempts per alert and sink; default 5.
	Attempts int
	// Backoff before the first retry, doubled each time; default 1s.
	Backoff time.Duration
	// Queue is how many alerts a sink may have waiting; beyond it the
	// oldest is dropped (and counted); default 256.
	Queue int
	Now   func() time.Time
	// PublicURL is where operators reach the daemon: an alert about a
	// cascade gets the link to its page (PageURL). Empty: no link.
	PublicURL string
}

// PageURL is the operator page of a cascade under the daemon's public URL.
func PageURL(publicURL, cascadeID string) string {
	if publicURL == "" || cascadeID == "" {
		return ""
	}
	return strings.TrimRight(publicURL, "/") + "/ui/#" + url.PathEscape(cascadeID)
}

// Pipeline is the Notifier of the daemon: it logs every alert and publishes
// it on NATS (through Basic), drops repeats of a key within the window, and
// hands the rest to each sink's own queue, where a worker sends with
// retries and backoff. Raise never waits for a sink.
type Pipeline struct {
	opts    PipelineOptions
	basic   *Basic
	log     *zap.Logger
	sinks   []*sinkQueue
	metrics *prometheus.CounterVec
	raised  *prometheus.CounterVec

	mu   sync.Mutex
	sent map[string]time.Time // key → when last let through
}

type sinkQueue struct {
	sink  Sink
	mu    sync.Mutex
	queue []Alert
	wake  chan struct{}
}

// DefaultWindow is the de-duplication window a zero Window takes.
const DefaultWindow = 15 * time.Minute

// NewPipeline returns a pipeline over basic and sinks; reg, when not nil,
// receives the orchestrator_alerts_total and
// orchestrator_alerts_raised_total counters.
func NewPipeline(opts PipelineOptions, basic *Basic, sinks []Sink, reg prometheus.Registerer) *Pipeline {
	if opts.Window == 0 {
		opts.Window = DefaultWindow
	}
	if opts.Attempts == 0 {
		opts.Attempts = 5
	}
	if opts.Backoff == 0 {
		opts.Backoff = time.Second
	}
	if opts.Queue == 0 {
		opts.Queue = 256
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := &Pipeline{
		opts: opts, basic: basic, log: basic.Log, sent: map[string]time.Time{},
		metrics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orchestrator_alerts_total",
			Help: "Alerts by sink (log, nats, webhook, slack, ...) and result (sent, failed, deduplicated, dropped).",
		}, []string{"sink", "result"}),
		raised: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orchestrator_alerts_raised_total",
			Help: "Alerts raised (after de-duplication), by kind and severity.",
		}, []string{"kind", "severity"}),
	}
	if reg != nil {
		reg.MustRegister(p.metrics, p.raised)
	}
	for _, s := range sinks {
		p.sinks = append(p.sinks, &sinkQueue{sink: s, wake: make(chan struct{}, 1)})
	}
	return p
}

// Raise logs and publishes a, then queues it for every sink, unless an
// alert with its key went out within the window.
func (p *Pipeline) Raise(ctx context.Context, a Alert) {
	now := p.opts.Now()
	if a.Time.IsZero() {
		a.Time = now
	}
	if a.PageURL == "" {
		a.PageURL = PageURL(p.opts.PublicURL, a.CascadeID)
	}
	p.mu.Lock()
	last, seen := p.sent[a.Key]
	dup := seen && now.Sub(last) < p.opts.Window
	if !dup {
		p.sent[a.Key] = now
		for k, t := range p.sent { // keep the map to what the window can still match
			if now.Sub(t) >= p.opts.Window {
				delete(p.sent, k)
			}
		}
	}
	p.mu.Unlock()
	if dup {
		p.metrics.WithLabelValues("all", "deduplicated").Inc()
		return
	}
	p.basic.Raise(ctx, a)
	p.metrics.WithLabelValues("log", "sent").Inc()
	kind, severity := a.Kind, a.Severity
	if !slices.Contains(Kinds, kind) {
		kind = "other"
	}
	if severity != SeverityInfo && severity != SeverityWarning && severity != SeverityCritical {
		severity = "other"
	}
	p.raised.WithLabelValues(kind, severity).Inc()
	for _, q := range p.sinks {
		q.mu.Lock()
		if len(q.queue) >= p.opts.Queue {
			q.queue = q.queue[1:]
			p.metrics.WithLabelValues(q.sink.Name(), "dropped").Inc()
		}
		q.queue = append(q.queue, a)
		q.mu.Unlock()
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// Run sends queued alerts until ctx ends.
func (p *Pipeline) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, q := range p.sinks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.drain(ctx, q)
		}()
	}
	wg.Wait()
	return nil
}

func (p *Pipeline) drain(ctx context.Context, q *sinkQueue) {
	for {
		q.mu.Lock()
		var a *Alert
		if len(q.queue) > 0 {
			a = &q.queue[0]
			q.queue = q.queue[1:]
		}
		q.mu.Unlock()
		if a == nil {
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
				continue
			}
		}
		p.deliver(ctx, q.sink, *a)
	}
}

// deliver sends a to sink, retrying with exponential backoff.
func (p *Pipeline) deliver(ctx context.Context, sink Sink, a Alert) {
	wait := p.opts.Backoff
	for attempt := 1; ; attempt++ {
		sendCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := sink.Send(sendCtx, a)
		cancel()
		if err == nil {
			p.metrics.WithLabelValues(sink.Name(), "sent").Inc()
			return
		}
		if attempt >= p.opts.Attempts || ctx.Err() != nil {
			p.metrics.WithLabelValues(sink.Name(), "failed").Inc()
			p.log.Warn("alert not delivered", zap.String("sink", sink.Name()), zap.String("key", a.Key),
				zap.Int("attempts", attempt), zap.Error(err))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait): // backoff between attempts
		}
		wait *= 2
	}
}

// Webhook posts each alert as JSON to a URL.
type Webhook struct {
	URL    string
	Client *http.Client
}

// Name is "webhook".
func (w *Webhook) Name() string { return "webhook" }

// Send posts a as JSON.
func (w *Webhook) Send(ctx context.Context, a Alert) error { return post(ctx, w.Client, w.URL, a) }

// Slack posts each alert to a Slack-style incoming webhook.
type Slack struct {
	URL    string
	Client *http.Client
}

// Name is "slack".
func (s *Slack) Name() string { return "slack" }

// Send posts {"text": ...} with the alert in one line and its context.
func (s *Slack) Send(ctx context.Context, a Alert) error {
	text := fmt.Sprintf("*[%s] %s*: %s", a.Severity, a.Kind, a.Message)
	var ctxParts []string
	for _, kv := range [][2]string{{"organization", a.Organization}, {"workspace", a.Workspace}, {"run", a.RunID}, {"cascade", a.CascadeID}} {
		if kv[1] != "" {
			ctxParts = append(ctxParts, kv[0]+" `"+kv[1]+"`")
		}
	}
	if a.RunURL != "" {
		ctxParts = append(ctxParts, "<"+a.RunURL+"|open the run in TFE>")
	}
	if a.PageURL != "" {
		ctxParts = append(ctxParts, "<"+a.PageURL+"|open the cascade>")
	}
	if len(ctxParts) > 0 {
		text += "\n" + joinWith(ctxParts, " · ")
	}
	return post(ctx, s.Client, s.URL, map[string]string{"text": text})
}

func joinWith(parts []string, sep string) string {
	var b bytes.Buffer
	for i, p := range parts {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(p)
	}
	return b.String()
}

func post(ctx context.Context, client *http.Client, target string, v any) error {
	if client == nil {
		client = http.DefaultClient
	}
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		// The parse error quotes the URL, a secret: say what it is, not it.
		return errors.New("post alert: the sink URL is not a valid URL")
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		// The URL of a Slack-style webhook is a secret: keep it out of errors.
		var ue *url.Error
		if errors.As(err, &ue) {
			return fmt.Errorf("post alert: %w", ue.Err)
		}
		return errors.New("post alert failed")
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<16))
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("alert sink answered %s", res.Status)
	}
	return nil
}
