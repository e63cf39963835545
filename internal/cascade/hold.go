package cascade

import "fmt"

// Holds (C13). TFE's run triggers queue a run in a member each time one of
// its upstreams applies. In a member with several upstreams every run but
// the last is queued too early, and in a member on a cycle every run is;
// with auto-apply-run-trigger such a run plans and applies on its own. To
// stop it in time by looking would need a look faster than TFE plans, which
// rate limits, backlogs and a slow NATS make false for any run length.
//
// So the cascade holds such a member instead: from its first look, it locks
// the member's workspace as the engine's user, with a reason naming the
// cascade and what it waits for. TFE starts no run in a locked workspace:
// a run queued too early waits pending, however late the next look comes,
// until the cascade has stopped it. The cascade lets go once nothing early
// is left there: the member's upstreams all finished, its own run (if it
// has one) is known, and every other run the cascade's triggers queued in
// it has ended. Its own run, pending behind the lock, then starts.
//
// The trade-off: a person cannot start a run in a held workspace while the
// cascade waits for its upstreams (the lock says why and for whom), and a
// hold costs two API calls (lock, unlock). A hold is released on every path
// that ends the member (done, cancelled, failed, blocked, skipped), and a
// member is not done while its hold is open. A person who force-unlocks a
// held workspace has decided: the cascade reports it and does not lock the
// workspace again (runs queued too early are then stopped when looks find
// them). Two cases a hold cannot cover: runs queued by the root's own
// apply are in TFE before any look, and a member a person (or another
// run) holds when the cascade reaches it cannot be locked; runs queued too
// early there are stopped while they wait behind that lock, as far as
// looks find them before it goes.

// holdable reports whether member i is one the cascade holds: TFE's run
// triggers may queue a run in it before it may run (or at all, in a
// cascade cancelled with its runs), and such a run would
// apply on its own (its workspace auto-applies run-trigger runs, or was not
// read yet). One that waits for a person is stopped when a look finds it:
// holding it would cost four API calls for nothing.
func (d *decider) holdable(i int) bool {
	m := &d.p.Members[i]
	if ws, seen := d.in.Facts.Workspaces[m.WorkspaceID]; seen && !ws.Missing && !ws.AutoApplyRunTrigger {
		return false
	}
	return !d.pol.NoHolds && d.in.Facts.Self != "" && !d.p.DryRun && d.in.Facts.HeldBy[m.WorkspaceID] == "" &&
		(len(m.Upstreams) > 1 || m.Cycle != "" || (d.in.Controls.Cancelled != "" && d.in.Controls.CancelRuns))
}

// mine reports whether the engine's user holds the workspace's lock.
func (d *decider) mine(ws Workspace) bool { return lockedBy(ws, d.in.Facts.Self) }

// hold takes, keeps and lets go of the cascade's hold on member i.
func (d *decider) hold(i int) {
	m := &d.p.Members[i]
	s := d.next[i]
	ws, seen := d.in.Facts.Workspaces[m.WorkspaceID]
	switch s.Hold {
	case HoldNone:
		if !d.holdable(i) || !d.early(i) {
			return
		}
		s.Hold = HoldTaking
		d.set(i, s)
		d.out.Actions = append(d.out.Actions, Action{Kind: ActHold, Member: m.WorkspaceID, Message: d.holdReason(i)})
		if seen && ws.Locked && !d.mine(ws) {
			d.needList(i) // the lock will fail: find what waits behind the one there
		}
	case HoldTaking:
		switch {
		case d.in.Facts.HeldBy[m.WorkspaceID] != "":
			// An older cascade holds it and acts in it first: the lock
			// there is that cascade's.
			s.Hold = HoldNone
			d.set(i, s)
		case !seen:
			d.needWorkspace(i) // the lock's answer was lost: TFE tells
		case d.mine(ws):
			s.Hold = HoldHeld
			d.set(i, s)
			d.release(i)
		case !d.early(i):
			s.Hold = HoldReleased // never taken, and no longer needed
			d.set(i, s)
		case !ws.Locked:
			d.out.Actions = append(d.out.Actions, Action{Kind: ActHold, Member: m.WorkspaceID, Message: d.holdReason(i)})
		default:
			// A run or a person holds it now. Runs queued too early wait
			// behind that, where only a list of the workspace's runs shows
			// them: they are stopped while they wait, and the lock is
			// tried again later.
			d.needList(i)
			d.wakeIn(d.pol.Soon)
		}
	case HoldHeld:
		if seen && !d.mine(ws) {
			s.Hold = HoldLifted
			d.set(i, s)
			who := "someone"
			if ws.LockedBy != "" {
				who = ws.LockedBy
			}
			d.alert(i, Notice{Kind: AlertHoldLifted, Severity: SeverityWarning,
				Message: fmt.Sprintf("cascade %s held %s until %s finished, and %s unlocked it: the cascade respects that and does not lock it again; runs TFE queues there too early are stopped when the cascade sees them",
					d.p.ID, m.Name, d.p.upstreamNames(i), who),
				Key: "hold-lifted/" + d.p.ID + "/" + m.WorkspaceID})
			return
		}
		d.release(i)
	case HoldReleasing:
		d.out.Actions = append(d.out.Actions, Action{Kind: ActRelease, Member: m.WorkspaceID})
		d.wakeIn(d.pol.Soon)
	}
}

