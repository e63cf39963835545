package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/lease"
)

// look is one reconciliation of a cascade, under its lease: read its state,
// read what the decision needs from TFE, decide, store the transitions by
// compare-and-swap, then carry the actions out. Every step is safe to
// repeat: a look cut short anywhere is made again by whichever replica
// holds the lease next.
//
// Workspaces read moments before (pre, may be nil) stand for those members:
// the check of a new cascade's root read the list its first look needs.
func (d *Dispatcher) look(ctx context.Context, l *lease.Lease, id string, pre map[string]cascade.Workspace) error {
	start := time.Now()
	defer func() { d.metrics.lookSeconds.Observe(time.Since(start).Seconds()) }()
	now := d.opts.Now()
	p, err := d.store.plan(ctx, id)
	switch {
	case isMissing(err) || errors.Is(err, errMalformed):
		return d.store.dropDue(ctx, id) // expired, or set aside
	case err != nil:
		return err
	}
	meta, metaRev, err := d.store.meta(ctx, id)
	switch {
	case isMissing(err):
		return d.begin(ctx, p)
	case errors.Is(err, errMalformed):
		return d.store.dropDue(ctx, id)
	case err != nil:
		return err
	}
	dueRec, dueRev, err := d.store.due(ctx, id, 0)
	if err != nil && !isMissing(err) {
		return err
	}
	if !meta.open() {
		return d.store.settleDue(ctx, id, dueRev, dueRec.Dirty, time.Time{})
	}
	st, revs, err := d.store.members(ctx, p)
	if errors.Is(err, errMalformed) {
		return d.setAside(ctx, l, p, meta, metaRev, dueRev, err)
	}
	if err != nil {
		return err
	}
	ctl, err := d.reads.controls(ctx, p)
	if err != nil {
		return err
	}
	pol := d.policy()
	full := cascade.FullLook(dueRec.Full, meta.LastFull, pol, now)
	dirty := func(ws string) bool { return slices.Contains(dueRec.Dirty, ws) }
	facts := cascade.Facts{Workspaces: map[string]cascade.Workspace{}, Quiet: map[string]time.Time{}, Runs: map[string]cascade.Run{},
		Lists: map[string][]cascade.Run{}, HeldBy: map[string]string{}, Outputs: map[string]cascade.OutputsDiff{}}
	for wsID, w := range pre {
		if p.Index(wsID) >= 0 {
			facts.Workspaces[wsID] = w
		}
	}
	var reads int
	watches := cascade.Observe(p, st, dirty, full, pol, now)
	d.log.Debug("look", zap.String("cascade_id", id), zap.Bool("full", full), zap.Strings("dirty", names(p, dueRec.Dirty)), zap.Int("watches", len(watches)))
	if n, err := d.observe(ctx, p, watches, &facts, d.store.askedAt(id, dueRev, dueRec)); err != nil {
		return err
	} else {
		reads += n
	}
	if facts.Tools, err = d.tools.get(ctx); err != nil {
		return err
	}
	if facts.Self, err = d.self.get(ctx, d.deps.Users, d.log); err != nil {
		return err
	}
	// Gather and decide, in rounds; nothing is written until the core has
	// decided.
	var dec cascade.Decision
	var stale []staleClaim
	for round := 0; ; round++ {
		if err := d.holders(ctx, p, st, &facts, &stale); err != nil {
			return err
		}
		cc := cascade.EvaluateControls(p, ctl.records, facts.Workspaces, now)
		dec = cascade.Decide(cascade.Input{Plan: p, Statuses: st, Facts: facts, Controls: cc, Policy: pol, Now: now})
		if dec.Need.Empty() || round == 3 {
			break
		}
		d.log.Debug("a look needs more of TFE", zap.String("cascade_id", id), zap.Int("round", round),
			zap.Strings("workspaces", names(p, dec.Need.Workspaces)), zap.Strings("runs", dec.Need.Runs), zap.Strings("lists", names(p, dec.Need.Lists)),
			zap.Int("outputs", len(dec.Need.Outputs)))
		n, err := d.fetch(ctx, p, dec.Need, &facts)
		if err != nil {
			return err
		}
		reads += n
	}
	d.metrics.looks.Inc()
	d.metrics.reads.Add(float64(reads))
	for _, c := range stale { // a crashed cascade's claims, found while gathering
		if err := d.store.hold(ctx, c.workspace, c.cascade, true); err != nil {
			return err
		}
	}
	for _, r := range dec.Refused {
		d.log.Error("the decision core refused a transition", zap.String("cascade_id", id), zap.String("transition", r))
	}
	// Transitions first, by compare-and-swap: an intent to create a run is
	// stored before the run is created.
	if err := d.write(ctx, l, p, st, revs, dec); err != nil {
		return err
	}
	if err := d.act(ctx, l, p, dec, revs); err != nil {
		return err
	}
	if err := d.index(ctx, p, dec, full); err != nil {
		return err
	}
	if err := d.finishLook(ctx, id, meta, metaRev, dec, full, now); err != nil {
		return err
	}
	return d.store.settleDue(ctx, id, dueRev, dueRec.Dirty, dec.Wake)
}

