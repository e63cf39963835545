package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/graph"
	"github.com/tfe-orchestrator/orchestrator/internal/setting"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
)

// Runs is what the engine reads and does of runs; *tfeclient.TFE is one.
type Runs interface {
	tfeclient.RunStarter
	tfeclient.RunReader
	tfeclient.RunWorkspaceReader
	tfeclient.RunLister
	tfeclient.RunApplier
	tfeclient.RunStopper
}

// Workspaces is what the engine reads and does of workspaces;
// *tfeclient.TFE is one.
type Workspaces interface {
	tfeclient.WorkspaceReader
	tfeclient.CurrentRunReader
	tfeclient.WorkspacePager
	// Lock and unlock hold a member's workspace (C13).
	tfeclient.WorkspaceLocker
}

// Users tells which TFE user the engine acts as: a workspace it locked
// shows that user. *tfeclient.TFE is one.
type Users interface {
	tfeclient.CurrentUserReader
}

// ToolVersions reads the installation's Terraform versions (the admin
// API); nil where there is none. *tfeclient.TFE is one.
type ToolVersions interface {
	tfeclient.AdminTerraformVersions
}

// Planner resolves the cascade a root starts; *tfegraph.Cache is one.
type Planner interface {
	Plan(ctx context.Context, root graph.Workspace) (*graph.Graph, *graph.Plan, error)
}

// Options configure the engine. A zero field takes its default, the value
// DefaultOptions has, unless its comment says 0 turns it off; Validate
// refuses what cannot work, naming the field (a *setting.Error).
type Options struct {
	Stream      string // the run event stream; default events.DefaultStreamName
	Consumer    string // its durable consumer; default "dispatcher"
	Bucket      string // KV bucket of cascade state; default "cascades"
	LeaseBucket string // KV bucket of cascade leases; default "cascade-leases"
	// ControlBucket holds the operators' controls that outlive cascades
	// (pauses, freeze windows, exclusions): no TTL; default
	// "cascade-controls".
	ControlBucket string
	// AuditBucket keeps the audit trail of the operators' controls, each
	// record for AuditRetention; defaults "cascade-audit" and 90 days.
	// AuditRetention under an hour, or negative, is refused.
	AuditBucket    string
	AuditRetention time.Duration
	// Replicas of the KV buckets: the stream's, so that losing a NATS node
	// loses no cascade; default 1; from 1 to 5.
	Replicas int
	// StateTTL is how long cascade state is kept; default 7 days. It must
	// outlast RootMaxAge, so that a replayed root is recognised, and every
	// delivery of an event (MaxDeliver × AckWait).
	StateTTL time.Duration
	// AckWait is how long an event may be processed before JetStream
	// redelivers it; default 30s, at least 100ms. MaxDeliver bounds its
	// deliveries (default 10, at least 2); one that reaches it is dropped
	// with an alert.
	AckWait    time.Duration
	MaxDeliver int
	// LeaseTTL is how long a cascade's lease lasts without renewal; a
	// replica that dies holding it is replaced after that; default 30s, at
	// least 1s.
	LeaseTTL time.Duration
	// Workers reconcile this many cascades at once; EventWorkers handle
	// this many events at once; MaxInFlight bounds TFE writes in flight
	// per reconcile. Defaults 4, 8, 8; negative refused.
	Workers, EventWorkers, MaxInFlight int
	// Debounce: events are gathered this long before a cascade is looked
	// at, so that a burst costs one look; default 1s. It must stay well
	// under a plan's duration: a run TFE queued too early is stopped while
	// it plans.
	Debounce time.Duration
	// RootMaxAge: a run that applied longer ago than this does not start a
	// cascade, however its event arrives; default 24h.
	RootMaxAge time.Duration
	// NoChangesStarts lets a run that finished with no changes start a
	// cascade (C1).
	NoChangesStarts bool
	// Policy is how cascades behave (apply policy, timings); its zero
	// fields take cascade.DefaultPolicy's.
	Policy cascade.Policy
	// GuardLimit is the blast-radius guard: a cascade of more members
	// waits for an operator's go. 0 turns the guard off (the default);
	// negative refused.
	GuardLimit int
	// WalkPages bounds the pages of the workspace list a look reads before
	// it reads the rest one by one; 0 takes the default, 3. WalkOff (any
	// negative value) turns the walk off: roots and members are read one
	// by one.
	WalkPages int
	// CacheTTL is how long the admin list of Terraform versions is trusted;
	// default 5m.
	CacheTTL time.Duration
	// DryRun decides and logs; nothing is written to TFE (C9).
	DryRun bool
	// Instance names this replica in leases; default a random name.
	Instance string
	// Address is TFE's address, for run links in the read model.
	Address string
	Now     func() time.Time
}

