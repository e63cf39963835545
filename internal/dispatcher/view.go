package dispatcher

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
)

// The read model: cascades as people and tools see them. Nothing outside
// this package reads the engine's KV keys; the demo, the operator API and
// the web page use these.

// Reads is the read model: cascades (List, Snapshot, Watch, Why), the
// operators' controls in force (Paused, Freezes, Exclusions, Status) and
// their audit trail (Audit). It only reads: nothing it does changes a
// cascade, a control or the engine's schedule, and it reads by direct
// gets, opening no JetStream consumer; every Watch of a process shares one
// KV watch. It shares the engine's store and options; Dispatcher.Reads
// returns it.
type Reads struct {
	opts  *Options
	store *store
	audit jetstream.KeyValue // the audit trail, read backwards
	log   *zap.Logger

	watchers watchHub // the watches, one KV watch for all
}

// runURL is where a person sees a run in TFE's UI.
func (o *Options) runURL(org, workspace, runID string) string {
	if o.Address == "" {
		return ""
	}
	return o.Address + "/app/" + org + "/workspaces/" + workspace + "/runs/" + runID
}

// View is one cascade: its root, how it stands, and its members in
// dispatch order.
type View struct {
	ID           string          `json:"id"`
	Organization string          `json:"organization"`
	Root         string          `json:"root"`
	RootID       string          `json:"root_workspace_id"`
	RootRunID    string          `json:"root_run_id"`
	RootRunURL   string          `json:"root_run_url,omitempty"`
	State        string          `json:"state"`
	Outcome      cascade.Outcome `json:"outcome,omitempty"`
	Reason       string          `json:"reason,omitempty"`
	StartedAt    time.Time       `json:"started_at"`
	FinishedAt   time.Time       `json:"finished_at,omitzero"`
	DryRun       bool            `json:"dry_run,omitempty"`
	Cycles       []string        `json:"cycles,omitempty"`
	// Operators' controls in force on a running cascade: who paused
	// dispatching and why, what the blast-radius guard holds, who
	// cancelled it.
	Paused    string         `json:"paused,omitempty"`
	Held      string         `json:"held,omitempty"`
	Cancelled string         `json:"cancelled,omitempty"`
	Counts    map[string]int `json:"counts"`
	// RunsSaved counts the members skipped because none of their
	// upstreams' outputs changed (output gating).
	RunsSaved int          `json:"runs_saved,omitempty"`
	Members   []MemberView `json:"members"`
}