// write stores the members' changed statuses. A compare-and-swap that
// fails means someone else wrote the member: the lease was lost.
func (d *Dispatcher) write(ctx context.Context, l *lease.Lease, p *cascade.Plan, before []cascade.Status, revs []uint64, dec cascade.Decision) error {
	for _, i := range dec.Changed {
		if _, err := l.Deadline(0); err != nil {
			return err
		}
		m := &p.Members[i]
		s := dec.Statuses[i]
		rev, err := d.store.putMember(ctx, p.ID, m.WorkspaceID, s, revs[i])
		if err != nil {
			if isConflict(err) {
				return fmt.Errorf("member %s of %s changed under this look: %w", m.Name, p.ID, lease.ErrLost)
			}
			return fmt.Errorf("store member %s of %s: %w", m.Name, p.ID, err)
		}
		revs[i] = rev
		if s.RunID != "" && s.RunID != before[i].RunID {
			if err := d.store.recordRun(ctx, s.RunID, runRecord{Cascade: p.ID, Workspace: m.WorkspaceID}); err != nil {
				return err
			}
			if s.Adopted {
				d.metrics.adopted.Inc()
			}
		}
		d.logChange(p, i, before[i], s)
	}
	return nil
}

func (d *Dispatcher) logChange(p *cascade.Plan, i int, before, after cascade.Status) {
	if before.State == after.State && before.Reason == after.Reason && before.RunID == after.RunID {
		return
	}
	m := &p.Members[i]
	d.log.Info("cascade member "+string(after.State), zap.String("cascade_id", p.ID), zap.String("workspace", m.Name),
		zap.String("workspace_id", m.WorkspaceID), zap.String("run_id", after.RunID), zap.String("from", string(before.State)),
		zap.String("reason", after.Reason))
}

// index keeps the workspace index to the members the cascade holds; a full
// look also repairs it, should a crash have left it short.
func (d *Dispatcher) index(ctx context.Context, p *cascade.Plan, dec cascade.Decision, full bool) error {
	for _, i := range dec.Hold {
		if err := d.store.hold(ctx, p.Members[i].WorkspaceID, p.ID, false); err != nil {
			return err
		}
	}
	for _, i := range dec.Release {
		if err := d.store.hold(ctx, p.Members[i].WorkspaceID, p.ID, true); err != nil {
			return err
		}
	}
	if !full {
		return nil
	}
	for i, m := range p.Members {
		done := cascade.Done(p, dec.Statuses, i)
		if slices.Contains(dec.Release, i) {
			continue
		}
		if err := d.store.hold(ctx, m.WorkspaceID, p.ID, done); err != nil {
			return err
		}
	}
	return nil
}

