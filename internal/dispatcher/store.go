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
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/lease"
)

// store is the one door to the engine's buckets of cascades, of
// operators' controls and of cascade leases: no other file of the package
// names a key of them or touches them but through its methods, whose names
// say what they read or write. Every key, and what it means:
//
// In the cascades bucket (Options.Bucket, "cascades"; its TTL is the state
// TTL, counted from each key's last write):
//
//	plan.<cascade>           the cascade's plan, written once (createPlan)
//	meta.<cascade>           how it stands: running or done, counts, outcome
//	                         (meta, putMeta, metas, metaWatch)
//	m.<cascade>.<workspace>  a member's status; absent until it first
//	                         changes (members, member, putMember, viewWatch)
//	due.<cascade>            when to look at it next, and the workspaces
//	                         events named since the last look (due,
//	                         markDirty, settleDue, dropDue, dueWatch)
//	ws.<workspace>           the open cascades holding the workspace, oldest
//	                         first: the first acts in it (owners, hold)
//	run.<run>                the cascade a run belongs to, created or taken
//	                         (runOwner, recordRun)
//	root.<run>               a root handled without a cascade: nothing
//	                         downstream, or applied too long ago (markRoot,
//	                         rootHandled)
//	ctl.cancel.<cascade>     an operator cancelled the cascade
//	                         (cancellation, putCancellation)
//	ctl.retry.<cascade>      members an operator retried, by workspace
//	                         (retries, addRetry)
//	ctl.approve.<cascade>    an operator let the blast-radius guard go
//	                         (approval, putApproval)
//
// The controls of one cascade go with its other records (the state TTL).
//
// In the controls bucket (Options.ControlBucket, "cascade-controls"), which
// keeps its records until they are changed (no TTL) with a short history
// of who changed them:
//
//	ctl.pause                dispatching paused everywhere (pause, putPause,
//	ctl.pause.<org>          liftPause, pauses); in one organization
//	ctl.freeze               the freeze windows (freezes, replaceFreezes)
//	ctl.exclude              the exclusions, by workspace name or tag
//	                         (exclusions, replaceExclusions)
//
// In the leases bucket (Options.LeaseBucket, "cascade-leases"; its TTL is
// the lease TTL):
//
//	lease.<cascade>          the instance looking at the cascade, as a
//	                         lease.Lease (takeLease, leaseHolders)
//
// The audit trail has a bucket of its own, written and read by audit.go
// alone (auditKey); the run triggers shared between replicas have
// GraphShare's.
//
// Every record read back is validated: a malformed one is reported once and
// set aside, never acted on, and never panics the daemon.
type store struct {
	nc     *nats.Conn // for direct gets of many keys at once
	kv     jetstream.KeyValue
	ctl    jetstream.KeyValue // the operators' controls that outlive cascades
	leases jetstream.KeyValue
	ops    atomic.Int64 // KV operations, for tests and benchmarks

	mu        sync.Mutex
	plans     map[string]*cascade.Plan // immutable once written: cached
	planOrder []string                 // oldest first, to bound the cache
	bad       map[string]bool          // malformed keys already reported
	asked     map[string]asked         // this process's last write of each due entry

	onMalformed func(key string, err error)
}

// maxCachedPlans bounds the plans kept in memory (a plan of a thousand
// members is about 150 KB).
const maxCachedPlans = 128

// newStore returns the store of the buckets given; ctl nil keeps the
// controls with the cascades, leases nil allows no lease.
func newStore(nc *nats.Conn, kv, ctl, leases jetstream.KeyValue, onMalformed func(string, error)) *store {
	return &store{nc: nc, kv: kv, ctl: ctl, leases: leases, plans: map[string]*cascade.Plan{}, bad: map[string]bool{}, asked: map[string]asked{}, onMalformed: onMalformed}
}

// bucket is where a key lives: the controls that outlive cascades in the
// controls bucket, everything else with the cascades.
func (s *store) bucket(key string) jetstream.KeyValue {
	if s.ctl != nil && (key == freezeKey || key == excludeKey || key == pauseAllKey || strings.HasPrefix(key, pauseAllKey+".")) {
		return s.ctl
	}
	return s.kv
}

func planKey(id string) string       { return "plan." + id }
func metaKey(id string) string       { return "meta." + id }
func dueKey(id string) string        { return "due." + id }
func memberKey(id, ws string) string { return "m." + id + "." + ws }
func membersPrefix(id string) string { return "m." + id + "." }
func wsKey(ws string) string         { return "ws." + ws }
func runKey(run string) string       { return "run." + run }
func rootKey(run string) string      { return "root." + run }
func cancelKey(id string) string     { return "ctl.cancel." + id }
func retryKey(id string) string      { return "ctl.retry." + id }
func approveKey(id string) string    { return "ctl.approve." + id }
func leaseKey(id string) string      { return "lease." + id }

// Keys of the controls bucket.
const (
	pauseAllKey = "ctl.pause"
	freezeKey   = "ctl.freeze"
	excludeKey  = "ctl.exclude"
)

