package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
)

// Client talks to the API: the CLI's, and tests'.
type Client struct {
	// Server is the daemon's base URL, http://127.0.0.1:8080.
	Server string
	Token  string
	// HTTP defaults to a client with a 30s timeout (watch streams use one
	// without).
	HTTP *http.Client
}

// Error is an answer other than 2xx, with the API's message.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status) }

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 30 * time.Second}
}

func (c *Client) request(ctx context.Context, method, path string, body any) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.Server, "/")+path, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	req, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := check(resp); err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("read the answer of %s %s: %w", method, path, err)
	}
	return nil
}

// check turns an answer other than 2xx into an *Error.
func check(resp *http.Response) error {
	if resp.StatusCode/100 == 2 {
		return nil
	}
	var e struct {
		Error string `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(b))
		if e.Error == "" {
			e.Error = http.StatusText(resp.StatusCode)
		}
	}
	return &Error{Status: resp.StatusCode, Message: e.Error}
}

// WhoAmI returns the token's name and role.
func (c *Client) WhoAmI(ctx context.Context) (WhoAmI, error) {
	var w WhoAmI
	return w, c.do(ctx, http.MethodGet, "/api/v1/whoami", nil, &w)
}

// ListOptions select cascades; zero fields select all.
type ListOptions struct {
	Organization, Workspace, State string
	Since                          time.Time
	Limit                          int
}

// List lists cascades, newest first.
func (c *Client) List(ctx context.Context, o ListOptions) ([]dispatcher.Summary, error) {
	q := url.Values{}
	for k, v := range map[string]string{"organization": o.Organization, "workspace": o.Workspace, "state": o.State} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !o.Since.IsZero() {
		q.Set("since", o.Since.UTC().Format(time.RFC3339))
	}
	if o.Limit > 0 {
		q.Set("limit", fmt.Sprint(o.Limit))
	}
	path := "/api/v1/cascades"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var l CascadeList
	return l.Cascades, c.do(ctx, http.MethodGet, path, nil, &l)
}

// Show returns one cascade.
func (c *Client) Show(ctx context.Context, id string) (*dispatcher.View, error) {
	var v dispatcher.View
	if err := c.do(ctx, http.MethodGet, "/api/v1/cascades/"+url.PathEscape(id), nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// Watch calls fn with the cascade's view now and after every change, until
// ctx ends, fn returns false, or the server ends the stream.
func (c *Client) Watch(ctx context.Context, id string, fn func(*dispatcher.View) bool) error {
	req, err := c.request(ctx, http.MethodGet, "/api/v1/cascades/"+url.PathEscape(id)+"/watch", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	hc := *c.http()
	hc.Timeout = 0 // a stream lasts
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := check(resp); err != nil {
		return err
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var event, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if event == "view" && data != "" {
				var v dispatcher.View
				if err := json.Unmarshal([]byte(data), &v); err != nil {
					return fmt.Errorf("a view in the stream cannot be read: %w", err)
				}
				if !fn(&v) {
					return nil
				}
			}
			event, data = "", ""
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data += strings.TrimPrefix(line, "data: ")
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return err
	}
	return ctx.Err()
}

// Why says what the cascades kept did to a workspace.
func (c *Client) Why(ctx context.Context, org, workspace string) (*dispatcher.Why, error) {
	path := "/api/v1/why/" + url.PathEscape(workspace)
	if org != "" {
		path += "?organization=" + url.QueryEscape(org)
	}
	var w dispatcher.Why
	if err := c.do(ctx, http.MethodGet, path, nil, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// Controls returns the controls in force.
func (c *Client) Controls(ctx context.Context) (*Controls, error) {
	var out Controls
	return &out, c.do(ctx, http.MethodGet, "/api/v1/controls", nil, &out)
}

// Pause pauses dispatching in org ("" for everywhere).
func (c *Client) Pause(ctx context.Context, org string, d Decision) (*Controls, error) {
	var out Controls
	return &out, c.do(ctx, http.MethodPost, "/api/v1/pause", PauseRequest{Decision: d, Organization: org}, &out)
}

// Resume lifts a pause; the answer says which (Lifted nil: nothing was
// paused there).
func (c *Client) Resume(ctx context.Context, org string, d Decision) (*ResumeAnswer, error) {
	var out ResumeAnswer
	return &out, c.do(ctx, http.MethodPost, "/api/v1/resume", PauseRequest{Decision: d, Organization: org}, &out)
}

// Status returns what is in force.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var out Status
	return &out, c.do(ctx, http.MethodGet, "/api/v1/status", nil, &out)
}

// AuditOptions select audit records; zero fields select all.
type AuditOptions struct {
	Organization, Cascade string
	Since                 time.Time
	Limit                 int
}

// Audit returns the audit records o selects, newest first.
func (c *Client) Audit(ctx context.Context, o AuditOptions) ([]dispatcher.AuditRecord, error) {
	q := url.Values{}
	if o.Organization != "" {
		q.Set("organization", o.Organization)
	}
	if o.Cascade != "" {
		q.Set("cascade", o.Cascade)
	}
	if !o.Since.IsZero() {
		q.Set("since", o.Since.UTC().Format(time.RFC3339))
	}
	if o.Limit > 0 {
		q.Set("limit", fmt.Sprint(o.Limit))
	}
	path := "/api/v1/audit"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out AuditTrail
	return out.Records, c.do(ctx, http.MethodGet, path, nil, &out)
}

// Cancel cancels a cascade.
func (c *Client) Cancel(ctx context.Context, id string, r CancelRequest) (*dispatcher.View, error) {
	var v dispatcher.View
	return &v, c.do(ctx, http.MethodPost, "/api/v1/cascades/"+url.PathEscape(id)+"/cancel", r, &v)
}

// Retry runs a failed or blocked member again.
func (c *Client) Retry(ctx context.Context, id string, r RetryRequest) (*RetryAnswer, error) {
	var v RetryAnswer
	return &v, c.do(ctx, http.MethodPost, "/api/v1/cascades/"+url.PathEscape(id)+"/retry", r, &v)
}

// Approve lets a cascade the guard holds go.
func (c *Client) Approve(ctx context.Context, id string, d Decision) (*dispatcher.View, error) {
	var v dispatcher.View
	return &v, c.do(ctx, http.MethodPost, "/api/v1/cascades/"+url.PathEscape(id)+"/approve", d, &v)
}

// SetExclusions replaces the exclusions.
func (c *Client) SetExclusions(ctx context.Context, r ExclusionsRequest) (*Controls, error) {
	var out Controls
	return &out, c.do(ctx, http.MethodPut, "/api/v1/exclusions", r, &out)
}

// SetFreezes replaces the freeze windows.
func (c *Client) SetFreezes(ctx context.Context, r FreezesRequest) (*Controls, error) {
	var out Controls
	return &out, c.do(ctx, http.MethodPut, "/api/v1/freezes", r, &out)
}

// IsStatus reports whether err is an API answer with this status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}
