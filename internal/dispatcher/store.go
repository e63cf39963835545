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
)

// store keeps the engine's state in a JetStream KV bucket. Keys:
//
//	plan.<cascade>           the cascade's plan, written once
//	meta.<cascade>           how it stands: running or done, counts, outcome
//	m.<cascade>.<workspace>  a member's status; absent until it first changes
//	due.<cascade>            when to look at it next, and the workspaces
//	                         events named since the last look
//	ws.<workspace>           the open cascades holding the workspace, oldest
//	                         first: the first acts in it
//	run.<run>                the cascade a run belongs to (created or taken)
//	root.<run>               a root handled without a cascade (nothing
//	                         downstream)
//	ctl.cancel.<cascade>     operators' controls of one cascade (they go
//	ctl.retry.<cascade>      with its other records)
//	ctl.approve.<cascade>
//
// and in the controls bucket, which keeps its records until they are
// changed (no TTL) with a short history of who changed them:
//
//	ctl.pause, ctl.pause.<org>, ctl.freeze, ctl.exclude
//
// Every record read back is validated: a malformed one is reported once and
// set aside, never acted on, and never panics the daemon.
type store struct {
	nc  *nats.Conn // for direct gets of many keys at once
	kv  jetstream.KeyValue
	ctl jetstream.KeyValue // the operators' controls that outlive cascades
	ops atomic.Int64       // KV operations, for tests and benchmarks

	mu        sync.Mutex
	plans     map[string]*cascade.Plan // immutable once written: cached
	planOrder []string                 // oldest first, to bound the cache
	bad       map[string]bool          // malformed keys already reported

	onMalformed func(key string, err error)
}

// maxCachedPlans bounds the plans kept in memory (a plan of a thousand
// members is about 150 KB).
const maxCachedPlans = 128

func newStore(nc *nats.Conn, kv, ctl jetstream.KeyValue, onMalformed func(string, error)) *store {
	return &store{nc: nc, kv: kv, ctl: ctl, plans: map[string]*cascade.Plan{}, bad: map[string]bool{}, onMalformed: onMalformed}
}

// bucket is where a key lives: the controls that outlive cascades in the
// controls bucket, everything else with the cascades.
func (s *store) bucket(key string) jetstream.KeyValue {
	if s.ctl != nil && (key == "ctl.freeze" || key == "ctl.exclude" || key == "ctl.pause" || strings.HasPrefix(key, "ctl.pause.")) {
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
func isMissing(err error) bool       { return errors.Is(err, jetstream.ErrKeyNotFound) }
func (s *store) count(n int)         { s.ops.Add(int64(n)) }
func (s *store) get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	s.count(1)
	return s.bucket(key).Get(ctx, key)
}

// isConflict reports a compare-and-swap that lost: another writer got there
// first. Replicated buckets report it with another error code than single
// ones; both count.
func isConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var api *jetstream.APIError
	return errors.As(err, &api) &&
		(api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
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
func (s *store) swapOrDelete(ctx context.Context, key string, v any, empty bool, rev uint64) error {
	switch {
	case empty && rev == 0:
		return nil
	case empty:
		s.count(1)
		return s.kv.Delete(ctx, key, jetstream.LastRevision(rev))
	}
	_, err := s.swap(ctx, key, v, rev)
	return err
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
}

const maxDirty = 10000

func (s *store) due(ctx context.Context, id string) (due, uint64, error) {
	e, err := s.get(ctx, dueKey(id))
	if err != nil {
		return due{}, 0, err
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
	for {
		d, rev, err := s.due(ctx, id)
		if err != nil && !isMissing(err) {
			return err
		}
		changed := false
		if d.At.IsZero() || at.Before(d.At) {
			d.At, changed = at, true
		}
		if ws != "" && !slices.Contains(d.Dirty, ws) && len(d.Dirty) < maxDirty {
			d.Dirty, changed = append(d.Dirty, ws), true
		}
		if full && !d.Full {
			d.Full, changed = true, true
		}
		if !changed {
			return nil
		}
		if _, err = s.swap(ctx, dueKey(id), d, rev); err == nil || !isConflict(err) || ctx.Err() != nil {
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
	for {
		d, rev, err := s.due(ctx, id)
		switch {
		case isMissing(err):
			d, rev = due{}, 0
		case err != nil:
			return err
		}
		nd := due{At: next, Dirty: d.Dirty}
		if rev == seen {
			nd.Dirty = slices.DeleteFunc(slices.Clone(d.Dirty), func(w string) bool { return slices.Contains(handled, w) })
		} else if !d.At.IsZero() && (next.IsZero() || d.At.Before(next)) {
			nd.At = d.At
		}
		err = s.swapOrDelete(ctx, dueKey(id), nd, nd.At.IsZero() && len(nd.Dirty) == 0, rev)
		if err == nil || isMissing(err) || !isConflict(err) || ctx.Err() != nil {
			return err
		}
	}
}

// dropDue forgets that a cascade is due, whatever marked it: one whose
// plan or meta cannot be read is not looked at again (settling with a
// revision it never had would keep it due, and the scheduler would look at
// it again at once, without end).
func (s *store) dropDue(ctx context.Context, id string) error {
	d, rev, err := s.due(ctx, id)
	switch {
	case isMissing(err):
		return nil
	case err != nil:
		return err
	}
	return s.settleDue(ctx, id, rev, d.Dirty, time.Time{})
}

// owners returns the open cascades holding workspace ws, oldest first.
func (s *store) owners(ctx context.Context, ws string) ([]string, uint64, error) {
	e, err := s.get(ctx, wsKey(ws))
	if isMissing(err) {
		return nil, 0, nil
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
	for {
		ids, rev, err := s.owners(ctx, ws)
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
		err = s.swapOrDelete(ctx, wsKey(ws), ids, len(ids) == 0, rev)
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
