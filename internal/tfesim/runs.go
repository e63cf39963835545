package tfesim

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// timestampKeys maps statuses to their status-timestamps attribute.
var timestampKeys = map[string]string{
	StatusPlanQueued:         "plan-queued-at",
	StatusPlanning:           "planning-at",
	StatusPlanned:            "planned-at",
	StatusConfirmed:          "confirmed-at",
	StatusApplyQueued:        "apply-queued-at",
	StatusApplying:           "applying-at",
	StatusApplied:            "applied-at",
	StatusPlannedAndFinished: "planned-and-finished-at",
	StatusErrored:            "errored-at",
	StatusCanceled:           "canceled-at",
	StatusDiscarded:          "discarded-at",
	StatusForceCanceled:      "force-canceled-at",
}

func (s *Sim) runResource(r *run) resource {
	ts := map[string]any{}
	for status, at := range r.timestamps {
		if key, ok := timestampKeys[status]; ok {
			ts[key] = rfc3339(at)
		}
	}
	if !r.timestamps[StatusPlanQueued].IsZero() {
		ts["plan-queueable-at"] = rfc3339(r.timestamps[StatusPlanQueued])
	}
	now := s.clock.Now()
	final := isFinal(r.status)
	forceCancelable := !final && r.cancelRequested && !now.Before(r.forceCancelAvailableAt)
	var forceAt any
	if !r.forceCancelAvailableAt.IsZero() {
		forceAt = timestamp(r.forceCancelAvailableAt)
	}
	var cvID string
	if r.cv != nil {
		cvID = r.cv.id
	}
	comments := make([]resourceID, 0, len(r.comments))
	for _, c := range r.comments {
		comments = append(comments, resourceID{ID: c.id, Type: "comments"})
	}
	return resource{
		ID:   r.id,
		Type: "runs",
		Attributes: map[string]any{
			"actions": map[string]any{
				"is-cancelable":       cancelable[r.status],
				"is-confirmable":      r.status == StatusPlanned,
				"is-discardable":      discardable[r.status],
				"is-force-cancelable": forceCancelable,
			},
			"auto-apply":                r.autoApply,
			"allow-empty-apply":         false,
			"canceled-at":               timestamp(r.canceledAt),
			"created-at":                timestamp(r.createdAt),
			"force-cancel-available-at": forceAt,
			"has-changes":               r.hasChanges,
			"is-destroy":                r.isDestroy,
			"message":                   r.message,
			"plan-only":                 r.planOnly,
			"position-in-queue":         positionInQueue(r),
			"refresh":                   true,
			"refresh-only":              false,
			"replace-addrs":             nil,
			"source":                    r.source,
			"status":                    r.status,
			"status-timestamps":         ts,
			"target-addrs":              nil,
			"terraform-version":         r.ws.terraformVersion,
			"trigger-reason":            r.triggerReason,
			"variables":                 []any{},
			"permissions": map[string]any{
				"can-apply": true, "can-cancel": true, "can-discard": true,
				"can-force-cancel": true, "can-force-execute": true,
			},
		},
		Relationships: map[string]relationship{
			"workspace":             toOne("workspaces", r.ws.id),
			"configuration-version": toOne("configuration-versions", cvID),
			"created-by":            toOne("users", adminUserID),
			"comments":              {Data: comments},
		},
		Links: map[string]any{"self": apiPrefix + "/runs/" + r.id},
	}
}

// CreateRun queues a run in workspace id as the API does, with the given
// message, and returns its ID. It is a shortcut for tests and the demo.
func (s *Sim) CreateRun(workspaceID, message string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	ws := s.workspaces[workspaceID]
	if ws == nil {
		return "", errNotFound()
	}
	r, err := s.queueRun(ws, nil, runSpec{message: message, source: "tfe-api", autoApply: ws.autoApply}, now)
	if err != nil {
		return "", err
	}
	return r.id, nil
}

// queueRun checks that ws can run and queues the run.
func (s *Sim) queueRun(ws *workspace, cv *configVersion, spec runSpec, now time.Time) (*run, error) {
	if ws.executionMode == "local" {
		return nil, errUnprocessable("workspace uses local execution mode and cannot run remotely")
	}
	if cv == nil {
		cv = ws.latestCV
	}
	if cv == nil {
		return nil, errUnprocessable("workspace has no configuration version to run")
	}
	if cv.status != "uploaded" {
		return nil, errUnprocessable("configuration version is not uploaded")
	}
	spec.cv = cv
	return s.newRun(ws, spec, now), nil
}

