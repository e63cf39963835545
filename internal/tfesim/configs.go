package tfesim

import (
	"archive/tar"
	"cmp"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Configuration versions.
//
// As in TFE, a new configuration version that is neither speculative nor
// provisional becomes its workspace's current one when it is created, even
// before its upload; a provisional one becomes current only when a run
// using it applies, unless a newer one exists by then; a speculative one
// never does. The upload URL is in the create answer only, and accepts the
// archive again after the first upload.

func (s *Sim) configVersionResource(cv *configVersion) resource {
	return resource{
		ID: cv.id, Type: "configuration-versions",
		Attributes: map[string]any{
			"auto-queue-runs": cv.autoQueueRuns,
			"error":           nil,
			"error-message":   nil,
			"source":          cv.source,
			"speculative":     cv.speculative,
			"provisional":     cv.provisional,
			"status":          cv.status,
			"status-timestamps": map[string]any{
				"queued-at":   nil,
				"uploaded-at": timestamp(cv.uploadedAt),
			},
			"changed-files": []string{},
		},
		Relationships: map[string]relationship{"ingress-attributes": {Data: nil}},
		Links: map[string]any{
			"self":     apiPrefix + "/configuration-versions/" + cv.id,
			"download": apiPrefix + "/configuration-versions/" + cv.id + "/download",
		},
	}
}

// cvSpec are the settable attributes of a configuration version.
type cvSpec struct {
	autoQueueRuns, speculative, provisional bool
}

// addConfigVersion creates a configuration version in ws, uploaded at once
// when uploaded is set (scenario workspaces start with one).
func (s *Sim) addConfigVersion(ws *workspace, spec cvSpec, uploaded bool) *configVersion {
	now := s.clock.Now()
	cv := &configVersion{
		id:            s.uniqueID("cv", func(id string) bool { return s.cvs[id] != nil }),
		seq:           s.nextSeq(),
		ws:            ws,
		status:        "pending",
		source:        "tfe-api",
		autoQueueRuns: spec.autoQueueRuns,
		speculative:   spec.speculative,
		provisional:   spec.provisional,
		uploadSecret:  newID("u")[2:] + newID("u")[2:],
		createdAt:     now,
	}
	s.cvs[cv.id] = cv
	if !cv.speculative && !cv.provisional {
		ws.currentCV = cv
	}
	if uploaded {
		cv.status, cv.uploadedAt = "uploaded", now
	}
	return cv
}

// promoteConfigVersion makes the provisional version of a run that applied
// its workspace's current one, unless a newer one is current already.
func promoteConfigVersion(r *run) {
	cv, ws := r.cv, r.ws
	if cv == nil || !cv.provisional || cv.ws != ws {
		return
	}
	if ws.currentCV == nil || ws.currentCV.seq < cv.seq {
		ws.currentCV = cv
	}
}

func (s *Sim) createConfigVersion(w http.ResponseWriter, r *http.Request) error {
	body, err := decodeBody(r)
	if err != nil {
		return err
	}
	a := body.attrs()
	spec := cvSpec{autoQueueRuns: true}
	a.boolean("auto-queue-runs", &spec.autoQueueRuns)
	a.boolean("speculative", &spec.speculative)
	a.boolean("provisional", &spec.provisional)
	if a.err != nil {
		return a.err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ws := s.workspaces[r.PathValue("id")]
	if ws == nil {
		return errNotFound()
	}
	cv := s.addConfigVersion(ws, spec, false)
	res := s.configVersionResource(cv)
	// Only this answer carries the upload URL; TFE hides it afterwards.
	res.Attributes["upload-url"] = baseURL(r) + "/_archivist/v1/object/" + cv.uploadSecret
	writeJSON(w, http.StatusCreated, document{Data: res})
	return nil
}

func (s *Sim) listConfigVersions(w http.ResponseWriter, r *http.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws := s.workspaces[r.PathValue("id")]
	if ws == nil {
		return errNotFound()
	}
	var list []*configVersion
	for _, cv := range s.cvs {
		if cv.ws == ws {
			list = append(list, cv)
		}
	}
	slices.SortFunc(list, func(a, b *configVersion) int { return cmp.Compare(b.seq, a.seq) })
	p := parsePage(r.URL.Query())
	lo, hi := p.bounds(len(list))
	data := make([]resource, 0, hi-lo)
	for _, cv := range list[lo:hi] {
		data = append(data, s.configVersionResource(cv))
	}
	doc := document{Data: data}
	paginate(&doc, r, p, len(list))
	writeJSON(w, http.StatusOK, doc)
	return nil
}

func (s *Sim) showConfigVersion(w http.ResponseWriter, r *http.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cv := s.cvs[r.PathValue("id")]
	if cv == nil {
		return errNotFound()
	}
	writeJSON(w, http.StatusOK, document{Data: s.configVersionResource(cv)})
	return nil
}

// uploadConfigVersion takes the archive PUT to an upload URL. The archive
// must be a gzipped tar; its contents are read through and discarded. The
// first upload makes the version usable and, with auto-queue-runs, queues
// a run, as in TFE; another upload to the same URL is accepted, as TFE's
// archivist accepts it, and replaces the archive without queueing again.
func (s *Sim) uploadConfigVersion(w http.ResponseWriter, r *http.Request) error {
	if err := checkTarGz(io.LimitReader(r.Body, 64<<20)); err != nil {
		return errUnprocessable("archive is not a gzipped tar: " + err.Error())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	secret := r.PathValue("secret")
	var cv *configVersion
	for _, c := range s.cvs {
		if c.uploadSecret == secret {
			cv = c
		}
	}
	if cv == nil {
		return errNotFound()
	}
	first := cv.status == "pending"
	cv.status, cv.uploadedAt = "uploaded", now
	if first && cv.autoQueueRuns && cv.ws.executionMode != "local" {
		s.newRun(cv.ws, runSpec{
			cv: cv, message: "Queued manually using Terraform", source: "tfe-configuration-version",
			autoApply: cv.ws.autoApply, planOnly: cv.speculative, triggerReason: "manual",
		}, now)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func checkTarGz(r io.Reader) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return err
	}
	tr := tar.NewReader(gz)
	for {
		_, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return err
		}
	}
}

// Notification configurations.

func (s *Sim) notificationResource(nc *notificationConfig) resource {
	responses := nc.responses
	if responses == nil {
		responses = []deliveryResponse{}
	}
	return resource{
		ID: nc.id, Type: "notification-configurations",
		Attributes: map[string]any{
			"created-at":         timestamp(nc.createdAt),
			"delivery-responses": responses,
			"destination-type":   nc.destinationType,
			"enabled":            nc.enabled,
			"name":               nc.name,
			"token":              nil, // TFE never returns the token
			"triggers":           nc.triggers,
			"updated-at":         timestamp(nc.updatedAt),
			"url":                nc.url,
			"email-addresses":    []string{},
		},
		Relationships: map[string]relationship{
			"subscribable": toOne("workspaces", nc.ws.id),
			"users":        {Data: []any{}},
		},
		Links: map[string]any{"self": apiPrefix + "/notification-configurations/" + nc.id},
	}
}

// NotificationSpec describes a generic notification configuration.
type NotificationSpec struct {
	Name     string   `yaml:"name"`
	URL      string   `yaml:"url"`
	Token    string   `yaml:"token"`
	Triggers []string `yaml:"triggers"`
	Enabled  *bool    `yaml:"enabled"`
}

func (spec *NotificationSpec) validate() error {
	if spec.Name == "" {
		return errUnprocessable("name can't be blank")
	}
	if !strings.HasPrefix(spec.URL, "http://") && !strings.HasPrefix(spec.URL, "https://") {
		return errUnprocessable("url must be an http or https URL")
	}
	for _, t := range spec.Triggers {
		if !validTriggers[t] {
			return errUnprocessable("triggers: " + t + " is not a notification trigger")
		}
	}
	return nil
}

// addNotification saves a configuration under id, or a new ID when id is empty.
func (s *Sim) addNotification(ws *workspace, id string, spec NotificationSpec) (*notificationConfig, error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	if id == "" || s.ncs[id] != nil {
		id = s.uniqueID("nc", func(id string) bool { return s.ncs[id] != nil })
	}
	now := s.clock.Now()
	nc := &notificationConfig{
		id:              id,
		ws:              ws,
		name:            spec.Name,
		destinationType: "generic",
		enabled:         spec.Enabled == nil || *spec.Enabled,
		token:           spec.Token,
		url:             spec.URL,
		triggers:        slices.Clone(spec.Triggers),
		createdAt:       now,
		updatedAt:       now,
	}
	if nc.triggers == nil {
		nc.triggers = []string{}
	}
	s.ncs[nc.id] = nc
	return nc, nil
}

func (s *Sim) workspaceNotifications(ws *workspace) []*notificationConfig {
	var out []*notificationConfig
	for _, nc := range s.ncs {
		if nc.ws == ws {
			out = append(out, nc)
		}
	}
	slices.SortFunc(out, func(a, b *notificationConfig) int {
		if c := a.createdAt.Compare(b.createdAt); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	return out
}

func notificationSpecFrom(body *requestBody, spec *NotificationSpec) error {
	a := body.attrs()
	var destination string
	if a.str("destination-type", &destination) && destination != "generic" {
		return errUnprocessable("destination-type: only generic is simulated")
	}
	a.str("name", &spec.Name)
	a.str("url", &spec.URL)
	a.str("token", &spec.Token)
	a.decode("triggers", &spec.Triggers)
	var enabled bool
	if a.boolean("enabled", &enabled) {
		spec.Enabled = &enabled
	}
	return a.err
}

// verify sends the verification payload and reports whether the receiver
// answered 2xx. It must be called without s.mu held.
func (s *Sim) verify(ctx context.Context, nc delivery) bool {
	return s.notify.send(ctx, nc)
}

func (s *Sim) verificationDelivery(nc *notificationConfig) delivery {
	return delivery{ncID: nc.id, url: nc.url, token: nc.token, payload: verificationPayload(nc)}
}

// createNotificationConfig creates a configuration. An enabled one is saved
// only when its URL answers the verification payload with 2xx, as in TFE.
func (s *Sim) createNotificationConfig(w http.ResponseWriter, r *http.Request) error {
	body, err := decodeBody(r)
	if err != nil {
		return err
	}
	var spec NotificationSpec
	if err := notificationSpecFrom(body, &spec); err != nil {
		return err
	}
	if err := spec.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	ws := s.workspaces[r.PathValue("id")]
	if ws == nil {
		s.mu.Unlock()
		return errNotFound()
	}
	draft := &notificationConfig{
		id:   s.uniqueID("nc", func(id string) bool { return s.ncs[id] != nil }),
		name: spec.Name, url: spec.URL, token: spec.Token,
	}
	s.mu.Unlock()
	if spec.Enabled == nil || *spec.Enabled {
		if !s.verify(r.Context(), s.verificationDelivery(draft)) {
			return errUnprocessable("url could not be verified: the destination did not answer the verification payload with 2xx")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.workspaces[ws.id] == nil {
		return errNotFound()
	}
	nc, err := s.addNotification(ws, draft.id, spec)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, document{Data: s.notificationResource(nc)})
	return nil
}

// listNotificationConfigs lists a workspace's configurations: all of them,
// with no pagination metadata, unless a page is asked for, as TFE does.
func (s *Sim) listNotificationConfigs(w http.ResponseWriter, r *http.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws := s.workspaces[r.PathValue("id")]
	if ws == nil {
		return errNotFound()
	}
	writePage(w, r, s.workspaceNotifications(ws), s.notificationResource, pageOnlyWhenAsked)
	return nil
}

func (s *Sim) showNotificationConfig(w http.ResponseWriter, r *http.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	nc := s.ncs[r.PathValue("id")]
	if nc == nil {
		return errNotFound()
	}
	writeJSON(w, http.StatusOK, document{Data: s.notificationResource(nc)})
	return nil
}

// updateNotificationConfig changes a configuration; enabling it, or changing
// the URL or token of an enabled one, verifies it first.
func (s *Sim) updateNotificationConfig(w http.ResponseWriter, r *http.Request) error {
	body, err := decodeBody(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	nc := s.ncs[r.PathValue("id")]
	if nc == nil {
		s.mu.Unlock()
		return errNotFound()
	}
	enabled := nc.enabled
	spec := NotificationSpec{Name: nc.name, URL: nc.url, Token: nc.token, Triggers: nc.triggers, Enabled: &enabled}
	s.mu.Unlock()
	if err := notificationSpecFrom(body, &spec); err != nil {
		return err
	}
	if err := spec.validate(); err != nil {
		return err
	}
	if *spec.Enabled {
		d := delivery{ncID: nc.id, url: spec.URL, token: spec.Token,
			payload: verificationPayload(&notificationConfig{id: nc.id, name: spec.Name})}
		if !s.verify(r.Context(), d) {
			return errUnprocessable("url could not be verified: the destination did not answer the verification payload with 2xx")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ncs[nc.id] == nil {
		return errNotFound()
	}
	nc.name, nc.url, nc.token, nc.enabled = spec.Name, spec.URL, spec.Token, *spec.Enabled
	nc.triggers = slices.Clone(spec.Triggers)
	nc.updatedAt = s.clock.Now()
	writeJSON(w, http.StatusOK, document{Data: s.notificationResource(nc)})
	return nil
}

func (s *Sim) deleteNotificationConfig(w http.ResponseWriter, r *http.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := r.PathValue("id")
	if s.ncs[id] == nil {
		return errNotFound()
	}
	delete(s.ncs, id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// verifyNotificationConfig sends the verification payload and answers with
// the configuration, its delivery responses updated.
func (s *Sim) verifyNotificationConfig(w http.ResponseWriter, r *http.Request) error {
	s.mu.Lock()
	nc := s.ncs[r.PathValue("id")]
	if nc == nil {
		s.mu.Unlock()
		return errNotFound()
	}
	d := s.verificationDelivery(nc)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	s.verify(ctx, d)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ncs[nc.id] == nil {
		return errNotFound()
	}
	writeJSON(w, http.StatusOK, document{Data: s.notificationResource(nc)})
	return nil
}
