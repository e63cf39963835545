package dispatcher

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient/runstatus"
)

// Reading TFE for a look, at the fewest calls: the organization's workspace
// list, newest current run first, with each workspace's current run
// included, shows every member touched recently in one call per hundred
// workspaces; members it does not reach are read one by one.

// clockSkew is how far TFE's clock and this one may disagree: a walk of the
// workspace list goes that much further back than it needs.
const clockSkew = 5 * time.Second

// listReuse is how long a page of the workspace list answers the looks
// asked for before it was read (tfeclient.Fresh's Keep).
const listReuse = 10 * time.Second

// observe reads the members a look watches into f, and returns the number
// of API calls it made. A page of the workspace list read since asked (the
// look was asked for then: see store.askedAt; zero: now) answers it.
func (d *Dispatcher) observe(ctx context.Context, p *cascade.Plan, watches []cascade.Watch, f *cascade.Facts, asked time.Time) (int, error) {
	want := make(map[string]time.Time, len(watches))
	var floor time.Time
	for _, w := range watches {
		id := p.Members[w.Member].WorkspaceID
		if _, known := f.Workspaces[id]; known {
			continue // read already (the root's check read the list just now)
		}
		want[id] = w.Since
		if floor.IsZero() || w.Since.Before(floor) {
			floor = w.Since
		}
	}
	calls := 0
	if len(want) > 1 && d.opts.WalkPages > 0 {
		n, err := d.walk(ctx, p, want, floor.Add(-clockSkew), f, asked)
		calls += n
		if err != nil {
			return calls, err
		}
	}
	var rest []string
	for id := range want {
		if _, seen := f.Workspaces[id]; !seen {
			if _, quiet := f.Quiet[id]; !quiet {
				rest = append(rest, id)
			}
		}
	}
	n, err := d.readWorkspaces(ctx, rest, f)
	return calls + n, err
}

// walk reads the workspace list newest current run first until every
// wanted member was seen, the list is older than floor, or the page budget
// is spent. Every member it meets is kept (a later round of the decision
// may want it, at no cost); members wanted and not seen once the list went
// past their time are quiet: no run created since then holds them.
func (d *Dispatcher) walk(ctx context.Context, p *cascade.Plan, want map[string]time.Time, floor time.Time, f *cascade.Facts, asked time.Time) (int, error) {
	seen := 0
	r, err := d.recent(ctx, p.Organization, d.opts.WalkPages, asked, func(w cascade.Workspace, reached time.Time) bool {
		if p.Index(w.ID) >= 0 {
			if _, ok := want[w.ID]; ok {
				if _, dup := f.Workspaces[w.ID]; !dup {
					seen++
				}
			}
			f.Workspaces[w.ID] = w
		}
		return seen == len(want) || (!reached.IsZero() && reached.Before(floor))
	})
	if err != nil || r.reached.IsZero() {
		return r.calls, err
	}
	for id, since := range want {
		if _, ok := f.Workspaces[id]; !ok && r.reached.Before(since.Add(-clockSkew)) {
			f.Quiet[id] = since
		}
	}
	return r.calls, nil
}

// everyRunStatus lists every status TFE documents for a run, for a filter
// that keeps the workspaces that have a current run. A run in a status not
// listed here (a newer TFE's) leaves its workspace out of the walk, which
// then reads that member directly: a call more, never a wrong decision.
var everyRunStatus = strings.Join(runstatus.All(), ",")

// recentList is what a read of the workspace list newest first found.
type recentList struct {
	calls   int
	reached time.Time // the oldest current run seen
}

