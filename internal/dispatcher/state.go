package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// MemberState is where a workspace stands in a cascade.
type MemberState string

// Member states. Waiting, Dispatching and Dispatched are open; the others
// are final.
const (
	// Waiting for its barrier, or for a retry (locked target).
	Waiting MemberState = "waiting"
	// Dispatching: the intent to create its run is recorded; the run may or
	// may not exist yet.
	Dispatching MemberState = "dispatching"
	// Dispatched: its run exists and has not finished.
	Dispatched MemberState = "dispatched"
	// Applied: its run applied (the root starts in this state).
	Applied MemberState = "applied"
	// NoChanges: its run finished planning with no changes.
	NoChanges MemberState = "no_changes"
	// Failed: its run errored, was cancelled or discarded.
	Failed MemberState = "failed"
	// Blocked: it can never run (failed upstream, cycle, preflight).
	Blocked MemberState = "blocked"
	// Skipped: it need not run (an upstream had no changes), or dry run.
	Skipped MemberState = "skipped"
)

func (s MemberState) final() bool {
	switch s {
	case Waiting, Dispatching, Dispatched:
		return false
	}
	return true
}

// Member is a workspace of a cascade's closure.
type Member struct {
	Name    string      `json:"name"`
	Layer   int         `json:"layer"`
	Barrier []string    `json:"barrier,omitempty"` // workspace IDs
	State   MemberState `json:"state"`
	Reason  string      `json:"reason,omitempty"`
	RunID   string      `json:"run_id,omitempty"`
	// RunStatus is the last status seen of its run.
	RunStatus string `json:"run_status,omitempty"`
	// IntentAt is when the intent to dispatch was last recorded; Attempts
	// counts the intents.
	IntentAt     time.Time `json:"intent_at,omitzero"`
	Attempts     int       `json:"attempts,omitempty"`
	DispatchedAt time.Time `json:"dispatched_at,omitzero"`
	FinishedAt   time.Time `json:"finished_at,omitzero"`
	// SeenAt is when its run's status was last learned, by event or API.
	SeenAt time.Time `json:"seen_at,omitzero"`
	// RetryAt holds a waiting member back until then (locked target,
	// transient dispatch error).
	RetryAt     time.Time `json:"retry_at,omitzero"`
	LockedSince time.Time `json:"locked_since,omitzero"`
	LockAlerted bool      `json:"lock_alerted,omitempty"`
}

// Cascade is everything one root run applying causes. It is stored as one
// KV entry and changed by compare-and-swap on its revision, so any replica
// can continue any cascade after any restart.
type Cascade struct {
	ID           string             `json:"id"`
	Organization string             `json:"organization"`
	RootID       string             `json:"root_id"`
	RootName     string             `json:"root_name"`
	RootRunID    string             `json:"root_run_id"`
	StartedAt    time.Time          `json:"started_at"`
	FinishedAt   time.Time          `json:"finished_at,omitzero"`
	Done         bool               `json:"done,omitempty"`
	DryRun       bool               `json:"dry_run,omitempty"`
	Cycles       []string           `json:"cycles,omitempty"` // by workspace names
	Members      map[string]*Member `json:"members"`          // by workspace ID, the root included
}

// CascadeID derives a cascade's ID from its root run's.
func CascadeID(rootRunID string) string { return "c-" + rootRunID }

// marker is the prefix of the message of every run a cascade creates. The
// run's message carries it to TFE and back in every notification, so a run
// is recognised as the cascade's even before its ID is recorded.
func marker(cascadeID string) string { return "cascade " + cascadeID + ":" }

// cascadeOfMessage returns the cascade ID a run message names, if any.
func cascadeOfMessage(msg string) (string, bool) {
	rest, ok := strings.CutPrefix(msg, "cascade ")
	if !ok {
		return "", false
	}
	id, _, ok := strings.Cut(rest, ":")
	if !ok || !strings.HasPrefix(id, "c-") || strings.ContainsAny(id, " \t") {
		return "", false
	}
	return id, true
}

// ordered lists the IDs of the members by layer, then name.
func (c *Cascade) ordered() []string {
	ids := make([]string, 0, len(c.Members))
	for id := range c.Members {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		ma, mb := c.Members[a], c.Members[b]
		if ma.Layer != mb.Layer {
			return ma.Layer - mb.Layer
		}
		return strings.Compare(ma.Name, mb.Name)
	})
	return ids
}

// store keeps cascades in a JetStream KV bucket:
//
//	cascade.<id>  the Cascade, JSON
//	active.<id>   present while the cascade is not done
//	superseded.<run ID>  a native run already superseded
type store struct {
	kv jetstream.KeyValue
}

var errConflict = errors.New("cascade changed concurrently")

func cascadeKey(id string) string { return "cascade." + id }
func activeKey(id string) string  { return "active." + id }

func (s *store) get(ctx context.Context, id string) (*Cascade, uint64, error) {
	e, err := s.kv.Get(ctx, cascadeKey(id))
	if err != nil {
		return nil, 0, err
	}
	var c Cascade
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return nil, 0, fmt.Errorf("decode cascade %s: %w", id, err)
	}
	return &c, e.Revision(), nil
}

// create stores a new cascade; it reports false when one with the ID
// exists already (first writer wins).
func (s *store) create(ctx context.Context, c *Cascade) (bool, error) {
	data, err := json.Marshal(c)
	if err != nil {
		return false, err
	}
	if _, err := s.kv.Create(ctx, cascadeKey(c.ID), data); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return false, nil
		}
		return false, fmt.Errorf("store cascade %s: %w", c.ID, err)
	}
	if _, err := s.kv.Put(ctx, activeKey(c.ID), []byte(c.StartedAt.Format(time.RFC3339Nano))); err != nil {
		return true, fmt.Errorf("mark cascade %s active: %w", c.ID, err)
	}
	return true, nil
}

// update writes c if the entry is still at rev.
func (s *store) update(ctx context.Context, c *Cascade, rev uint64) error {
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if _, err := s.kv.Update(ctx, cascadeKey(c.ID), data, rev); err != nil {
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			return errConflict
		}
		return fmt.Errorf("update cascade %s: %w", c.ID, err)
	}
	if c.Done {
		if err := s.kv.Delete(ctx, activeKey(c.ID)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("mark cascade %s done: %w", c.ID, err)
		}
	}
	return nil
}

// mutate applies change to the stored cascade until the compare-and-swap
// succeeds. change reports whether it changed anything; nothing is written
// when it did not. It returns the cascade as stored.
func (s *store) mutate(ctx context.Context, id string, change func(*Cascade) bool) (*Cascade, error) {
	for {
		c, rev, err := s.get(ctx, id)
		if err != nil {
			return nil, err
		}
		if !change(c) {
			return c, nil
		}
		switch err := s.update(ctx, c, rev); {
		case err == nil:
			return c, nil
		case errors.Is(err, errConflict):
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			continue
		default:
			return nil, err
		}
	}
}

// active lists the IDs of the cascades not yet done.
func (s *store) active(ctx context.Context) ([]string, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, "active.>")
	if err != nil {
		return nil, err
	}
	var ids []string
	for k := range lister.Keys() {
		ids = append(ids, strings.TrimPrefix(k, "active."))
	}
	return ids, nil
}

// claimSupersede records that run id is being superseded; false when it
// already was (by this or another replica).
func (s *store) claimSupersede(ctx context.Context, runID string) (bool, error) {
	_, err := s.kv.Create(ctx, "superseded."+runID, nil)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	}
	return err == nil, err
}
