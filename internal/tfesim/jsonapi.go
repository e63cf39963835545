package tfesim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// The JSON:API wire format, as TFE writes it: documents with data, included,
// links and meta; error objects with status, title and detail.

const contentTypeJSONAPI = "application/vnd.api+json"

type resource struct {
	ID            string                  `json:"id"`
	Type          string                  `json:"type"`
	Attributes    map[string]any          `json:"attributes,omitempty"`
	Relationships map[string]relationship `json:"relationships,omitempty"`
	Links         map[string]any          `json:"links,omitempty"`
}

type resourceID struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

type relationship struct {
	Data  any               `json:"data"`
	Links map[string]string `json:"links,omitempty"`
}

func toOne(typ, id string) relationship {
	if id == "" {
		return relationship{Data: nil}
	}
	return relationship{Data: resourceID{ID: id, Type: typ}}
}

type document struct {
	Data     any            `json:"data"`
	Included []resource     `json:"included,omitempty"`
	Links    map[string]any `json:"links,omitempty"`
	Meta     map[string]any `json:"meta,omitempty"`
}

type apiError struct {
	Status string `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail,omitempty"`
}

// httpError is an error that knows the HTTP status and JSON:API error object
// it is answered with.
type httpError struct {
	status int
	title  string
	detail string
}

func (e *httpError) Error() string {
	if e.detail == "" {
		return e.title
	}
	return e.title + ": " + e.detail
}

func errBadRequest(detail string) error {
	return &httpError{http.StatusBadRequest, "bad request", detail}
}
func errNotFound() error { return &httpError{http.StatusNotFound, "not found", ""} }
func errConflict(title, detail string) error {
	return &httpError{http.StatusConflict, title, detail}
}
func errUnprocessable(detail string) error {
	return &httpError{http.StatusUnprocessableEntity, "invalid attribute", detail}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", contentTypeJSONAPI)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	var he *httpError
	if !errors.As(err, &he) {
		he = &httpError{http.StatusInternalServerError, "internal error", err.Error()}
	}
	writeJSON(w, he.status, map[string]any{"errors": []apiError{{
		Status: strconv.Itoa(he.status), Title: he.title, Detail: he.detail,
	}}})
}

// timestamp formats t as TFE does (UTC, milliseconds), or null for the zero time.
func timestamp(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// nullString is a JSON null for the empty string.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// requestBody is a JSON:API request document with a single resource.
type requestBody struct {
	Data struct {
		Type          string                     `json:"type"`
		ID            string                     `json:"id"`
		Attributes    map[string]json.RawMessage `json:"attributes"`
		Relationships map[string]struct {
			Data json.RawMessage `json:"data"`
		} `json:"relationships"`
	} `json:"data"`
}

const maxRequestBody = 1 << 20

func decodeBody(r *http.Request) (*requestBody, error) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	if err != nil {
		return nil, errBadRequest("read body: " + err.Error())
	}
	if len(raw) > maxRequestBody {
		return nil, &httpError{http.StatusRequestEntityTooLarge, "request body too large", ""}
	}
	var b requestBody
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, errBadRequest("malformed JSON: " + err.Error())
	}
	return &b, nil
}

// attrs reads typed attributes from a request body, remembering the first
// type error so a handler checks once at the end.
type attrs struct {
	m   map[string]json.RawMessage
	err error
}

func (b *requestBody) attrs() *attrs { return &attrs{m: b.Data.Attributes} }

func (a *attrs) has(name string) bool {
	v, ok := a.m[name]
	return ok && string(v) != "null"
}

func (a *attrs) decode(name string, dst any) bool {
	if !a.has(name) {
		return false
	}
	if err := json.Unmarshal(a.m[name], dst); err != nil && a.err == nil {
		a.err = errUnprocessable(fmt.Sprintf("attribute %q has the wrong type", name))
		return false
	}
	return true
}

