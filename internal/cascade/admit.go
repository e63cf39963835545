package cascade

import (
	"fmt"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/graph"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient/runstatus"
)

// Events are hints (C12): they say where to look, never what happened.
// This file decides what an event is worth: a look at the cascades that
// hold its workspace (Relevant), and whether its run starts a cascade
// (StartsCascade, AdmitRoot). The shell reads what these ask for and acts
// on what they answer.

// Event is a run event as the shell read it from the stream: what a
// notification says happened, to be checked against TFE before anything
// depends on it.
type Event struct {
	RunID         string
	WorkspaceID   string
	WorkspaceName string
	Organization  string
	Status        string
}

// StartsCascade reports whether an event's run status may start a cascade
// (C1): applied, or, when configured (noChangesStarts), finished with no
// changes.
func StartsCascade(status string, noChangesStarts bool) bool {
	return status == runstatus.Applied || (noChangesStarts && status == runstatus.PlannedAndFinished)
}

// Relevant reports whether an event about a member's workspace can change
// a decision of the cascade that holds it: news of a run other than the
// member's own, or of its own run finishing or stopping for a person. The
// member's own run moving between planning and applying changes nothing;
// it is read anyway when the cascade is next looked at. member is the
// member's stored status; nil when there is none, or it cannot be read
// (then every event is worth a look).
func Relevant(member *Status, ev Event) bool {
	if member == nil {
		return true
	}
	if member.Stopping == ev.RunID && (ev.Status == runstatus.Canceled || ev.Status == runstatus.Discarded) {
		// The run the cascade stopped ended as it should; a held member's
		// release waits on it.
		return member.Hold == HoldHeld
	}
	if member.RunID != ev.RunID || Final(ev.Status) {
		return true
	}
	// Its own run stopped after its plan: for a person, or, with
	// auto-apply, on its way to apply; the look tells which.
	return (&Run{Status: ev.Status}).awaitsPerson()
}

// RootPolicy is what an operator set about roots.
type RootPolicy struct {
	// NoChangesStarts: a run that finished with no changes starts a
	// cascade too (--no-changes-starts-cascade).
	NoChangesStarts bool
	// MaxAge: a run that applied longer ago than this starts no cascade,
	// however late its event comes (--root-max-age).
	MaxAge time.Duration
}

// RootFacts are what is known about an event's run when deciding whether
// it starts a cascade. The shell reads them in the order AdmitRoot asks
// (cheap ones first, TFE last); a fact not read yet is nil.
type RootFacts struct {
	Event Event
	// Claimed: open cascades hold the event's workspace.
	Claimed bool
	// Recorded: the run is recorded as a cascade's run (run.<run>).
	Recorded *bool
	// Started: a cascade from this root was started before (its plan is
	// stored).
	Started *bool
	// Handled: the root was handled before without a cascade (root.<run>).
	Handled *bool
	// Run is the run as TFE reports it, and where TFE has it.
	Run *RootRun
	// Closure is the root's closure as resolved from TFE's run triggers.
	Closure *graph.Plan
}

// RootRun is the run an event names, as TFE reports it.
type RootRun struct {
	Run
	// Where TFE has the run.
	WorkspaceID, WorkspaceName, Organization string
}

// AdmissionKind is what becomes of an event's run.
type AdmissionKind string

// Admissions.
const (
	// AdmitIgnore: the run is not a root, or not yet; nothing is recorded
	// and a later event may start its cascade. Reason says why, when there
	// is something worth telling.
	AdmitIgnore AdmissionKind = "ignore"
	// AdmitNeed: read Need, then ask again.
	AdmitNeed AdmissionKind = "need"
	// AdmitResume: the root's cascade was started before; a crash may have
	// left it half made, so make sure it is whole.
	AdmitResume AdmissionKind = "resume"
	// AdmitRefuse: the event contradicts TFE (Reason); drop it and alert.
	AdmitRefuse AdmissionKind = "refuse"
	// AdmitRecord: the root is handled without a cascade, for Reason:
	// record that, so that no replay starts one.
	AdmitRecord AdmissionKind = "record"
	// AdmitStart: start the cascade of Root.
	AdmitStart AdmissionKind = "start"
)