// WalkOff is the WalkPages that turns the walk of the workspace list off.
const WalkOff = -1

// DefaultOptions are the options a zero field takes: the one place the
// engine's defaults are written. Instance and Now, which are per process,
// are left out (a random name and time.Now).
func DefaultOptions() Options {
	return Options{
		Stream:         events.DefaultStreamName,
		Consumer:       "dispatcher",
		Bucket:         "cascades",
		LeaseBucket:    "cascade-leases",
		ControlBucket:  "cascade-controls",
		AuditBucket:    "cascade-audit",
		AuditRetention: 90 * 24 * time.Hour,
		Replicas:       1,
		StateTTL:       7 * 24 * time.Hour,
		AckWait:        30 * time.Second,
		MaxDeliver:     10,
		LeaseTTL:       30 * time.Second,
		Workers:        4,
		EventWorkers:   8,
		MaxInFlight:    8,
		Debounce:       time.Second,
		RootMaxAge:     24 * time.Hour,
		WalkPages:      3,
		CacheTTL:       5 * time.Minute,
		Policy:         cascade.DefaultPolicy,
	}
}

func (o *Options) withDefaults() Options {
	d := *o
	def := DefaultOptions()
	str := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	dur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	num := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	str(&d.Stream, def.Stream)
	str(&d.Consumer, def.Consumer)
	str(&d.Bucket, def.Bucket)
	str(&d.LeaseBucket, def.LeaseBucket)
	str(&d.ControlBucket, def.ControlBucket)
	str(&d.AuditBucket, def.AuditBucket)
	dur(&d.AuditRetention, def.AuditRetention)
	num(&d.Replicas, def.Replicas)
	dur(&d.StateTTL, def.StateTTL)
	dur(&d.AckWait, def.AckWait)
	num(&d.MaxDeliver, def.MaxDeliver)
	dur(&d.LeaseTTL, def.LeaseTTL)
	num(&d.Workers, def.Workers)
	num(&d.EventWorkers, def.EventWorkers)
	num(&d.MaxInFlight, def.MaxInFlight)
	dur(&d.Debounce, def.Debounce)
	dur(&d.RootMaxAge, def.RootMaxAge)
	switch {
	case d.WalkPages == 0:
		d.WalkPages = def.WalkPages
	case d.WalkPages < 0:
		d.WalkPages = WalkOff
	}
	dur(&d.CacheTTL, def.CacheTTL)
	if d.Instance == "" {
		d.Instance = fmt.Sprintf("dispatcher-%08x", rand.Uint32())
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	d.Policy = d.Policy.WithDefaults()
	return d
}

// Validate reports the first option that cannot work, as a *setting.Error
// that names its field (Policy's as Policy.Field).
func (o *Options) Validate() error {
	for _, f := range []struct {
		field string
		v     int
	}{{"MaxInFlight", o.MaxInFlight}, {"Workers", o.Workers}, {"EventWorkers", o.EventWorkers}, {"MaxDeliver", o.MaxDeliver}, {"GuardLimit", o.GuardLimit}} {
		if f.v < 0 {
			return setting.Errorf("{"+f.field+"} (%d) must not be negative", f.v)
		}
	}
	if o.MaxDeliver == 1 {
		return setting.Errorf("{MaxDeliver} (1) must be at least 2: an event gets a second chance")
	}
	for _, f := range []struct {
		field string
		v     time.Duration
	}{
		{"StateTTL", o.StateTTL}, {"AckWait", o.AckWait}, {"LeaseTTL", o.LeaseTTL}, {"RootMaxAge", o.RootMaxAge},
		{"Debounce", o.Debounce}, {"AuditRetention", o.AuditRetention}, {"CacheTTL", o.CacheTTL},
	} {
		if f.v < 0 {
			return setting.Errorf("{"+f.field+"} (%s) must not be negative", setting.Duration(f.v))
		}
	}
	if err := o.Policy.Validate(); err != nil {
		return setting.Within("Policy", err)
	}
	d := o.withDefaults()
	switch {
	case d.Replicas < 1 || d.Replicas > 5:
		return setting.Errorf("{Replicas} must be from 1 to 5, not %d", d.Replicas)
	case d.AuditRetention < time.Hour:
		return setting.Errorf("{AuditRetention} (%s) must be at least 1h", setting.Duration(d.AuditRetention))
	case d.AckWait < 100*time.Millisecond:
		return setting.Errorf("{AckWait} (%s) must be at least 100ms", setting.Duration(d.AckWait))
	case d.LeaseTTL < time.Second:
		return setting.Errorf("{LeaseTTL} (%s) must be at least 1s", setting.Duration(d.LeaseTTL))
	case d.StateTTL <= d.AckWait:
		// A redelivered event finds the cascade it belongs to only while
		// the state is kept.
		return setting.Errorf("{StateTTL} (%s) must be longer than {AckWait} (%s)", setting.Duration(d.StateTTL), setting.Duration(d.AckWait))
	case d.StateTTL <= time.Duration(d.MaxDeliver)*d.AckWait:
		return setting.Errorf("{StateTTL} (%s) must outlast every delivery of an event ({MaxDeliver} %d × {AckWait} %s)",
			setting.Duration(d.StateTTL), d.MaxDeliver, setting.Duration(d.AckWait))
	case d.StateTTL <= d.RootMaxAge:
		// A replayed root is refused for its age, or recognised as handled.
		return setting.Errorf("{StateTTL} (%s) must be longer than {RootMaxAge} (%s): a replayed webhook must find its root handled",
			setting.Duration(d.StateTTL), setting.Duration(d.RootMaxAge))
	}
	return nil
}

// Deps are what the engine talks to.
type Deps struct {
	JetStream    jetstream.JetStream
	Runs         Runs
	Workspaces   Workspaces
	ToolVersions ToolVersions // nil: no Terraform version check
	Users        Users        // nil: no holds (C13), runs queued too early are only raced
	// Organizations: nil, the organizations controls name are not checked
	// against TFE.
	Organizations Organizations
	// StateVersions reads upstreams' outputs for output gating; nil: they
	// cannot be compared, and members gated on them run.
	StateVersions StateVersions
	Planner       Planner
	Alerts        alerts.Notifier
	Log           *zap.Logger
	Metrics       *Metrics
}

// Dispatcher is the cascade engine's shell: it turns run events into
// looks at cascades, reads what a look needs from TFE, calls the decision
// core, stores the transitions and carries the actions out.
type Dispatcher struct {
	opts    Options
	deps    Deps
	log     *zap.Logger
	store   *store
	metrics *Metrics
	tools   *toolCache
	self    selfCache
	outputs outputsCache                                                  // what comparisons of upstreams' outputs found
	lists   tfeclient.Fresh[listKey, tfeclient.Page[tfeclient.Workspace]] // pages of the workspace list looks share

	prefetches chan graph.Workspace // closures to read while a run plans there

	wake chan struct{} // the scheduler's: a due entry changed

	reads *Reads    // the read model, on the same store and options
	ctl   *Controls // the operators' controls, likewise
}

// New checks the options and sets the KV buckets up, with the configured
// replicas (events.EnsureKeyValue: replicas starting at once all succeed).
func New(ctx context.Context, opts Options, deps Deps) (*Dispatcher, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	kv, err := events.EnsureKeyValue(ctx, deps.JetStream, jetstream.KeyValueConfig{
		Bucket: o.Bucket, Description: "cascade state of the run-trigger orchestrator",
		TTL: o.StateTTL, History: 1, Storage: jetstream.FileStorage, Replicas: o.Replicas,
	})
	if err != nil {
		return nil, err
	}
	leases, err := events.EnsureKeyValue(ctx, deps.JetStream, jetstream.KeyValueConfig{
		Bucket: o.LeaseBucket, Description: "which replica reconciles each cascade",
		TTL: o.LeaseTTL, History: 1, Storage: jetstream.FileStorage, Replicas: o.Replicas,
	})
	if err != nil {
		return nil, err
	}
	ctl, err := events.EnsureKeyValue(ctx, deps.JetStream, jetstream.KeyValueConfig{
		Bucket: o.ControlBucket, Description: "operators' controls of the run-trigger orchestrator, with who changed them",
		History: 10, Storage: jetstream.FileStorage, Replicas: o.Replicas,
	})
	if err != nil {
		return nil, err
	}
	audit, err := events.EnsureKeyValue(ctx, deps.JetStream, auditConfig(o))
	if err != nil {
		return nil, err
	}
	if deps.Metrics == nil {
		deps.Metrics = NewMetrics(nil)
	}
	if deps.Log == nil {
		deps.Log = zap.NewNop()
	}
	d := &Dispatcher{opts: o, deps: deps, log: deps.Log, metrics: deps.Metrics, wake: make(chan struct{}, 1),
		prefetches: make(chan graph.Workspace, maxPrefetchQueue)}
	d.store = newStore(deps.JetStream.Conn(), kv, ctl, leases, d.malformedRecord)
	d.tools = newToolCache(deps.ToolVersions, o.CacheTTL, o.Now)
	d.lists.Keep = listReuse
	d.reads = &Reads{opts: &d.opts, store: d.store, audit: audit, log: d.log}
	d.ctl = &Controls{opts: &d.opts, store: d.store, audit: audit, log: d.log, orgs: deps.Organizations, engine: d}
	return d, nil
}

// Reads is the engine's read model: what the operator API, the web page
// and the demo see of cascades and controls.
func (d *Dispatcher) Reads() *Reads { return d.reads }

// Controls are the engine's operators' controls: what the operator API
// changes.
func (d *Dispatcher) Controls() *Controls { return d.ctl }

// malformedRecord reports, once, a KV record that cannot be used. Whoever
// wrote it (a bug, another version, or someone with access to NATS), it is
// set aside and never acted on.
func (d *Dispatcher) malformedRecord(key string, err error) {
	d.log.Error("malformed cascade record set aside", zap.String("key", key), zap.Error(err))
	d.metrics.malformed.Inc()
	d.deps.Alerts.Raise(context.Background(), alerts.Alert{
		Kind: alerts.KindMalformedState, Severity: alerts.SeverityCritical,
		Message: fmt.Sprintf("the cascade record %s in KV bucket %s cannot be read (%v); it is set aside and not acted on", key, d.opts.Bucket, err),
		Key:     "malformed/" + key,
	})
}

// Run consumes run events and reconciles cascades until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) error {
	cons, err := d.deps.JetStream.CreateOrUpdateConsumer(ctx, d.opts.Stream, jetstream.ConsumerConfig{
		Durable:       d.opts.Consumer,
		Description:   "run events for the cascade engine",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       d.opts.AckWait,
		MaxDeliver:    d.opts.MaxDeliver,
		MaxAckPending: 1024,
		FilterSubject: events.SubjectPrefix + ".>",
	})
	if err != nil {
		return fmt.Errorf("create consumer %s: %w", d.opts.Consumer, err)
	}
	if err := events.ConsumerReady(ctx, cons); err != nil && ctx.Err() == nil {
		d.log.Warn("the run events' consumer has no leader yet; pulling all the same", zap.Error(err))
	}
	advisories, err := d.watchDropped()
	if err != nil {
		return err
	}
	defer func() { _ = advisories.Unsubscribe() }()

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Add(2 + prefetchWorkers)
	go func() {
		defer wg.Done()
		d.schedule(ctx)
	}()
	for range prefetchWorkers {
		go func() {
			defer wg.Done()
			d.prefetcher(ctx)
		}()
	}
	go func() {
		defer wg.Done()
		d.gauges(ctx)
	}()

	iter, err := cons.Messages(jetstream.PullMaxMessages(2*d.opts.EventWorkers), jetstream.PullExpiry(eventPullExpiry))
	if err != nil {
		return fmt.Errorf("consume %s: %w", d.opts.Consumer, err)
	}
	go func() {
		<-ctx.Done()
		iter.Stop()
	}()
	sem := make(chan struct{}, d.opts.EventWorkers)
	for {
		msg, err := iter.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			d.log.Warn("consume run events", zap.Error(err))
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			d.process(ctx, msg)
		}()
	}
}

