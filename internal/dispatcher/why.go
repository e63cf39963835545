package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient/runstatus"
)

// Why is what the cascades the engine keeps did to one workspace.
type Why struct {
	Workspace    string     `json:"workspace"`
	Organization string     `json:"organization,omitempty"`
	Cascades     []WhyEntry `json:"cascades"`
	// Excluded is the exclusion that names the workspace, if one does.
	Excluded *Exclusion `json:"excluded,omitempty"`
	// Explanation is set when no cascade kept reached the workspace.
	Explanation string `json:"explanation,omitempty"`
}

// WhyEntry is one cascade that reached the workspace, as its root or as a
// member.
type WhyEntry struct {
	CascadeID    string          `json:"cascade_id"`
	Organization string          `json:"organization"`
	Root         string          `json:"root"`
	StartedAt    time.Time       `json:"started_at"`
	CascadeState string          `json:"cascade_state"`
	Outcome      cascade.Outcome `json:"outcome,omitempty"`
	// State is the workspace's member state; "root" when its run started
	// the cascade.
	State       string `json:"state"`
	Reason      string `json:"reason,omitempty"`
	RunID       string `json:"run_id,omitempty"`
	RunURL      string `json:"run_url,omitempty"`
	Explanation string `json:"explanation"`
}

// Why explains what the cascades kept (for the state TTL) did to a
// workspace, by name or ID, newest first; org narrows it to one
// organization (names are unique only inside one).
func (rm *Reads) Why(ctx context.Context, org, workspace string) (*Why, error) {
	if workspace == "" {
		return nil, errors.New("name a workspace")
	}
	metas, err := rm.metas(ctx)
	if err != nil {
		return nil, err
	}
	out := &Why{Workspace: workspace, Organization: org, Cascades: []WhyEntry{}}
	for id, meta := range metas {
		if org != "" && meta.Organization != org {
			continue
		}
		p, err := rm.store.plan(ctx, id)
		if err != nil {
			if isMissing(err) || errors.Is(err, errMalformed) {
				continue
			}
			return nil, err
		}
		e := WhyEntry{CascadeID: id, Organization: p.Organization, Root: p.Root.WorkspaceName, StartedAt: p.StartedAt,
			CascadeState: meta.State, Outcome: meta.Outcome}
		if p.Root.WorkspaceID == workspace || p.Root.WorkspaceName == workspace {
			e.State, e.RunID = "root", p.Root.RunID
			e.RunURL = rm.opts.runURL(p.Organization, p.Root.WorkspaceName, p.Root.RunID)
			e.Explanation = fmt.Sprintf("%s started the cascade %s: its run %s %s.", p.Root.WorkspaceName, id, p.Root.RunID,
				map[bool]string{true: "applied", false: "finished with no changes"}[p.Root.Status == runstatus.Applied])
			out.Cascades = append(out.Cascades, e)
			continue
		}
		i := slices.IndexFunc(p.Members, func(m cascade.Member) bool { return m.WorkspaceID == workspace || m.Name == workspace })
		if i < 0 {
			continue
		}
		st, _, err := rm.store.members(ctx, p)
		if err != nil {
			if errors.Is(err, errMalformed) {
				e.State, e.Explanation = "unknown", "the cascade's records cannot be read: it was set aside (see the malformed_state alert)"
				out.Cascades = append(out.Cascades, e)
				continue
			}
			return nil, err
		}
		s := st[i]
		e.State, e.Reason, e.RunID = string(s.State), s.Reason, s.RunID
		if s.RunID != "" {
			e.RunURL = rm.opts.runURL(p.Organization, p.Members[i].Name, s.RunID)
		}
		e.Explanation = cascade.Explain(p, st, i)
		out.Cascades = append(out.Cascades, e)
	}
	slices.SortFunc(out.Cascades, func(a, b WhyEntry) int {
		if c := b.StartedAt.Compare(a.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(a.CascadeID, b.CascadeID)
	})
	excl, err := rm.Exclusions(ctx)
	if err != nil && !errors.Is(err, errMalformed) {
		return nil, err
	}
	for _, x := range excl {
		if x.Name != "" && x.Name == workspace && (x.Organization == "" || org == "" || x.Organization == org) {
			out.Excluded = &x
			break
		}
	}
	if len(out.Cascades) == 0 {
		out.Explanation = fmt.Sprintf("No cascade kept (the last %s) reached %s: no run applied upstream of it in that time, "+
			"or it is not downstream of any workspace by run triggers.", duration(rm.opts.StateTTL), workspace)
		if out.Excluded != nil {
			out.Explanation += fmt.Sprintf(" It is excluded from cascades (%s: %s).", out.Excluded.By, out.Excluded.Why)
		}
	}
	return out, nil
}

// duration prints a duration the way people write it: 7d, 36h, 90m.
func duration(d time.Duration) string {
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}
