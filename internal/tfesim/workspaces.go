package tfesim

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
)

var validName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Workspaces.

// WorkspaceSpec describes a workspace to create; zero fields take TFE's defaults.
type WorkspaceSpec struct {
	Name                string   `yaml:"name"`
	Description         string   `yaml:"description"`
	AutoApply           bool     `yaml:"auto_apply"`
	AutoApplyRunTrigger bool     `yaml:"auto_apply_run_trigger"`
	ExecutionMode       string   `yaml:"execution_mode"`
	TerraformVersion    string   `yaml:"terraform_version"`
	Tags                []string `yaml:"tags"`
	Locked              bool     `yaml:"locked"`
	Behavior            Behavior `yaml:"behavior"`
	// NoConfiguration leaves the workspace without a configuration version,
	// so that it cannot start runs.
	NoConfiguration bool `yaml:"no_configuration"`
}

func (s *Sim) addWorkspace(org string, spec WorkspaceSpec) (*workspace, error) {
	if s.orgs[org] == nil {
		return nil, errNotFound()
	}
	if !validName.MatchString(spec.Name) {
		return nil, errUnprocessable("name is invalid: only letters, numbers, - and _ are allowed")
	}
	if s.workspaceByName(org, spec.Name) != nil {
		return nil, errUnprocessable("name has already been taken")
	}
	if err := validExecutionMode(spec.ExecutionMode); err != nil {
		return nil, err
	}
	behavior, err := spec.Behavior.normalized()
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()
	ws := &workspace{
		id:                  s.uniqueID("ws", func(id string) bool { return s.workspaces[id] != nil }),
		org:                 org,
		name:                spec.Name,
		description:         spec.Description,
		createdAt:           now,
		updatedAt:           now,
		autoApply:           spec.AutoApply,
		autoApplyRunTrigger: spec.AutoApplyRunTrigger,
		executionMode:       spec.ExecutionMode,
		terraformVersion:    spec.TerraformVersion,
		tags:                normaliseTags(spec.Tags),
		behavior:            behavior,
	}
	if ws.executionMode == "" {
		ws.executionMode = "remote"
	}
	if ws.terraformVersion == "" {
		ws.terraformVersion = s.latestToolVersion()
	}
	if spec.Locked {
		ws.userLock = &userLock{by: s.admin}
	}
	s.workspaces[ws.id] = ws
	return ws, nil
}

func validExecutionMode(m string) error {
	switch m {
	case "", "remote", "local", "agent":
		return nil
	}
	return errUnprocessable("execution-mode must be remote, local or agent")
}

