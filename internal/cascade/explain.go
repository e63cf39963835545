package cascade

import (
	"fmt"
	"strings"
)

// Explain says in words what a cascade did to its member i (statuses st,
// in plan order) and, where there is one, what an operator can do about
// it. It answers "why didn't billing run?".
func Explain(p *Plan, st []Status, i int) string {
	out := explain(p, st, i)
	if g := st[i].Gate; g != nil && g.Runs() {
		switch {
		case len(g.Changed) > 0:
			out += " It was gated on its upstreams' outputs and runs because some changed: " + strings.TrimPrefix(g.Summary(), "changed outputs: ") + "."
		default:
			out += " It was gated on its upstreams' outputs, but they could not be compared, so it runs all the same (" + g.NotGated + ")."
		}
	}
	return out
}

func explain(p *Plan, st []Status, i int) string {
	m, s := p.Members[i], st[i]
	in := fmt.Sprintf("in the cascade from %s (%s)", p.Root.WorkspaceName, p.ID)
	retry := func(name string) string {
		// Pasted as it is, it works: a control needs a why.
		return fmt.Sprintf("orchestrator cascades retry %s %s --why %q", p.ID, name, name+" is fixed")
	}
	run := func() string {
		if s.RunID == "" {
			return "its run"
		}
		return "run " + s.RunID
	}
	switch s.State {
	case Waiting:
		var open []string
		for _, u := range m.Upstreams {
			if j := p.Index(u); j >= 0 && !st[j].State.Final() {
				open = append(open, p.Name(u))
			}
		}
		if len(open) == 0 {
			return fmt.Sprintf("%s has not run yet %s: %s.", m.Name, in, s.Reason)
		}
		return fmt.Sprintf("%s has not run yet %s: it waits for %s to finish.", m.Name, in, strings.Join(open, ", "))
	case Ready, Dispatching:
		return fmt.Sprintf("%s is about to run %s: its upstreams finished (%s).", m.Name, in, s.Reason)
	case Running:
		status := s.RunStatus
		if status == "" {
			status = "under way"
		}
		return fmt.Sprintf("%s is running %s: %s is %s.", m.Name, in, run(), status)
	case AwaitingApproval:
		return fmt.Sprintf("%s is waiting for a person %s: %s planned changes and waits to be confirmed in TFE. "+
			"The cascade goes on once it is applied; if it is discarded, what depends on %s does not run.", m.Name, in, run(), m.Name)
	case Applied:
		how := ""
		if s.Adopted {
			how = " (queued by TFE's run triggers and taken as the cascade's run)"
		}
		return fmt.Sprintf("%s applied %s: %s%s.", m.Name, in, run(), how)
	case NoChanges:
		return fmt.Sprintf("%s ran %s: %s had no changes to apply.", m.Name, in, run())
	case Failed:
		return fmt.Sprintf("%s failed %s: %s. What depends on it did not run. Once it is fixed: %s.", m.Name, in, s.Reason, retry(m.Name))
	case Blocked:
		switch s.Cause {
		case CauseCycle:
			return fmt.Sprintf("%s never runs in a cascade: it is %s. Cascades do not run a workspace on a run-trigger cycle or "+
				"downstream of one; remove one of the cycle's run triggers.", m.Name, strings.TrimPrefix(s.Reason, "blocked: "))
		case CauseUpstream:
			j := rootCause(p, st, i)
			if j < 0 {
				return fmt.Sprintf("%s did not run %s: %s.", m.Name, in, s.Reason)
			}
			c := p.Members[j]
			switch {
			case st[j].State == Failed:
				return fmt.Sprintf("%s did not run %s: it depends on %s, which failed (%s). Once %s is fixed: %s; %s then runs.",
					m.Name, in, c.Name, st[j].Reason, c.Name, retry(c.Name), m.Name)
			case st[j].Cause == CauseCycle:
				return fmt.Sprintf("%s did not run %s: it depends on %s, which is %s. Remove one of the cycle's run triggers.",
					m.Name, in, c.Name, st[j].Reason)
			default:
				return fmt.Sprintf("%s did not run %s: it depends on %s, which did not run (%s).", m.Name, in, c.Name, st[j].Reason)
			}
		case CauseOperator:
			return fmt.Sprintf("%s did not run %s: %s.", m.Name, in, s.Reason)
		default: // preflight, refused
			return fmt.Sprintf("%s did not run %s: %s. Once the workspace is fixed: %s.", m.Name, in, s.Reason, retry(m.Name))
		}
	case Skipped:
		switch s.Cause {
		case CauseUnchanged:
			return fmt.Sprintf("%s was skipped %s: none of its upstreams changed anything, so there was nothing new for it to plan.", m.Name, in)
		case CauseOutputsUnchanged:
			stopped := ""
			if s.Stopped > 0 {
				stopped = " The run TFE's run triggers queued in it was stopped."
			}
			return fmt.Sprintf("%s was skipped %s: %s, so there was nothing new for it to plan.%s", m.Name, in, s.Reason, stopped)
		case CauseDryRun:
			return fmt.Sprintf("%s was not run %s: it is a dry run; a run would have been created.", m.Name, in)
		default:
			return fmt.Sprintf("%s was skipped %s: %s.", m.Name, in, s.Reason)
		}
	}
	return fmt.Sprintf("%s is %s %s: %s.", m.Name, s.State, in, s.Reason)
}

// rootCause follows a member blocked by its upstreams to the member that
// failed or could not run; -1 when there is none among the members.
func rootCause(p *Plan, st []Status, i int) int {
	seen := map[int]bool{}
	for !seen[i] {
		seen[i] = true
		next := -1
		for _, u := range p.Members[i].Upstreams {
			j := p.Index(u)
			if j < 0 {
				continue
			}
			if st[j].State == Failed || (st[j].State == Blocked && st[j].Cause != CauseUpstream) {
				return j
			}
			if st[j].State == Blocked && next < 0 {
				next = j
			}
		}
		if next < 0 {
			return -1
		}
		i = next
	}
	return -1
}