// pauseKey is the key of the pause of org ("": the global one).
func pauseKey(org string) string {
	if org == "" {
		return pauseAllKey
	}
	return pauseAllKey + "." + org
}

// maxSwaps bounds a compare-and-swap loop (see read).
const maxSwaps = 100

func isMissing(err error) bool { return errors.Is(err, jetstream.ErrKeyNotFound) }
func (s *store) count(n int)   { s.ops.Add(int64(n)) }
func (s *store) get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	s.count(1)
	return s.bucket(key).Get(ctx, key)
}

// read is get for a compare-and-swap loop: after a swap lost (attempt >
// 0) it asks the bucket's stream leader (events.LastEntry), as a direct get
// may give the same lagging replica's revision again and again, and the
// loop would spin, its look holding the cascade's lease. A deleted key is
// missing, and events.DeletedAt gives the revision to write it again on.
// Past maxSwaps attempts the loop fails (its caller tries again later, and
// says so) rather than spin unseen.
func (s *store) read(ctx context.Context, key string, attempt int) (jetstream.KeyValueEntry, error) {
	if attempt >= maxSwaps {
		return nil, fmt.Errorf("%s: %d compare-and-swaps lost in a row", key, attempt)
	}
	if attempt == 0 || s.nc == nil {
		return s.get(ctx, key)
	}
	s.count(1)
	return events.LastEntry(ctx, s.nc, s.bucket(key), key)
}

// isConflict reports a compare-and-swap that lost: another writer got there
// first (or the revision read was a lagging replica's).
func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) || events.WrongLastSequence(err)
}

// errMalformed marks a record that cannot be used.
var errMalformed = errors.New("malformed record")

// malformed reports a bad record once and returns an error wrapping
// errMalformed.
func (s *store) malformed(key string, err error) error {
	s.mu.Lock()
	first := !s.bad[key]
	s.bad[key] = true
	s.mu.Unlock()
	if first && s.onMalformed != nil {
		s.onMalformed(key, err)
	}
	return fmt.Errorf("%s: %w: %v", key, errMalformed, err)
}

// decode reads a JSON record strictly.
func decode(data []byte, v any) error {
	if len(data) > 1<<20 {
		return errors.New("record larger than 1 MiB")
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the record")
	}
	return nil
}

// plan returns a cascade's plan; jetstream.ErrKeyNotFound when there is none.
func (s *store) plan(ctx context.Context, id string) (*cascade.Plan, error) {
	s.mu.Lock()
	p := s.plans[id]
	s.mu.Unlock()
	if p != nil {
		return p, nil
	}
	e, err := s.get(ctx, planKey(id))
	if err != nil {
		return nil, err
	}
	p = &cascade.Plan{}
	if err := decode(e.Value(), p); err != nil {
		return nil, s.malformed(e.Key(), err)
	}
	if err := p.Validate(); err != nil || p.ID != id {
		if err == nil {
			err = fmt.Errorf("plan of %s stored under %s", p.ID, id)
		}
		return nil, s.malformed(e.Key(), err)
	}
	s.mu.Lock()
	if _, ok := s.plans[id]; !ok {
		s.plans[id] = p
		s.planOrder = append(s.planOrder, id)
		if len(s.planOrder) > maxCachedPlans {
			delete(s.plans, s.planOrder[0])
			s.planOrder = s.planOrder[1:]
		}
	}
	s.mu.Unlock()
	return p, nil
}

// createPlan stores a new cascade's plan; false when it existed already
// (first writer wins).
func (s *store) createPlan(ctx context.Context, p *cascade.Plan) (bool, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return false, err
	}
	s.count(1)
	if _, err := s.kv.Create(ctx, planKey(p.ID), data); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return false, nil
		}
		return false, fmt.Errorf("store the plan of %s: %w", p.ID, err)
	}
	return true, nil
}

// Meta is how a cascade stands as a whole.
type Meta struct {
	State        string          `json:"state"` // running, done, or set_aside (a record could not be read)
	Outcome      cascade.Outcome `json:"outcome,omitempty"`
	Reason       string          `json:"reason,omitempty"`
	Organization string          `json:"organization"`
	Root         string          `json:"root"`
	StartedAt    time.Time       `json:"started_at"`
	FinishedAt   time.Time       `json:"finished_at,omitzero"`
	LastFull     time.Time       `json:"last_full,omitzero"`
	Counts       map[string]int  `json:"counts,omitempty"`
	Members      int             `json:"members"`
	// RunsSaved counts members skipped by output gating.
	RunsSaved int `json:"runs_saved,omitempty"`
	// Cleanup: the cascade is done (cancelled) but still stops what its
	// runs already applying make TFE queue, and lets go of its holds: it
	// is looked at until nothing is left.
	Cleanup bool `json:"cleanup,omitempty"`
	// Reopened counts the times a retry reopened the cascade after it
	// finished; a cascade is counted finished once, when it first finishes.
	Reopened int `json:"reopened,omitempty"`
}

