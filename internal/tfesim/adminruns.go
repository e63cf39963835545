package tfesim

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Admin runs: every run of the installation, for site admins.

// adminStatusCounts are the keys of meta.status-counts, spelled as TFE spells them.
var adminStatusCounts = []string{
	StatusPending, StatusPlanQueued, StatusPlanning, StatusPlanned, StatusConfirmed,
	StatusApplyQueued, StatusApplying, StatusApplied, StatusDiscarded, StatusErrored,
	StatusCanceled, StatusForceCanceled, StatusPlannedAndFinished,
	"policy_checking", "policy_override", "policy_checked",
}

// adminRunQuery is what narrows the admin runs list before its status
// filter: q (run ID, workspace name, organization name or e-mail) and
// filter[from] / filter[to] (creation time, inclusive).
type adminRunQuery struct {
	text     string
	from, to time.Time
}

func parseAdminRunQuery(q url.Values) (adminRunQuery, error) {
	out := adminRunQuery{text: strings.ToLower(q.Get("q"))}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"filter[from]", &out.from}, {"filter[to]", &out.to}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return out, errBadRequest(p.name + " must be an RFC 3339 time")
		}
		*p.dst = t
	}
	return out, nil
}

func (s *Sim) adminRunMatches(q adminRunQuery, r *run) bool {
	if !q.from.IsZero() && r.createdAt.Before(q.from) || !q.to.IsZero() && r.createdAt.After(q.to) {
		return false
	}
	if q.text == "" {
		return true
	}
	org := s.orgs[r.ws.org]
	return strings.Contains(strings.ToLower(r.id+" "+r.ws.name+" "+org.name+" "+org.email), q.text)
}

// adminListRuns lists every run of the installation, newest first.
// meta.status-counts counts the runs q, filter[from] and filter[to] match,
// by status, before filter[status] is applied.
func (s *Sim) adminListRuns(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	inc, err := parseIncludes(q, adminRunIncludes)
	if err != nil {
		return err
	}
	query, err := parseAdminRunQuery(q)
	if err != nil {
		return err
	}
	statuses := splitList(q.Get("filter[status]"))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now()
	all := make([]*run, 0, len(s.runs))
	for _, run := range s.runs {
		all = append(all, run)
	}
	slices.SortFunc(all, func(a, b *run) int { return cmp.Compare(b.seq, a.seq) })
	counts := map[string]any{}
	for _, st := range adminStatusCounts {
		counts[strings.ReplaceAll(st, "_", "-")] = 0
	}
	total := 0
	var list []*run
	for _, run := range all {
		if !s.adminRunMatches(query, run) {
			continue
		}
		key := strings.ReplaceAll(run.status, "_", "-")
		counts[key] = counts[key].(int) + 1
		total++
		if len(statuses) > 0 && !slices.Contains(statuses, run.status) {
			continue
		}
		list = append(list, run)
	}
	counts["total"] = total
	s.writeRunPage(w, r, list, inc, map[string]any{"status-counts": counts})
	return nil
}

func (s *Sim) adminForceCancel(w http.ResponseWriter, r *http.Request) error {
	comment := actionComment(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	run := s.runs[r.PathValue("id")]
	if run == nil {
		return errNotFound()
	}
	if err := s.adminForceCancelRun(run, actor(r), comment, now); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, document{Data: s.runResource(run)})
	return nil
}
