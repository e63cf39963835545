package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamOptions configure the run event stream. The zero value gives the
// defaults.
type StreamOptions struct {
	// Name of the stream; default RUN_EVENTS.
	Name string
	// Retention is limits (default), interest or workqueue.
	Retention string
	// MaxAge is how long events are kept; default 7 days.
	MaxAge time.Duration
	// DuplicateWindow is how long a de-duplication ID is remembered;
	// default 10 minutes.
	DuplicateWindow time.Duration
	// Replicas of the stream in a cluster; default 1.
	Replicas int
}

// Defaults for StreamOptions.
const (
	DefaultStreamName      = "RUN_EVENTS"
	DefaultMaxAge          = 7 * 24 * time.Hour
	DefaultDuplicateWindow = 10 * time.Minute
)

func (o *StreamOptions) withDefaults() StreamOptions {
	out := *o
	if out.Name == "" {
		out.Name = DefaultStreamName
	}
	if out.Retention == "" {
		out.Retention = "limits"
	}
	if out.MaxAge == 0 {
		out.MaxAge = DefaultMaxAge
	}
	if out.DuplicateWindow == 0 {
		out.DuplicateWindow = DefaultDuplicateWindow
	}
	if out.Replicas == 0 {
		out.Replicas = 1
	}
	return out
}

// Validate reports the first option that cannot work.
func (o *StreamOptions) Validate() error {
	d := o.withDefaults()
	if _, err := retention(d.Retention); err != nil {
		return err
	}
	switch {
	case d.MaxAge < 0:
		return errors.New("stream max age must not be negative")
	case d.DuplicateWindow < 0:
		return errors.New("stream duplicate window must not be negative")
	case d.DuplicateWindow > d.MaxAge:
		return errors.New("stream duplicate window must not exceed its max age")
	case d.Replicas < 1 || d.Replicas > 5:
		return errors.New("stream replicas must be between 1 and 5")
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
// It is safe to call on every start, from every replica.
func EnsureStream(ctx context.Context, js jetstream.JetStream, opts StreamOptions) (jetstream.Stream, error) {
	cfg, err := opts.Config()
	if err != nil {
		return nil, err
	}
	// A replicated stream waits for its peers to elect a leader: longer
	// than the client's default timeout on a busy cluster.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create or update stream %s: %w", cfg.Name, err)
	}
	return s, nil
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