// open reports whether the engine still acts for the cascade.
func (m *Meta) open() bool { return m.State == StateRunning || (m.State == StateDone && m.Cleanup) }

// Cascade states.
const (
	StateRunning  = "running"
	StateDone     = "done"
	StateSetAside = "set_aside"
)

func (m *Meta) validate() error {
	switch m.State {
	case StateRunning, StateDone, StateSetAside:
	default:
		return fmt.Errorf("unknown cascade state %q", m.State)
	}
	if m.Members < 0 {
		return errors.New("negative member count")
	}
	return nil
}

func (s *store) meta(ctx context.Context, id string) (Meta, uint64, error) {
	e, err := s.get(ctx, metaKey(id))
	if err != nil {
		return Meta{}, 0, err
	}
	var m Meta
	if err := decode(e.Value(), &m); err != nil {
		return Meta{}, 0, s.malformed(e.Key(), err)
	}
	if err := m.validate(); err != nil {
		return Meta{}, 0, s.malformed(e.Key(), err)
	}
	return m, e.Revision(), nil
}

// putMeta writes a cascade's meta, by compare-and-swap on rev (0: create).
func (s *store) putMeta(ctx context.Context, id string, m Meta, rev uint64) (uint64, error) {
	return s.swap(ctx, metaKey(id), m, rev)
}

// swap writes v (as JSON) under key by compare-and-swap on rev: it creates
// the key where rev is 0 and updates it otherwise. It returns the new
// revision; a conflict means another writer got there first.
func (s *store) swap(ctx context.Context, key string, v any, rev uint64) (uint64, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	s.count(1)
	if rev == 0 {
		return s.kv.Create(ctx, key, data)
	}
	return s.kv.Update(ctx, key, data, rev)
}

// swapOrDelete is swap, except that an empty value deletes the key (at
// revision rev) and an empty value of a key that does not exist writes
// nothing.
func (s *store) swapOrDelete(ctx context.Context, key string, v any, empty bool, rev uint64) (uint64, error) {
	switch {
	case empty && rev == 0:
		return 0, nil
	case empty:
		s.count(1)
		return 0, s.kv.Delete(ctx, key, jetstream.LastRevision(rev))
	}
	return s.swap(ctx, key, v, rev)
}

// members reads every member's status, and each one's revision (0 for a
// member never written: it has its initial status).
//
// It opens no consumer: the plan names the member keys, and JetStream's
// direct get returns the last value of each, a thousand keys a request.
// A look costs a request or two however many looks, watch streams and
// replicas run at once, and never competes for the stream's consumers.
func (s *store) members(ctx context.Context, p *cascade.Plan) ([]cascade.Status, []uint64, error) {
	return s.readMembers(ctx, p, false)
}