// finishLook updates the cascade's meta: counts, the time of the last full
// look, and, when it is done, its outcome.
func (d *Dispatcher) finishLook(ctx context.Context, id string, meta Meta, rev uint64, dec cascade.Decision, full bool, now time.Time) error {
	counts := map[string]int{}
	saved := 0
	for _, s := range dec.Statuses {
		counts[string(s.State)]++
		if s.Cause == cascade.CauseOutputsUnchanged {
			saved++
		}
	}
	next := meta
	next.Counts, next.RunsSaved = counts, saved
	if full {
		next.LastFull = now
	}
	// A cancelled cascade is done (cancelled) as soon as every member is
	// final, in every view; it is still looked at (Cleanup) while runs
	// already applying can make TFE queue runs in it, or it holds members.
	finished := (dec.Done || dec.Finished) && meta.State == StateRunning
	if finished {
		next.State, next.Outcome, next.FinishedAt = StateDone, dec.Outcome, now
	}
	next.Cleanup = next.State == StateDone && !dec.Done
	if maps.Equal(meta.Counts, next.Counts) && meta.LastFull.Equal(next.LastFull) && meta.State == next.State && meta.RunsSaved == next.RunsSaved &&
		meta.Cleanup == next.Cleanup {
		return nil
	}
	if _, err := d.store.putMeta(ctx, id, next, rev); err != nil {
		if isConflict(err) {
			return fmt.Errorf("meta of %s changed under this look: %w", id, lease.ErrLost)
		}
		return err
	}
	if finished {
		if meta.Reopened == 0 {
			d.metrics.finished.WithLabelValues(string(dec.Outcome)).Inc()
		}
		d.log.Info("cascade finished", zap.String("cascade_id", id), zap.String("root", meta.Root), zap.String("outcome", string(dec.Outcome)),
			zap.Any("members", counts), zap.Int("runs_saved", saved), zap.Duration("took", now.Sub(meta.StartedAt).Round(time.Millisecond)))
	}
	return nil
}

// setAside stops acting on a cascade whose state cannot be read: its
// malformed record was reported; operators decide.
//
// Its holds are let go first: a member's record may be what cannot be
// read, so every workspace the cascade may have held that TFE shows
// locked by the engine, and that no other open cascade holds, is unlocked.
func (d *Dispatcher) setAside(ctx context.Context, l *lease.Lease, p *cascade.Plan, meta Meta, rev, dueRev uint64, cause error) error {
	if err := d.releaseAll(ctx, l, p); err != nil {
		return err
	}
	meta.State, meta.Reason = StateSetAside, cause.Error()
	if _, err := d.store.putMeta(ctx, p.ID, meta, rev); err != nil && !isConflict(err) {
		return err
	}
	return d.store.settleDue(ctx, p.ID, dueRev, nil, time.Time{})
}

// policy is the decision core's policy from the options.
func (d *Dispatcher) policy() cascade.Policy { return d.opts.Policy }

// holders reads, for each member workspace seen and not done (those a
// decision may need it for), the cascades older than p that claim it, and
// tells the core which acts there first (cascade.Holder). The claims of
// cascades that ended without letting go are added to stale, for the look
// to remove once it decided.
func (d *Dispatcher) holders(ctx context.Context, p *cascade.Plan, st []cascade.Status, f *cascade.Facts, stale *[]staleClaim) error {
	for i, m := range p.Members {
		if _, seen := f.Workspaces[m.WorkspaceID]; !seen || cascade.Done(p, st, i) {
			continue
		}
		if _, known := f.HeldBy[m.WorkspaceID]; known {
			continue
		}
		ids, _, err := d.store.owners(ctx, m.WorkspaceID, 0)
		if err != nil {
			return err
		}
		var older []cascade.Claim
		for _, other := range ids {
			if other == p.ID {
				break
			}
			om, _, err := d.store.meta(ctx, other)
			if err != nil && !isMissing(err) && !errors.Is(err, errMalformed) {
				return err
			}
			older = append(older, cascade.Claim{ID: other, Open: err == nil && om.open()})
		}
		holder, ended := cascade.Holder(older)
		f.HeldBy[m.WorkspaceID] = holder
		for _, id := range ended {
			*stale = append(*stale, staleClaim{workspace: m.WorkspaceID, cascade: id})
		}
	}
	return nil
}

// staleClaim is the claim on a workspace of a cascade that ended without
// letting go of it.
type staleClaim struct{ workspace, cascade string }

func names(p *cascade.Plan, ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = p.Name(id)
	}
	return out
}