// eventPullExpiry is how long a pull for run events waits. A pull sent
// while the consumer has no leader (a fresh replicated consumer, or one
// whose node was lost) is never answered; nats.go notices when two
// heartbeats (half the expiry each) are missed and pulls again. With its
// default of 30 s, events stopped for up to 30 s at a cluster's start in
// tests, while runs TFE queued too early planned and applied unseen.
const eventPullExpiry = 5 * time.Second

// watchDropped turns JetStream's advisory about an event delivered
// MaxDeliver times into an alert: that event is dropped.
func (d *Dispatcher) watchDropped() (*nats.Subscription, error) {
	subject := fmt.Sprintf("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.%s.%s", d.opts.Stream, d.opts.Consumer)
	sub, err := d.deps.JetStream.Conn().Subscribe(subject, func(m *nats.Msg) {
		var adv struct {
			StreamSeq  uint64 `json:"stream_seq"`
			Deliveries uint64 `json:"deliveries"`
		}
		_ = json.Unmarshal(m.Data, &adv)
		d.metrics.events.WithLabelValues("dropped").Inc()
		d.deps.Alerts.Raise(context.Background(), alerts.Alert{
			Kind: alerts.KindEventDropped, Severity: alerts.SeverityCritical,
			Message: fmt.Sprintf("run event %d of stream %s was delivered %d times without being handled and is dropped; the cascades it concerns are still looked at on their schedule",
				adv.StreamSeq, d.opts.Stream, adv.Deliveries),
			Key: fmt.Sprintf("dropped/%s/%d", d.opts.Stream, adv.StreamSeq),
		})
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", subject, err)
	}
	return sub, nil
}

// process handles one event and settles its message: ack when handled or
// when it can never be (with an alert), nak with a growing, jittered delay
// when it may succeed later.
func (d *Dispatcher) process(ctx context.Context, msg jetstream.Msg) {
	var ev events.RunEvent
	err := json.Unmarshal(msg.Data(), &ev)
	if err == nil {
		err = validEvent(&ev)
	}
	if err != nil {
		d.metrics.events.WithLabelValues("rejected").Inc()
		d.reject(ctx, "", fmt.Sprintf("a run event on %s cannot be used and is dropped: %v", msg.Subject(), err), "undecodable/"+msg.Subject())
		_ = msg.Term()
		return
	}
	stop := d.inProgress(ctx, msg)
	err = d.Handle(ctx, &ev)
	stop()
	var perm *permanentError
	switch {
	case err == nil:
		d.metrics.events.WithLabelValues("handled").Inc()
		_ = msg.Ack()
	case errors.As(err, &perm):
		d.metrics.events.WithLabelValues("rejected").Inc()
		d.reject(ctx, ev.Organization, perm.Error(), perm.key)
		_ = msg.Term()
	case ctx.Err() != nil:
		// Neither: JetStream redelivers after the ack wait.
	default:
		n := uint64(1)
		if md, err := msg.Metadata(); err == nil {
			n = md.NumDelivered
		}
		delay := backoff(n, errors.Is(err, errUnauthorized))
		d.metrics.events.WithLabelValues("retried").Inc()
		d.log.Warn("run event will be retried", zap.String("run_id", ev.RunID), zap.String("workspace_id", ev.WorkspaceID),
			zap.String("workspace", ev.WorkspaceName), zap.Uint64("delivery", n), zap.Duration("in", delay), zap.Error(err))
		_ = msg.NakWithDelay(delay)
	}
}

// maxHandling is how long, in ack waits, an event's handling is kept from
// being redelivered: a root whose run triggers are read cold under TFE's
// rate limit takes longer than one ack wait, and a second delivery would
// read them again beside the first. Past it, JetStream redelivers.
const maxHandling = 10

// inProgress tells JetStream, every third of the ack wait, that msg is
// still being handled, until the returned function is called or
// maxHandling ack waits have passed.
func (d *Dispatcher) inProgress(ctx context.Context, msg jetstream.Msg) (stop func()) {
	ctx, cancel := context.WithTimeout(ctx, maxHandling*d.opts.AckWait)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(d.opts.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// backoff is the delay before an event's next delivery: doubling from 2 s,
// at most 2 minutes (a minute at least while TFE refuses the token), with
// a fifth of jitter so that a storm does not come back in step.
func backoff(delivered uint64, unauthorized bool) time.Duration {
	d := 2 * time.Second << min(delivered, 6)
	d = min(d, 2*time.Minute)
	if unauthorized {
		d = max(d, time.Minute)
	}
	jitter := time.Duration(rand.Int64N(int64(d / 5)))
	return d - d/10 + jitter
}

func (d *Dispatcher) reject(ctx context.Context, org, msg, key string) {
	d.log.Warn("run event rejected", zap.String("reason", msg))
	d.deps.Alerts.Raise(ctx, alerts.Alert{Kind: alerts.KindEventRejected, Severity: alerts.SeverityWarning, Organization: org, Message: msg, Key: key})
}

// permanentError is an event that can never be handled: it is dropped
// with an alert (key) rather than retried.
type permanentError struct {
	msg, key string
}

func (e *permanentError) Error() string { return e.msg }

func permanent(key, format string, args ...any) error {
	return &permanentError{msg: fmt.Sprintf(format, args...), key: key}
}

// errUnauthorized marks a failure TFE answered 401 or 403: the token is
// wrong or lacks permission, which retrying does not fix.
var errUnauthorized = errors.New("TFE refused the token")
