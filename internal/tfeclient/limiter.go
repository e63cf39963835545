package tfeclient

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tfe-orchestrator/orchestrator/internal/setting"
)

// ErrNotSent is the error of a request the limiter did not send: its turn
// (or the end of a back-off TFE asked for) came after its context's
// deadline, or its context ended while it waited. TFE saw nothing of it,
// so whatever it asked for did not happen. Test for it with errors.Is.
var ErrNotSent = errors.New("tfe request not sent")

// DefaultLimit is the deployment's rate when TFE advertises none: TFE's
// documented 30 requests per second per user.
const DefaultLimit = 30

// Margin is the share of what TFE advertises in X-RateLimit-Limit that the
// deployment uses when no limit is configured: room for clock and network
// jitter, and for anything else using the same token.
const Margin = 0.9

// Clock is the time a Limiter runs on; tests give one they move by hand.
type Clock interface {
	Now() time.Time
	// Sleep returns after d, or with ctx.Err() when ctx ends first.
	Sleep(ctx context.Context, d time.Duration) error
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

func (wallClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Shared is what the replicas of one deployment share of their budget:
// how many of them there are, and the back-off the last 429 any of them
// got asks for. Its methods are called on every request: they must not
// block.
type Shared interface {
	// Replicas is the number of live replicas, this one included: at least 1.
	Replicas() int
	// BackoffUntil is when requests may go again after a 429; zero or past
	// when none is in force.
	BackoffUntil() time.Time
	// BackOff tells every replica that TFE answered 429 and asked to wait
	// until until.
	BackOff(until time.Time)
}

// Alone is the Shared of a replica that knows of no other: one replica,
// and the back-offs it learns itself.
type Alone struct {
	mu    sync.Mutex
	until time.Time
}

// Replicas is 1.
func (*Alone) Replicas() int { return 1 }

// BackoffUntil is the latest back-off given to BackOff.
func (a *Alone) BackoffUntil() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.until
}

// BackOff keeps until when it is later than the back-off in force.
func (a *Alone) BackOff(until time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if until.After(a.until) {
		a.until = until
	}
}

// LimiterOptions configure a Limiter.
type LimiterOptions struct {
	// Limit is the requests per second of the whole deployment, all
	// replicas together; 0 takes Margin × what TFE advertises at /ping
	// (DefaultLimit when it advertises none), once the Transport has seen
	// it. Negative, NaN or infinite: refused by Validate.
	Limit float64
	// Shared tells how many replicas share Limit and carries back-offs
	// between them; nil: Alone.
	Shared Shared
	// Clock: nil is the wall clock.
	Clock Clock
	// Registerer, when set, gets orchestrator_tfe_rate_limit,
	// orchestrator_tfe_replicas and orchestrator_tfe_not_sent_total.
	Registerer prometheus.Registerer
}

// Limiter holds this replica's requests to TFE to its share of the
// deployment's rate: Limit / Replicas, as a token bucket with a burst of a
// third of a second's share (at least 1). It sends nothing while a
// back-off is in force, and after one starts with an empty bucket. A
// request whose turn would come after its context's deadline is not kept
// waiting: it gets ErrNotSent at once.
type Limiter struct {
	clock      Clock
	shared     Shared
	configured bool // Limit was given: what TFE advertises is not used
	notSent    prometheus.Counter

	mu       sync.Mutex
	limit    float64   // the deployment's rate
	tat      time.Time // when the bucket is empty again: GCRA's theoretical arrival time
	backedTo time.Time // the last back-off the bucket was emptied for

	urgent      int           // urgent requests waiting for their turn
	urgentUntil time.Time     // others yield until then: the last urgent one's turn plus UrgentLinger
	calm        chan struct{} // closed when urgent falls to 0
}

// Urgent marks ctx's requests as urgent: while any waits for its turn, and
// for UrgentLinger after the last one got it, other requests wait before
// taking a turn, for at most MaxYield each. The engine marks the start of
// a cascade (its root's check, its run triggers, its first look and the
// holds it takes): what must be in place before TFE's own runs move, and
// which a backlog of other looks would otherwise delay.
func Urgent(ctx context.Context) context.Context {
	return context.WithValue(ctx, urgentKey{}, true)
}

type urgentKey struct{}

// IsUrgent reports whether ctx was marked Urgent.
func IsUrgent(ctx context.Context) bool {
	u, _ := ctx.Value(urgentKey{}).(bool)
	return u
}

// UrgentLinger bridges the moments between an urgent caller's requests,
// made one after the other.
const UrgentLinger = 250 * time.Millisecond

// MaxYield is the longest a request waits for urgent ones before taking
// its turn, so that a stream of urgent work never starves the rest.
const MaxYield = 5 * time.Second

// Validate reports a limit that cannot work, as a *setting.Error naming
// the field.
func (o LimiterOptions) Validate() error {
	if r := o.Limit; r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		return setting.Errorf("{Limit} (%v) must be 0 (%v × what TFE advertises) or a positive number of requests per second, all replicas together", r, Margin)
	}
	return nil
}