// readMembers is members; lenient, a member whose record cannot be read
// keeps its initial status (and revision 0) instead of failing the read:
// for the read model, which shows the rest.
func (s *store) readMembers(ctx context.Context, p *cascade.Plan, lenient bool) ([]cascade.Status, []uint64, error) {
	st := make([]cascade.Status, len(p.Members))
	revs := make([]uint64, len(p.Members))
	for i := range p.Members {
		st[i] = cascade.Initial(p, i)
	}
	prefix := membersPrefix(p.ID)
	var upTo uint64 // the later chunks read as of the first one
	for start := 0; start < len(p.Members); start += directGetChunk {
		keys := make([]string, 0, min(directGetChunk, len(p.Members)-start))
		for _, m := range p.Members[start:min(start+directGetChunk, len(p.Members))] {
			keys = append(keys, prefix+m.WorkspaceID)
		}
		s.count(1)
		var err error
		upTo, err = s.lastValues(ctx, keys, upTo, func(key string, rev uint64, value []byte) error {
			i := p.Index(strings.TrimPrefix(key, prefix))
			if i < 0 {
				return nil // not a member of this plan: ignore, never act on it
			}
			var v cascade.Status
			err := decode(value, &v)
			if err == nil {
				err = v.Validate()
			}
			if err != nil {
				if err = s.malformed(key, err); lenient {
					return nil
				}
				return err
			}
			st[i], revs[i] = v, rev
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("read the members of %s: %w", p.ID, err)
		}
	}
	return st, revs, nil
}

// directGetChunk bounds the keys asked for in one direct get: the server
// answers at most 1,024 messages to one request.
const directGetChunk = 1000

// directGetTimeout bounds one direct get whose context has no deadline.
const directGetTimeout = 10 * time.Second

// lastValues reads the current value of each of keys (those never written
// or deleted are skipped) with one direct get of the bucket's stream: a
// request answered by a message a key and an end-of-batch mark, no
// consumer. upTo, when not 0, reads the values as of that stream sequence;
// it returns the sequence it read as of, for the next call.
func (s *store) lastValues(ctx context.Context, keys []string, upTo uint64, fn func(key string, rev uint64, value []byte) error) (uint64, error) {
	prefix := "$KV." + s.kv.Bucket() + "."
	req := struct {
		MultiLast []string `json:"multi_last"`
		UpToSeq   uint64   `json:"up_to_seq,omitempty"`
	}{UpToSeq: upTo}
	for _, k := range keys {
		req.MultiLast = append(req.MultiLast, prefix+k)
	}
	eob, err := s.direct(ctx, s.kv, req, fn)
	if err != nil || eob == nil {
		return upTo, err
	}
	if n, err := strconv.ParseUint(eob.Header.Get("Nats-UpTo-Sequence"), 10, 64); err == nil {
		upTo = n
	}
	return upTo, nil
}

// scanBatch is how many values a request of a scan returns.
const scanBatch = 256

// scan calls fn with the current value of every key of kv that matches
// filter (a wildcard), by batches of direct gets in stream order: no
// consumer. The buckets keep one value a key, so each message is a key's
// value; a key changed while the scan runs may come twice, the later last.
func (s *store) scan(ctx context.Context, kv jetstream.KeyValue, filter string, fn func(key string, rev uint64, value []byte) error) error {
	prefix := "$KV." + kv.Bucket() + "."
	seq := uint64(1)
	for {
		req := struct {
			Seq     uint64 `json:"seq"`
			NextFor string `json:"next_by_subj"`
			Batch   int    `json:"batch"`
		}{seq, prefix + filter, scanBatch}
		var last uint64
		s.count(1)
		eob, err := s.direct(ctx, kv, req, func(key string, rev uint64, value []byte) error {
			last = rev
			return fn(key, rev, value)
		})
		if err != nil {
			return fmt.Errorf("scan %s in KV bucket %s: %w", filter, kv.Bucket(), err)
		}
		if eob == nil || last == 0 || eob.Header.Get("Nats-Num-Pending") == "0" {
			return nil
		}
		seq = last + 1
	}
}

// direct sends a direct get request of kv's stream and calls fn with each
// value it answers (deletions skipped). It returns the end-of-batch mark,
// or nil when nothing matched.
func (s *store) direct(ctx context.Context, kv jetstream.KeyValue, req any, fn func(key string, rev uint64, value []byte) error) (*nats.Msg, error) {
	prefix := "$KV." + kv.Bucket() + "."
	data, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, directGetTimeout)
		defer cancel()
	}
	inbox := nats.NewInbox()
	sub, err := s.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := s.nc.PublishRequest("$JS.API.DIRECT.GET.KV_"+kv.Bucket(), inbox, data); err != nil {
		return nil, err
	}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil, err
		}
		switch status := m.Header.Get("Status"); status {
		case "":
		case "204": // the end of the batch
			return m, nil
		case "404": // nothing matched
			return nil, nil
		case "503":
			return nil, nats.ErrNoResponders
		default:
			return nil, fmt.Errorf("direct get from KV bucket %s: %s %s", kv.Bucket(), status, m.Header.Get("Description"))
		}
		if op := m.Header.Get("KV-Operation"); op == "DEL" || op == "PURGE" || m.Header.Get("Nats-Marker-Reason") != "" {
			continue
		}
		rev, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("direct get from KV bucket %s: a value without its sequence", kv.Bucket())
		}
		if err := fn(strings.TrimPrefix(m.Header.Get("Nats-Subject"), prefix), rev, m.Data); err != nil {
			return nil, err
		}
	}
}

// putMember writes a member's status by compare-and-swap on rev (0: the
// member was never written). It returns the new revision.
func (s *store) putMember(ctx context.Context, id, ws string, v cascade.Status, rev uint64) (uint64, error) {
	return s.swap(ctx, memberKey(id, ws), v, rev)
}

// due is when a cascade is next looked at, and what events named since the
// last look.
type due struct {
	At    time.Time `json:"at"`
	Dirty []string  `json:"dirty,omitempty"` // workspace IDs
	Full  bool      `json:"full,omitempty"`
	// Asks counts the calls of markDirty, so that each one moves the
	// entry's revision, even for a workspace already dirty: a look that
	// handled it settles without forgetting an event that came during it.
	Asks uint64 `json:"asks,omitempty"`
	// AskedAt is the latest time, by the clock of each replica that wrote
	// the entry, it was written: after every event it names came (see
	// askedAt).
	AskedAt time.Time `json:"asked_at,omitzero"`
}

// later is the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

const maxDirty = 10000

func (s *store) due(ctx context.Context, id string, attempt int) (due, uint64, error) {
	e, err := s.read(ctx, dueKey(id), attempt)
	if err != nil {
		return due{}, events.DeletedAt(err), err
	}
	var d due
	if err := decode(e.Value(), &d); err != nil || len(d.Dirty) > maxDirty {
		if err == nil {
			err = errors.New("too many dirty workspaces")
		}
		// Derived state: forget it and look at the whole cascade.
		_ = s.malformed(e.Key(), err)
		return due{At: time.Time{}, Full: true}, e.Revision(), nil
	}
	return d, e.Revision(), nil
}

