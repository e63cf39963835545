package tfesim

import (
	"cmp"
	"net/http"
	"slices"
)

// maxSources is TFE's limit of source workspaces per workspace.
const maxSources = 20

func (s *Sim) runTriggerResource(t *runTrigger) resource {
	return resource{
		ID:   t.id,
		Type: "run-triggers",
		Attributes: map[string]any{
			"workspace-name":  t.target.name,
			"sourceable-name": t.source.name,
			"created-at":      timestamp(t.createdAt),
		},
		Relationships: map[string]relationship{
			"workspace":  toOne("workspaces", t.target.id),
			"sourceable": toOne("workspaces", t.source.id),
		},
		Links: map[string]any{"self": apiPrefix + "/run-triggers/" + t.id},
	}
}

// addRunTrigger creates the edge source → target with TFE's rules.
func (s *Sim) addRunTrigger(target, source *workspace) (*runTrigger, error) {
	if source == target {
		return nil, errUnprocessable("Sourceable cannot be the same as the workspace")
	}
	if source.org != target.org {
		return nil, errUnprocessable("Sourceable must belong to the same organization as the workspace")
	}
	inbound := s.inboundTriggers(target)
	for _, t := range inbound {
		if t.source == source {
			return nil, errUnprocessable("Sourceable has already been taken")
		}
	}
	if len(inbound) >= maxSources {
		return nil, errUnprocessable("Run triggers limit reached: a workspace can have at most 20 source workspaces")
	}
	t := &runTrigger{
		id:        s.uniqueID("rt", func(id string) bool { return s.triggers[id] != nil }),
		target:    target,
		source:    source,
		seq:       s.nextSeq(),
		createdAt: s.clock.Now(),
	}
	s.triggers[t.id] = t
	return t, nil
}

func (s *Sim) triggersWhere(keep func(*runTrigger) bool) []*runTrigger {
	var out []*runTrigger
	for _, t := range s.triggers {
		if keep(t) {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b *runTrigger) int { return cmp.Compare(a.seq, b.seq) })
	return out
}

func (s *Sim) inboundTriggers(ws *workspace) []*runTrigger {
	return s.triggersWhere(func(t *runTrigger) bool { return t.target == ws })
}

func (s *Sim) outboundTriggers(ws *workspace) []*runTrigger {
	return s.triggersWhere(func(t *runTrigger) bool { return t.source == ws })
}

func (s *Sim) createRunTrigger(w http.ResponseWriter, r *http.Request) error {
	body, err := decodeBody(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	target := s.workspaces[r.PathValue("id")]
	if target == nil {
		return errNotFound()
	}
	id, typ, ok := body.relID("sourceable")
	if !ok || typ != "workspaces" {
		return errUnprocessable("data.relationships.sourceable must be a workspace")
	}
	source := s.workspaces[id]
	if source == nil {
		return errNotFound()
	}
	t, err := s.addRunTrigger(target, source)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, document{Data: s.runTriggerResource(t)})
	return nil
}

func (s *Sim) listRunTriggers(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	inc, err := parseIncludes(q, runTriggerIncludes)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ws := s.workspaces[r.PathValue("id")]
	if ws == nil {
		return errNotFound()
	}
	var list []*runTrigger
	switch q.Get("filter[run-trigger][type]") {
	case "inbound":
		list = s.inboundTriggers(ws)
	case "outbound":
		list = s.outboundTriggers(ws)
	default:
		return errBadRequest("filter[run-trigger][type] is required and must be inbound or outbound")
	}
	p := parsePage(q)
	lo, hi := p.bounds(len(list))
	page := list[lo:hi]
	data := make([]resource, 0, len(page))
	for _, t := range page {
		data = append(data, s.runTriggerResource(t))
	}
	doc := document{Data: data, Included: s.triggerIncludes(page, inc)}
	paginate(&doc, r, p, len(list))
	writeJSON(w, http.StatusOK, doc)
	return nil
}

// triggerIncludes returns the workspaces an include parameter asks for.
func (s *Sim) triggerIncludes(list []*runTrigger, inc map[string]bool) []resource {
	var set includedSet
	for _, t := range list {
		if inc["workspace"] {
			set.add(s.workspaceResource(t.target))
		}
		if inc["sourceable"] {
			set.add(s.workspaceResource(t.source))
		}
	}
	return set.items
}

func (s *Sim) showRunTrigger(w http.ResponseWriter, r *http.Request) error {
	inc, err := parseIncludes(r.URL.Query(), runTriggerIncludes)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.triggers[r.PathValue("id")]
	if t == nil {
		return errNotFound()
	}
	doc := document{Data: s.runTriggerResource(t), Included: s.triggerIncludes([]*runTrigger{t}, inc)}
	writeJSON(w, http.StatusOK, doc)
	return nil
}

func (s *Sim) deleteRunTrigger(w http.ResponseWriter, r *http.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := r.PathValue("id")
	if s.triggers[id] == nil {
		return errNotFound()
	}
	delete(s.triggers, id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
