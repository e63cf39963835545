package tfesim

import (
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The include parameter. TFE validates it on the server and answers an
// unknown value with 400 "Invalid include parameter" (go-tfe maps that to
// ErrInvalidIncludeValue); every endpoint here does the same. The lists
// are TFE's documented includes for each endpoint: the simulator renders
// the ones it models and accepts the others, including nothing for them.
var (
	workspaceIncludes = []string{
		"organization", "current_run", "current_run.configuration_version", "locked_by",
		"current_configuration_version", "current-state-version",
		// accepted, not modelled:
		"current_configuration_version.ingress_attributes", "current_run.plan",
		"current_run.configuration_version.ingress_attributes", "effective_tag_bindings",
		"readme", "outputs", "project",
	}
	runIncludes = []string{
		"workspace", "created_by", "configuration_version",
		// accepted, not modelled:
		"plan", "apply", "cost_estimate", "configuration_version.ingress_attributes",
		"task_stages", "tf_policy_evaluations",
	}
	adminRunIncludes = []string{
		"workspace", "workspace.organization",
		// accepted, not modelled:
		"workspace.organization.owners",
	}
	runTriggerIncludes   = []string{"workspace", "sourceable"}
	stateVersionIncludes = []string{
		"run", "run.created_by", "run.configuration_version", "outputs",
		// accepted, not modelled: state versions written by runs are
		// created by an internal user TFE does not name.
		"created_by",
	}
)

func errInvalidInclude() error { return errBadRequest("Invalid include parameter") }

// parseIncludes reads the comma-separated include parameter and refuses a
// value the endpoint does not know.
func parseIncludes(q url.Values, allowed []string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, v := range q["include"] {
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			if !contains(allowed, part) {
				return nil, errInvalidInclude()
			}
			out[part] = true
		}
	}
	return out, nil
}

// includedSet collects included resources once each, in first-seen order.
type includedSet struct {
	seen  map[string]bool
	items []resource
}

func (s *includedSet) add(r resource) {
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	key := r.Type + "/" + r.ID
	if s.seen[key] {
		return
	}
	s.seen[key] = true
	s.items = append(s.items, r)
}

// includeForWorkspace adds what inc asks for of ws. A path's intermediate
// resources come with it, as JSON:API requires: current_run.X includes
// the current run.
func (s *Sim) includeForWorkspace(set *includedSet, r *http.Request, ws *workspace, inc map[string]bool, now time.Time) {
	if inc["organization"] {
		set.add(s.orgResource(s.orgs[ws.org]))
	}
	if r := ws.currentRun; r != nil && (inc["current_run"] || inc["current_run.configuration_version"]) {
		set.add(s.runResource(r))
		if inc["current_run.configuration_version"] && r.cv != nil {
			set.add(s.configVersionResource(r.cv))
		}
	}
	if inc["current_configuration_version"] && ws.currentCV != nil {
		set.add(s.configVersionResource(ws.currentCV))
	}
	if sv := ws.currentState(); sv != nil && inc["current-state-version"] {
		set.add(s.stateVersionResource(r, sv, now))
	}
	if inc["locked_by"] {
		switch {
		case ws.activeRun() != nil:
			set.add(s.runResource(ws.activeRun()))
		case ws.userLock != nil:
			set.add(userResource(ws.userLock.by))
		}
	}
}

// includeForRun adds what inc asks for of r.
func (s *Sim) includeForRun(set *includedSet, r *run, inc map[string]bool) {
	if inc["workspace"] || inc["workspace.organization"] {
		set.add(s.workspaceResource(r.ws))
	}
	if inc["workspace.organization"] {
		set.add(s.orgResource(s.orgs[r.ws.org]))
	}
	if inc["created_by"] && r.createdBy != nil {
		set.add(userResource(r.createdBy))
	}
	if inc["configuration_version"] && r.cv != nil {
		set.add(s.configVersionResource(r.cv))
	}
}