// markDirty asks for a look at cascade id by at, because an event named
// workspace ws ("" for none).
func (s *store) markDirty(ctx context.Context, id, ws string, at time.Time, full bool) error {
	for attempt := 0; ; attempt++ {
		d, rev, err := s.due(ctx, id, attempt)
		if err != nil && !isMissing(err) {
			return err
		}
		now := time.Now() // after every event it names came: see askedAt
		if d.At.IsZero() || at.Before(d.At) {
			d.At = at
		}
		if ws != "" && !slices.Contains(d.Dirty, ws) && len(d.Dirty) < maxDirty {
			d.Dirty = append(d.Dirty, ws)
		}
		d.Full = d.Full || full
		d.Asks++ // written even when nothing else changed: see due
		d.AskedAt = later(d.AskedAt, now)
		nrev, err := s.swap(ctx, dueKey(id), d, rev)
		if err == nil {
			s.noteAsk(id, nrev, now)
		}
		if err == nil || !isConflict(err) || ctx.Err() != nil {
			return err
		}
	}
}

// settleDue records a look that started when the due entry had revision
// seen: the workspaces it handled leave the dirty set and the next look is
// due at next (zero: the cascade is done and the entry goes). When an event
// came during the look (the revision moved on), nothing leaves the set and
// the look is made again as soon as the events asked.
func (s *store) settleDue(ctx context.Context, id string, seen uint64, handled []string, next time.Time) error {
	for attempt := 0; ; attempt++ {
		d, rev, err := s.due(ctx, id, attempt)
		at := time.Now() // after the look acted and every event named came: see askedAt
		missing := isMissing(err)
		switch {
		case missing:
			d = due{}
		case err != nil:
			return err
		}
		nd := due{At: next, Dirty: d.Dirty, Asks: d.Asks, AskedAt: later(d.AskedAt, at)}
		switch {
		case rev == seen:
			nd.Dirty = slices.DeleteFunc(slices.Clone(d.Dirty), func(w string) bool { return slices.Contains(handled, w) })
		default: // asked for during the look: kept
			nd.Full = d.Full
			if !d.At.IsZero() && (next.IsZero() || d.At.Before(next)) {
				nd.At = d.At
			}
		}
		empty := nd.At.IsZero() && len(nd.Dirty) == 0
		if missing && empty {
			return nil
		}
		var nrev uint64
		nrev, err = s.swapOrDelete(ctx, dueKey(id), nd, empty, rev)
		if err == nil {
			s.noteAsk(id, nrev, at)
		}
		if err == nil || isMissing(err) || !isConflict(err) || ctx.Err() != nil {
			return err
		}
	}
}

// asked is when this process wrote a due entry, and the revision it wrote.
type asked struct {
	rev uint64
	at  time.Time // the local clock, monotonic
}

// maxAsked bounds the asks remembered: entries other replicas deleted are
// not seen going.
const maxAsked = 10000

// noteAsk remembers that this process wrote cascade id's due entry at
// revision rev (0: deleted it), having started at at.
func (s *store) noteAsk(id string, rev uint64, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rev == 0 {
		delete(s.asked, id)
		return
	}
	if len(s.asked) >= maxAsked {
		clear(s.asked) // forgetting costs reads, never a wrong answer
	}
	s.asked[id] = asked{rev: rev, at: at}
}

// askedAt is the time since which what TFE says answers the look due at
// revision rev of cascade id, entry d: when that revision was written,
// after reading the one before (so after every event it names came, and
// after the actions of the look that wrote it). Written by this process,
// it is known exactly; written by another replica, it is what that
// replica's clock said, and clockSkew later by this one's. Zero: not
// known, only a read made from now answers.
func (s *store) askedAt(id string, rev uint64, d due) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.asked[id]; ok && a.rev == rev {
		return a.at
	}
	if d.AskedAt.IsZero() {
		return time.Time{}
	}
	return d.AskedAt.Add(clockSkew)
}

// dropDue forgets that a cascade is due, whatever marked it: one whose
// plan or meta cannot be read is not looked at again (settling with a
// revision it never had would keep it due, and the scheduler would look at
// it again at once, without end).
func (s *store) dropDue(ctx context.Context, id string) error {
	d, rev, err := s.due(ctx, id, 0)
	switch {
	case isMissing(err):
		return nil
	case err != nil:
		return err
	}
	return s.settleDue(ctx, id, rev, d.Dirty, time.Time{})
}

