package tfesim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
)

// State versions and their outputs. Every run that applies writes a state
// version to its workspace, serial one above the last, holding the outputs
// the workspace's behaviour sets at that moment (none for a destroy). For
// Timing.StateProcessing after the apply the state version reads
// resources-processed false and shows no outputs, as TFE fills them in
// asynchronously, and the workspace's current-state-version-outputs
// answers 503. Sensitive values are null everywhere but
// GET /state-version-outputs/:id.

type stateVersion struct {
	id          string
	ws          *workspace
	run         *run
	serial      int64
	createdAt   time.Time
	processedAt time.Time // when resources-processed turns true
	secret      string    // the download URL's object ID
	outputs     []*stateOutput
}

type stateOutput struct {
	id        string
	sv        *stateVersion
	name      string
	sensitive bool
	value     any // in jsonValue's form; never changed after it is written
}

var validOutputName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// jsonValue returns v as encoding/json decodes it with UseNumber: a deep
// copy made of nil, bool, string, json.Number, []any and map[string]any.
func jsonValue(v any) (any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}

// outputType is the output's type attribute. TFE's documentation shows
// "string" for a string and "array" for a tuple; the other names are the
// JSON ones, by the same pattern.
func outputType(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "null"
}

// detailedType is the Terraform type of a literal JSON value, in
// Terraform's JSON type syntax: a list literal is a tuple, a map literal an
// object, and null has no type of its own.
func detailedType(v any) any {
	switch x := v.(type) {
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "bool"
	case []any:
		elems := make([]any, len(x))
		for i, e := range x {
			elems[i] = detailedType(e)
		}
		return []any{"tuple", elems}
	case map[string]any:
		attrs := make(map[string]any, len(x))
		for k, e := range x {
			attrs[k] = detailedType(e)
		}
		return []any{"object", attrs}
	}
	return "dynamic"
}

