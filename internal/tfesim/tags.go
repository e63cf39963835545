package tfesim

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Workspace tags: flat string tags, which TFE keeps as organization tags
// with IDs. A workspace holds tag names; the organization gives each name
// an ID the first time a workspace uses it.

type orgTag struct {
	id        string
	name      string
	createdAt time.Time
}

// orgTag returns the organization's tag named name, creating it if needed.
func (s *Sim) orgTag(o *organization, name string) *orgTag {
	if t := o.tags[name]; t != nil {
		return t
	}
	t := &orgTag{id: newID("tag"), name: name, createdAt: s.clock.Now()}
	o.tags[name] = t
	return t
}

func tagByID(o *organization, id string) *orgTag {
	for _, t := range o.tags {
		if t.id == id {
			return t
		}
	}
	return nil
}

func (s *Sim) tagResource(o *organization, t *orgTag) resource {
	n := 0
	for _, ws := range s.workspaces {
		if ws.org == o.name && slices.Contains(ws.tags, t.name) {
			n++
		}
	}
	return resource{
		ID: t.id, Type: "tags",
		Attributes:    map[string]any{"name": t.name, "created-at": timestamp(t.createdAt), "instance-count": n},
		Relationships: map[string]relationship{"organization": toOne("organizations", o.name)},
	}
}

// listWorkspaceTags lists a workspace's tags, paged; name filters on a
// part of the tag's name.
func (s *Sim) listWorkspaceTags(w http.ResponseWriter, r *http.Request) error {
	filter := strings.ToLower(r.URL.Query().Get("name"))
	return s.withWorkspace(r, func(ws *workspace, _ time.Time) error {
		o := s.orgs[ws.org]
		var list []*orgTag
		for _, name := range ws.tags {
			if strings.Contains(name, filter) {
				list = append(list, s.orgTag(o, name))
			}
		}
		writePage(w, r, list, func(t *orgTag) resource { return s.tagResource(o, t) }, alwaysPaged)
		return nil
	})
}

// tagRefs reads the data array of a tags relationship request: each tag
// by ID or by attributes.name.
func tagRefs(r *http.Request) ([]tagRef, error) {
	var body struct {
		Data []struct {
			ID         string `json:"id"`
			Attributes struct {
				Name string `json:"name"`
			} `json:"attributes"`
		} `json:"data"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxRequestBody)).Decode(&body); err != nil {
		return nil, errBadRequest("malformed JSON: " + err.Error())
	}
	refs := make([]tagRef, 0, len(body.Data))
	for _, d := range body.Data {
		if d.ID == "" && d.Attributes.Name == "" {
			return nil, errUnprocessable("each tag needs an id or a name")
		}
		refs = append(refs, tagRef{id: d.ID, name: d.Attributes.Name})
	}
	return refs, nil
}

type tagRef struct{ id, name string }

// resolve finds the tag a reference names. An ID must be the
// organization's; a name is kept as it is, the organization tag made when
// it is added.
func (ref tagRef) resolve(o *organization) (string, error) {
	if ref.id == "" {
		return ref.name, nil
	}
	t := tagByID(o, ref.id)
	if t == nil {
		return "", errNotFound()
	}
	return t.name, nil
}

func (s *Sim) addWorkspaceTags(w http.ResponseWriter, r *http.Request) error {
	refs, err := tagRefs(r)
	if err != nil {
		return err
	}
	return s.withWorkspace(r, func(ws *workspace, now time.Time) error {
		o := s.orgs[ws.org]
		tags := slices.Clone(ws.tags)
		for _, ref := range refs {
			name, err := ref.resolve(o)
			if err != nil {
				return err
			}
			tags = append(tags, name)
		}
		ws.tags = normaliseTags(tags)
		for _, name := range ws.tags {
			s.orgTag(o, name)
		}
		ws.updatedAt = now
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

// removeWorkspaceTags removes tags; a name no organization tag has is
// skipped, as TFE documents.
func (s *Sim) removeWorkspaceTags(w http.ResponseWriter, r *http.Request) error {
	refs, err := tagRefs(r)
	if err != nil {
		return err
	}
	return s.withWorkspace(r, func(ws *workspace, now time.Time) error {
		o := s.orgs[ws.org]
		var drop []string
		for _, ref := range refs {
			name, err := ref.resolve(o)
			if err != nil {
				return err
			}
			drop = append(drop, strings.ToLower(name))
		}
		ws.tags = slices.DeleteFunc(slices.Clone(ws.tags), func(t string) bool { return slices.Contains(drop, t) })
		ws.updatedAt = now
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}
