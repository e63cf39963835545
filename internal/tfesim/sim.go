package tfesim

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// Options configure a Sim. The zero value is usable: it needs only a Token.
type Options struct {
	// Token is the site-admin user token. Every API request must carry it (or
	// one of UserTokens) as a bearer token.
	Token string
	// UserTokens are tokens of ordinary users: the API answers them, the admin
	// endpoints answer them 404 as TFE does for non-admins.
	UserTokens []string
	// RateLimit is the number of requests per second allowed per token, with
	// a burst of the same size. Zero means 30, TFE's default; negative
	// disables rate limiting.
	RateLimit int
	// Clock drives the run lifecycle. Nil means the wall clock.
	Clock Clock
	// Timing is how long runs spend queued, planning and applying where
	// their workspace's Behavior sets no duration. Nil means
	// DefaultTiming(); &Timing{} makes every phase instant.
	Timing *Timing
	// TickInterval is how often Run advances the lifecycle on the wall
	// clock. Zero means 10ms.
	TickInterval time.Duration
	// HTTPClient delivers notifications. Nil means a client with a 10s timeout.
	HTTPClient *http.Client
	// Logger receives the simulator's own log lines. Nil means none.
	Logger *zap.Logger
	// NoNativeRunTriggers turns off TFE's native run triggers: a run that
	// applies queues nothing downstream. TFE always fires them; this is for
	// measuring an orchestrator without them.
	NoNativeRunTriggers bool
	// Address is the externally visible base URL, used in notification
	// run_url fields. Empty means http://localhost.
	Address string
}

func (o *Options) validate() error {
	if o.Token == "" {
		return errors.New("tfesim: a token is required")
	}
	if o.TickInterval < 0 {
		return errors.New("tfesim: tick interval must not be negative")
	}
	if o.Timing != nil && o.Timing.validate() != nil {
		return errors.New("tfesim: timing durations must not be negative")
	}
	return nil
}

// Sim is an in-memory TFE: its state, the run lifecycle that moves that
// state on a clock, and notification delivery. Serve it with Handler. All
// methods are safe for concurrent use.
type Sim struct {
	opts   Options
	clock  Clock
	log    *zap.Logger
	notify *notifier

	mu         sync.Mutex
	timing     Timing
	seq        uint64
	orgs       map[string]*organization
	workspaces map[string]*workspace
	triggers   map[string]*runTrigger
	runs       map[string]*run
	active     map[*run]struct{} // runs with a transition due at nextAt
	cvs        map[string]*configVersion
	ncs        map[string]*notificationConfig
	tools      map[string]*toolVersion
	comments   map[string]*run // comment ID → run
	states     map[string]*stateVersion
	stateObjs  map[string]*stateVersion // download secret → state version
	outputs    map[string]*stateOutput
	users      map[string]*user // token → user; fixed after New
	admin      *user            // the site admin, Options.Token's user

	limMu    sync.Mutex
	limiters map[string]*rate.Limiter

	faultMu sync.Mutex
	faults  Faults
	rng     *rand.Rand

	statsMu sync.Mutex
	stats   Stats
}

// New returns a simulator with no organizations, one user per token, and a
// list of Terraform versions like a TFE installation's.
func New(opts Options) (*Sim, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.RateLimit == 0 {
		opts.RateLimit = 30
	}
	if opts.TickInterval == 0 {
		opts.TickInterval = 10 * time.Millisecond
	}
	if opts.Address == "" {
		opts.Address = "http://localhost"
	}
	clock := opts.Clock
	if clock == nil {
		clock = realClock{}
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	client := opts.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	timing := DefaultTiming()
	if opts.Timing != nil {
		timing = *opts.Timing
	}
	s := &Sim{
		opts:       opts,
		timing:     timing,
		clock:      clock,
		log:        log,
		orgs:       map[string]*organization{},
		workspaces: map[string]*workspace{},
		triggers:   map[string]*runTrigger{},
		runs:       map[string]*run{},
		active:     map[*run]struct{}{},
		cvs:        map[string]*configVersion{},
		ncs:        map[string]*notificationConfig{},
		tools:      map[string]*toolVersion{},
		comments:   map[string]*run{},
		states:     map[string]*stateVersion{},
		stateObjs:  map[string]*stateVersion{},
		outputs:    map[string]*stateOutput{},
		users:      newUsers(opts),
		limiters:   map[string]*rate.Limiter{},
		rng:        rand.New(rand.NewPCG(1, 2)),
		stats:      newStats(),
	}
	s.admin = s.users[opts.Token]
	s.notify = newNotifier(client, log, s.recordDelivery)
	s.seedToolVersions()
	return s, nil
}

// Run advances the lifecycle on every tick until ctx ends, then waits for
// notifications already queued to be delivered or given up. With a
// ManualClock, Advance is what moves time, and Run only delivers.
func (s *Sim) Run(ctx context.Context) error {
	t := time.NewTicker(s.opts.TickInterval)
	defer t.Stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.notify.run(ctx)
	}()
	for {
		select {
		case <-ctx.Done():
			<-done
			return nil
		case <-t.C:
			s.Tick()
		}
	}
}

// Tick applies every transition that is due at the clock's current time.
func (s *Sim) Tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.step(s.clock.Now())
}

// Advance moves a ManualClock forward by d and applies the transitions due
// on the way, each at its own due time. It panics if the simulator runs on
// another clock, since that is a mistake in the test.
func (s *Sim) Advance(d time.Duration) {
	mc, ok := s.clock.(*ManualClock)
	if !ok {
		panic("tfesim: Advance needs a ManualClock")
	}
	now := mc.advance(d)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.step(now)
}

// now brings the lifecycle up to date and returns the current time. It must
// be called with s.mu held, first thing in every request that reads or
// writes runs, so that answers are consistent with the clock.
func (s *Sim) now() time.Time {
	now := s.clock.Now()
	s.step(now)
	return now
}

func (s *Sim) nextSeq() uint64 {
	s.seq++
	return s.seq
}

func (s *Sim) uniqueID(prefix string, taken func(string) bool) string {
	for {
		id := newID(prefix)
		if !taken(id) {
			return id
		}
	}
}
