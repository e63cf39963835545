package tfeclient

import (
	"time"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient/runstatus"
)

// statusTimestamps maps the statuses whose entry time the orchestrator
// reads to the field of go-tfe's status timestamps that holds it. A status
// not listed has no time of its own to the orchestrator: the engine takes
// its own clock for it, the watchdog the run's creation.
var statusTimestamps = map[string]func(*tfe.RunStatusTimestamps) time.Time{
	runstatus.PlanQueued:         func(ts *tfe.RunStatusTimestamps) time.Time { return ts.PlanQueuedAt },
	runstatus.Planning:           func(ts *tfe.RunStatusTimestamps) time.Time { return ts.PlanningAt },
	runstatus.Planned:            func(ts *tfe.RunStatusTimestamps) time.Time { return ts.PlannedAt },
	runstatus.CostEstimated:      func(ts *tfe.RunStatusTimestamps) time.Time { return ts.CostEstimatedAt },
	runstatus.PolicyChecked:      func(ts *tfe.RunStatusTimestamps) time.Time { return ts.PolicyCheckedAt },
	runstatus.Confirmed:          func(ts *tfe.RunStatusTimestamps) time.Time { return ts.ConfirmedAt },
	runstatus.PlannedAndFinished: func(ts *tfe.RunStatusTimestamps) time.Time { return ts.PlannedAndFinishedAt },
	runstatus.ApplyQueued:        func(ts *tfe.RunStatusTimestamps) time.Time { return ts.ApplyQueuedAt },
	runstatus.Applying:           func(ts *tfe.RunStatusTimestamps) time.Time { return ts.ApplyingAt },
	runstatus.Applied:            func(ts *tfe.RunStatusTimestamps) time.Time { return ts.AppliedAt },
	runstatus.Discarded:          func(ts *tfe.RunStatusTimestamps) time.Time { return ts.DiscardedAt },
	runstatus.Errored:            func(ts *tfe.RunStatusTimestamps) time.Time { return ts.ErroredAt },
	runstatus.Canceled:           func(ts *tfe.RunStatusTimestamps) time.Time { return ts.CanceledAt },
	runstatus.ForceCanceled:      func(ts *tfe.RunStatusTimestamps) time.Time { return ts.ForceCanceledAt },
}

// StatusAt is when a run in status entered it, by TFE's status
// timestamps: zero when TFE did not say (ts nil, or the field empty) and
// for a status whose time the orchestrator does not read.
func StatusAt(status tfe.RunStatus, ts *tfe.RunStatusTimestamps) time.Time {
	at, ok := statusTimestamps[string(status)]
	if ts == nil || !ok {
		return time.Time{}
	}
	return at(ts)
}
