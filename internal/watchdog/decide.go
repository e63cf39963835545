package watchdog

import (
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient/runstatus"
)

// The watchdog's decisions, apart from reading TFE and acting on it: from
// what is known of a run (its status, since when, its workspace), the
// budgets and the clock, what to do about it.

// Action is what the watchdog does about a run.
type Action int

// Actions.
const (
	// None: within budget, or waiting its turn.
	None Action = iota
	// Remind operators: the run waits for a person or for a lock.
	Remind
	// Alert operators without cancelling: a run stuck applying, which
	// cancelling may lose state of.
	Alert
	// Cancel the run: it is stuck.
	Cancel
)

// Facts are what is known of a run when it is judged.
type Facts struct {
	Status  string
	Entered time.Time // when it entered its status
	// HeldByPerson: its workspace is locked by a person or team (not by
	// a run). A pending run behind such a lock waits for a person.
	HeldByPerson bool
	// HeldByRun: another run holds its workspace; a pending run waits its
	// turn.
	HeldByRun bool
	// The workspace's averages, which set the planning and applying
	// budgets.
	PlanAvg, ApplyAvg time.Duration
}

// Verdict is what to do about a run, and why.
type Verdict struct {
	Action Action
	Group  Group
	Age    time.Duration
	Budget time.Duration
	// Why a run waits, for reminders: "waits for a person" or "is queued
	// behind a locked workspace".
	Why string
}

// Judge decides about one run.
func Judge(f Facts, b Budgets, allowApplying bool, now time.Time) Verdict {
	group, active := GroupOf(f.Status)
	if !active {
		return Verdict{}
	}
	v := Verdict{Group: group, Age: now.Sub(f.Entered)}
	if f.Status == runstatus.Pending {
		switch {
		case f.HeldByPerson:
			v.Group, v.Why = GroupAwaiting, "is queued behind a locked workspace"
		case f.HeldByRun:
			return v // waiting its turn behind another run: not stuck
		}
	}
	v.Budget = b.For(v.Group, f.PlanAvg, f.ApplyAvg)
	if v.Age <= v.Budget {
		return v
	}
	switch {
	case v.Group == GroupAwaiting:
		v.Action = Remind
		if v.Why == "" {
			v.Why = "waits for a person"
		}
	case v.Group == GroupApplying && !allowApplying:
		v.Action = Alert
	default:
		v.Action = Cancel
	}
	return v
}

// MayBeOver reports whether a run could be over its budget whatever its
// workspace says: with no history a budget is at its smallest, so a run
// younger than that needs no read of its workspace.
func MayBeOver(status string, entered time.Time, b Budgets, now time.Time) bool {
	group, active := GroupOf(status)
	if !active {
		return false
	}
	least := b.For(group, 0, 0)
	if status == runstatus.Pending {
		least = min(least, b.For(GroupAwaiting, 0, 0))
	}
	return now.Sub(entered) > least
}