// NewLimiter returns a Limiter; it panics when the metrics cannot be
// registered, as prometheus.MustRegister does.
func NewLimiter(opts LimiterOptions) *Limiter {
	l := &Limiter{clock: opts.Clock, shared: opts.Shared, limit: opts.Limit, configured: opts.Limit > 0,
		notSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orchestrator_tfe_not_sent_total",
			Help: "Requests to TFE not sent because their turn in the rate limit came after their deadline (or their caller gave up waiting).",
		})}
	if l.clock == nil {
		l.clock = wallClock{}
	}
	if l.shared == nil {
		l.shared = &Alone{}
	}
	if !l.configured {
		l.limit = Margin * DefaultLimit
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(l.notSent,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "orchestrator_tfe_rate_limit",
				Help: "Requests per second to TFE this replica may make: its share of the deployment's limit.",
			}, l.Share),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "orchestrator_tfe_replicas",
				Help: "Replicas sharing the TFE rate limit, this one included.",
			}, func() float64 { return float64(l.Replicas()) }))
	}
	return l
}

// Advertised tells the limiter what TFE advertises in X-RateLimit-Limit
// (the raw header; empty when absent). Without a configured limit the
// deployment's becomes Margin × it, or Margin × DefaultLimit when it is
// absent, zero or not a number.
func (l *Limiter) Advertised(header string) {
	if l.configured {
		return
	}
	var v float64
	if _, err := fmt.Sscan(header, &v); err != nil || !(v > 0) || math.IsInf(v, 0) {
		v = DefaultLimit
	}
	l.mu.Lock()
	l.limit = Margin * v
	l.mu.Unlock()
}

// Limit is the deployment's rate, all replicas together.
func (l *Limiter) Limit() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit
}

// Replicas is the number of replicas sharing the limit, at least 1.
func (l *Limiter) Replicas() int { return max(1, l.shared.Replicas()) }

// Share is this replica's rate: the deployment's divided by the replicas.
func (l *Limiter) Share() float64 { return l.Limit() / float64(l.Replicas()) }

// RateLimited records a 429 whose X-RateLimit-Reset asked to wait wait:
// every replica backs off until then.
func (l *Limiter) RateLimited(wait time.Duration) {
	l.shared.BackOff(l.clock.Now().Add(wait))
}

// Wait returns when this replica may send a request, or ErrNotSent (with
// ctx.Err() when ctx ended) without a turn spent when that would be after
// ctx's deadline.
func (l *Limiter) Wait(ctx context.Context) error { return l.WaitAfter(ctx, time.Time{}) }

