package cascade

import "time"

// Watch is a member to look at, and the earliest time (TFE's) a run that
// matters to it can have been created: a read of the workspace list,
// newest current run first, has covered the member once it is past that
// time.
type Watch struct {
	Member int
	Since  time.Time
}

// Observe lists the members to look at before deciding: those events named
// (dirty), those whose state waits on something in TFE (a run to appear, a
// creation to land, a run being stopped outside a hold, a reminder due), and, in a full
// look, every member not done that the cascade can have reached. Members
// no event or timer concerns are left alone: looking costs API calls.
//
// A member still waiting whose upstreams are all waiting too is not
// reached: no upstream of it has run, so TFE's run triggers have queued
// nothing there that the cascade must handle, and the look that makes it
// ready reads it. Watching it would cost a read for each such member (the
// workspace list newest first does not reach back to them) and, in a large
// cascade, keep a full look busy for longer than a run takes to plan.
func Observe(p *Plan, st []Status, dirty func(workspaceID string) bool, full bool, pol Policy, now time.Time) []Watch {
	pol = pol.withDefaults()
	var out []Watch
	for i, m := range p.Members {
		if Done(p, st, i) {
			continue
		}
		s := st[i]
		// A run being stopped in a held member shows in the list of its
		// runs that the hold's release reads (settleStop): reading the
		// workspace too would cost a call for nothing.
		stopping := s.Stopping != "" && !s.Hold.open()
		look := (full && reached(p, st, i)) || dirty(m.WorkspaceID) || stopping || (s.State.Final() && !s.Swept)
		switch s.State {
		case Ready, Dispatching:
			look = true
		case AwaitingApproval:
			look = look || !now.Before(s.Since.Add(time.Duration(s.Alerted+1)*pol.ApprovalReminder))
		}
		if look {
			out = append(out, Watch{Member: i, Since: since(p, st, i)})
		}
	}
	return out
}

// reached says whether the cascade can have reached member i: it has left
// waiting, or one of its upstreams is the root or has.
func reached(p *Plan, st []Status, i int) bool {
	if st[i].State != Waiting {
		return true
	}
	for _, u := range p.Members[i].Upstreams {
		if j := p.Index(u); j < 0 || st[j].State != Waiting {
			return true
		}
	}
	return false
}

// since is the earliest time a run that matters to member i can have been
// created: its own run, a run it is stopping, a run queued once its
// upstreams finished, or, while it waits, a run its upstreams' run
// triggers queue once one of them applies.
func since(p *Plan, st []Status, i int) time.Time {
	s := st[i]
	var t time.Time
	earliest := func(c time.Time) {
		if !c.IsZero() && (t.IsZero() || c.Before(t)) {
			t = c
		}
	}
	earliest(s.StoppingCreatedAt)
	switch {
	case s.RunID != "" && !s.State.Final():
		earliest(s.RunCreatedAt)
	case s.State == Ready:
		earliest(s.ReadyAt)
	case s.State == Dispatching:
		earliest(s.Since)
	default:
		for _, u := range p.Members[i].Upstreams {
			if u == p.Root.WorkspaceID {
				earliest(p.Root.FinishedAt)
				continue
			}
			if us := st[p.Index(u)]; us.RunID != "" {
				earliest(us.RunCreatedAt)
			}
		}
	}
	if t.IsZero() {
		t = p.Root.FinishedAt
	}
	return t
}
