package tfesim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
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
				"is-confirmable":      isConfirmable(r),
				"is-discardable":      discardable[r.status],
				"is-force-cancelable": isForceCancelable(r, now),
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
			// What the user may do in general; actions say what the
			// run's status allows now. Every simulated user is a
			// workspace admin.
			"permissions": map[string]any{
				"can-apply": true, "can-cancel": true, "can-comment": true, "can-discard": true,
				"can-force-cancel": true, "can-force-execute": true, "can-override-policy-check": true,
			},
		},
		Relationships: map[string]relationship{
			"workspace":             toOne("workspaces", r.ws.id),
			"configuration-version": toOne("configuration-versions", cvID),
			"created-by":            userRel(r.createdBy),
			"confirmed-by":          userRel(r.confirmedBy),
			"comments":              {Data: comments},
		},
		Links: map[string]any{"self": apiPrefix + "/runs/" + r.id},
	}
}

func userRel(u *user) relationship {
	if u == nil {
		return relationship{Data: nil}
	}
	return relationship{Data: resourceID{ID: u.id, Type: "users"}, Links: map[string]string{"related": apiPrefix + "/users/" + u.id}}
}

// CreateRun queues a run in workspace id as the API does, with the given
// message, and returns its ID. It is a shortcut for tests and the demo; the
// site admin creates the run.
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
		cv = ws.currentCV
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
	spec := runSpec{source: "tfe-api", triggerReason: "manual", createdBy: actor(r)}
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
	inc, err := parseIncludes(r.URL.Query(), runIncludes)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now()
	run := s.runs[r.PathValue("id")]
	if run == nil {
		return errNotFound()
	}
	var set includedSet
	s.includeForRun(&set, run, inc)
	writeJSON(w, http.StatusOK, document{Data: s.runResource(run), Included: set.items})
	return nil
}

// operation is the run operation TFE's filter[operation] matches.
func (r *run) operation() string {
	switch {
	case r.planOnly:
		return "plan_only"
	case r.isDestroy:
		return "destroy"
	}
	return "plan_and_apply"
}

// runFilter holds a runs list's filter and search parameters.
type runFilter struct {
	statuses, operations, sources []string
	user, commit, basic           string
}

func parseRunFilter(q url.Values) runFilter {
	return runFilter{
		statuses:   splitList(q.Get("filter[status]")),
		operations: splitList(q.Get("filter[operation]")),
		sources:    splitList(q.Get("filter[source]")),
		user:       q.Get("search[user]"),
		commit:     q.Get("search[commit]"),
		basic:      strings.ToLower(q.Get("search[basic]")),
	}
}

func (f runFilter) match(r *run) bool {
	if len(f.statuses) > 0 && !contains(f.statuses, r.status) {
		return false
	}
	// TFE leaves plan-only runs out unless filter[operation] asks for them.
	if len(f.operations) > 0 && !contains(f.operations, r.operation()) || len(f.operations) == 0 && r.planOnly {
		return false
	}
	if len(f.sources) > 0 && !contains(f.sources, r.source) {
		return false
	}
	// search[user] and search[commit] match a run's VCS user and commit,
	// which simulated runs never have. Either takes precedence over
	// search[basic], as TFE documents.
	if f.user != "" || f.commit != "" {
		return false
	}
	return f.basic == "" || strings.Contains(strings.ToLower(r.id+" "+r.message), f.basic)
}

// listRuns lists a workspace's runs, newest first, as TFE does, with its
// filter[status], filter[operation], filter[source], search[user],
// search[commit] and search[basic] (run ID or message) parameters.
func (s *Sim) listRuns(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	inc, err := parseIncludes(q, runIncludes)
	if err != nil {
		return err
	}
	filter := parseRunFilter(q)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now()
	ws := s.workspaces[r.PathValue("id")]
	if ws == nil {
		return errNotFound()
	}
	var list []*run
	for i := len(ws.runs) - 1; i >= 0; i-- {
		if run := ws.runs[i]; filter.match(run) {
			list = append(list, run)
		}
	}
	s.writeRunPage(w, r, list, inc, nil)
	return nil
}

func (s *Sim) writeRunPage(w http.ResponseWriter, r *http.Request, list []*run, inc map[string]bool, meta map[string]any) {
	p := parsePage(r.URL.Query())
	lo, hi := p.bounds(len(list))
	data := make([]resource, 0, hi-lo)
	var set includedSet
	for _, run := range list[lo:hi] {
		data = append(data, s.runResource(run))
		s.includeForRun(&set, run, inc)
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
func (s *Sim) runAction(act runAct) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		comment := actionComment(r)
		s.mu.Lock()
		defer s.mu.Unlock()
		now := s.now()
		run := s.runs[r.PathValue("id")]
		if run == nil {
			return errNotFound()
		}
		if err := act(run, actor(r), comment, now); err != nil {
			return err
		}
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
}