// owners returns the open cascades holding workspace ws, oldest first.
func (s *store) owners(ctx context.Context, ws string, attempt int) ([]string, uint64, error) {
	e, err := s.read(ctx, wsKey(ws), attempt)
	if isMissing(err) {
		return nil, events.DeletedAt(err), nil
	}
	if err != nil {
		return nil, 0, err
	}
	var ids []string
	if err := decode(e.Value(), &ids); err != nil || len(ids) > 1000 || slices.ContainsFunc(ids, func(id string) bool { return !strings.HasPrefix(id, "c-") }) {
		if err == nil {
			err = errors.New("not a list of cascade IDs")
		}
		_ = s.malformed(e.Key(), err)
		return nil, e.Revision(), nil // derived: rebuilt as cascades hold it again
	}
	return ids, e.Revision(), nil
}

// hold adds (or, with release, removes) cascade id to the holders of ws.
func (s *store) hold(ctx context.Context, ws, id string, release bool) error {
	for attempt := 0; ; attempt++ {
		ids, rev, err := s.owners(ctx, ws, attempt)
		if err != nil {
			return err
		}
		has := slices.Contains(ids, id)
		if has != release {
			return nil // nothing to change
		}
		if release {
			ids = slices.DeleteFunc(ids, func(x string) bool { return x == id })
		} else {
			ids = append(ids, id)
		}
		_, err = s.swapOrDelete(ctx, wsKey(ws), ids, len(ids) == 0, rev)
		if err == nil || isMissing(err) || !isConflict(err) || ctx.Err() != nil {
			return err
		}
	}
}

// runRecord says which cascade a run belongs to.
type runRecord struct {
	Cascade   string `json:"cascade"`
	Workspace string `json:"workspace"`
}

func (s *store) runOwner(ctx context.Context, runID string) (runRecord, bool, error) {
	e, err := s.get(ctx, runKey(runID))
	if isMissing(err) {
		return runRecord{}, false, nil
	}
	if err != nil {
		return runRecord{}, false, err
	}
	var r runRecord
	if err := decode(e.Value(), &r); err != nil || !strings.HasPrefix(r.Cascade, "c-") {
		if err == nil {
			err = errors.New("no cascade")
		}
		_ = s.malformed(e.Key(), err)
		// Unreadable: the run is someone's; take it as a member run so that
		// it never starts a cascade.
		return runRecord{Cascade: "unknown"}, true, nil
	}
	return r, true, nil
}

func (s *store) recordRun(ctx context.Context, runID string, r runRecord) error {
	data, _ := json.Marshal(r)
	s.count(1)
	_, err := s.kv.Create(ctx, runKey(runID), data)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil
	}
	return err
}

// markRoot records a root handled without a cascade; false when it was
// handled before.
func (s *store) markRoot(ctx context.Context, runID, why string) (bool, error) {
	s.count(1)
	_, err := s.kv.Create(ctx, rootKey(runID), []byte(why))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	}
	return err == nil, err
}

func (s *store) rootHandled(ctx context.Context, runID string) (bool, error) {
	_, err := s.get(ctx, rootKey(runID))
	if isMissing(err) {
		return false, nil
	}
	return err == nil, err
}

// member reads one member's status; ok is false when the member was never
// written (it has its initial status) or its record cannot be read.
func (s *store) member(ctx context.Context, id, ws string) (cascade.Status, bool, error) {
	e, err := s.get(ctx, memberKey(id, ws))
	if isMissing(err) {
		return cascade.Status{}, false, nil
	}
	if err != nil {
		return cascade.Status{}, false, err
	}
	var v cascade.Status
	if decode(e.Value(), &v) != nil || v.Validate() != nil {
		return cascade.Status{}, false, nil
	}
	return v, true, nil
}

