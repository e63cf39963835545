package cascade

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Operators' controls: the shell reads their records (ControlRecords);
// EvaluateControls turns them into the Controls a decision honours, and
// Guard, Retriable, WhyNotRetriable and Unblocks judge an operator's
// request against a cascade before it is stored.

// Freeze is a window during which no cascade dispatches: in Organization,
// or everywhere when it is empty.
type Freeze struct {
	Organization string
	Start, End   time.Time
	By, Why      string
}

// Phases of a freeze window.
const (
	FreezeUpcoming = "upcoming"
	FreezeInForce  = "in_force"
	FreezeOver     = "over"
)

// Phase says whether a freeze window is upcoming, in force (from its start,
// up to its end) or over at time now.
func (f Freeze) Phase(now time.Time) string {
	switch {
	case now.Before(f.Start):
		return FreezeUpcoming
	case now.Before(f.End):
		return FreezeInForce
	}
	return FreezeOver
}

// Exclusion keeps cascades out of the workspaces it names: by Name, or by
// Tag, in Organization or everywhere.
type Exclusion struct {
	Organization string
	Name, Tag    string
	By, Why      string
	At           time.Time
}

// ControlRecords are the operators' records that concern one cascade, as
// the shell read them. A decision is described "who: why".
type ControlRecords struct {
	// Unreadable, when set, says that a control record cannot be read, and
	// why. The shell stops reading at that record: what it read before
	// still counts.
	Unreadable string
	// Pause and OrgPause describe the pauses in force everywhere and in
	// the cascade's organization; empty when there is none.
	Pause, OrgPause string
	Freezes         []Freeze
	// Cancelled describes the cancel of the cascade; with CancelRuns, its
	// runs that have not started applying are stopped too.
	Cancelled  string
	CancelRuns bool
	Exclusions []Exclusion
	// Retries are operators' requests to run a member again: workspace ID
	// → the request's ID. The shell passes none when their record cannot
	// be read: a retry is a request, not a brake.
	Retries map[string]string
	// GuardLimit is the blast-radius guard's limit (--guard-limit; 0: no
	// guard); ApprovedBy describes the approval that let the cascade go,
	// when there is one (the shell reads it only when Guard asks).
	GuardLimit int
	ApprovedBy string
}

// EvaluateControls turns the operators' records into the controls a
// decision about cascade p honours at time now. seen are the member
// workspaces read from TFE so far: an exclusion by tag applies to those.
//
//   - A pause (everywhere, or in the cascade's organization) keeps members
//     from starting; so does a freeze window in force, which says until
//     when. ResumeAt is when the first window in force ends or the next one
//     begins: the cascade is looked at then.
//   - A control record that cannot be read pauses the cascade: better
//     stopped than run against an operator's wish.
//   - An exclusion (by name, or by tag once the workspace is seen) of the
//     cascade's organization or of every one keeps the member from running.
//   - The blast-radius guard holds a cascade of more members than its
//     limit until an operator approves it.
func EvaluateControls(p *Plan, r ControlRecords, seen map[string]Workspace, now time.Time) Controls {
	c := Controls{Cancelled: r.Cancelled, CancelRuns: r.CancelRuns, Retries: r.Retries}
	for _, why := range []string{r.Pause, r.OrgPause} {
		if why != "" {
			c.Paused = why
		}
	}
	for _, f := range r.Freezes {
		if !inScope(f.Organization, p.Organization) {
			continue
		}
		switch f.Phase(now) {
		case FreezeInForce:
			c.Paused = fmt.Sprintf("freeze window until %s (%s: %s)", f.End.Format(time.RFC3339), f.By, f.Why)
			c.ResumeAt = earliest(c.ResumeAt, f.End)
		case FreezeUpcoming:
			c.ResumeAt = earliest(c.ResumeAt, f.Start)
		}
	}
	if r.Unreadable != "" {
		c.Paused = "a control record cannot be read (" + r.Unreadable + ")"
	}
	exclude := func(ws, why string) {
		if c.Excluded == nil {
			c.Excluded = map[string]string{}
		}
		c.Excluded[ws] = why
	}
	for _, m := range p.Members {
		for _, x := range r.Exclusions {
			if inScope(x.Organization, p.Organization) && x.Name != "" && x.Name == m.Name {
				exclude(m.WorkspaceID, x.By+": "+x.Why)
			}
		}
	}
	for _, m := range p.Members {
		w, ok := seen[m.WorkspaceID]
		if !ok {
			continue
		}
		for _, x := range r.Exclusions {
			if inScope(x.Organization, p.Organization) && x.Tag != "" && slices.Contains(w.Tags, strings.ToLower(x.Tag)) {
				exclude(m.WorkspaceID, x.By+": "+x.Why+" (tag "+x.Tag+")")
			}
		}
	}
	if held, why := Guard(len(p.Members), r.GuardLimit, r.ApprovedBy); held {
		c.Held = why
	}
	return c
}

