package tfeclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	tfe "github.com/hashicorp/go-tfe"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure the transport of NewTransport.
type Options struct {
	// Next sends the requests; nil: http.DefaultTransport.
	Next http.RoundTripper
	// Limiter, when set, holds every request to its turn, learns the
	// deployment's rate from /ping, and hides X-RateLimit-Limit from go-tfe
	// so that go-tfe does not run a limiter of its own. Nil: no limit here
	// (go-tfe's own, from the header, stays).
	Limiter *Limiter
	// RetryServerErrors sends a request again after a 5xx answer or a
	// connection error, as go-tfe's option of the same name does (up to 30
	// times, 0.7–0.9 s × the attempt apart), each time in its turn. Give it
	// here and not to go-tfe: go-tfe would retry ErrNotSent too, and return
	// the context's error in its place.
	RetryServerErrors bool
	// Clock: nil is the wall clock (the Limiter's when there is one).
	Clock Clock
	// Registerer, when set, gets orchestrator_tfe_requests_total: every
	// request sent (retries and /ping included, those the Limiter kept
	// back not), by Endpoint and status code ("error" when no answer
	// came). NewTransport panics when it cannot be registered, as
	// prometheus.MustRegister does.
	Registerer prometheus.Registerer
	// Refused, when set, is told of every answer 401 or 403: the token was
	// refused. It gets the request's Endpoint and the code, and must not
	// block.
	Refused func(endpoint string, code int)
}

// Retries of a request answered 5xx, and how far apart: go-tfe's.
const (
	retryAttempts = 31 // the first and 30 retries
	retryWaitMin  = 700 * time.Millisecond
	retryWaitMax  = 900 * time.Millisecond
	maxKeptBody   = 1 << 20
	defaultReset  = time.Second
	pingPathEnd   = "/" + tfe.PingEndpoint
	rateLimitHdr  = "X-RateLimit-Limit"
	rateResetHdr  = "X-RateLimit-Reset"
)

// Transport notes each answer's status in the Status of its request's
// context, when there is one, and does nothing else.
func Transport(next http.RoundTripper) http.RoundTripper { return NewTransport(Options{Next: next}) }

// NewTransport is the transport of a go-tfe client: it notes each answer's
// status in the request's Status (Record), and with a Limiter holds each
// request (retries included) to its turn and reports 429s to it.
//
// A request the Limiter does not send fails with ErrNotSent. go-tfe hands
// that on unchanged (wrapped in a *url.Error) only when it is not told to
// retry server errors (tfe.Config.RetryServerErrors false; set
// Options.RetryServerErrors instead); when the caller's context ended
// while the request waited, go-tfe returns the context's error, and
// Classify still says NotSent for a call made with a context from Record.
func NewTransport(o Options) http.RoundTripper {
	if o.Next == nil {
		o.Next = http.DefaultTransport
	}
	if o.Clock == nil {
		if o.Limiter != nil {
			o.Clock = o.Limiter.clock
		} else {
			o.Clock = wallClock{}
		}
	}
	t := &transport{Options: o}
	if o.Registerer != nil {
		t.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orchestrator_tfe_requests_total",
			Help: "Requests to the TFE API by endpoint (IDs and names written :id) and status code (error: no answer).",
		}, []string{"endpoint", "code"})
		o.Registerer.MustRegister(t.requests)
	}
	return t
}

type transport struct {
	Options
	requests *prometheus.CounterVec // nil: not counted
}

