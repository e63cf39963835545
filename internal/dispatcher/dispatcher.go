package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	tfe "github.com/hashicorp/go-tfe"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/graph"
)

// Runs is the part of go-tfe's Runs the dispatcher uses.
type Runs interface {
	Create(ctx context.Context, options tfe.RunCreateOptions) (*tfe.Run, error)
	Read(ctx context.Context, runID string) (*tfe.Run, error)
	List(ctx context.Context, workspaceID string, options *tfe.RunListOptions) (*tfe.RunList, error)
	Discard(ctx context.Context, runID string, options tfe.RunDiscardOptions) error
	Cancel(ctx context.Context, runID string, options tfe.RunCancelOptions) error
}

// Workspaces is the part of go-tfe's Workspaces the dispatcher uses.
type Workspaces interface {
	ReadByID(ctx context.Context, workspaceID string) (*tfe.Workspace, error)
}

// ToolVersions is the part of go-tfe's admin Terraform versions the
// dispatcher uses; nil where there is no admin API.
type ToolVersions interface {
	List(ctx context.Context, options *tfe.AdminTerraformVersionsListOptions) (*tfe.AdminTerraformVersionsList, error)
}

// Planner resolves the cascade a root starts; *tfegraph.Cache is one.
type Planner interface {
	Plan(ctx context.Context, root graph.Workspace) (*graph.Graph, *graph.Plan, error)
}

// Options configure a Dispatcher. Zero values take the defaults.
type Options struct {
	Stream   string // default events.DefaultStreamName
	Consumer string // durable consumer name; default "dispatcher"
	Bucket   string // KV bucket of cascade state; default "cascades"
	// StateTTL is how long cascade state is kept; default 7 days.
	StateTTL time.Duration
	// AckWait is how long a message may be processed before JetStream
	// redelivers it; default 30s. A dispatch intent older than this is
	// taken over by whoever sees it next.
	AckWait time.Duration
	// MaxInFlight bounds concurrent run creations; default 8.
	MaxInFlight int
	// ReconcileInterval is how often open cascades are checked; default 15s.
	ReconcileInterval time.Duration
	// ReconcileAfter: a dispatched run with no news for this long is read
	// through the API; default 1m.
	ReconcileAfter time.Duration
	// LockedRetry is how often a locked target is checked again; default 30s.
	LockedRetry time.Duration
	// LockedAlertAfter: a target locked this long raises an alert; default 10m.
	LockedAlertAfter time.Duration
	// CacheTTL is how long preflight trusts what it read of a workspace;
	// default 1m.
	CacheTTL time.Duration
	// NoChangesStarts makes planned_and_finished start a cascade (C1).
	NoChangesStarts bool
	// NoChangesSatisfies lets a barrier run that finished with no changes
	// count as applied (C3). Without it, downstream workspaces are skipped.
	NoChangesSatisfies bool
	// DryRun decides and logs; nothing is written to TFE.
	DryRun bool
	Now    func() time.Time
}

func (o *Options) withDefaults() Options {
	d := *o
	set := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	if d.Stream == "" {
		d.Stream = events.DefaultStreamName
	}
	if d.Consumer == "" {
		d.Consumer = "dispatcher"
	}
	if d.Bucket == "" {
		d.Bucket = "cascades"
	}
	set(&d.StateTTL, 7*24*time.Hour)
	set(&d.AckWait, 30*time.Second)
	set(&d.ReconcileInterval, 15*time.Second)
	set(&d.ReconcileAfter, time.Minute)
	set(&d.LockedRetry, 30*time.Second)
	set(&d.LockedAlertAfter, 10*time.Minute)
	set(&d.CacheTTL, time.Minute)
	if d.MaxInFlight == 0 {
		d.MaxInFlight = 8
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return d
}

// Validate reports the first option that cannot work.
func (o *Options) Validate() error {
	d := o.withDefaults()
	switch {
	case d.MaxInFlight < 1:
		return errors.New("dispatcher: max in flight must be at least 1")
	case d.AckWait < time.Second/10 || d.ReconcileInterval <= 0 || d.ReconcileAfter <= 0 || d.LockedRetry <= 0 || d.LockedAlertAfter <= 0:
		return errors.New("dispatcher: durations must be positive (ack wait at least 100ms)")
	}
	return nil
}

// Deps are what a Dispatcher talks to.
type Deps struct {
	JetStream    jetstream.JetStream
	Runs         Runs
	Workspaces   Workspaces
	ToolVersions ToolVersions // nil: no Terraform version check
	Planner      Planner
	Alerts       alerts.Notifier
	Log          *zap.Logger
	Metrics      *Metrics
}

// Dispatcher consumes run events and drives cascades.
type Dispatcher struct {
	opts    Options
	deps    Deps
	log     *zap.Logger
	store   *store
	ws      *workspaceCache
	sem     chan struct{}
	metrics *Metrics
	// hook, when set (tests only), is called at each step boundary of a
	// dispatch; an error makes the dispatcher stop there as if it crashed.
	hook func(step string) error
}

// New checks the options and sets up the KV bucket of cascade state.
func New(ctx context.Context, opts Options, deps Deps) (*Dispatcher, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	kv, err := deps.JetStream.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      o.Bucket,
		Description: "cascade state of the run-trigger orchestrator",
		TTL:         o.StateTTL,
		History:     1,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("create KV bucket %s: %w", o.Bucket, err)
	}
	if deps.Metrics == nil {
		deps.Metrics = NewMetrics(nil)
	}
	return &Dispatcher{
		opts:    o,
		deps:    deps,
		log:     deps.Log,
		store:   newStore(kv),
		ws:      newWorkspaceCache(deps.Workspaces, deps.ToolVersions, o.CacheTTL, o.Now),
		sem:     make(chan struct{}, o.MaxInFlight),
		metrics: deps.Metrics,
	}, nil
}