// release lets go of a held member once nothing early is left in it.
func (d *decider) release(i int) {
	if !d.releasable(i) {
		return
	}
	s := d.next[i]
	s.Hold = HoldReleasing
	d.set(i, s)
	d.out.Actions = append(d.out.Actions, Action{Kind: ActRelease, Member: d.p.Members[i].WorkspaceID})
	d.wakeIn(d.pol.Soon)
}

// early reports whether the cascade's run triggers may still queue a run in
// member i before it may run: some upstream has not finished, or it never
// runs and some upstream is still going.
func (d *decider) early(i int) bool {
	s := d.next[i]
	switch {
	case handsOff(s, d.in.Controls):
		return false
	case s.State == Waiting:
		return true
	}
	return s.State.Final() && !d.upstreamsQuiet(i)
}

// releasable reports whether nothing of the cascade can still start a run
// too early in member i: its upstreams finished, its own run (if any) is
// known, and every run the cascade's triggers queued there is either that
// run or ended. With read, it asks for the list of the member's runs that
// tells.
func (d *decider) releasable(i int) bool {
	m := &d.p.Members[i]
	s := d.next[i]
	switch {
	case handsOff(s, d.in.Controls):
		return true // the cascade leaves the workspace alone
	case s.State == Waiting, s.State == Ready, s.State == Dispatching:
		return false
	case !d.upstreamsQuiet(i):
		return false
	case s.Stopping != "":
		d.wakeIn(d.pol.Soon) // settleStop reads what the release needs
		return false
	}
	runs, listed := d.in.Facts.Lists[m.WorkspaceID]
	if !listed {
		d.needList(i)
		return false
	}
	for _, r := range runs {
		id, ours := OfMessage(r.Message)
		ours = ours && id == d.p.ID
		if (r.Native() || ours) && r.ID != s.RunID && !Final(r.Status) && d.inWindow(i, r) {
			if _, seen := d.in.Facts.Workspaces[m.WorkspaceID]; !seen {
				// strays stops it only once the workspace is seen (who
				// acts there first is known then): a look that read only
				// the list would wait on it for ever.
				d.needWorkspace(i)
			}
			d.wakeIn(d.pol.Soon) // being stopped
			return false
		}
	}
	return true
}

func (d *decider) holdReason(i int) string {
	m := &d.p.Members[i]
	if m.Cycle != "" {
		return fmt.Sprintf("held by cascade %s: %s does not run in it (%s); the lock keeps the runs TFE's run triggers queue here from starting until the cascade has stopped them", d.p.ID, m.Name, m.Cycle)
	}
	return fmt.Sprintf("held by cascade %s: %s runs once, after %s finished; the lock keeps the runs TFE's run triggers queue here earlier from starting until the cascade has stopped them", d.p.ID, m.Name, d.p.upstreamNames(i))
}

// AfterHold is member i's status once the shell knows how its lock went:
// taken (TFE locked the workspace for the engine), or not known (any error:
// the next decision reads the workspace).
func AfterHold(st []Status, i int, taken bool) Status {
	s := st[i]
	if taken && s.Hold == HoldTaking {
		s.Hold = HoldHeld
	}
	return s
}

// AfterRelease is member i's status once the shell knows how its unlock
// went: gone (TFE unlocked it, or it was not locked by the engine any
// more), or not known (the next decision tries again).
func AfterRelease(st []Status, i int, gone bool) Status {
	s := st[i]
	if gone && s.Hold == HoldReleasing {
		s.Hold = HoldReleased
	}
	return s
}
