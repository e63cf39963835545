// Package cascade is the decision core of the cascade engine: what a
// cascade is, the states its members go through, and Decide, the one
// function that turns what was observed in TFE into state transitions,
// actions to take and the time to look again.
//
// It does no I/O: no NATS, no go-tfe, no clock reads; run statuses are
// TFE's vocabulary (internal/tfeclient/runstatus, which imports nothing).
// The dispatcher is the
// shell around it: it reads TFE, calls Decide, stores the transitions and
// carries out the actions. Everything the cascade rules say
// (docs/design.md, C1–C14) is decided here and tested here, with tables and
// with property tests on random graphs against a small model of TFE:
// besides Decide, what an event is worth and whether its run is a root
// (Relevant, AdmitRoot), what operators' controls mean (EvaluateControls,
// Guard, the retry rules), which of overlapping cascades acts first
// (Holder), and what a cascade set aside lets go of (ReleaseSetAside).
//
// What Decide guarantees, given facts that are true of TFE:
//
//   - Order (C3): a member's run is created, or a run TFE queued in it is
//     taken as its run, only when it was created after every upstream of the
//     member in the cascade finished.
//   - Once (C2, C7): a member has at most one run. Runs TFE's native run
//     triggers queue in a member before its upstreams finished, or in a
//     member that will not run, are stopped (discarded, or cancelled once
//     planning) while that is still safe; one that is already applying is
//     reported, never cancelled.
//   - What TFE would have done (C10, C11): a cascade run applies on its own
//     exactly when the apply policy says so; a run waiting for a person is a
//     state of its own, reminded after a budget; a member whose upstreams
//     all finished without changes is skipped (unless configured to run).
//   - Output gating (RunWhenOutputs, or a member's tag): a member runs
//     when an upstream that applied changed an output, and is skipped only
//     when every such upstream's outputs were compared and none changed;
//     where they cannot be, it runs and its Gate says why. While a
//     comparison waits on TFE, a run TFE queued in it that would apply on
//     its own is stopped.
//   - Progress: every member that is not final has a reason, and Decide
//     always says when to look again while anything is open, so a lost
//     webhook delays a cascade and never stalls it.
//
// The transition table (Transitions) lists every state change Decide may
// make; a test holds it to that.
package cascade

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/graph"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient/runstatus"
)

// Plan is a cascade as it was fixed when it started: its root and its
// members in dispatch order. It never changes.
type Plan struct {
	ID           string    `json:"id"`
	Organization string    `json:"organization"`
	Root         Root      `json:"root"`
	StartedAt    time.Time `json:"started_at"`
	DryRun       bool      `json:"dry_run,omitempty"`
	// Cycles inside the closure, by workspace names: "app → db → app".
	Cycles []string `json:"cycles,omitempty"`
	// Members in dispatch order: by layer, then name; the members a cycle
	// blocks come last.
	Members []Member `json:"members"`

	index map[string]int // workspace ID → position in Members
}

// Root is the run whose apply started the cascade, as TFE reported it.
type Root struct {
	WorkspaceID   string `json:"workspace_id"`
	WorkspaceName string `json:"workspace_name"`
	RunID         string `json:"run_id"`
	// FinishedAt is when the root run applied (or finished with no
	// changes), in TFE's time.
	FinishedAt time.Time `json:"finished_at"`
	// Status is the root run's final status: applied, or
	// planned_and_finished for a cascade started on purpose by a run with
	// no changes, which counts as changed for its downstream but fires no
	// run trigger in TFE.
	Status string `json:"status"`
}

// fired reports whether TFE's run triggers fired from the root's run.
func (r Root) fired() bool { return r.Status == runstatus.Applied }

// Member is a workspace of the cascade other than the root.
type Member struct {
	WorkspaceID string `json:"workspace_id"`
	Name        string `json:"name"`
	Layer       int    `json:"layer"`
	// Upstreams are the workspaces whose runs must finish before this one
	// runs: its sources inside the closure, the root included.
	Upstreams []string `json:"upstreams"`
	// Cycle, when set, says why the member can never run: it sits on a
	// run-trigger cycle or depends on one.
	Cycle string `json:"cycle,omitempty"`
}

// ID derives a cascade's ID from its root run's.
func ID(rootRunID string) string { return "c-" + rootRunID }

// Marker is the prefix of the message of every run a cascade creates: the
// run carries it to TFE and back, so a run created by an attempt whose
// outcome was lost is recognised.
func Marker(cascadeID string) string { return "cascade " + cascadeID + ":" }

