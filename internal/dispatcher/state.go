package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	// Applied: its run applied.
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

// Cascade is what a cascade is made of, fixed when it starts: its root and
// its members with their barriers. It is written once.
type Cascade struct {
	ID           string           `json:"id"`
	Organization string           `json:"organization"`
	RootID       string           `json:"root_id"`
	RootName     string           `json:"root_name"`
	RootRunID    string           `json:"root_run_id"`
	StartedAt    time.Time        `json:"started_at"`
	DryRun       bool             `json:"dry_run,omitempty"`
	Cycles       []string         `json:"cycles,omitempty"` // by workspace names
	Members      map[string]*Spec `json:"members"`          // by workspace ID, the root excluded
}

// Spec is a member as the cascade's plan has it.
type Spec struct {
	Name       string   `json:"name"`
	Layer      int      `json:"layer"`
	Barrier    []string `json:"barrier,omitempty"`    // upstream workspace IDs in the cascade
	Downstream []string `json:"downstream,omitempty"` // workspace IDs
	// Initial is the state it starts in: Waiting, or Blocked by a cycle.
	Initial MemberState `json:"initial"`
	Reason  string      `json:"reason,omitempty"`
}

// Status is where a member stands; each member's is its own KV entry,
// changed by compare-and-swap on its revision.
type Status struct {
	State  MemberState `json:"state"`
	Reason string      `json:"reason,omitempty"`
	RunID  string      `json:"run_id,omitempty"`
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
//	cascade.<id>           the Cascade, JSON, written once
//	m.<id>.<workspace ID>  a member's Status; absent until it first changes
//	open.<id>              the number of members not yet final
//	active.<id>            present while the cascade is not done
//	done.<id>              written when it is done: its outcome
//	superseded.<run ID>    a native run already superseded
//	ws.<workspace ID>      the latest run a cascade created there (C6)
//	follow.<run ID>        cascades that share another cascade's run (C6)
type store struct {
	kv jetstream.KeyValue

	mu       sync.Mutex
	cascades map[string]*Cascade // immutable once written: cached for good
}

func newStore(kv jetstream.KeyValue) *store {
	return &store{kv: kv, cascades: map[string]*Cascade{}}
}

func cascadeKey(id string) string      { return "cascade." + id }
func activeKey(id string) string       { return "active." + id }
func openKey(id string) string         { return "open." + id }
func memberKey(id, wsID string) string { return "m." + id + "." + wsID }

func conflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
}

func (s *store) cached(id string) *Cascade {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cascades[id]
}

// cascade returns the cascade id, jetstream.ErrKeyNotFound if there is none.
func (s *store) cascade(ctx context.Context, id string) (*Cascade, error) {
	if c := s.cached(id); c != nil {
		return c, nil
	}
	e, err := s.kv.Get(ctx, cascadeKey(id))
	if err != nil {
		return nil, err
	}
	var c Cascade
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return nil, fmt.Errorf("decode cascade %s: %w", id, err)
	}
	s.mu.Lock()
	s.cascades[id] = &c
	s.mu.Unlock()
	return &c, nil
}

// create stores a new cascade with its open count; it reports false when
// the cascade existed already (first writer wins). It is safe to call again
// after a crash half way: what is missing is added.
func (s *store) create(ctx context.Context, c *Cascade) (bool, error) {
	data, err := json.Marshal(c)
	if err != nil {
		return false, err
	}
	created := true
	if _, err := s.kv.Create(ctx, cascadeKey(c.ID), data); err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return false, fmt.Errorf("store cascade %s: %w", c.ID, err)
		}
		created = false
	}
	open := 0
	for _, sp := range c.Members {
		if !sp.Initial.final() {
			open++
		}
	}
	if _, err := s.kv.Create(ctx, openKey(c.ID), []byte(strconv.Itoa(open))); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return created, fmt.Errorf("store open count of %s: %w", c.ID, err)
	}
	if created {
		if _, err := s.kv.Put(ctx, activeKey(c.ID), []byte(c.StartedAt.Format(time.RFC3339Nano))); err != nil {
			return true, fmt.Errorf("mark cascade %s active: %w", c.ID, err)
		}
	}
	return created, nil
}

// member returns a member's status and its revision; a member never
// changed has its initial status and revision 0.
func (s *store) member(ctx context.Context, c *Cascade, wsID string) (Status, uint64, error) {
	e, err := s.kv.Get(ctx, memberKey(c.ID, wsID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		sp := c.Members[wsID]
		return Status{State: sp.Initial, Reason: sp.Reason}, 0, nil
	}
	if err != nil {
		return Status{}, 0, err
	}
	var st Status
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return Status{}, 0, fmt.Errorf("decode member %s of %s: %w", wsID, c.ID, err)
	}
	return st, e.Revision(), nil
}

