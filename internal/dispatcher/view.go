package dispatcher

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
)

// The read model: cascades as people and tools see them. Nothing outside
// this package reads the engine's KV keys; the demo, the operator API and
// the web page use these.

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
	Members   []MemberView   `json:"members"`
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
}

// ErrNoCascade is returned for a cascade the engine does not know (or no
// longer keeps).
var ErrNoCascade = errors.New("no such cascade")

// Snapshot returns a cascade as it stands.
func (d *Dispatcher) Snapshot(ctx context.Context, id string) (*View, error) {
	p, err := d.store.plan(ctx, id)
	if isMissing(err) {
		return nil, ErrNoCascade
	}
	if err != nil {
		return nil, err
	}
	meta, _, err := d.store.meta(ctx, id)
	if isMissing(err) {
		meta = Meta{State: StateRunning, StartedAt: p.StartedAt}
	} else if err != nil {
		return nil, err
	}
	st, _, err := d.store.members(ctx, p)
	if err != nil {
		return nil, err
	}
	v := d.view(p, meta, st)
	d.withControls(ctx, p, v)
	return v, nil
}

// withControls adds the operators' controls in force to a view.
func (d *Dispatcher) withControls(ctx context.Context, p *cascade.Plan, v *View) {
	c, err := d.controls(ctx, p)
	if err != nil {
		return // the view is still right about the members
	}
	v.Cancelled = c.Cancelled
	if v.State == StateRunning {
		v.Paused, v.Held = c.Paused, c.Held
	}
}

func (d *Dispatcher) view(p *cascade.Plan, meta Meta, st []cascade.Status) *View {
	v := &View{
		ID: p.ID, Organization: p.Organization, Root: p.Root.WorkspaceName, RootID: p.Root.WorkspaceID, RootRunID: p.Root.RunID,
		RootRunURL: d.runURL(p.Organization, p.Root.WorkspaceName, p.Root.RunID), State: meta.State, Outcome: meta.Outcome,
		Reason: meta.Reason, StartedAt: p.StartedAt, FinishedAt: meta.FinishedAt, DryRun: p.DryRun, Cycles: p.Cycles,
		Counts: map[string]int{},
	}
	for i, m := range p.Members {
		s := st[i]
		mv := MemberView{
			WorkspaceID: m.WorkspaceID, Name: m.Name, Layer: m.Layer, State: s.State, Reason: s.Reason, Cause: s.Cause,
			RunID: s.RunID, RunStatus: s.RunStatus, Adopted: s.Adopted, Since: s.Since, ReadyAt: s.ReadyAt,
			FinishedAt: s.FinishedAt, Attempts: s.Attempts, Stopped: s.Stopped, WaitsFor: []string{},
		}
		if s.RunID != "" {
			mv.RunURL = d.runURL(p.Organization, m.Name, s.RunID)
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
func (d *Dispatcher) List(ctx context.Context, f Filter) ([]Summary, error) {
	metas, err := d.metas(ctx)
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
			p, err := d.store.plan(ctx, id)
			if err != nil || !involves(p, f.Workspace) {
				continue
			}
		}
		out = append(out, Summary{ID: id, Organization: m.Organization, Root: m.Root, State: m.State, Outcome: m.Outcome,
			StartedAt: m.StartedAt, FinishedAt: m.FinishedAt, Members: m.Members, Counts: m.Counts})
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

// metas reads the meta of every cascade kept.
func (d *Dispatcher) metas(ctx context.Context) (map[string]Meta, error) {
	lister, err := d.store.kv.ListKeysFiltered(ctx, "meta.>")
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return map[string]Meta{}, nil
		}
		return nil, err
	}
	out := map[string]Meta{}
	for key := range lister.Keys() {
		id := strings.TrimPrefix(key, "meta.")
		m, _, err := d.store.meta(ctx, id)
		if err != nil {
			if isMissing(err) || errors.Is(err, errMalformed) {
				continue
			}
			return nil, err
		}
		out[id] = m
	}
	return out, nil
}

// Watch sends a cascade's view now and after every change, until ctx ends
// (and then closes the channel). A slow reader gets the latest view, not
// every one.
func (d *Dispatcher) Watch(ctx context.Context, id string) (<-chan *View, error) {
	p, err := d.store.plan(ctx, id)
	if isMissing(err) {
		return nil, ErrNoCascade
	}
	if err != nil {
		return nil, err
	}
	w, err := d.store.kv.WatchFiltered(ctx, []string{membersPrefix(id) + "*", metaKey(id)})
	if err != nil {
		return nil, err
	}
	out := make(chan *View, 1)
	go func() {
		defer close(out)
		defer func() { _ = w.Stop() }()
		st := make([]cascade.Status, len(p.Members))
		for i := range p.Members {
			st[i] = cascade.Initial(p, i)
		}
		meta := Meta{State: StateRunning}
		ready := false
		send := func() {
			v := d.view(p, meta, slices.Clone(st))
			d.withControls(ctx, p, v)
			select {
			case <-out: // drop a view nobody read yet
			default:
			}
			out <- v
		}
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					ready = true
					send()
					continue
				}
				if e.Key() == metaKey(id) {
					var m Meta
					if decode(e.Value(), &m) == nil && m.validate() == nil {
						meta = m
					}
				} else if i := p.Index(strings.TrimPrefix(e.Key(), membersPrefix(id))); i >= 0 {
					var s cascade.Status
					if decode(e.Value(), &s) == nil && s.Validate() == nil {
						st[i] = s
					}
				}
				if ready {
					send()
				}
			}
		}
	}()
	return out, nil
}
