package tfesim

import (
	"net/http"
)

// Run comments: those of actions (apply, cancel, discard, force-cancel)
// and those created through the comments API.

func commentResource(c *comment) resource {
	return resource{
		ID: c.id, Type: "comments",
		Attributes: map[string]any{"body": c.body},
		// TFE ties a comment to a run event; run events are not simulated.
		Relationships: map[string]relationship{"run-event": {Data: nil}},
		Links:         map[string]any{"self": apiPrefix + "/comments/" + c.id},
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
	for i := range run.comments {
		data = append(data, commentResource(&run.comments[i]))
	}
	writeJSON(w, http.StatusOK, document{Data: data})
	return nil
}

func (s *Sim) createComment(w http.ResponseWriter, r *http.Request) error {
	body, err := decodeBody(r)
	if err != nil {
		return err
	}
	a := body.attrs()
	var text string
	a.str("body", &text)
	if a.err != nil {
		return a.err
	}
	if text == "" {
		return errUnprocessable("body can't be blank")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	run := s.runs[r.PathValue("id")]
	if run == nil {
		return errNotFound()
	}
	c := s.addComment(run, actor(r), text)
	writeJSON(w, http.StatusCreated, document{Data: commentResource(c)})
	return nil
}

func (s *Sim) showComment(w http.ResponseWriter, r *http.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := r.PathValue("id")
	run := s.comments[id]
	if run == nil {
		return errNotFound()
	}
	for i := range run.comments {
		if run.comments[i].id == id {
			writeJSON(w, http.StatusOK, document{Data: commentResource(&run.comments[i])})
			return nil
		}
	}
	return errNotFound()
}