// recent reads an organization's workspace list newest current run first,
// with the current runs, a page at a time, giving each workspace to seen
// (with the oldest current run met so far), until seen says enough, the
// list ends, or pages were read. A page read since asked (zero: now)
// answers.
func (d *Dispatcher) recent(ctx context.Context, org string, pages int, asked time.Time, seen func(w cascade.Workspace, reached time.Time) bool) (recentList, error) {
	q := tfeclient.WorkspaceQuery{
		CurrentRun: true,
		Sort:       "-current-run.created-at",
		// Only workspaces that have a current run: where TFE sorts those
		// that never ran (first, in a descending sort, if it sorts as
		// PostgreSQL does) must not decide how far the walk reaches.
		CurrentRunStatus: everyRunStatus,
	}
	var r recentList
	if pages <= 0 {
		return r, nil
	}
	shared := 0 // pages another look read for this one
	list := func(ctx context.Context, page int) (tfeclient.Page[tfeclient.Workspace], error) {
		// Looks share a page, never one read before they asked
		// (tfeclient.Fresh): the pages are read-only here. An urgent
		// look shares only urgent reads: it must not wait behind the
		// others in the rate budget.
		l, own, err := d.lists.DoSince(ctx, listKey{org, page, tfeclient.IsUrgent(ctx)}, asked, func(ctx context.Context) (tfeclient.Page[tfeclient.Workspace], error) {
			rctx, status := tfeclient.Record(ctx)
			l, err := d.deps.Workspaces.ListWorkspacesPage(rctx, org, q, page)
			if err != nil {
				return l, d.readError(err, status, "list the workspaces of "+org)
			}
			return l, nil
		})
		if !own {
			shared++
		}
		return l, err
	}
	calls, err := tfeclient.ReadPages(ctx, list, pages, func(page []tfeclient.Workspace) (bool, error) {
		enough := false
		for i := range page {
			w := &page[i]
			if w.CurrentRun != nil && !w.CurrentRun.CreatedAt.IsZero() && (r.reached.IsZero() || w.CurrentRun.CreatedAt.Before(r.reached)) {
				r.reached = w.CurrentRun.CreatedAt
			}
			if seen(workspaceFacts(w), r.reached) {
				enough = true
			}
		}
		return !enough, nil
	})
	r.calls = calls - shared
	return r, err
}

// listKey is a page of an organization's workspace list, newest current
// run first, as recent reads it.
type listKey struct {
	org    string
	page   int
	urgent bool
}

// readWorkspaces reads members one by one, with their current runs.
func (d *Dispatcher) readWorkspaces(ctx context.Context, ids []string, f *cascade.Facts) (int, error) {
	type result struct {
		ws  cascade.Workspace
		err error
	}
	results := make([]result, len(ids))
	var wg sync.WaitGroup
	sem := make(chan struct{}, d.opts.MaxInFlight)
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rctx, status := tfeclient.Record(ctx)
			w, err := d.deps.Workspaces.ReadWorkspaceWithCurrentRun(rctx, id)
			switch {
			case err == nil:
				results[i].ws = workspaceFacts(&w)
			case tfeclient.Classify(err, status) == tfeclient.Gone:
				results[i].ws = cascade.Workspace{ID: id, Missing: true}
			default:
				results[i].err = d.readError(err, status, "read workspace "+id)
			}
		}()
	}
	wg.Wait()
	for i, id := range ids {
		if results[i].err != nil {
			return len(ids), results[i].err
		}
		f.Workspaces[id] = results[i].ws
	}
	return len(ids), nil
}

// fetch reads what a decision said it lacks, and returns the API calls made.
func (d *Dispatcher) fetch(ctx context.Context, p *cascade.Plan, need cascade.Needs, f *cascade.Facts) (int, error) {
	calls, err := d.readWorkspaces(ctx, need.Workspaces, f)
	if err != nil {
		return calls, err
	}
	for _, id := range need.Runs {
		rctx, status := tfeclient.Record(ctx)
		r, err := d.deps.Runs.ReadRun(rctx, id)
		calls++
		switch {
		case err == nil:
			f.Runs[id] = runFacts(&r)
		case tfeclient.Classify(err, status) == tfeclient.Gone:
			f.Runs[id] = cascade.Run{ID: id, Gone: true}
		default:
			return calls, d.readError(err, status, "read run "+id)
		}
	}
	for _, id := range need.Lists {
		rctx, status := tfeclient.Record(ctx)
		list, err := d.deps.Runs.ListRuns(rctx, id, 20)
		calls++
		switch {
		case err == nil:
			runs := make([]cascade.Run, 0, len(list))
			for i := range list {
				runs = append(runs, runFacts(&list[i]))
			}
			f.Lists[id] = runs
		case tfeclient.Classify(err, status) == tfeclient.Gone:
			f.Lists[id] = nil
			f.Workspaces[id] = cascade.Workspace{ID: id, Missing: true}
		default:
			return calls, d.readError(err, status, "list the runs of "+id)
		}
	}
	for _, o := range need.Outputs {
		diff, n, err := d.compareOutputs(ctx, p, o)
		calls += n
		if err != nil {
			return calls, err
		}
		f.Outputs[o.RunID] = diff
	}
	return calls, nil
}