func normaliseTags(tags []string) []string {
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		t = strings.ToLower(strings.TrimSpace(t))
		if t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

func (s *Sim) workspaceByName(org, name string) *workspace {
	for _, ws := range s.workspaces {
		if ws.org == org && ws.name == name {
			return ws
		}
	}
	return nil
}

// lookupWorkspace finds the workspace a request names, by {id} or by {org}/{name}.
func (s *Sim) lookupWorkspace(r *http.Request) (*workspace, error) {
	var ws *workspace
	if id := r.PathValue("id"); id != "" {
		ws = s.workspaces[id]
	} else {
		ws = s.workspaceByName(r.PathValue("org"), r.PathValue("name"))
	}
	if ws == nil {
		return nil, errNotFound()
	}
	return ws, nil
}

func (s *Sim) removeWorkspace(ws *workspace) {
	for id, t := range s.triggers {
		if t.source == ws || t.target == ws {
			delete(s.triggers, id)
		}
	}
	for _, r := range ws.runs {
		s.idle(r)
		delete(s.runs, r.id)
	}
	for id, cv := range s.cvs {
		if cv.ws == ws {
			delete(s.cvs, id)
		}
	}
	for id, nc := range s.ncs {
		if nc.ws == ws {
			delete(s.ncs, id)
		}
	}
	s.forgetStates(ws)
	delete(s.workspaces, ws.id)
}

func (s *Sim) workspaceResource(ws *workspace) resource {
	p := workspacePerf(ws)
	var currentRun, latestRun, lockReason string
	if ws.currentRun != nil {
		currentRun = ws.currentRun.id
	}
	if n := len(ws.runs); n > 0 {
		latestRun = ws.runs[n-1].id
	}
	if ws.userLock != nil {
		lockReason = ws.userLock.reason
	}
	var cvID string
	if ws.currentCV != nil {
		cvID = ws.currentCV.id
	}
	currentState := relationship{Data: nil}
	if sv := ws.currentState(); sv != nil {
		currentState = toOne("state-versions", sv.id)
		currentState.Links = map[string]string{"related": apiPrefix + "/workspaces/" + ws.id + "/current-state-version"}
	}
	self := apiPrefix + "/organizations/" + ws.org + "/workspaces/" + ws.name
	return resource{
		ID:   ws.id,
		Type: "workspaces",
		Attributes: map[string]any{
			"actions":                       map[string]any{"is-destroyable": true},
			"allow-destroy-plan":            true,
			"apply-duration-average":        p.applyAvgMS,
			"auto-apply":                    ws.autoApply,
			"auto-apply-run-trigger":        ws.autoApplyRunTrigger,
			"auto-destroy-at":               nil,
			"created-at":                    timestamp(ws.createdAt),
			"description":                   ws.description,
			"environment":                   "default",
			"execution-mode":                ws.executionMode,
			"file-triggers-enabled":         true,
			"global-remote-state":           false,
			"latest-change-at":              timestamp(latestChangeAt(ws)),
			"locked":                        ws.locked(),
			"locked-reason":                 lockReason,
			"name":                          ws.name,
			"operations":                    ws.executionMode != "local",
			"permissions":                   workspacePermissions,
			"plan-duration-average":         p.planAvgMS,
			"policy-check-failures":         nil,
			"queue-all-runs":                false,
			"resource-count":                ws.resourceCount,
			"run-failures":                  p.failures,
			"source":                        "tfe-api",
			"source-name":                   nil,
			"source-url":                    nil,
			"speculative-enabled":           true,
			"structured-run-output-enabled": true,
			"tag-names":                     ws.tags,
			"terraform-version":             ws.terraformVersion,
			"trigger-prefixes":              []string{},
			"updated-at":                    timestamp(ws.updatedAt),
			"vcs-repo":                      nil,
			"vcs-repo-identifier":           nil,
			"working-directory":             nullString(ws.workingDirectory),
			"workspace-kpis-runs-count":     p.runs,
		},
		Relationships: map[string]relationship{
			"organization":                  toOne("organizations", ws.org),
			"agent-pool":                    toOne("agent-pools", ws.agentPoolID),
			"current-run":                   toOne("runs", currentRun),
			"latest-run":                    toOne("runs", latestRun),
			"current-configuration-version": toOne("configuration-versions", cvID),
			"current-state-version":         currentState,
			"locked-by":                     lockedBy(ws),
		},
		Links: map[string]any{"self": self},
	}
}

// lockedBy is the locked-by relationship: the run that holds ws, or the
// user who locked it; null when it is not locked.
func lockedBy(ws *workspace) relationship {
	if r := ws.activeRun(); r != nil {
		return toOne("runs", r.id)
	}
	if ws.userLock != nil {
		return toOne("users", ws.userLock.by.id)
	}
	return relationship{Data: nil}
}

var workspacePermissions = map[string]any{
	"can-create-state-versions": true, "can-destroy": true, "can-force-unlock": true,
	"can-lock": true, "can-manage-run-tasks": true, "can-manage-tags": true,
	"can-queue-apply": true, "can-queue-destroy": true, "can-queue-run": true,
	"can-read-settings": true, "can-read-state-versions": true, "can-read-variable": true,
	"can-unlock": true, "can-update": true, "can-update-variable": true, "can-force-delete": true,
}

// applyWorkspaceAttrs applies the settable attributes of a create or update body.
func applyWorkspaceAttrs(ws *workspace, body *requestBody) error {
	a := body.attrs()
	a.str("name", &ws.name)
	a.str("description", &ws.description)
	a.boolean("auto-apply", &ws.autoApply)
	a.boolean("auto-apply-run-trigger", &ws.autoApplyRunTrigger)
	a.str("terraform-version", &ws.terraformVersion)
	a.str("working-directory", &ws.workingDirectory)
	a.str("agent-pool-id", &ws.agentPoolID)
	var mode string
	if a.str("execution-mode", &mode) {
		if err := validExecutionMode(mode); err != nil {
			return err
		}
		ws.executionMode = mode
	}
	var tags []string
	if a.decode("tag-names", &tags) {
		ws.tags = normaliseTags(tags)
	}
	for _, raw := range body.relMany("tags") {
		var t struct {
			Attributes struct {
				Name string `json:"name"`
			} `json:"attributes"`
		}
		if json.Unmarshal(raw, &t) == nil && t.Attributes.Name != "" {
			ws.tags = normaliseTags(append(ws.tags, t.Attributes.Name))
		}
	}
	return a.err
}

func (s *Sim) createWorkspace(w http.ResponseWriter, r *http.Request) error {
	body, err := decodeBody(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	org := r.PathValue("org")
	if s.orgs[org] == nil {
		return errNotFound()
	}
	var draft workspace
	if err := applyWorkspaceAttrs(&draft, body); err != nil {
		return err
	}
	ws, err := s.addWorkspace(org, WorkspaceSpec{
		Name: draft.name, Description: draft.description, AutoApply: draft.autoApply,
		AutoApplyRunTrigger: draft.autoApplyRunTrigger, ExecutionMode: draft.executionMode,
		TerraformVersion: draft.terraformVersion, Tags: draft.tags,
	})
	if err != nil {
		return err
	}
	ws.workingDirectory, ws.agentPoolID = draft.workingDirectory, draft.agentPoolID
	writeJSON(w, http.StatusCreated, document{Data: s.workspaceResource(ws)})
	return nil
}

func (s *Sim) updateWorkspace(w http.ResponseWriter, r *http.Request) error {
	body, err := decodeBody(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	ws, err := s.lookupWorkspace(r)
	if err != nil {
		return err
	}
	draft := *ws
	if err := applyWorkspaceAttrs(&draft, body); err != nil {
		return err
	}
	if draft.name != ws.name {
		if !validName.MatchString(draft.name) {
			return errUnprocessable("name is invalid: only letters, numbers, - and _ are allowed")
		}
		if s.workspaceByName(ws.org, draft.name) != nil {
			return errUnprocessable("name has already been taken")
		}
	}
	ws.name, ws.description = draft.name, draft.description
	ws.autoApply, ws.autoApplyRunTrigger = draft.autoApply, draft.autoApplyRunTrigger
	ws.terraformVersion, ws.workingDirectory = draft.terraformVersion, draft.workingDirectory
	ws.executionMode, ws.tags, ws.agentPoolID = draft.executionMode, draft.tags, draft.agentPoolID
	ws.updatedAt = now
	writeJSON(w, http.StatusOK, document{Data: s.workspaceResource(ws)})
	return nil
}

// withWorkspace runs f on the workspace a request names, with the state
// locked and the lifecycle brought up to date.
func (s *Sim) withWorkspace(r *http.Request, f func(ws *workspace, now time.Time) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	ws, err := s.lookupWorkspace(r)
	if err != nil {
		return err
	}
	return f(ws, now)
}

func (s *Sim) deleteWorkspace(w http.ResponseWriter, r *http.Request) error {
	return s.withWorkspace(r, func(ws *workspace, _ time.Time) error {
		s.removeWorkspace(ws)
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

func (s *Sim) safeDeleteWorkspace(w http.ResponseWriter, r *http.Request) error {
	return s.withWorkspace(r, func(ws *workspace, _ time.Time) error {
		switch {
		case ws.userLock != nil:
			return errConflict("conflict", "Workspace is currently locked and cannot be deleted")
		case ws.activeRun() != nil:
			return errConflict("conflict", "Workspace is currently being processed")
		case ws.resourceCount > 0:
			return errConflict("conflict", "Workspace is not safe to delete because it is managing resources")
		}
		s.removeWorkspace(ws)
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

// Locks. A user may lock a workspace no one holds; a run holds its
// workspace while it is active, and neither unlock nor force-unlock
// releases a run's lock (cancelling the run does). Only the user who
// locked may unlock; force-unlock releases any user's lock.

func (s *Sim) lockWorkspace(w http.ResponseWriter, r *http.Request) error {
	var b struct {
		Reason string `json:"reason"`
	}
	_ = json.NewDecoder(io.LimitReader(r.Body, maxRequestBody)).Decode(&b) // the body is optional
	return s.withWorkspace(r, func(ws *workspace, _ time.Time) error {
		if ws.locked() {
			return errConflict("conflict", "Unable to lock workspace. The workspace is already locked.")
		}
		ws.userLock = &userLock{by: actor(r), reason: b.Reason}
		writeJSON(w, http.StatusOK, document{Data: s.workspaceResource(ws)})
		return nil
	})
}

func (s *Sim) unlockWorkspace(w http.ResponseWriter, r *http.Request) error {
	return s.withWorkspace(r, func(ws *workspace, now time.Time) error {
		if err := errUnlock("unlock", ws); err != nil {
			return err
		}
		if by := ws.userLock.by; by != actor(r) {
			// go-tfe reads "is locked by User" as ErrWorkspaceLockedByUser.
			return errConflict("conflict", "Unable to unlock workspace. The workspace is locked by User "+by.username+".")
		}
		s.unlock(ws, now)
		writeJSON(w, http.StatusOK, document{Data: s.workspaceResource(ws)})
		return nil
	})
}

func (s *Sim) forceUnlockWorkspace(w http.ResponseWriter, r *http.Request) error {
	return s.withWorkspace(r, func(ws *workspace, now time.Time) error {
		if err := errUnlock("force-unlock", ws); err != nil {
			return err
		}
		s.unlock(ws, now)
		writeJSON(w, http.StatusOK, document{Data: s.workspaceResource(ws)})
		return nil
	})
}

// errUnlock is the 409 for an unlock of a workspace a run holds or no one
// holds. go-tfe reads "is locked by Run" in an unlock's answer as
// ErrWorkspaceLockedByRun.
func errUnlock(action string, ws *workspace) error {
	if r := ws.activeRun(); r != nil {
		return errConflict("conflict", "Unable to "+action+" workspace. The workspace is locked by Run "+r.id+".")
	}
	if ws.userLock == nil {
		return errConflict("conflict", "Unable to "+action+" workspace. The workspace is not locked.")
	}
	return nil
}

// unlock releases a user's lock and starts the next pending run.
func (s *Sim) unlock(ws *workspace, now time.Time) {
	ws.userLock = nil
	s.schedule(ws, now)
}