// inScope reports whether a control of org (everywhere when empty)
// concerns a cascade in cascadeOrg.
func inScope(org, cascadeOrg string) bool { return org == "" || org == cascadeOrg }

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// Guard says whether the blast-radius guard holds a cascade of members
// members, with limit (0: no guard) and the approval that let it go
// (approvedBy, empty when none), and why it does or does not.
func Guard(members, limit int, approvedBy string) (holds bool, why string) {
	switch {
	case limit == 0:
		return false, "there is no guard (--guard-limit is 0)"
	case members <= limit:
		return false, fmt.Sprintf("%d members, no more than %d", members, limit)
	case approvedBy != "":
		return false, "approved already by " + approvedBy
	}
	return true, fmt.Sprintf("%d members, more than %d: waiting for an operator's go", members, limit)
}

// Retriable reports whether an operator may run a member again: only a
// member that failed, or that is blocked because it cannot run
// (preflight) or TFE refused its run. A member blocked because an
// upstream failed resumes when that upstream is retried.
func Retriable(s Status) bool { return retriable(s) }

// WhyNotRetriable says why member i cannot be retried, pointing at what
// can be when its upstream blocked it; empty when it can.
func WhyNotRetriable(p *Plan, st []Status, i int) string {
	s, name := st[i], p.Members[i].Name
	if retriable(s) {
		return ""
	}
	if s.State == Blocked && s.Cause == CauseUpstream {
		// The members to retry: up its blocked upstreams to those that
		// failed (or cannot go on for another cause).
		var retry []string
		seen := map[int]bool{}
		var up func(k int)
		up = func(k int) {
			for _, u := range p.Members[k].Upstreams {
				j := p.Index(u)
				if j < 0 || seen[j] || (st[j].State != Failed && st[j].State != Blocked) {
					continue
				}
				seen[j] = true
				if st[j].State == Blocked && st[j].Cause == CauseUpstream {
					up(j)
				} else {
					retry = append(retry, p.Members[j].Name)
				}
			}
		}
		up(i)
		return fmt.Sprintf("%s is blocked by its upstream (%s): retry %s, and it resumes", name, s.Reason, strings.Join(retry, ", "))
	}
	state := string(s.State)
	if s.Retry != "" && s.State == Waiting {
		state += " (retried already)"
	}
	return fmt.Sprintf("%s is %s: only a failed or blocked member can be retried", name, state)
}

// Unblocks names the members a retry of member i resumes: those blocked
// by an upstream whose failed or blocked upstreams all run again.
func Unblocks(p *Plan, st []Status, i int) []string {
	again := map[int]bool{i: true}
	stuck := func(j int) bool {
		return !again[j] && (st[j].State == Failed || st[j].State == Blocked)
	}
	out := []string{}
	for changed := true; changed; {
		changed = false
		for j, m := range p.Members {
			if again[j] || st[j].State != Blocked || st[j].Cause != CauseUpstream {
				continue
			}
			free := true
			for _, u := range m.Upstreams {
				if k := p.Index(u); k >= 0 && stuck(k) {
					free = false
					break
				}
			}
			if free {
				again[j], changed = true, true
				out = append(out, m.Name)
			}
		}
	}
	return out
}