// send sends one attempt of a request, counting it and reporting a
// refused token.
func (t *transport) send(req *http.Request) (*http.Response, error) {
	if t.requests == nil && t.Refused == nil {
		return t.Next.RoundTrip(req)
	}
	endpoint := Endpoint(req.Method, req.URL.Path)
	res, err := t.Next.RoundTrip(req)
	if err != nil {
		if t.requests != nil {
			t.requests.WithLabelValues(endpoint, "error").Inc()
		}
		return nil, err
	}
	if t.requests != nil {
		t.requests.WithLabelValues(endpoint, strconv.Itoa(res.StatusCode)).Inc()
	}
	if t.Refused != nil && (res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden) {
		t.Refused(endpoint, res.StatusCode)
	}
	return res, nil
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx := r.Context()
	status, _ := ctx.Value(recorderKey{}).(*Status)
	var lastRes *http.Response
	var lastErr error
	for attempt := 0; attempt < retryAttempts; attempt++ {
		req := r
		if attempt > 0 {
			next := t.Clock.Now().Add(retryWait(attempt))
			if err := t.wait(ctx, next); err != nil {
				// The request was sent before: what it did is unknown, the
				// last answer stands.
				return lastRes, lastErr
			}
			if req, lastErr = rewind(r); lastErr != nil {
				return lastRes, lastErr
			}
		} else if err := t.wait(ctx, time.Time{}); err != nil {
			status.note(notSent)
			return nil, err
		}
		status.note(sent)
		res, err := t.send(req)
		if err != nil {
			status.note(unknown)
			if !t.RetryServerErrors || ctx.Err() != nil || errors.Is(err, ErrNotSent) {
				return nil, err
			}
			lastRes, lastErr = nil, err
			continue
		}
		status.answered(res.StatusCode)
		if t.Limiter != nil {
			if res.StatusCode == http.StatusTooManyRequests {
				t.Limiter.RateLimited(resetWait(res.Header.Get(rateResetHdr)))
			}
			if strings.HasSuffix(r.URL.Path, pingPathEnd) {
				t.Limiter.Advertised(res.Header.Get(rateLimitHdr))
				res.Header.Del(rateLimitHdr) // go-tfe runs no limiter of its own
			}
		}
		if res.StatusCode < 500 || !t.RetryServerErrors {
			return res, nil
		}
		status.note(unknown)
		lastRes, lastErr = keep(res), nil
	}
	return lastRes, lastErr
}

// wait waits for the request's turn, not before notBefore.
func (t *transport) wait(ctx context.Context, notBefore time.Time) error {
	if t.Limiter != nil {
		return t.Limiter.WaitAfter(ctx, notBefore)
	}
	if d := notBefore.Sub(t.Clock.Now()); d > 0 {
		if deadline, ok := ctx.Deadline(); ok && notBefore.After(deadline) {
			return fmt.Errorf("%w: its retry would go after its deadline", ErrNotSent)
		}
		if err := t.Clock.Sleep(ctx, d); err != nil {
			return fmt.Errorf("%w: %w", ErrNotSent, err)
		}
	}
	return nil
}

// retryWait is how long after the last attempt the given one goes:
// go-tfe's linear jitter for server errors.
func retryWait(attempt int) time.Duration {
	jitter := time.Duration(rand.Int64N(int64(retryWaitMax - retryWaitMin)))
	return (retryWaitMin + jitter) * time.Duration(attempt)
}

// rewind is the request again, with its body from the start.
func rewind(r *http.Request) (*http.Request, error) {
	req := r.Clone(r.Context())
	if r.Body == nil || r.Body == http.NoBody {
		return req, nil
	}
	if r.GetBody == nil {
		return nil, errors.New("retry tfe request: its body cannot be read again")
	}
	body, err := r.GetBody()
	if err != nil {
		return nil, fmt.Errorf("retry tfe request: %w", err)
	}
	req.Body = body
	return req, nil
}

// keep reads an answer's body into memory and closes the connection's, so
// that the answer can be returned after later attempts.
func keep(res *http.Response) *http.Response {
	body, err := io.ReadAll(io.LimitReader(res.Body, maxKeptBody))
	_ = res.Body.Close()
	if err != nil {
		body = nil
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	return res
}

// resetWait is the wait X-RateLimit-Reset asks for (seconds, fractions
// allowed); a second when it says nothing usable.
func resetWait(header string) time.Duration {
	v, err := strconv.ParseFloat(strings.TrimSpace(header), 64)
	if err != nil || !(v > 0) || v > 3600 {
		return defaultReset
	}
	return time.Duration(v * float64(time.Second))
}

// NewClient is a go-tfe client whose every request goes through
// NewTransport(o), on cfg.HTTPClient's settings (its transport the next
// one when o.Next is nil). go-tfe's retry of server errors is given to the
// transport (cfg.RetryServerErrors sets o.RetryServerErrors), so that
// ErrNotSent reaches the caller.
func NewClient(cfg tfe.Config, o Options) (*tfe.Client, error) {
	hc := &http.Client{}
	if cfg.HTTPClient != nil {
		*hc = *cfg.HTTPClient
	}
	if o.Next == nil {
		o.Next = hc.Transport
	}
	o.RetryServerErrors = o.RetryServerErrors || cfg.RetryServerErrors
	hc.Transport = NewTransport(o)
	cfg.HTTPClient, cfg.RetryServerErrors = hc, false
	return tfe.NewClient(&cfg)
}
