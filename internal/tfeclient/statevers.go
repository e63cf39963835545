package tfeclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	tfe "github.com/hashicorp/go-tfe"
)

// StateVersion is what the orchestrator reads of a workspace's state
// version: which run wrote it and its outputs.
type StateVersion struct {
	ID        string
	RunID     string // the run that wrote it; "" when none did
	Processed bool   // resources-processed: its outputs are readable
	Outputs   []StateOutput
	// Partial: TFE named outputs it did not include.
	Partial bool
}

// StateOutput is one output of a state version. Value is its JSON as TFE
// sent it, every digit of its numbers kept (null for a sensitive one in a
// list); it is never logged, nor put in an error.
type StateOutput struct {
	ID        string
	Name      string
	Sensitive bool
	Value     json.RawMessage
}

// StateVersionReader reads workspaces' state versions and their outputs.
// A refusal or an absence is a *StatusError, with TFE's status.
type StateVersionReader interface {
	// NewestStateVersions returns a workspace's newest state versions,
	// newest first, at most n, each with its outputs (sensitive values
	// null), and TFE's time of the answer (zero when it did not say):
	// one call.
	NewestStateVersions(ctx context.Context, organization, workspace string, n int) ([]StateVersion, time.Time, error)
	// ReadStateOutput reads one output with its value, sensitive or
	// not: one call.
	ReadStateOutput(ctx context.Context, outputID string) (StateOutput, error)
}

// go-tfe's list of state versions takes no include, which TFE's API does
// (include=outputs), so these requests are made with the client's
// NewRequest (its rate limit and retries); bodies are decoded here so
// that numbers keep every digit.

type svListQuery struct {
	tfe.StateVersionListOptions
	Include string `url:"include,omitempty"`
}

func (t *TFE) getState(ctx context.Context, path string, q any, out any) (time.Time, error) {
	var code int
	var date time.Time
	ctx = tfe.ContextWithResponseHeaderHook(ctx, func(status int, h http.Header) {
		code = status
		if at, err := http.ParseTime(h.Get("Date")); err == nil {
			date = at
		}
	})
	req, err := t.client.NewRequest("GET", path, q)
	if err != nil {
		return time.Time{}, err
	}
	body, err := req.DoRaw(ctx)
	if err != nil {
		if code >= 400 {
			return date, &StatusError{Code: code}
		}
		return date, err
	}
	defer body.Close()
	dec := json.NewDecoder(io.LimitReader(body, 32<<20))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return date, fmt.Errorf("decode %s: %w", path, err)
	}
	return date, nil
}

type jsonapiOutput struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	Attributes struct {
		Name      string          `json:"name"`
		Sensitive bool            `json:"sensitive"`
		Value     json.RawMessage `json:"value"`
	} `json:"attributes"`
}

type jsonapiRef struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// NewestStateVersions implements StateVersionReader.
func (t *TFE) NewestStateVersions(ctx context.Context, organization, workspace string, n int) ([]StateVersion, time.Time, error) {
	q := &svListQuery{StateVersionListOptions: tfe.StateVersionListOptions{
		ListOptions: tfe.ListOptions{PageSize: n}, Organization: organization, Workspace: workspace,
	}, Include: "outputs"}
	var doc struct {
		Data []struct {
			ID         string `json:"id"`
			Attributes struct {
				Processed bool `json:"resources-processed"`
			} `json:"attributes"`
			Relationships struct {
				Run struct {
					Data *jsonapiRef `json:"data"`
				} `json:"run"`
				Outputs struct {
					Data []jsonapiRef `json:"data"`
				} `json:"outputs"`
			} `json:"relationships"`
		} `json:"data"`
		Included []jsonapiOutput `json:"included"`
	}
	date, err := t.getState(ctx, "state-versions", q, &doc)
	if err != nil {
		return nil, date, err
	}
	included := map[string]jsonapiOutput{}
	for _, o := range doc.Included {
		if o.Type == "state-version-outputs" {
			included[o.ID] = o
		}
	}
	out := make([]StateVersion, 0, len(doc.Data))
	for _, d := range doc.Data {
		sv := StateVersion{ID: d.ID, Processed: d.Attributes.Processed}
		if r := d.Relationships.Run.Data; r != nil {
			sv.RunID = r.ID
		}
		for _, ref := range d.Relationships.Outputs.Data {
			o, ok := included[ref.ID]
			if !ok {
				sv.Partial = true
				continue
			}
			sv.Outputs = append(sv.Outputs, StateOutput{ID: o.ID, Name: o.Attributes.Name, Sensitive: o.Attributes.Sensitive, Value: o.Attributes.Value})
		}
		out = append(out, sv)
	}
	return out, date, nil
}

// ReadStateOutput implements StateVersionReader.
func (t *TFE) ReadStateOutput(ctx context.Context, outputID string) (StateOutput, error) {
	var doc struct {
		Data jsonapiOutput `json:"data"`
	}
	if _, err := t.getState(ctx, "state-version-outputs/"+outputID, nil, &doc); err != nil {
		return StateOutput{}, err
	}
	o := doc.Data
	return StateOutput{ID: o.ID, Name: o.Attributes.Name, Sensitive: o.Attributes.Sensitive, Value: o.Attributes.Value}, nil
}
