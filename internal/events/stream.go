package events

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tfe-orchestrator/orchestrator/internal/setting"
)

// StreamOptions configure the run event stream. A zero field takes its
// default, DefaultStreamOptions'; none is turned off by 0. Validate
// refuses what cannot work, naming the field (a *setting.Error).
type StreamOptions struct {
	// Name of the stream; default RUN_EVENTS; letters, digits, - and _.
	Name string
	// Retention is limits (default), interest or workqueue.
	Retention string
	// MaxAge is how long events are kept; default 7 days; negative
	// refused.
	MaxAge time.Duration
	// DuplicateWindow is how long a de-duplication ID is remembered;
	// default 10 minutes; negative or longer than MaxAge refused.
	DuplicateWindow time.Duration
	// Replicas of the stream in a cluster; default 1; from 1 to 5.
	Replicas int
}

// Defaults for StreamOptions.
const (
	DefaultStreamName      = "RUN_EVENTS"
	DefaultRetention       = "limits"
	DefaultMaxAge          = 7 * 24 * time.Hour
	DefaultDuplicateWindow = 10 * time.Minute
	DefaultReplicas        = 1
)

// DefaultStreamOptions are the options a zero field takes.
func DefaultStreamOptions() StreamOptions {
	return StreamOptions{Name: DefaultStreamName, Retention: DefaultRetention, MaxAge: DefaultMaxAge,
		DuplicateWindow: DefaultDuplicateWindow, Replicas: DefaultReplicas}
}

func (o *StreamOptions) withDefaults() StreamOptions {
	out, def := *o, DefaultStreamOptions()
	if out.Name == "" {
		out.Name = def.Name
	}
	if out.Retention == "" {
		out.Retention = def.Retention
	}
	if out.MaxAge == 0 {
		out.MaxAge = def.MaxAge
	}
	if out.DuplicateWindow == 0 {
		out.DuplicateWindow = def.DuplicateWindow
	}
	if out.Replicas == 0 {
		out.Replicas = def.Replicas
	}
	return out
}

// maxStreamName is the longest stream name accepted.
const maxStreamName = 255

// Validate reports the first option that cannot work, as a *setting.Error
// naming its field.
func (o *StreamOptions) Validate() error {
	d := o.withDefaults()
	if !ValidName(d.Name, maxStreamName) {
		return setting.Errorf("{Name} %q: letters, digits, - and _ only", d.Name)
	}
	if _, err := retention(d.Retention); err != nil {
		return setting.Errorf("{Retention} must be limits, interest or workqueue, not %q", d.Retention)
	}
	switch {
	case d.MaxAge < 0:
		return setting.Errorf("{MaxAge} (%s) must not be negative", setting.Duration(d.MaxAge))
	case d.DuplicateWindow < 0:
		return setting.Errorf("{DuplicateWindow} (%s) must not be negative", setting.Duration(d.DuplicateWindow))
	case d.DuplicateWindow > d.MaxAge:
		return setting.Errorf("{DuplicateWindow} (%s) must not be longer than {MaxAge} (%s)", setting.Duration(d.DuplicateWindow), setting.Duration(d.MaxAge))
	case d.Replicas < 1 || d.Replicas > 5:
		return setting.Errorf("{Replicas} must be from 1 to 5, not %d", d.Replicas)
	}
	return nil
}

func retention(s string) (jetstream.RetentionPolicy, error) {
	switch s {
	case "limits":
		return jetstream.LimitsPolicy, nil
	case "interest":
		return jetstream.InterestPolicy, nil
	case "workqueue":
		return jetstream.WorkQueuePolicy, nil
	}
	return 0, fmt.Errorf("stream retention must be limits, interest or workqueue, not %q", s)
}

// Config returns the JetStream configuration of the stream.
func (o *StreamOptions) Config() (jetstream.StreamConfig, error) {
	if err := o.Validate(); err != nil {
		return jetstream.StreamConfig{}, err
	}
	d := o.withDefaults()
	ret, _ := retention(d.Retention)
	return jetstream.StreamConfig{
		Name:        d.Name,
		Description: "TFE run notifications, one message per event",
		Subjects:    []string{SubjectPrefix + ".>"},
		Retention:   ret,
		MaxAge:      d.MaxAge,
		Duplicates:  d.DuplicateWindow,
		Replicas:    d.Replicas,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
	}, nil
}

// EnsureStream creates the stream or brings its configuration up to date.
// It is safe to call on every start, from every replica at once: see
// Ensure.
func EnsureStream(ctx context.Context, js jetstream.JetStream, opts StreamOptions) (jetstream.Stream, error) {
	cfg, err := opts.Config()
	if err != nil {
		return nil, err
	}
	s, err := Ensure(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, cfg)
	}, func(ctx context.Context) (jetstream.Stream, bool, error) {
		s, err := js.Stream(ctx, cfg.Name)
		if err != nil {
			return nil, false, err
		}
		return s, sameStream(cfg, s.CachedInfo().Config), nil
	})
	if err != nil {
		return nil, fmt.Errorf("create or update stream %s: %w", cfg.Name, err)
	}
	return s, nil
}