// OfMessage returns the cascade ID a run message's marker names.
func OfMessage(msg string) (string, bool) {
	rest, ok := strings.CutPrefix(msg, "cascade ")
	if !ok {
		return "", false
	}
	id, _, ok := strings.Cut(rest, ":")
	if !ok || !strings.HasPrefix(id, "c-") || strings.ContainsAny(id, " \t") {
		return "", false
	}
	return id, true
}

// NewPlan turns the graph's plan of a cascade into a cascade plan.
func NewPlan(g *graph.Graph, gp *graph.Plan, root Root, org string, startedAt time.Time, dryRun bool) *Plan {
	p := &Plan{ID: ID(root.RunID), Organization: org, Root: root, StartedAt: startedAt, DryRun: dryRun}
	for i, layer := range gp.Layers[1:] {
		for _, id := range layer {
			p.Members = append(p.Members, Member{WorkspaceID: id, Name: g.Name(id), Layer: i + 1, Upstreams: slices.Clone(gp.Barriers[id])})
		}
	}
	for _, cy := range gp.Cycles {
		p.Cycles = append(p.Cycles, cy.Names(g))
	}
	last := len(gp.Layers)
	for _, b := range gp.Blocked {
		why := "downstream of run-trigger cycle " + b.Cycle.Names(g)
		if b.OnCycle {
			why = "on run-trigger cycle " + b.Cycle.Names(g)
		}
		p.Members = append(p.Members, Member{WorkspaceID: b.ID, Name: g.Name(b.ID), Layer: last, Upstreams: slices.Clone(gp.Barriers[b.ID]), Cycle: why})
	}
	slices.SortStableFunc(p.Members, func(a, b Member) int {
		if a.Layer != b.Layer {
			return a.Layer - b.Layer
		}
		return strings.Compare(a.Name, b.Name)
	})
	p.buildIndex()
	return p
}

// Index returns the position of workspace id among the members, or -1.
// It reads an index built by NewPlan and Validate; a plan made otherwise
// is searched.
func (p *Plan) Index(id string) int {
	if p.index == nil {
		for i, m := range p.Members {
			if m.WorkspaceID == id {
				return i
			}
		}
		return -1
	}
	if i, ok := p.index[id]; ok {
		return i
	}
	return -1
}

// buildIndex makes Index fast. A plan is shared by goroutines once built,
// so the index is made before, never lazily.
func (p *Plan) buildIndex() {
	p.index = make(map[string]int, len(p.Members))
	for i, m := range p.Members {
		p.index[m.WorkspaceID] = i
	}
}

// Name returns the name of a member or of the root.
func (p *Plan) Name(id string) string {
	if id == p.Root.WorkspaceID {
		return p.Root.WorkspaceName
	}
	if i := p.Index(id); i >= 0 {
		return p.Members[i].Name
	}
	return id
}

// Downstream returns the positions of the members that wait on member i.
func (p *Plan) Downstream(i int) []int {
	id := p.Members[i].WorkspaceID
	var out []int
	for j, m := range p.Members {
		if slices.Contains(m.Upstreams, id) {
			out = append(out, j)
		}
	}
	return out
}

// Validate checks a plan read back from storage: it must be well formed
// before anything is decided from it.
func (p *Plan) Validate() error {
	switch {
	case !strings.HasPrefix(p.ID, "c-") || p.ID != ID(p.Root.RunID):
		return fmt.Errorf("plan %q: ID does not match its root run %q", p.ID, p.Root.RunID)
	case p.Organization == "" || p.Root.WorkspaceID == "":
		return fmt.Errorf("plan %s: organization or root workspace missing", p.ID)
	case p.StartedAt.IsZero():
		return fmt.Errorf("plan %s: no start time", p.ID)
	}
	p.index = nil // checked by search: the members may be out of order or repeated
	seen := make(map[string]bool, len(p.Members)+1)
	seen[p.Root.WorkspaceID] = true
	for _, m := range p.Members {
		if m.WorkspaceID == "" || seen[m.WorkspaceID] {
			return fmt.Errorf("plan %s: member %q missing or repeated", p.ID, m.WorkspaceID)
		}
		seen[m.WorkspaceID] = true
	}
	for i, m := range p.Members {
		if len(m.Upstreams) == 0 {
			return fmt.Errorf("plan %s: member %s has no upstream", p.ID, m.Name)
		}
		for _, u := range m.Upstreams {
			j := p.Index(u)
			switch {
			case u == p.Root.WorkspaceID:
			case j < 0:
				return fmt.Errorf("plan %s: member %s waits on %q, which is not in the cascade", p.ID, m.Name, u)
			case j >= i && m.Cycle == "":
				return fmt.Errorf("plan %s: member %s comes before its upstream %s", p.ID, m.Name, p.Members[j].Name)
			}
		}
	}
	p.buildIndex()
	return nil
}