// WaitAfter is Wait for a request that must not go before notBefore.
func (l *Limiter) WaitAfter(ctx context.Context, notBefore time.Time) error {
	if err := ctx.Err(); err != nil {
		return l.refuse(fmt.Errorf("%w: %w", ErrNotSent, err))
	}
	if IsUrgent(ctx) {
		l.urgentBegin()
		defer l.urgentEnd()
	} else if err := l.yield(ctx); err != nil {
		return l.refuse(fmt.Errorf("%w: %w", ErrNotSent, err))
	}
	deadline, hasDeadline := ctx.Deadline()
	reserved := false
	for {
		now := l.clock.Now()
		start := notBefore
		if b := l.shared.BackoffUntil(); b.After(start) {
			start = b
		}
		if start.After(now) {
			if hasDeadline && start.After(deadline) {
				return l.refuse(fmt.Errorf("%w: it could go in %s, after its deadline", ErrNotSent, start.Sub(now).Round(time.Millisecond)))
			}
			if err := l.clock.Sleep(ctx, start.Sub(now)); err != nil {
				return l.refuse(fmt.Errorf("%w: %w", ErrNotSent, err))
			}
			continue // a back-off may have come meanwhile
		}
		if reserved {
			return nil
		}
		at, ok := l.reserve(now, deadline, hasDeadline)
		if !ok {
			return l.refuse(fmt.Errorf("%w: its turn in the rate limit comes in %s, after its deadline", ErrNotSent, at.Sub(now).Round(time.Millisecond)))
		}
		reserved, notBefore = true, at
	}
}

func (l *Limiter) urgentBegin() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.urgent == 0 {
		l.calm = make(chan struct{})
	}
	l.urgent++
}

func (l *Limiter) urgentEnd() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.urgent--
	if until := l.clock.Now().Add(UrgentLinger); until.After(l.urgentUntil) {
		l.urgentUntil = until
	}
	if l.urgent == 0 {
		close(l.calm)
	}
}

// yield waits while urgent requests wait, and UrgentLinger after, for at
// most MaxYield.
func (l *Limiter) yield(ctx context.Context) error {
	var giveUp time.Time
	for {
		l.mu.Lock()
		now := l.clock.Now()
		if giveUp.IsZero() {
			giveUp = now.Add(MaxYield)
		}
		urgent, calm, until := l.urgent, l.calm, l.urgentUntil
		l.mu.Unlock()
		if !now.Before(giveUp) {
			return nil
		}
		if urgent == 0 {
			if !until.After(now) {
				return nil
			}
			if err := l.clock.Sleep(ctx, min(until.Sub(now), giveUp.Sub(now))); err != nil {
				return err
			}
			continue
		}
		// Sleep until the urgent ones are done or MaxYield passed.
		sctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-calm:
				cancel()
			case <-sctx.Done():
			}
		}()
		_ = l.clock.Sleep(sctx, giveUp.Sub(now))
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

func (l *Limiter) refuse(err error) error {
	l.notSent.Inc()
	return err
}

// reserve takes the next turn in the bucket, at or after now, unless it
// comes after deadline; it returns the turn either way.
func (l *Limiter) reserve(now, deadline time.Time, hasDeadline bool) (time.Time, bool) {
	replicas := l.Replicas()
	l.mu.Lock()
	defer l.mu.Unlock()
	share := l.limit / float64(replicas)
	interval := time.Duration(float64(time.Second) / share)
	burst := max(1, int(share/3))
	tau := time.Duration(burst-1) * interval // how far ahead of the bucket a request may go
	if b := l.shared.BackoffUntil(); b.After(l.backedTo) {
		// TFE's bucket is empty at the end of a back-off: so is this one.
		l.backedTo = b
		if empty := b.Add(tau); empty.After(l.tat) {
			l.tat = empty
		}
	}
	at := l.tat.Add(-tau)
	if at.Before(now) {
		at = now
	}
	if hasDeadline && at.After(deadline) {
		return at, false
	}
	if l.tat.Before(at) {
		l.tat = at
	}
	l.tat = l.tat.Add(interval)
	return at, true
}
