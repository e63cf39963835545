package cascade

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient/runstatus"
)

// Output gating (RunWhen outputs). A member gated on outputs runs when at
// least one of its upstreams that applied in the cascade changed an
// output: the state version that upstream's cascade run wrote, against the
// one before it. The shell compares them (Needs.Outputs, Facts.Outputs);
// the core decides. It never skips on a guess: an upstream whose outputs
// cannot be compared (TFE refused, no state version before, a newer one
// written since, a sensitive value that cannot be read, a state version
// TFE did not process within OutputsWait of the apply) lets the member
// run, and the member's Gate says why it was not gated. A member that is
// skipped ends like one whose upstreams changed nothing: the runs TFE's run
// triggers queued in it are stopped, with a comment saying why.

// runWhen is when a member runs: the policy, unless its workspace's tags
// say otherwise (TagRunAlways wins over TagRunOnOutputs).
func (d *decider) runWhen(ws Workspace) RunWhen {
	switch {
	case slices.Contains(ws.Tags, TagRunAlways):
		if d.pol.RunWhen == RunWhenOutputs {
			return RunWhenChanges
		}
		return d.pol.RunWhen
	case slices.Contains(ws.Tags, TagRunOnOutputs):
		return RunWhenOutputs
	}
	return d.pol.RunWhen
}

// gated applies the output gate to a ready member whose workspace was
// read. It reports whether the member goes on to run; when not, it ended
// the member, or waits for its upstreams' outputs to be compared.
func (d *decider) gated(i int, ws Workspace) bool {
	s := d.next[i]
	if d.runWhen(ws) != RunWhenOutputs || s.Gate != nil {
		return true // not gated, or gated before and let through
	}
	if !d.barrier(i).changed {
		// Only a policy of always brings a member whose upstreams changed
		// nothing here; its tag gates it on outputs, and none changed.
		d.end(i, Skipped, CauseUnchanged, "no upstream changed", false, s.ReadyAt)
		return false
	}
	g, known, pending := d.compare(i)
	if !known {
		if pending {
			d.stopEager(i, ws)
		}
		return false
	}
	s = d.next[i]
	s.Gate = g
	d.set(i, s)
	if g.Runs() {
		return true
	}
	d.end(i, Skipped, CauseOutputsUnchanged, g.unchanged(), false, s.ReadyAt)
	return false
}

// stopEager stops, while member i's gate is undecided, the runs TFE's run
// triggers queued in it that would apply on their own: one could apply
// before the comparison ends, and a member that is skipped must not have
// applied. Should the member run, the cascade creates its run. A run that
// waits for a person is left, and so is one pending behind the cascade's
// hold: neither can apply meanwhile.
func (d *decider) stopEager(i int, ws Workspace) {
	m := &d.p.Members[i]
	held := d.mine(ws) && d.next[i].Hold.open()
	runs, _ := d.runsIn(i, ws)
	for _, r := range runs {
		if held && r.Status == runstatus.Pending {
			continue
		}
		if r.Native() && r.AutoApply && !Final(r.Status) && !r.CreatedAt.Before(d.p.Root.FinishedAt) {
			d.stop(i, r, fmt.Sprintf("stopped by cascade %s: this run would apply on its own before the cascade knows whether %s's upstreams changed an output; if one did, the cascade runs %s itself",
				d.p.ID, m.Name, m.Name))
		}
	}
}

// compare builds member i's gate from the comparisons of its upstreams
// that applied. known is false while one it needs was not read or is not
// processed yet (pending), and nothing read so far lets the member run.
func (d *decider) compare(i int) (g *Gate, known, pending bool) {
	m := &d.p.Members[i]
	g = &Gate{}
	var unknown, waiting []string
	for _, u := range m.Upstreams {
		name := d.p.Name(u)
		var runID string
		var at = d.p.Root.FinishedAt
		if u == d.p.Root.WorkspaceID {
			if !d.p.Root.fired() {
				g.Upstreams = append(g.Upstreams, name)
				unknown = append(unknown, name+" started the cascade without applying, so it wrote no state to compare")
				continue
			}
			runID = d.p.Root.RunID
		} else {
			us := d.next[d.p.Index(u)]
			switch {
			case us.State == Skipped && us.Cause == CauseDryRun:
				g.Upstreams = append(g.Upstreams, name)
				unknown = append(unknown, name+" would run (dry run), so its outputs are not known")
				continue
			case us.State != Applied || us.RunID == "":
				continue // it changed nothing
			}
			runID, at = us.RunID, us.FinishedAt
		}
		g.Upstreams = append(g.Upstreams, name)
		f, read := d.in.Facts.Outputs[runID]
		switch {
		case !read:
			d.out.Need.Outputs = appendOnce(d.out.Need.Outputs, OutputsNeed{WorkspaceID: u, RunID: runID})
			waiting = append(waiting, name)
		case f.Unknown != "":
			unknown = append(unknown, name+": "+f.Unknown)
		case f.Pending:
			seen := f.At
			if seen.IsZero() {
				seen = d.now
			}
			if seen.Before(at.Add(d.pol.OutputsWait)) {
				waiting = append(waiting, name)
				pending = true
				continue
			}
			unknown = append(unknown, fmt.Sprintf("%s: TFE had not processed the state version of run %s %s after it applied", name, runID, d.pol.OutputsWait))
		default:
			g.Outputs += f.Count
			for _, o := range f.Changed {
				if len(g.Changed) < MaxGateNames {
					g.Changed = append(g.Changed, name+"."+o)
				} else {
					g.More++
				}
			}
		}
	}
	if len(g.Upstreams) == 0 {
		unknown = append(unknown, "no upstream that applied wrote state to compare")
	}
	if len(unknown) > 0 {
		g.NotGated = "outputs not compared: " + strings.Join(unknown, "; ")
	}
	if len(waiting) > 0 && !g.Runs() {
		d.setReason(i, Ready, "comparing the outputs of "+strings.Join(waiting, ", "))
		d.wakeIn(d.pol.Soon)
		return nil, false, pending
	}
	return g, true, false
}

// unchanged says, for a gate that skips its member, what applied and that
// none of its outputs changed: "network applied, none of its 12 outputs
// changed".
func (g *Gate) unchanged() string {
	whose := "its"
	if len(g.Upstreams) > 1 {
		whose = "their"
	}
	return fmt.Sprintf("%s applied, none of %s %s changed", strings.Join(g.Upstreams, ", "), whose, plural(g.Outputs, "output"))
}

// Summary says in words what the gate found: which upstream outputs
// changed, or why they were not compared.
func (g *Gate) Summary() string {
	switch {
	case len(g.Changed) > 0:
		more := ""
		if g.More > 0 {
			more = fmt.Sprintf(" and %d more", g.More)
		}
		out := "changed outputs: " + strings.Join(g.Changed, ", ") + more
		if g.NotGated != "" {
			out += "; " + g.NotGated
		}
		return out
	case g.NotGated != "":
		return g.NotGated
	}
	return g.unchanged()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
