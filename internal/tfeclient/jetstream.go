package tfeclient

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"go.uber.org/zap"
)

// Defaults of JetStreamOptions.
const (
	DefaultBudgetBucket = "tfe-budget"
	DefaultHeartbeat    = 2 * time.Second
)

const (
	replicaPrefix = "replica."
	backoffKey    = "backoff"
)

// JetStreamOptions configure a JetStreamShared.
type JetStreamOptions struct {
	// Bucket is the KV bucket the replicas share; default
	// DefaultBudgetBucket.
	Bucket string
	// Replicas of the bucket: as the stream's; default 1.
	Replicas int
	// Heartbeat is how often a replica says it is there; one not heard of
	// for three heartbeats is gone. Default DefaultHeartbeat.
	Heartbeat time.Duration
	// Log: nil logs nothing.
	Log *zap.Logger
}

// JetStreamShared is the Shared of replicas that meet in a JetStream KV
// bucket: each puts a key replica.<id> every heartbeat (the bucket's TTL,
// three heartbeats, removes those of replicas that stopped without saying
// so), and a 429 is written to the key backoff as the wait TFE asked for.
// Every replica watches the bucket: it counts the replicas heard of within
// three heartbeats, itself always included, and backs off for the wait of
// each backoff it sees, from when it sees it.
type JetStreamShared struct {
	kv  jetstream.KeyValue
	id  string
	hb  time.Duration
	log *zap.Logger
	now func() time.Time

	publish chan struct{} // a back-off to tell the others: the one in force
	joined  jetstream.KeyWatcher

	mu      sync.Mutex
	seen    map[string]time.Time // replica id → when it was last heard of
	backoff time.Time
}

// JoinJetStream makes the bucket when it is not there, says this replica is
// there and reads who else is, so that Replicas is right on return. Run
// keeps it so until ctx ends.
func JoinJetStream(ctx context.Context, js jetstream.JetStream, opts JetStreamOptions) (*JetStreamShared, error) {
	if opts.Bucket == "" {
		opts.Bucket = DefaultBudgetBucket
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	kv, err := events.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      opts.Bucket,
		Description: "replicas sharing the TFE rate limit, and the back-off of the last 429",
		History:     1,
		TTL:         3 * opts.Heartbeat,
		Storage:     jetstream.MemoryStorage,
		Replicas:    max(1, opts.Replicas),
	})
	if err != nil {
		return nil, fmt.Errorf("create kv bucket %s: %w", opts.Bucket, err)
	}
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	s := &JetStreamShared{kv: kv, id: hex.EncodeToString(id), hb: opts.Heartbeat, log: opts.Log, now: time.Now,
		publish: make(chan struct{}, 1), seen: map[string]time.Time{}}
	if err := s.heartbeat(ctx); err != nil {
		return nil, err
	}
	if s.joined, err = s.watch(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// ID is this replica's name in the bucket.
func (s *JetStreamShared) ID() string { return s.id }

// Replicas counts the replicas heard of within three heartbeats, this one
// included.
func (s *JetStreamShared) Replicas() int {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 1
	for id, at := range s.seen {
		if id != s.id && now.Sub(at) < 3*s.hb {
			n++
		}
	}
	return n
}

// BackoffUntil is the end of the latest back-off this replica knows of.
func (s *JetStreamShared) BackoffUntil() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.backoff
}

// BackOff holds this replica back until until at once, and has Run tell
// the others.
func (s *JetStreamShared) BackOff(until time.Time) {
	if !s.extend(until) {
		return
	}
	select {
	case s.publish <- struct{}{}:
	default: // Run has yet to tell the one before: it will tell this one
	}
}

// extend reports whether until is later than the back-off in force, which
// it then becomes.
func (s *JetStreamShared) extend(until time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !until.After(s.backoff) {
		return false
	}
	s.backoff = until
	return true
}

// Run says this replica is there every heartbeat, follows the bucket, and
// tells the others of this replica's back-offs until ctx ends; it then
// removes this replica's key, so that the others take its share at once.
func (s *JetStreamShared) Run(ctx context.Context) error {
	tick := time.NewTicker(s.hb)
	defer tick.Stop()
	defer s.leave()
	// The watch of JoinJetStream, until it ends (with the context it was
	// made with); then one of Run's.
	updates := s.joined.Updates()
	defer func() { _ = s.joined.Stop() }()
	for {
		if updates == nil {
			w, err := s.watch(ctx)
			switch {
			case ctx.Err() != nil:
				return nil
			case err != nil:
				s.log.Warn("tfe budget: watch the bucket", zap.Error(err))
			default:
				_ = s.joined.Stop()
				s.joined, updates = w, w.Updates()
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			s.forget()
			if err := s.heartbeat(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("tfe budget: heartbeat", zap.Error(err))
			}
		case <-s.publish:
			wait := s.BackoffUntil().Sub(s.now())
			if wait <= 0 {
				continue
			}
			if _, err := s.kv.Put(ctx, backoffKey, []byte(strconv.FormatInt(wait.Milliseconds()+1, 10))); err != nil && ctx.Err() == nil {
				s.log.Warn("tfe budget: tell the other replicas of a back-off", zap.Error(err))
			}
		case e, ok := <-updates:
			if !ok {
				updates = nil // the watch ended (a disconnect): made again
				continue
			}
			if e != nil {
				s.apply(e, s.now())
			}
		}
	}
}

// forget drops the replicas not heard of within three heartbeats (their
// keys expired without a word).
func (s *JetStreamShared) forget() {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, at := range s.seen {
		if now.Sub(at) >= 3*s.hb {
			delete(s.seen, id)
		}
	}
}

func (s *JetStreamShared) heartbeat(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.hb)
	defer cancel()
	if _, err := s.kv.Put(ctx, replicaPrefix+s.id, []byte(s.now().UTC().Format(time.RFC3339Nano))); err != nil {
		return fmt.Errorf("put %s%s: %w", replicaPrefix, s.id, err)
	}
	return nil
}

func (s *JetStreamShared) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), s.hb)
	defer cancel()
	if err := s.kv.Delete(ctx, replicaPrefix+s.id); err != nil {
		s.log.Warn("tfe budget: remove this replica's key", zap.Error(err))
	}
}

// watch watches the bucket and takes in what it holds now; each entry is
// taken as of when it was written (never later than now).
func (s *JetStreamShared) watch(ctx context.Context) (jetstream.KeyWatcher, error) {
	w, err := s.kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch kv bucket: %w", err)
	}
	for {
		select {
		case <-ctx.Done():
			_ = w.Stop()
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("watch kv bucket: the watch ended")
			}
			if e == nil {
				return w, nil // what the bucket held is in
			}
			at := e.Created()
			if now := s.now(); at.After(now) {
				at = now
			}
			s.apply(e, at)
		}
	}
}

// apply takes in an entry of the bucket as of at.
func (s *JetStreamShared) apply(e jetstream.KeyValueEntry, at time.Time) {
	key := e.Key()
	put := e.Operation() == jetstream.KeyValuePut
	switch {
	case strings.HasPrefix(key, replicaPrefix):
		id := strings.TrimPrefix(key, replicaPrefix)
		s.mu.Lock()
		if put {
			s.seen[id] = at
		} else {
			delete(s.seen, id)
		}
		s.mu.Unlock()
	case key == backoffKey && put:
		ms, err := strconv.ParseInt(string(e.Value()), 10, 64)
		if err != nil || ms <= 0 {
			return
		}
		s.extend(at.Add(time.Duration(ms) * time.Millisecond))
	}
}