func (s *Sim) createRun(w http.ResponseWriter, r *http.Request) error {
	body, err := decodeBody(r)
	if err != nil {
		return err
	}
	a := body.attrs()
	spec := runSpec{source: "tfe-api", triggerReason: "manual"}
	a.str("message", &spec.message)
	a.boolean("is-destroy", &spec.isDestroy)
	a.boolean("plan-only", &spec.planOnly)
	var autoApply *bool
	if a.has("auto-apply") {
		var v bool
		a.boolean("auto-apply", &v)
		autoApply = &v
	}
	if a.err != nil {
		return a.err
	}
	wsID, typ, ok := body.relID("workspace")
	if !ok || typ != "workspaces" {
		return errUnprocessable("data.relationships.workspace is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	ws := s.workspaces[wsID]
	if ws == nil {
		return errNotFound()
	}
	var cv *configVersion
	if cvID, _, ok := body.relID("configuration-version"); ok {
		if cv = s.cvs[cvID]; cv == nil || cv.ws != ws {
			return errNotFound()
		}
	}
	spec.autoApply = ws.autoApply
	if autoApply != nil {
		spec.autoApply = *autoApply
	}
	if spec.message == "" {
		spec.message = "Queued manually via the Terraform Enterprise API"
	}
	run, err := s.queueRun(ws, cv, spec, now)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, document{Data: s.runResource(run)})
	return nil
}

func (s *Sim) showRun(w http.ResponseWriter, r *http.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now()
	run := s.runs[r.PathValue("id")]
	if run == nil {
		return errNotFound()
	}
	doc := document{Data: s.runResource(run)}
	if includes(r.URL.Query())["workspace"] {
		doc.Included = []resource{s.workspaceResource(run.ws)}
	}
	writeJSON(w, http.StatusOK, doc)
	return nil
}

// listRuns lists a workspace's runs, newest first, as TFE does; it filters
// on filter[status] and on search[basic] (run ID or message).
func (s *Sim) listRuns(w http.ResponseWriter, r *http.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now()
	ws := s.workspaces[r.PathValue("id")]
	if ws == nil {
		return errNotFound()
	}
	q := r.URL.Query()
	statuses := splitList(q.Get("filter[status]"))
	search := strings.ToLower(q.Get("search[basic]"))
	var list []*run
	for i := len(ws.runs) - 1; i >= 0; i-- {
		run := ws.runs[i]
		if len(statuses) > 0 && !slices.Contains(statuses, run.status) {
			continue
		}
		if search != "" && !strings.Contains(strings.ToLower(run.id+" "+run.message), search) {
			continue
		}
		list = append(list, run)
	}
	s.writeRunPage(w, r, list, nil)
	return nil
}

func (s *Sim) writeRunPage(w http.ResponseWriter, r *http.Request, list []*run, meta map[string]any) {
	q := r.URL.Query()
	p := parsePage(q)
	lo, hi := p.bounds(len(list))
	inc := includes(q)
	data := make([]resource, 0, hi-lo)
	var set includedSet
	for _, run := range list[lo:hi] {
		data = append(data, s.runResource(run))
		if inc["workspace"] {
			set.add(s.workspaceResource(run.ws))
		}
		if inc["workspace.organization"] {
			set.add(s.orgResource(s.orgs[run.ws.org]))
		}
	}
	doc := document{Data: data, Included: set.items, Meta: meta}
	paginate(&doc, r, p, len(list))
	writeJSON(w, http.StatusOK, doc)
}

func splitList(v string) []string {
	var out []string
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// actionComment reads the optional {"comment": "..."} body of a run action.
func actionComment(r *http.Request) string {
	var b struct {
		Comment string `json:"comment"`
	}
	_ = json.NewDecoder(io.LimitReader(r.Body, maxRequestBody)).Decode(&b) // the body is optional
	return b.Comment
}

// runAction serves a run action: 202 with no body when the status allows it.
func (s *Sim) runAction(act func(*run, string, time.Time) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		comment := actionComment(r)
		s.mu.Lock()
		defer s.mu.Unlock()
		now := s.now()
		run := s.runs[r.PathValue("id")]
		if run == nil {
			return errNotFound()
		}
		if err := act(run, comment, now); err != nil {
			return err
		}
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
}

func (s *Sim) listComments(w http.ResponseWriter, r *http.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	run := s.runs[r.PathValue("id")]
	if run == nil {
		return errNotFound()
	}
	data := make([]resource, 0, len(run.comments))
	for _, c := range run.comments {
		data = append(data, resource{
			ID: c.id, Type: "comments",
			Attributes:    map[string]any{"body": c.body},
			Relationships: map[string]relationship{"run-event": {Data: nil}},
			Links:         map[string]any{"self": apiPrefix + "/comments/" + c.id},
		})
	}
	writeJSON(w, http.StatusOK, document{Data: data})
	return nil
}

// Admin runs.

// adminStatusCounts are the keys of meta.status-counts, spelled as TFE spells them.
var adminStatusCounts = []string{
	StatusPending, StatusPlanQueued, StatusPlanning, StatusPlanned, StatusConfirmed,
	StatusApplyQueued, StatusApplying, StatusApplied, StatusDiscarded, StatusErrored,
	StatusCanceled, StatusForceCanceled, StatusPlannedAndFinished,
	"policy_checking", "policy_override", "policy_checked",
}

// adminListRuns lists every run of the installation, newest first. q matches
// run ID, workspace name and organization name; meta.status-counts counts
// the runs q matches, by status, before filter[status] is applied.
func (s *Sim) adminListRuns(w http.ResponseWriter, r *http.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now()
	q := r.URL.Query()
	statuses := splitList(q.Get("filter[status]"))
	query := strings.ToLower(q.Get("q"))
	all := make([]*run, 0, len(s.runs))
	for _, run := range s.runs {
		all = append(all, run)
	}
	slices.SortFunc(all, func(a, b *run) int { return int(b.seq) - int(a.seq) })
	counts := map[string]any{}
	for _, st := range adminStatusCounts {
		counts[strings.ReplaceAll(st, "_", "-")] = 0
	}
	total := 0
	var list []*run
	for _, run := range all {
		if query != "" && !strings.Contains(strings.ToLower(run.id+" "+run.ws.name+" "+run.ws.org), query) {
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
	s.writeRunPage(w, r, list, map[string]any{"status-counts": counts})
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
	if err := s.adminForceCancelRun(run, comment, now); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, document{Data: s.runResource(run)})
	return nil
}
