package tfesim

import (
	"net/http"
	"slices"
	"strings"
	"time"
)

// Organizations.

type organization struct {
	name                       string
	email                      string
	createdAt                  time.Time
	collaboratorAuthPolicy     string
	costEstimationEnabled      bool
	defaultExecutionMode       string
	sessionTimeout             int
	sessionRemember            int
	allowForceDeleteWorkspaces bool
	tags                       map[string]*orgTag // by name, created as workspaces use them
}

func (s *Sim) orgResource(o *organization) resource {
	return resource{
		ID:   o.name,
		Type: "organizations",
		Attributes: map[string]any{
			"name":                          o.name,
			"email":                         o.email,
			"created-at":                    timestamp(o.createdAt),
			"collaborator-auth-policy":      o.collaboratorAuthPolicy,
			"cost-estimation-enabled":       o.costEstimationEnabled,
			"default-execution-mode":        o.defaultExecutionMode,
			"session-timeout":               o.sessionTimeout,
			"session-remember":              o.sessionRemember,
			"allow-force-delete-workspaces": o.allowForceDeleteWorkspaces,
			"saml-enabled":                  false,
			"two-factor-conformant":         true,
			"permissions":                   map[string]any{"can-update": true, "can-destroy": true, "can-create-workspace": true},
		},
		Links: map[string]any{"self": apiPrefix + "/organizations/" + o.name},
	}
}

// AddOrganization creates an organization, as POST /organizations does.
func (s *Sim) AddOrganization(name, email string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.addOrganization(name, email)
	return err
}

func (s *Sim) addOrganization(name, email string) (*organization, error) {
	o := &organization{
		name: name, email: email, createdAt: s.clock.Now(),
		collaboratorAuthPolicy: "password", defaultExecutionMode: "remote",
		sessionTimeout: 20160, sessionRemember: 20160, tags: map[string]*orgTag{},
	}
	if err := s.validOrganization(o, ""); err != nil {
		return nil, err
	}
	s.orgs[name] = o
	return o, nil
}

// validOrganization checks o's attributes; was is its name before an update.
func (s *Sim) validOrganization(o *organization, was string) error {
	switch {
	case !validName.MatchString(o.name):
		return errUnprocessable("name is invalid: only letters, numbers, - and _ are allowed")
	case o.email == "":
		return errUnprocessable("email can't be blank")
	case o.name != was && s.orgs[o.name] != nil:
		return errUnprocessable("name has already been taken")
	case o.collaboratorAuthPolicy != "password" && o.collaboratorAuthPolicy != "two_factor_mandatory":
		return errUnprocessable("collaborator-auth-policy must be password or two_factor_mandatory")
	}
	return validExecutionMode(o.defaultExecutionMode)
}

func (s *Sim) createOrganization(w http.ResponseWriter, r *http.Request) error {
	body, err := decodeBody(r)
	if err != nil {
		return err
	}
	a := body.attrs()
	var name, email string
	a.str("name", &name)
	a.str("email", &email)
	if a.err != nil {
		return a.err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, err := s.addOrganization(name, email)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, document{Data: s.orgResource(o)})
	return nil
}

func (s *Sim) showOrganization(w http.ResponseWriter, r *http.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.orgs[r.PathValue("org")]
	if o == nil {
		return errNotFound()
	}
	writeJSON(w, http.StatusOK, document{Data: s.orgResource(o)})
	return nil
}

// listOrganizations lists organizations by name. q matches name or e-mail
// and wins over q[name] and q[email], which must both match, as TFE
// documents. Without page parameters TFE answers every organization and
// no pagination metadata; so does the simulator.
func (s *Sim) listOrganizations(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	either, name, email := strings.ToLower(q.Get("q")), strings.ToLower(q.Get("q[name]")), strings.ToLower(q.Get("q[email]"))
	s.mu.Lock()
	defer s.mu.Unlock()
	var list []*organization
	for _, o := range s.orgs {
		n, e := strings.ToLower(o.name), strings.ToLower(o.email)
		if either != "" && !strings.Contains(n, either) && !strings.Contains(e, either) ||
			either == "" && (!strings.Contains(n, name) || !strings.Contains(e, email)) {
			continue
		}
		list = append(list, o)
	}
	slices.SortFunc(list, func(a, b *organization) int { return strings.Compare(a.name, b.name) })
	writePage(w, r, list, s.orgResource, pageOnlyWhenAsked)
	return nil
}

func (s *Sim) updateOrganization(w http.ResponseWriter, r *http.Request) error {
	body, err := decodeBody(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.orgs[r.PathValue("org")]
	if o == nil {
		return errNotFound()
	}
	draft := *o
	a := body.attrs()
	a.str("name", &draft.name)
	a.str("email", &draft.email)
	a.str("collaborator-auth-policy", &draft.collaboratorAuthPolicy)
	a.boolean("cost-estimation-enabled", &draft.costEstimationEnabled)
	a.str("default-execution-mode", &draft.defaultExecutionMode)
	a.decode("session-timeout", &draft.sessionTimeout)
	a.decode("session-remember", &draft.sessionRemember)
	a.boolean("allow-force-delete-workspaces", &draft.allowForceDeleteWorkspaces)
	if a.err != nil {
		return a.err
	}
	if err := s.validOrganization(&draft, o.name); err != nil {
		return err
	}
	if draft.name != o.name {
		s.renameOrganization(o.name, draft.name)
	}
	*o = draft
	writeJSON(w, http.StatusOK, document{Data: s.orgResource(o)})
	return nil
}

// renameOrganization moves the organization's key and its workspaces.
func (s *Sim) renameOrganization(from, to string) {
	s.orgs[to] = s.orgs[from]
	delete(s.orgs, from)
	for _, ws := range s.workspaces {
		if ws.org == from {
			ws.org = to
		}
	}
}

func (s *Sim) deleteOrganization(w http.ResponseWriter, r *http.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := r.PathValue("org")
	if s.orgs[name] == nil {
		return errNotFound()
	}
	for _, ws := range s.workspaces {
		if ws.org == name {
			s.removeWorkspace(ws)
		}
	}
	delete(s.orgs, name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