// MemberView is one workspace of a cascade.
type MemberView struct {
	WorkspaceID string        `json:"workspace_id"`
	Name        string        `json:"name"`
	Layer       int           `json:"layer"`
	State       cascade.State `json:"state"`
	Reason      string        `json:"reason,omitempty"`
	Cause       string        `json:"cause,omitempty"`
	RunID       string        `json:"run_id,omitempty"`
	RunStatus   string        `json:"run_status,omitempty"`
	RunURL      string        `json:"run_url,omitempty"`
	// Adopted: its run is one TFE's run triggers queued, taken as the
	// member's run.
	Adopted bool `json:"adopted,omitempty"`
	// WaitsFor are the upstreams it waits for, by name.
	WaitsFor   []string  `json:"waits_for"`
	Since      time.Time `json:"since,omitzero"`
	ReadyAt    time.Time `json:"ready_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	Attempts   int       `json:"attempts,omitempty"`
	Stopped    int       `json:"stopped,omitempty"`
	// Hold is where the cascade's hold (a TFE lock) on the member's
	// workspace stands: taking, held, releasing, released or lifted.
	Hold cascade.HoldState `json:"hold,omitempty"`
	// For a member gated on its upstreams' outputs: the outputs that
	// changed (upstream.output, names only), or why they were not compared
	// and it ran all the same; Gate says it in words.
	OutputsChanged []string `json:"outputs_changed,omitempty"`
	NotGated       string   `json:"not_gated,omitempty"`
	Gate           string   `json:"gate,omitempty"`
}

// Summary is a cascade in a list.
type Summary struct {
	ID           string          `json:"id"`
	Organization string          `json:"organization"`
	Root         string          `json:"root"`
	State        string          `json:"state"`
	Outcome      cascade.Outcome `json:"outcome,omitempty"`
	StartedAt    time.Time       `json:"started_at"`
	FinishedAt   time.Time       `json:"finished_at,omitzero"`
	Members      int             `json:"members"`
	Counts       map[string]int  `json:"counts,omitempty"`
	RunsSaved    int             `json:"runs_saved,omitempty"`
}

// ErrNoCascade is returned for a cascade the engine does not know (or no
// longer keeps).
var ErrNoCascade = errors.New("no such cascade")

// Snapshot returns a cascade as it stands.
func (rm *Reads) Snapshot(ctx context.Context, id string) (*View, error) {
	p, err := rm.store.plan(ctx, id)
	if isMissing(err) {
		return nil, ErrNoCascade
	}
	if err != nil {
		return nil, err
	}
	meta, _, err := rm.store.meta(ctx, id)
	if isMissing(err) {
		meta = Meta{State: StateRunning, StartedAt: p.StartedAt}
	} else if err != nil {
		return nil, err
	}
	st, _, err := rm.store.members(ctx, p)
	if err != nil {
		return nil, err
	}
	v := rm.view(p, meta, st)
	rm.withControls(ctx, p, v)
	return v, nil
}

// withControls adds the operators' controls in force to a view.
func (rm *Reads) withControls(ctx context.Context, p *cascade.Plan, v *View) {
	c, err := rm.controls(ctx, p)
	if err != nil {
		return // the view is still right about the members
	}
	v.Cancelled = c.Cancelled
	if v.State == StateRunning {
		v.Paused, v.Held = c.Paused, c.Held
	}
}

func (rm *Reads) view(p *cascade.Plan, meta Meta, st []cascade.Status) *View {
	v := &View{
		ID: p.ID, Organization: p.Organization, Root: p.Root.WorkspaceName, RootID: p.Root.WorkspaceID, RootRunID: p.Root.RunID,
		RootRunURL: rm.opts.runURL(p.Organization, p.Root.WorkspaceName, p.Root.RunID), State: meta.State, Outcome: meta.Outcome,
		Reason: meta.Reason, StartedAt: p.StartedAt, FinishedAt: meta.FinishedAt, DryRun: p.DryRun, Cycles: p.Cycles,
		Counts: map[string]int{},
	}
	for i, m := range p.Members {
		s := st[i]
		mv := MemberView{
			WorkspaceID: m.WorkspaceID, Name: m.Name, Layer: m.Layer, State: s.State, Reason: s.Reason, Cause: s.Cause,
			RunID: s.RunID, RunStatus: s.RunStatus, Adopted: s.Adopted, Since: s.Since, ReadyAt: s.ReadyAt,
			FinishedAt: s.FinishedAt, Attempts: s.Attempts, Stopped: s.Stopped, Hold: s.Hold, WaitsFor: []string{},
		}
		if s.RunID != "" {
			mv.RunURL = rm.opts.runURL(p.Organization, m.Name, s.RunID)
		}
		if g := s.Gate; g != nil {
			mv.OutputsChanged, mv.NotGated, mv.Gate = g.Changed, g.NotGated, g.Summary()
		}
		if s.Cause == cascade.CauseOutputsUnchanged {
			v.RunsSaved++
		}
		for _, u := range m.Upstreams {
			mv.WaitsFor = append(mv.WaitsFor, p.Name(u))
		}
		v.Members = append(v.Members, mv)
		v.Counts[string(s.State)]++
	}
	return v
}

// Filter selects cascades in a list; zero fields select all.
type Filter struct {
	Organization string
	// Workspace: cascades with this workspace (ID or name) as root or
	// member.
	Workspace string
	State     string // running, done or set_aside
	Since     time.Time
}

// List returns the cascades the engine keeps (the state TTL), newest
// first.
func (rm *Reads) List(ctx context.Context, f Filter) ([]Summary, error) {
	metas, err := rm.metas(ctx)
	if err != nil {
		return nil, err
	}
	var out []Summary
	for id, m := range metas {
		if (f.Organization != "" && m.Organization != f.Organization) || (f.State != "" && m.State != f.State) ||
			(!f.Since.IsZero() && m.StartedAt.Before(f.Since)) {
			continue
		}
		if f.Workspace != "" {
			p, err := rm.store.plan(ctx, id)
			if err != nil || !involves(p, f.Workspace) {
				continue
			}
		}
		out = append(out, Summary{ID: id, Organization: m.Organization, Root: m.Root, State: m.State, Outcome: m.Outcome,
			StartedAt: m.StartedAt, FinishedAt: m.FinishedAt, Members: m.Members, Counts: m.Counts, RunsSaved: m.RunsSaved})
	}
	slices.SortFunc(out, func(a, b Summary) int {
		if c := b.StartedAt.Compare(a.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

func involves(p *cascade.Plan, ws string) bool {
	if p.Root.WorkspaceID == ws || p.Root.WorkspaceName == ws {
		return true
	}
	return slices.ContainsFunc(p.Members, func(m cascade.Member) bool { return m.WorkspaceID == ws || m.Name == ws })
}

// metas reads the meta of every cascade kept, by a scan of direct gets:
// no consumer, so that API readers never take those the engine needs.
func (rm *Reads) metas(ctx context.Context) (map[string]Meta, error) {
	return rm.store.metas(ctx)
}

// Watch sends a cascade's view now and after every change, until ctx ends
// (and then closes the channel). A slow reader gets the latest view, not
// every one, and holds up no other. The views sent are shared between the
// readers of a cascade: they must not be changed.
//
// However many readers, a process has one KV watch of the cascades (see
// watchHub): readers never take the consumers the engine needs.
func (rm *Reads) Watch(ctx context.Context, id string) (<-chan *View, error) {
	p, err := rm.store.plan(ctx, id)
	if isMissing(err) {
		return nil, ErrNoCascade
	}
	if err != nil {
		return nil, err
	}
	out := make(chan *View, 1)
	g := rm.watchers.join(rm, p, out)
	go func() {
		<-ctx.Done()
		rm.watchers.leave(g, out) // closes out
	}()
	return out, nil
}

// watchHub fans the changes of the cascades bucket out to this process's
// Watch readers. One KV watch (an ordered consumer of the meta and member
// keys, new changes only) runs while anyone reads, started with the first
// reader and stopped after the last; when its channel closes (a
// disconnection: KV watchers do not come back) it is made again and every
// cascade read is read afresh, so that no change missed meanwhile is lost.
// Each cascade read has a group: its state, merged by revision from a
// direct read and the watch, and its readers, each offered the latest
// view without waiting for any.
type watchHub struct {
	mu     sync.Mutex
	groups map[string]*watchGroup
	run    *hubRun // the shared watch, while there are readers
}

// hubRun is one life of the shared watch.
type hubRun struct {
	cancel   context.CancelFunc
	watching bool                 // its watch is open: a new group reads its state now
	w        jetstream.KeyWatcher // that watch, while open
}

// watchGroup is one cascade's readers and state.
type watchGroup struct {
	id  string
	p   *cascade.Plan
	ctx context.Context // ends when the last reader goes
	end context.CancelFunc

	mu      sync.Mutex
	subs    map[chan *View]struct{}
	st      []cascade.Status
	revs    []uint64
	meta    Meta
	metaRev uint64
	loaded  bool
	last    *View // the latest view sent

	reload atomic.Bool   // read the state afresh before the next view
	kick   chan struct{} // something changed: one slot, so changes coalesce
	retry  time.Duration // the wait before a failed read is made again
}

// hubRetry is how long the shared watch or a group's read waits before it
// is tried again after a failure.
const hubRetry = time.Second

func (h *watchHub) join(rm *Reads, p *cascade.Plan, out chan *View) *watchGroup {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.groups == nil {
		h.groups = map[string]*watchGroup{}
	}
	g := h.groups[p.ID]
	if g == nil {
		ctx, end := context.WithCancel(context.Background())
		g = &watchGroup{id: p.ID, p: p, ctx: ctx, end: end, subs: map[chan *View]struct{}{},
			st: make([]cascade.Status, len(p.Members)), revs: make([]uint64, len(p.Members)),
			meta: Meta{State: StateRunning, StartedAt: p.StartedAt}, kick: make(chan struct{}, 1)}
		for i := range p.Members {
			g.st[i] = cascade.Initial(p, i)
		}
		h.groups[p.ID] = g
		go g.serve(rm)
		if h.run == nil {
			ctx, cancel := context.WithCancel(context.Background())
			r := &hubRun{cancel: cancel}
			h.run = r
			go h.watch(ctx, rm, r)
		}
		if h.run.watching {
			g.refresh()
		} // else the watch, once open, refreshes every group
	}
	g.mu.Lock()
	g.subs[out] = struct{}{}
	if g.last != nil {
		offer(out, g.last)
	}
	g.mu.Unlock()
	return g
}

// leave takes a reader off its group and closes its channel; the last
// reader of a cascade ends its group, the last of all the shared watch.
func (h *watchHub) leave(g *watchGroup, out chan *View) {
	h.mu.Lock()
	defer h.mu.Unlock()
	g.mu.Lock()
	delete(g.subs, out)
	close(out)
	empty := len(g.subs) == 0
	g.mu.Unlock()
	if !empty {
		return
	}
	g.end()
	delete(h.groups, g.id)
	if len(h.groups) == 0 && h.run != nil {
		h.run.cancel()
		h.run = nil
	}
}

// watch keeps the shared watch open until ctx ends, routing each change
// to the group of its cascade.
func (h *watchHub) watch(ctx context.Context, rm *Reads, r *hubRun) {
	for ctx.Err() == nil {
		w, err := rm.store.viewWatch(ctx)
		if err != nil {
			if ctx.Err() == nil {
				rm.log.Warn("watch of cascades for their readers could not start; trying again", zap.Error(err))
			}
			select {
			case <-ctx.Done():
			case <-time.After(hubRetry):
			}
			continue
		}
		h.mu.Lock()
		r.watching, r.w = true, w
		for _, g := range h.groups {
			g.refresh() // what changed while no watch was open
		}
		h.mu.Unlock()
		h.follow(ctx, w)
		h.mu.Lock()
		r.watching, r.w = false, nil
		h.mu.Unlock()
		_ = w.Stop()
		if ctx.Err() == nil {
			rm.log.Warn("watch of cascades for their readers ended; starting it again")
		}
	}
}

func (h *watchHub) follow(ctx context.Context, w jetstream.KeyWatcher) {
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			id, ws, member := cascadeOfKey(e.Key())
			if id == "" {
				continue
			}
			h.mu.Lock()
			g := h.groups[id]
			h.mu.Unlock()
			if g != nil {
				g.apply(ws, member, e.Value(), e.Revision())
			}
		}
	}
}

// apply takes a change the watch saw, unless the group holds a later
// revision of the key already. A record that cannot be read changes
// nothing.
func (g *watchGroup) apply(ws string, member bool, value []byte, rev uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !member {
		var m Meta
		if rev > g.metaRev && decode(value, &m) == nil && m.validate() == nil {
			g.meta, g.metaRev = m, rev
		}
	} else if i := g.p.Index(ws); i >= 0 && rev > g.revs[i] {
		var s cascade.Status
		if decode(value, &s) == nil && s.Validate() == nil {
			g.st[i], g.revs[i] = s, rev
		}
	}
	g.poke()
}

// refresh asks for the group's state to be read afresh.
func (g *watchGroup) refresh() {
	g.reload.Store(true)
	g.poke()
}

func (g *watchGroup) poke() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// serve builds the cascade's view after each change and offers it to every
// reader, until the last reader goes.
func (g *watchGroup) serve(rm *Reads) {
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-g.kick:
		}
		if g.reload.Swap(false) {
			if err := g.read(rm); err != nil {
				if g.ctx.Err() != nil {
					return
				}
				if g.retry == 0 {
					rm.log.Warn("read of a watched cascade failed; trying again", zap.String("cascade_id", g.id), zap.Error(err))
				}
				g.retry = min(2*g.retry+hubRetry, 30*time.Second)
				time.AfterFunc(g.retry, g.refresh)
				continue
			}
			g.retry = 0
		}
		g.mu.Lock()
		if !g.loaded {
			g.mu.Unlock()
			continue
		}
		v := rm.view(g.p, g.meta, slices.Clone(g.st))
		g.mu.Unlock()
		rm.withControls(g.ctx, g.p, v)
		g.mu.Lock()
		g.last = v
		for out := range g.subs {
			offer(out, v)
		}
		g.mu.Unlock()
	}
}

// read reads the cascade's meta and members (direct gets, no consumer) and
// merges them by revision with what the watch brought meanwhile. A record
// that cannot be read (reported once) leaves what the group had.
func (g *watchGroup) read(rm *Reads) error {
	st, revs, err := rm.store.readMembers(g.ctx, g.p, true)
	if err != nil {
		return err
	}
	meta, metaRev, err := rm.store.meta(g.ctx, g.id)
	if err != nil && !isMissing(err) && !errors.Is(err, errMalformed) {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range st {
		if revs[i] > g.revs[i] {
			g.st[i], g.revs[i] = st[i], revs[i]
		}
	}
	if err == nil && metaRev > g.metaRev {
		g.meta, g.metaRev = meta, metaRev
	}
	g.loaded = true
	return nil
}

// offer gives a reader v, in place of a view it has not read yet: the one
// sender of out never waits.
func offer(out chan *View, v *View) {
	select {
	case <-out:
	default:
	}
	select {
	case out <- v:
	default:
	}
}