// metas reads the meta of every cascade kept, by a scan of direct gets: no
// consumer, so that API readers never take those the engine needs. A meta
// that cannot be read is reported and left out.
func (s *store) metas(ctx context.Context) (map[string]Meta, error) {
	out := map[string]Meta{}
	err := s.scan(ctx, s.kv, metaKey("*"), func(key string, _ uint64, value []byte) error {
		var m Meta
		if err := decode(value, &m); err != nil {
			_ = s.malformed(key, err)
			return nil
		}
		if err := m.validate(); err != nil {
			_ = s.malformed(key, err)
			return nil
		}
		out[strings.TrimPrefix(key, metaKey(""))] = m
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// dueWatch watches the due entries of every cascade: each one first, then
// every change (read them with dueOf).
func (s *store) dueWatch(ctx context.Context) (jetstream.KeyWatcher, error) {
	return s.kv.Watch(ctx, dueKey(">"))
}

// dueOf reads an entry of dueWatch: the cascade it names and when it is
// due (zero, at once, when the entry cannot be read); gone when the entry
// was deleted (the cascade is not due).
func dueOf(e jetstream.KeyValueEntry) (id string, at time.Time, gone bool) {
	id = strings.TrimPrefix(e.Key(), dueKey(""))
	if e.Operation() != jetstream.KeyValuePut {
		return id, time.Time{}, true
	}
	var d due
	if decode(e.Value(), &d) != nil {
		return id, time.Time{}, false
	}
	return id, d.At, false
}

// metaWatch watches the meta of every cascade: each one first, then every
// change (read them with metaOf).
func (s *store) metaWatch(ctx context.Context) (jetstream.KeyWatcher, error) {
	return s.kv.Watch(ctx, metaKey(">"))
}

// metaOf reads an entry of metaWatch: the cascade it names and its meta;
// ok is false when the meta was deleted or cannot be read.
func metaOf(e jetstream.KeyValueEntry) (id string, m Meta, ok bool) {
	id = strings.TrimPrefix(e.Key(), metaKey(""))
	if e.Operation() != jetstream.KeyValuePut || decode(e.Value(), &m) != nil || m.validate() != nil {
		return id, Meta{}, false
	}
	return id, m, true
}

// viewWatch watches the changes of every cascade's meta and members from
// now on, what a view shows (name their cascade with cascadeOfKey).
func (s *store) viewWatch(ctx context.Context) (jetstream.KeyWatcher, error) {
	return s.kv.WatchFiltered(ctx, []string{"meta.>", "m.>"}, jetstream.UpdatesOnly())
}

// cascadeOfKey names the cascade of a meta key (meta.<id>) or a member key
// (m.<id>.<workspace>); "" for another key.
func cascadeOfKey(key string) (id, ws string, member bool) {
	if rest, ok := strings.CutPrefix(key, "meta."); ok {
		return rest, "", false
	}
	if rest, ok := strings.CutPrefix(key, "m."); ok {
		if i := strings.LastIndexByte(rest, '.'); i > 0 {
			return rest[:i], rest[i+1:], true
		}
	}
	return "", "", false
}

// readControl reads one control; nil when there is none.
func (s *store) readControl(ctx context.Context, key string) (*Control, error) {
	e, err := s.get(ctx, key)
	if isMissing(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var c Control
	if err := decode(e.Value(), &c); err != nil || c.validate() != nil {
		if err == nil {
			err = c.validate()
		}
		return nil, s.malformed(e.Key(), err)
	}
	return &c, nil
}

// readList reads the list (or map) under key into v; nothing when there
// is none.
func (s *store) readList(ctx context.Context, key string, v any) error {
	e, err := s.get(ctx, key)
	if isMissing(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := decode(e.Value(), v); err != nil {
		return s.malformed(e.Key(), err)
	}
	return nil
}

// putControl stores a control under key, whatever was there.
func (s *store) putControl(ctx context.Context, key string, c Control) error {
	data, _ := json.Marshal(c)
	s.count(1)
	if _, err := s.bucket(key).Put(ctx, key, data); err != nil {
		return fmt.Errorf("store control %s: %w", key, err)
	}
	return nil
}

// pause reads the pause of org ("": the global one); nil when there is
// none.
func (s *store) pause(ctx context.Context, org string) (*Control, error) {
	return s.readControl(ctx, pauseKey(org))
}

// putPause pauses dispatching in org ("": everywhere).
func (s *store) putPause(ctx context.Context, org string, c Control) error {
	return s.putControl(ctx, pauseKey(org), c)
}

// liftPause removes the pause of org ("": the global one) and returns it;
// nil when there was none. A pause record that cannot be read is lifted
// all the same, and returned as such.
func (s *store) liftPause(ctx context.Context, org string) (*Control, error) {
	key := pauseKey(org)
	for attempt := 0; ; attempt++ {
		e, err := s.read(ctx, key, attempt)
		if isMissing(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		var p Control
		if decode(e.Value(), &p) != nil {
			p = Control{By: "unknown", Why: "a pause record that could not be read"}
		}
		s.count(1)
		err = s.bucket(key).Delete(ctx, key, jetstream.LastRevision(e.Revision()))
		if err == nil {
			return &p, nil
		}
		if !isConflict(err) && !isMissing(err) {
			return nil, fmt.Errorf("remove control %s: %w", key, err)
		}
	}
}

// pauses returns the pauses in force, by organization ("": the global
// one). A pause that cannot be read is left out.
func (s *store) pauses(ctx context.Context) (map[string]Control, error) {
	orgs := []string{""}
	prefix := pauseKey("") + "."
	err := s.scan(ctx, s.bucket(pauseKey("x")), prefix+"*", func(key string, _ uint64, _ []byte) error {
		orgs = append(orgs, strings.TrimPrefix(key, prefix))
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := map[string]Control{}
	for _, org := range orgs {
		c, err := s.pause(ctx, org)
		if err != nil || c == nil {
			continue
		}
		out[org] = *c
	}
	return out, nil
}

// cancellation reads an operator's cancel of a cascade; nil when there is
// none.
func (s *store) cancellation(ctx context.Context, id string) (*Control, error) {
	return s.readControl(ctx, cancelKey(id))
}

// putCancellation cancels a cascade.
func (s *store) putCancellation(ctx context.Context, id string, c Control) error {
	return s.putControl(ctx, cancelKey(id), c)
}

// approval reads an operator's go past the blast-radius guard for a
// cascade; nil when there is none.
func (s *store) approval(ctx context.Context, id string) (*Control, error) {
	return s.readControl(ctx, approveKey(id))
}

// putApproval lets the blast-radius guard let a cascade go.
func (s *store) putApproval(ctx context.Context, id string, c Control) error {
	return s.putControl(ctx, approveKey(id), c)
}

// retries reads the members operators retried in a cascade, by workspace.
func (s *store) retries(ctx context.Context, id string) (map[string]Control, error) {
	var retries map[string]Control
	err := s.readList(ctx, retryKey(id), &retries)
	return retries, err
}

// addRetry records the retry of member ws of cascade id, by
// compare-and-swap, in place of any earlier retry of it; a record that
// cannot be read is started over. It returns the members retried in the
// cascade.
func (s *store) addRetry(ctx context.Context, id, ws string, c Control) (int, error) {
	key := retryKey(id)
	for attempt := 0; ; attempt++ {
		var retries map[string]Control
		e, err := s.read(ctx, key, attempt)
		var rev uint64
		switch {
		case isMissing(err):
			rev = events.DeletedAt(err)
		case err != nil:
			return 0, err
		default:
			rev = e.Revision()
			if decode(e.Value(), &retries) != nil {
				retries = nil // unreadable: start over
			}
		}
		if retries == nil {
			retries = map[string]Control{}
		}
		retries[ws] = c
		if _, err = s.swap(ctx, key, retries, rev); err == nil {
			return len(retries), nil
		}
		if !isConflict(err) {
			return 0, fmt.Errorf("store the retry of %s in %s: %w", ws, id, err)
		}
	}
}

// freezes reads the freeze windows.
func (s *store) freezes(ctx context.Context) ([]Freeze, error) {
	var fs []Freeze
	err := s.readList(ctx, freezeKey, &fs)
	return fs, err
}

// exclusions reads the exclusions.
func (s *store) exclusions(ctx context.Context) ([]Exclusion, error) {
	var excl []Exclusion
	err := s.readList(ctx, excludeKey, &excl)
	return excl, err
}

// replaceFreezes replaces the freeze windows with what change makes of
// those stored (nil when there are none or they cannot be read), by
// compare-and-swap: see replaceList.
func (s *store) replaceFreezes(ctx context.Context, change func(old []Freeze) ([]Freeze, error)) error {
	return s.replaceList(ctx, freezeKey, func(data []byte) (any, error) {
		var old []Freeze
		if data != nil && decode(data, &old) != nil {
			old = nil // unreadable: replaced
		}
		return change(old)
	})
}

// replaceExclusions replaces the exclusions as replaceFreezes does the
// freeze windows.
func (s *store) replaceExclusions(ctx context.Context, change func(old []Exclusion) ([]Exclusion, error)) error {
	return s.replaceList(ctx, excludeKey, func(data []byte) (any, error) {
		var old []Exclusion
		if data != nil && decode(data, &old) != nil {
			old = nil // unreadable: replaced
		}
		return change(old)
	})
}

// replaceList replaces the list of key by compare-and-swap with the one
// change makes of the list stored (nil when there is none), so that a
// change is always made to the list it was worked out from.
func (s *store) replaceList(ctx context.Context, key string, change func(old []byte) (any, error)) error {
	kv := s.bucket(key)
	for attempt := 0; ; attempt++ {
		e, err := s.read(ctx, key, attempt)
		var old []byte
		var rev uint64
		switch {
		case isMissing(err):
			rev = events.DeletedAt(err)
		case err != nil:
			return err
		default:
			old, rev = e.Value(), e.Revision()
		}
		next, err := change(old)
		if err != nil {
			return err
		}
		data, _ := json.Marshal(next)
		if len(data) > maxListBytes {
			return fmt.Errorf("%w: the list takes %d KiB stored, more than %d KiB: shorten its whys or its entries", ErrBadControl, len(data)>>10, maxListBytes>>10)
		}
		s.count(1)
		if rev == 0 {
			_, err = kv.Create(ctx, key, data)
		} else {
			_, err = kv.Update(ctx, key, data, rev)
		}
		if err == nil {
			return nil
		}
		if !isConflict(err) {
			return fmt.Errorf("store %s: %w", key, err)
		}
	}
}

// takeLease takes the lease of cascade id for holder (see lease.AcquireOn);
// false when another replica holds it.
func (s *store) takeLease(ctx context.Context, id, holder string, ttl time.Duration, now func() time.Time) (*lease.Lease, bool, error) {
	return lease.AcquireOn(ctx, s.nc, s.leases, leaseKey(id), holder, ttl, now)
}

// leaseHolders names the replicas holding a cascade's lease now, at most
// limit of them.
func (s *store) leaseHolders(ctx context.Context, limit int) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	err := s.scan(ctx, s.leases, leaseKey(">"), func(_ string, _ uint64, value []byte) error {
		if h := string(value); !seen[h] && len(seen) < limit {
			seen[h] = true
			out = append(out, h)
		}
		return nil
	})
	return out, err
}