// EnsureKeyValue creates a KV bucket or brings its configuration up to
// date, like EnsureStream.
func EnsureKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := Ensure(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		return js.CreateOrUpdateKeyValue(ctx, cfg)
	}, func(ctx context.Context) (jetstream.KeyValue, bool, error) {
		s, err := js.Stream(ctx, "KV_"+cfg.Bucket)
		if err != nil {
			return nil, false, err
		}
		if !sameBucket(cfg, s.CachedInfo().Config) {
			return nil, false, nil
		}
		kv, err := js.KeyValue(ctx, cfg.Bucket)
		return kv, err == nil, err
	})
	if err != nil {
		return nil, fmt.Errorf("create KV bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// SetupDeadline bounds Ensure when its context has none.
const SetupDeadline = time.Minute

// Ensure runs create (a stream's or a bucket's creation, or the update of
// its configuration) until it succeeds, within ctx's deadline or
// SetupDeadline. Several replicas starting at once on a fresh cluster
// create the same stream together, and a request can then go unanswered
// (the meta leader is busy, or changing) although the stream is made: each
// attempt has a few seconds, and after a failure the stream is read
// (exists), and used when it is there as wanted. The attempts' time grows
// (2, 4, 8, at most 15 s: a replicated stream waits for its peers to elect
// a leader) with a jittered pause between them. Errors that no retry
// mends (an invalid configuration, a stream of that name with other
// subjects) are returned at once.
func Ensure[T any](ctx context.Context, create func(context.Context) (T, error), exists func(context.Context) (T, bool, error)) (T, error) {
	var zero T
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, SetupDeadline)
		defer cancel()
	}
	attempt, pause := 2*time.Second, 100*time.Millisecond
	// What is there as wanted is used as it is: an update of an unchanged
	// stream is not free for the server, and nats-server's update races
	// with a consumer being created on the same stream (its race detector
	// says so) when replicas start beside ones already running.
	actx, cancel := context.WithTimeout(ctx, attempt)
	v, ok, err := exists(actx)
	cancel()
	if err == nil && ok {
		return v, nil
	}
	var last error
	for ctx.Err() == nil {
		actx, cancel := context.WithTimeout(ctx, attempt)
		v, err := create(actx)
		cancel()
		if err == nil {
			return v, nil
		}
		if !transient(err) {
			return zero, err
		}
		last = err
		actx, cancel = context.WithTimeout(ctx, attempt)
		v, ok, xerr := exists(actx)
		cancel()
		if xerr == nil && ok {
			return v, nil
		}
		attempt = min(2*attempt, 15*time.Second)
		wait := pause/2 + time.Duration(rand.Int64N(int64(pause)))
		pause = min(2*pause, 2*time.Second)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	if last == nil {
		last = ctx.Err()
	}
	return zero, last
}

// transient reports an error that another attempt may not meet: no
// answer in time, no JetStream (yet) to answer, a stream created or
// changed by another replica meanwhile, a cluster without a leader or
// peers (yet), a server error.
func transient(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, nats.ErrConnectionReconnecting) {
		return true
	}
	var api *jetstream.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode {
		case 10052, 10053, 10074, 10006: // an invalid configuration, over a limit, replicas without a cluster
			return false
		}
		switch {
		case api.Code >= 500,
			api.ErrorCode == jetstream.JSErrCodeStreamNameInUse,
			api.ErrorCode == jetstream.JSErrCodeStreamNotFound,
			api.ErrorCode == 10005: // no peers (yet) to place it on
			return true
		}
	}
	return false
}

// sameStream reports whether the stream's configuration is what cfg asks
// for, in what cfg sets.
func sameStream(want, got jetstream.StreamConfig) bool {
	return slices.Equal(want.Subjects, got.Subjects) && want.Retention == got.Retention && want.MaxAge == got.MaxAge &&
		want.Duplicates == got.Duplicates && want.Replicas == got.Replicas && want.Storage == got.Storage &&
		want.Discard == got.Discard && want.Description == got.Description
}

// sameBucket reports whether a bucket's stream has what cfg asks for.
func sameBucket(want jetstream.KeyValueConfig, got jetstream.StreamConfig) bool {
	replicas, history := max(want.Replicas, 1), max(int64(want.History), 1)
	return got.Replicas == replicas && got.MaxMsgsPerSubject == history && got.MaxAge == want.TTL &&
		got.Storage == want.Storage && got.Description == want.Description
}

// Publisher publishes run events to the stream and waits for JetStream's
// acknowledgement.
type Publisher struct {
	js     jetstream.JetStream
	stream string
}

// NewPublisher returns a publisher to the named stream.
func NewPublisher(js jetstream.JetStream, stream string) *Publisher {
	return &Publisher{js: js, stream: stream}
}

// Publish stores ev in the stream under its de-duplication ID. It returns
// once JetStream has acknowledged; duplicate reports that the stream
// already held the event.
func (p *Publisher) Publish(ctx context.Context, ev *RunEvent) (duplicate bool, err error) {
	msg := &nats.Msg{
		Subject: ev.Subject(),
		Data:    ev.AppendJSON(make([]byte, 0, 1024)),
		Header: nats.Header{
			jetstream.MsgIDHeader:          []string{ev.DedupID()},
			jetstream.ExpectedStreamHeader: []string{p.stream},
		},
	}
	ack, err := p.js.PublishMsg(ctx, msg)
	if err != nil {
		return false, fmt.Errorf("publish %s: %w", msg.Subject, err)
	}
	return ack.Duplicate, nil
}

// ConsumerReady waits until cons has a leader, at most SetupDeadline. A
// replicated consumer just created has none for a moment, and a pull sent
// then is never answered: nats.go notices only when two heartbeats are
// missed, and events stop until then (seen at a cluster's start in tests,
// while runs TFE had queued planned and applied unseen). A consumer's
// info is answered by its leader, so an answer means there is one.
func ConsumerReady(ctx context.Context, cons jetstream.Consumer) error {
	ctx, cancel := context.WithTimeout(ctx, SetupDeadline)
	defer cancel()
	for {
		info, err := cons.Info(ctx)
		if err == nil && (info.Cluster == nil || info.Cluster.Leader != "") {
			return nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = errors.New("no leader")
			}
			return fmt.Errorf("consumer %s: %w", cons.CachedInfo().Name, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