func (a *attrs) str(name string, dst *string) bool   { return a.decode(name, dst) }
func (a *attrs) boolean(name string, dst *bool) bool { return a.decode(name, dst) }

// relID returns the id and type of a to-one relationship in a request body.
func (b *requestBody) relID(name string) (id, typ string, ok bool) {
	rel, found := b.Data.Relationships[name]
	if !found || len(rel.Data) == 0 || string(rel.Data) == "null" {
		return "", "", false
	}
	var rid resourceID
	if err := json.Unmarshal(rel.Data, &rid); err != nil {
		return "", "", false
	}
	return rid.ID, rid.Type, rid.ID != ""
}

// relMany returns the raw members of a to-many relationship.
func (b *requestBody) relMany(name string) []json.RawMessage {
	rel, found := b.Data.Relationships[name]
	if !found {
		return nil
	}
	var items []json.RawMessage
	_ = json.Unmarshal(rel.Data, &items)
	return items
}

// page holds the standard page[number] and page[size] query parameters.
type page struct {
	number, size int
}

const (
	defaultPageSize = 20
	maxPageSize     = 100
)

func parsePage(q url.Values) page {
	p := page{number: 1, size: defaultPageSize}
	if n, err := strconv.Atoi(q.Get("page[number]")); err == nil && n > 0 {
		p.number = n
	}
	if n, err := strconv.Atoi(q.Get("page[size]")); err == nil && n > 0 {
		p.size = min(n, maxPageSize)
	}
	return p
}

// bounds returns the slice bounds of the page within total items.
func (p page) bounds(total int) (lo, hi int) {
	lo = min((p.number-1)*p.size, total)
	hi = min(lo+p.size, total)
	return lo, hi
}

// paginate fills the document's pagination links and meta, TFE style.
func paginate(doc *document, r *http.Request, p page, total int) {
	pages := int(math.Ceil(float64(total) / float64(p.size)))
	if pages == 0 {
		pages = 1
	}
	var prev, next any
	if p.number > 1 {
		prev = p.number - 1
	}
	if p.number < pages {
		next = p.number + 1
	}
	link := func(n any) any {
		if n == nil {
			return nil
		}
		q := r.URL.Query()
		q.Set("page[number]", fmt.Sprint(n))
		q.Set("page[size]", strconv.Itoa(p.size))
		return baseURL(r) + r.URL.Path + "?" + q.Encode()
	}
	doc.Links = map[string]any{
		"self":  link(p.number),
		"first": link(1),
		"prev":  link(prev),
		"next":  link(next),
		"last":  link(pages),
	}
	if doc.Meta == nil {
		doc.Meta = map[string]any{}
	}
	doc.Meta["pagination"] = map[string]any{
		"current-page": p.number,
		"prev-page":    prev,
		"next-page":    next,
		"page-size":    p.size,
		"total-pages":  pages,
		"total-count":  total,
	}
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// pagingMode says when a list answers with pagination links and metadata.
type pagingMode int

const (
	// alwaysPaged: most TFE lists page, 20 items by default.
	alwaysPaged pagingMode = iota
	// pageOnlyWhenAsked: without page[number] or page[size] the whole list
	// comes back with no pagination metadata, as TFE documents for
	// notification configurations and organizations.
	pageOnlyWhenAsked
)

// writePage answers a list of items rendered by render, paged per mode.
func writePage[T any](w http.ResponseWriter, r *http.Request, list []T, render func(T) resource, mode pagingMode) {
	q := r.URL.Query()
	lo, hi := 0, len(list)
	var p page
	paged := mode == alwaysPaged || q.Has("page[number]") || q.Has("page[size]")
	if paged {
		p = parsePage(q)
		lo, hi = p.bounds(len(list))
	}
	data := make([]resource, 0, hi-lo)
	for _, item := range list[lo:hi] {
		data = append(data, render(item))
	}
	doc := document{Data: data}
	if paged {
		paginate(&doc, r, p, len(list))
	}
	writeJSON(w, http.StatusOK, doc)
}