// writeState records the state version r wrote by applying. A destroy
// leaves no outputs behind, as Terraform removes them with the resources.
func (s *Sim) writeState(r *run, at time.Time) {
	ws := r.ws
	sv := &stateVersion{
		id:          s.uniqueID("sv", func(id string) bool { return s.states[id] != nil }),
		ws:          ws,
		run:         r,
		serial:      1,
		createdAt:   at,
		processedAt: at.Add(s.timing.StateProcessing),
	}
	sv.secret = s.uniqueID("state", func(id string) bool { return s.stateObjs[id] != nil })
	if n := len(ws.states); n > 0 {
		sv.serial = ws.states[n-1].serial + 1
	}
	if !r.isDestroy {
		names := make([]string, 0, len(ws.behavior.Outputs))
		for name, o := range ws.behavior.Outputs {
			if o.Value != nil {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		for _, name := range names {
			o := ws.behavior.Outputs[name]
			out := &stateOutput{
				id:        s.uniqueID("wsout", func(id string) bool { return s.outputs[id] != nil }),
				sv:        sv,
				name:      name,
				sensitive: o.Sensitive,
				value:     o.Value,
			}
			sv.outputs = append(sv.outputs, out)
			s.outputs[out.id] = out
		}
	}
	ws.states = append(ws.states, sv)
	s.states[sv.id] = sv
	s.stateObjs[sv.secret] = sv
}

// forgetStates drops the state versions of a workspace being deleted.
func (s *Sim) forgetStates(ws *workspace) {
	for _, sv := range ws.states {
		for _, o := range sv.outputs {
			delete(s.outputs, o.id)
		}
		delete(s.states, sv.id)
		delete(s.stateObjs, sv.secret)
	}
	ws.states = nil
}

func (ws *workspace) currentState() *stateVersion {
	if n := len(ws.states); n > 0 {
		return ws.states[n-1]
	}
	return nil
}

func (sv *stateVersion) processed(now time.Time) bool { return !now.Before(sv.processedAt) }

// visibleOutputs are the outputs TFE shows for sv at now: none until it is
// processed.
func (sv *stateVersion) visibleOutputs(now time.Time) []*stateOutput {
	if !sv.processed(now) {
		return nil
	}
	return sv.outputs
}

// stateFile is sv as the raw Terraform state it stands for (format 4).
func (sv *stateVersion) stateFile() []byte {
	outputs := map[string]any{}
	for _, o := range sv.outputs {
		entry := map[string]any{"value": o.value, "type": detailedType(o.value)}
		if o.sensitive {
			entry["sensitive"] = true
		}
		outputs[o.name] = entry
	}
	b, _ := json.MarshalIndent(map[string]any{
		"version":           4,
		"terraform_version": sv.ws.terraformVersion,
		"serial":            sv.serial,
		"lineage":           lineage(sv.ws),
		"outputs":           outputs,
		"resources":         []any{},
		"check_results":     nil,
	}, "", "  ")
	return append(b, '\n')
}

// lineage is a stable UUID-shaped lineage for ws's states, made from its ID.
func lineage(ws *workspace) string {
	h := []byte(strings.ToLower(strings.TrimPrefix(ws.id, "ws-")))
	const hex = "0123456789abcdef"
	var b strings.Builder
	for i := range 32 {
		if i == 8 || i == 12 || i == 16 || i == 20 {
			b.WriteByte('-')
		}
		b.WriteByte(hex[int(h[i%len(h)])%16])
	}
	return b.String()
}

func (s *Sim) stateVersionResource(r *http.Request, sv *stateVersion, now time.Time) resource {
	processed := sv.processed(now)
	outputs := make([]resourceID, 0, len(sv.outputs))
	for _, o := range sv.visibleOutputs(now) {
		outputs = append(outputs, resourceID{ID: o.id, Type: "state-version-outputs"})
	}
	var resources, tfVersion any
	if processed {
		// The simulator runs no Terraform: its states manage no resources.
		resources, tfVersion = []any{}, sv.ws.terraformVersion
	}
	return resource{
		ID:   sv.id,
		Type: "state-versions",
		Attributes: map[string]any{
			"created-at":                     timestamp(sv.createdAt),
			"hosted-state-download-url":      baseURL(r) + "/_archivist/v1/object/" + sv.secret,
			"hosted-state-upload-url":        nil,
			"hosted-json-state-download-url": nil,
			"hosted-json-state-upload-url":   nil,
			"intermediate":                   false,
			"modules":                        nil,
			"providers":                      nil,
			"resources":                      resources,
			"resources-processed":            processed,
			"serial":                         sv.serial,
			"size":                           len(sv.stateFile()),
			"state-version":                  4,
			"status":                         "finalized",
			"terraform-version":              tfVersion,
			"vcs-commit-sha":                 nil,
			"vcs-commit-url":                 nil,
		},
		Relationships: map[string]relationship{
			"run":       toOne("runs", sv.run.id),
			"workspace": toOne("workspaces", sv.ws.id),
			"outputs": {Data: outputs, Links: map[string]string{
				"related": apiPrefix + "/state-versions/" + sv.id + "/outputs",
			}},
		},
		Links: map[string]any{"self": apiPrefix + "/state-versions/" + sv.id},
	}
}

// outputResource renders o; its value only when reveal is set or it is
// not sensitive.
func outputResource(o *stateOutput, reveal bool) resource {
	var value any
	if reveal || !o.sensitive {
		value = o.value
	}
	return resource{
		ID:   o.id,
		Type: "state-version-outputs",
		Attributes: map[string]any{
			"name":          o.name,
			"sensitive":     o.sensitive,
			"type":          outputType(o.value),
			"detailed-type": detailedType(o.value),
			"value":         value,
		},
		Links: map[string]any{"self": apiPrefix + "/state-version-outputs/" + o.id},
	}
}

func listedOutput(o *stateOutput) resource { return outputResource(o, false) }

// includeForState adds what inc asks for of sv.
func (s *Sim) includeForState(set *includedSet, sv *stateVersion, inc map[string]bool, now time.Time) {
	if r := sv.run; inc["run"] || inc["run.created_by"] || inc["run.configuration_version"] {
		set.add(s.runResource(r))
		if inc["run.created_by"] && r.createdBy != nil {
			set.add(userResource(r.createdBy))
		}
		if inc["run.configuration_version"] && r.cv != nil {
			set.add(s.configVersionResource(r.cv))
		}
	}
	if inc["outputs"] {
		for _, o := range sv.visibleOutputs(now) {
			set.add(listedOutput(o))
		}
	}
}

func (s *Sim) writeStateVersion(w http.ResponseWriter, r *http.Request, sv *stateVersion, inc map[string]bool, now time.Time) {
	var set includedSet
	s.includeForState(&set, sv, inc, now)
	writeJSON(w, http.StatusOK, document{Data: s.stateVersionResource(r, sv, now), Included: set.items})
}

// showCurrentStateVersion serves GET /workspaces/:id/current-state-version:
// 404 for a workspace that has none.
func (s *Sim) showCurrentStateVersion(w http.ResponseWriter, r *http.Request) error {
	inc, err := parseIncludes(r.URL.Query(), stateVersionIncludes)
	if err != nil {
		return err
	}
	return s.withWorkspace(r, func(ws *workspace, now time.Time) error {
		sv := ws.currentState()
		if sv == nil {
			return errNotFound()
		}
		s.writeStateVersion(w, r, sv, inc, now)
		return nil
	})
}

func (s *Sim) showStateVersion(w http.ResponseWriter, r *http.Request) error {
	inc, err := parseIncludes(r.URL.Query(), stateVersionIncludes)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	sv := s.states[r.PathValue("id")]
	if sv == nil {
		return errNotFound()
	}
	s.writeStateVersion(w, r, sv, inc, now)
	return nil
}

// listStateVersions serves GET /state-versions: one workspace's, named by
// filter[workspace][name] and filter[organization][name], newest first.
func (s *Sim) listStateVersions(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	inc, err := parseIncludes(q, stateVersionIncludes)
	if err != nil {
		return err
	}
	org, name := q.Get("filter[organization][name]"), q.Get("filter[workspace][name]")
	if org == "" || name == "" {
		return errBadRequest("filter[workspace][name] and filter[organization][name] are required")
	}
	statuses := splitList(q.Get("filter[status]"))
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	ws := s.workspaceByName(org, name)
	if ws == nil {
		return errNotFound()
	}
	var list []*stateVersion
	if len(statuses) == 0 || contains(statuses, "finalized") {
		for i := len(ws.states) - 1; i >= 0; i-- {
			list = append(list, ws.states[i])
		}
	}
	p := parsePage(q)
	lo, hi := p.bounds(len(list))
	data := make([]resource, 0, hi-lo)
	var set includedSet
	for _, sv := range list[lo:hi] {
		data = append(data, s.stateVersionResource(r, sv, now))
		s.includeForState(&set, sv, inc, now)
	}
	doc := document{Data: data, Included: set.items}
	paginate(&doc, r, p, len(list))
	writeJSON(w, http.StatusOK, doc)
	return nil
}

// listStateVersionOutputs serves GET /state-versions/:id/outputs, paged,
// sensitive values null.
func (s *Sim) listStateVersionOutputs(w http.ResponseWriter, r *http.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	sv := s.states[r.PathValue("id")]
	if sv == nil {
		return errNotFound()
	}
	writePage(w, r, sv.visibleOutputs(now), listedOutput, alwaysPaged)
	return nil
}

// showStateVersionOutput serves GET /state-version-outputs/:id, the one
// endpoint that reveals a sensitive value. An output of a state version
// not yet processed does not exist yet.
func (s *Sim) showStateVersionOutput(w http.ResponseWriter, r *http.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	o := s.outputs[r.PathValue("id")]
	if o == nil || !o.sv.processed(now) {
		return errNotFound()
	}
	writeJSON(w, http.StatusOK, document{Data: outputResource(o, true)})
	return nil
}

// errOutputsProcessing is TFE's documented 503 for outputs not ready yet.
func errOutputsProcessing() error {
	return &httpError{http.StatusServiceUnavailable, "Service Unavailable",
		"State version outputs are being processed and are not ready. Retry the request."}
}

// showCurrentOutputs serves GET /workspaces/:id/current-state-version-outputs:
// the current state version's outputs, sensitive values null, unpaged
// unless asked; 503 while they are being processed, 404 for a workspace
// without state.
func (s *Sim) showCurrentOutputs(w http.ResponseWriter, r *http.Request) error {
	return s.withWorkspace(r, func(ws *workspace, now time.Time) error {
		sv := ws.currentState()
		if sv == nil {
			return errNotFound()
		}
		if !sv.processed(now) {
			return errOutputsProcessing()
		}
		writePage(w, r, sv.outputs, listedOutput, pageOnlyWhenAsked)
		return nil
	})
}

// downloadState serves a state version's hosted-state-download-url, which
// like TFE's needs no token.
func (s *Sim) downloadState(w http.ResponseWriter, r *http.Request) error {
	s.mu.Lock()
	sv := s.stateObjs[r.PathValue("secret")]
	var body []byte
	if sv != nil {
		body = sv.stateFile()
	}
	s.mu.Unlock()
	if sv == nil {
		return errNotFound()
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
	return nil
}

// SetOutputs replaces the outputs the next applies of workspace id write,
// leaving the rest of its behaviour as it is. Nil or empty means none.
func (s *Sim) SetOutputs(id string, outputs map[string]Output) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws := s.workspaces[id]
	if ws == nil {
		return errNotFound()
	}
	b := ws.behavior
	b.Outputs = outputs
	b, err := b.normalized()
	if err != nil {
		return err
	}
	ws.behavior = b
	return nil
}