// readError classifies a failed read: a refused token pauses the look;
// anything else is retried with the next look.
func (d *Dispatcher) readError(err error, status *tfeclient.Status, what string) error {
	if tfeclient.Classify(err, status) == tfeclient.Unauthorized {
		return &wrapped{what: what, err: errUnauthorized}
	}
	return &wrapped{what: what, err: err}
}

type wrapped struct {
	what string
	err  error
}

func (e *wrapped) Error() string { return e.what + ": " + e.err.Error() }
func (e *wrapped) Unwrap() error { return e.err }

// workspaceFacts is what the core needs of a workspace.
func workspaceFacts(w *tfeclient.Workspace) cascade.Workspace {
	out := cascade.Workspace{
		ID: w.ID, Name: w.Name, Locked: w.Locked, ExecutionMode: w.ExecutionMode, TerraformVersion: w.TerraformVersion,
		HasConfiguration: w.HasConfiguration, AutoApply: w.AutoApply, AutoApplyRunTrigger: w.AutoApplyRunTrigger, Tags: w.Tags,
	}
	if out.ExecutionMode == "" && !w.Operations {
		out.ExecutionMode = "local"
	}
	if w.Locked {
		switch {
		case w.LockedByRun != "":
			out.LockedByRun = w.LockedByRun
		case w.LockedByUser != "" || w.LockedByUsername != "":
			out.LockedByUser = w.LockedByUser
			out.LockedBy = w.LockedByUsername
			if out.LockedBy == "" {
				out.LockedBy = w.LockedByUser
			}
		case w.LockedByTeam != "" || w.LockedByTeamName != "":
			out.LockedBy = "team " + w.LockedByTeamName
			if w.LockedByTeamName == "" {
				out.LockedBy = "team " + w.LockedByTeam
			}
		}
	}
	if r := w.CurrentRun; r != nil && r.ID != "" {
		c := runFacts(r)
		c.WorkspaceID = w.ID
		out.Current = &c
	}
	return out
}

// runFacts is what the core needs of a run.
func runFacts(r *tfeclient.Run) cascade.Run {
	return cascade.Run{
		ID: r.ID, Status: r.Status, Source: r.Source, Message: r.Message, CreatedAt: r.CreatedAt,
		AutoApply: r.AutoApply, IsDestroy: r.IsDestroy, PlanOnly: r.PlanOnly, StatusAt: r.StatusAt, WorkspaceID: r.WorkspaceID,
		Discardable: r.Actions.Discardable, Cancelable: r.Actions.Cancelable, Confirmable: r.Actions.Confirmable,
	}
}

// toolCache keeps the installation's Terraform versions for a TTL; without
// the admin API (nil, or refused) they are unknown. One read runs at a
// time; a refused read is kept for the TTL too, as no versions.
type toolCache struct {
	list  ToolVersions
	cache *tfeclient.Cache[struct{}, map[string]cascade.Tool]
}

func newToolCache(list ToolVersions, ttl time.Duration, now func() time.Time) *toolCache {
	return &toolCache{list: list, cache: tfeclient.NewCache[struct{}, map[string]cascade.Tool](ttl, now)}
}

func (c *toolCache) get(ctx context.Context) (map[string]cascade.Tool, error) {
	if c.list == nil {
		return nil, nil
	}
	return c.cache.Load(ctx, struct{}{}, func(ctx context.Context) (map[string]cascade.Tool, error) {
		versions, err := c.list.ListTerraformVersions(ctx)
		if err != nil {
			return map[string]cascade.Tool{}, nil // no admin API: the check is skipped
		}
		m := map[string]cascade.Tool{}
		for _, tv := range versions {
			m[tv.Version] = cascade.Tool{Enabled: tv.Enabled, Deprecated: tv.Deprecated}
		}
		return m, nil
	})
}