// RootNeed names a fact AdmitRoot lacks.
type RootNeed string

// Facts about a root, in the order they are asked for.
const (
	NeedRecorded RootNeed = "recorded"
	NeedStarted  RootNeed = "started"
	NeedHandled  RootNeed = "handled"
	NeedRun      RootNeed = "run"
	NeedClosure  RootNeed = "closure"
)

// Admission is what AdmitRoot decided.
type Admission struct {
	Kind   AdmissionKind
	Need   RootNeed
	Reason string
	// Warn: operators should hear of it (a log warning), not only see it.
	Warn bool
	// Root is the checked root, once TFE confirmed the run (for
	// NeedClosure, AdmitRecord of a root too old or with nothing
	// downstream, and AdmitStart).
	Root Root
}

// Reasons a root is recorded as handled without a cascade (the value of
// its root.<run> record).
const (
	RootTooOld       = "applied too long ago"
	RootNoDownstream = "nothing downstream"
)

// AdmitRoot decides whether an event's run starts a cascade (C1, C12): a
// run TFE confirms applied (or, when configured, finished with no
// changes), in the workspace and organization the event names, within
// MaxAge, not a cascade's own run, in a workspace no open cascade holds,
// with something downstream. A root is handled once, however late a
// replay comes. When a fact is missing, it asks for it (AdmitNeed).
func AdmitRoot(f RootFacts, pol RootPolicy, now time.Time) Admission {
	ev := f.Event
	switch {
	case !StartsCascade(ev.Status, pol.NoChangesStarts):
		return Admission{Kind: AdmitIgnore}
	case f.Claimed:
		return Admission{Kind: AdmitIgnore, Reason: "a run applied in a workspace an open cascade holds: it starts no cascade of its own"}
	case f.Recorded == nil:
		return Admission{Kind: AdmitNeed, Need: NeedRecorded}
	case *f.Recorded:
		return Admission{Kind: AdmitIgnore, Reason: "a cascade's own run: its downstream is in that cascade"}
	case f.Started == nil:
		return Admission{Kind: AdmitNeed, Need: NeedStarted}
	case *f.Started:
		return Admission{Kind: AdmitResume}
	case f.Handled == nil:
		return Admission{Kind: AdmitNeed, Need: NeedHandled}
	case *f.Handled:
		return Admission{Kind: AdmitIgnore}
	case f.Run == nil:
		return Admission{Kind: AdmitNeed, Need: NeedRun}
	}
	r := f.Run
	if r.WorkspaceID != ev.WorkspaceID || r.Organization != ev.Organization {
		return Admission{Kind: AdmitRefuse, Reason: fmt.Sprintf("an event says run %s applied in %s/%s (%s), but TFE has it in %s/%s (%s): no cascade starts",
			ev.RunID, ev.Organization, ev.WorkspaceName, ev.WorkspaceID, r.Organization, r.WorkspaceName, r.WorkspaceID)}
	}
	if _, ours := OfMessage(r.Message); ours {
		return Admission{Kind: AdmitIgnore, Reason: "a cascade's own run: its downstream is in that cascade"}
	}
	if !StartsCascade(r.Status, pol.NoChangesStarts) {
		return Admission{Kind: AdmitIgnore, Reason: "an event says a run finished, TFE says " + r.Status + ": no cascade starts yet"}
	}
	finished := r.StatusAt
	if finished.IsZero() {
		finished = now // later than TFE's: what follows waits longer, never less
	}
	root := Root{WorkspaceID: ev.WorkspaceID, WorkspaceName: r.WorkspaceName, RunID: ev.RunID, FinishedAt: finished, Status: r.Status}
	switch age := now.Sub(finished); {
	case age > pol.MaxAge:
		return Admission{Kind: AdmitRecord, Reason: RootTooOld, Warn: true, Root: root}
	case f.Closure == nil:
		return Admission{Kind: AdmitNeed, Need: NeedClosure, Root: root}
	case len(f.Closure.Layers) == 1 && len(f.Closure.Blocked) == 0:
		return Admission{Kind: AdmitRecord, Reason: RootNoDownstream, Root: root}
	}
	return Admission{Kind: AdmitStart, Root: root}
}