// mutate applies change to a member's status until the compare-and-swap
// succeeds. change reports whether it changed anything; nothing is written
// when it did not. It returns the status before and after.
func (s *store) mutate(ctx context.Context, c *Cascade, wsID string, change func(*Status) bool) (before, after Status, err error) {
	for {
		st, rev, err := s.member(ctx, c, wsID)
		if err != nil {
			return Status{}, Status{}, err
		}
		before = st
		if !change(&st) {
			return before, st, nil
		}
		data, err := json.Marshal(st)
		if err != nil {
			return Status{}, Status{}, err
		}
		if rev == 0 {
			_, err = s.kv.Create(ctx, memberKey(c.ID, wsID), data)
		} else {
			_, err = s.kv.Update(ctx, memberKey(c.ID, wsID), data, rev)
		}
		switch {
		case err == nil:
			return before, st, nil
		case conflict(err) && ctx.Err() == nil:
			continue
		default:
			return Status{}, Status{}, fmt.Errorf("update member %s of %s: %w", wsID, c.ID, err)
		}
	}
}

// members returns the status of every member, read in one pass.
func (s *store) members(ctx context.Context, c *Cascade) (map[string]Status, error) {
	out := make(map[string]Status, len(c.Members))
	for wsID, sp := range c.Members {
		out[wsID] = Status{State: sp.Initial, Reason: sp.Reason}
	}
	w, err := s.kv.Watch(ctx, "m."+c.ID+".*", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.Stop() }()
	for e := range w.Updates() {
		if e == nil {
			break // the current values have all been delivered
		}
		var st Status
		if err := json.Unmarshal(e.Value(), &st); err != nil {
			return nil, fmt.Errorf("decode %s: %w", e.Key(), err)
		}
		out[strings.TrimPrefix(e.Key(), "m."+c.ID+".")] = st
	}
	return out, nil
}

// addOpen changes the open count by delta and returns the new count.
func (s *store) addOpen(ctx context.Context, id string, delta int) (int, error) {
	for {
		e, err := s.kv.Get(ctx, openKey(id))
		if err != nil {
			return 0, err
		}
		n, _ := strconv.Atoi(string(e.Value()))
		n = max(0, n+delta)
		if _, err := s.kv.Update(ctx, openKey(id), []byte(strconv.Itoa(n)), e.Revision()); err != nil {
			if conflict(err) && ctx.Err() == nil {
				continue
			}
			return 0, err
		}
		return n, nil
	}
}

// setOpen corrects the open count after a crash between a member's final
// transition and its count; it writes only when the count is wrong.
func (s *store) setOpen(ctx context.Context, id string, n int) error {
	e, err := s.kv.Get(ctx, openKey(id))
	if err == nil && string(e.Value()) == strconv.Itoa(n) {
		return nil
	}
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return err
	}
	_, err = s.kv.Put(ctx, openKey(id), []byte(strconv.Itoa(n)))
	return err
}

// markDone records the cascade's outcome.
func (s *store) markDone(ctx context.Context, id, outcome string) error {
	_, err := s.kv.Put(ctx, "done."+id, []byte(outcome))
	return err
}

// finish marks the cascade no longer active; false if it was already, by
// this or another replica.
func (s *store) finish(ctx context.Context, id string) (bool, error) {
	e, err := s.kv.Get(ctx, activeKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := s.kv.Delete(ctx, activeKey(id), jetstream.LastRevision(e.Revision())); err != nil {
		if conflict(err) || errors.Is(err, jetstream.ErrKeyNotFound) {
			return false, nil
		}
		return false, fmt.Errorf("mark cascade %s done: %w", id, err)
	}
	return true, nil
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

// latestRun is the latest run a cascade created in a workspace.
type latestRun struct {
	RunID     string `json:"run_id"`
	CascadeID string `json:"cascade_id"`
}

func (s *store) latest(ctx context.Context, wsID string) (latestRun, bool, error) {
	e, err := s.kv.Get(ctx, "ws."+wsID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return latestRun{}, false, nil
	}
	if err != nil {
		return latestRun{}, false, err
	}
	var r latestRun
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return latestRun{}, false, err
	}
	return r, true, nil
}

func (s *store) setLatest(ctx context.Context, wsID string, r latestRun) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = s.kv.Put(ctx, "ws."+wsID, data)
	return err
}

// follow records that cascade id shares run runID, created by another.
func (s *store) follow(ctx context.Context, runID, id string) error {
	for {
		ids, rev, err := s.followersRev(ctx, runID)
		if err != nil {
			return err
		}
		if slices.Contains(ids, id) {
			return nil
		}
		data, _ := json.Marshal(append(ids, id))
		if rev == 0 {
			_, err = s.kv.Create(ctx, "follow."+runID, data)
		} else {
			_, err = s.kv.Update(ctx, "follow."+runID, data, rev)
		}
		if err == nil || !conflict(err) || ctx.Err() != nil {
			return err
		}
	}
}

// followers lists the cascades that share run runID.
func (s *store) followers(ctx context.Context, runID string) ([]string, error) {
	ids, _, err := s.followersRev(ctx, runID)
	return ids, err
}

func (s *store) followersRev(ctx context.Context, runID string) ([]string, uint64, error) {
	e, err := s.kv.Get(ctx, "follow."+runID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var ids []string
	if err := json.Unmarshal(e.Value(), &ids); err != nil {
		return nil, 0, err
	}
	return ids, e.Revision(), nil
}

// releaseSupersede forgets a claim whose supersede failed.
func (s *store) releaseSupersede(ctx context.Context, runID string) {
	_ = s.kv.Delete(ctx, "superseded."+runID)
}