// Run consumes events and reconciles open cascades until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) error {
	cons, err := d.deps.JetStream.CreateOrUpdateConsumer(ctx, d.opts.Stream, jetstream.ConsumerConfig{
		Durable:       d.opts.Consumer,
		Description:   "run events for the cascade dispatcher",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       d.opts.AckWait,
		MaxAckPending: 64,
		MaxDeliver:    -1,
		FilterSubject: events.SubjectPrefix + ".>",
	})
	if err != nil {
		return fmt.Errorf("create consumer %s: %w", d.opts.Consumer, err)
	}
	iter, err := cons.Messages(jetstream.PullMaxMessages(4))
	if err != nil {
		return fmt.Errorf("consume %s: %w", d.opts.Consumer, err)
	}
	go func() {
		<-ctx.Done()
		iter.Stop()
	}()
	reconcileDone := make(chan struct{})
	go func() {
		defer close(reconcileDone)
		d.reconcileLoop(ctx)
	}()
	defer func() { <-reconcileDone }()
	for {
		msg, err := iter.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			d.log.Warn("consume", zap.Error(err))
			continue
		}
		d.process(ctx, msg)
	}
}

// errCrash is what a test hook returns to stop a dispatch abruptly.
var errCrash = errors.New("stopped by test hook")

// process handles one message and settles it: ack when done, nak with a
// delay when it may succeed later (TFE or KV unavailable), term when it
// cannot be decoded, with an alert.
func (d *Dispatcher) process(ctx context.Context, msg jetstream.Msg) {
	var ev events.RunEvent
	if err := json.Unmarshal(msg.Data(), &ev); err != nil {
		d.log.Error("undecodable run event dropped", zap.String("subject", msg.Subject()), zap.Error(err))
		d.deps.Alerts.Raise(ctx, alerts.Alert{
			Kind: alerts.KindDispatchFailed, Severity: alerts.SeverityCritical,
			Message: fmt.Sprintf("a run event on %s cannot be decoded and was dropped: %v", msg.Subject(), err),
			Key:     "undecodable/" + msg.Subject(),
		})
		_ = msg.Term()
		return
	}
	err := d.Handle(ctx, &ev, func() { _ = msg.InProgress() })
	switch {
	case err == nil:
		_ = msg.Ack()
	case errors.Is(err, errCrash) || ctx.Err() != nil:
		// Neither ack nor nak: as after a crash, JetStream redelivers
		// once the ack wait has passed.
	default:
		d.log.Warn("run event will be retried", zap.String("run_id", ev.RunID), zap.Error(err))
		_ = msg.NakWithDelay(5 * time.Second)
	}
}

// Handle acts on one run event. It is idempotent: the same event handled
// twice, or events out of order, change nothing more. progress is called
// during long work so the message is not redelivered meanwhile.
func (d *Dispatcher) Handle(ctx context.Context, ev *events.RunEvent, progress func()) error {
	if id, ok := cascadeOfMessage(ev.RunMessage); ok {
		return d.onMemberEvent(ctx, id, ev, progress)
	}
	if d.startsCascade(ev.Status) {
		return d.maybeStart(ctx, ev, progress)
	}
	switch ev.Status {
	case "pending", "plan_queued", "planning", "planned":
		return d.maybeSupersede(ctx, ev)
	}
	return nil
}

func (d *Dispatcher) startsCascade(status string) bool {
	return status == string(tfe.RunApplied) || (d.opts.NoChangesStarts && status == string(tfe.RunPlannedAndFinished))
}

// statusOutcome maps a run status to the member state it ends in, or "".
func (d *Dispatcher) statusOutcome(status string) MemberState {
	switch status {
	case string(tfe.RunApplied):
		return Applied
	case string(tfe.RunPlannedAndFinished):
		return NoChanges
	case string(tfe.RunErrored), string(tfe.RunCanceled), "force_canceled", string(tfe.RunDiscarded):
		return Failed
	}
	return ""
}

// httpStatus returns the HTTP status of a go-tfe error, or 0.
func httpStatus(err error) int {
	switch {
	case errors.Is(err, tfe.ErrResourceNotFound):
		return http.StatusNotFound
	case errors.Is(err, tfe.ErrUnauthorized):
		return http.StatusUnauthorized
	}
	return 0
}
