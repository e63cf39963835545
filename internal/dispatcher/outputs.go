package dispatcher

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
)

// Comparing an upstream's outputs (output gating, cascade.RunWhenOutputs):
// the state version its cascade run wrote against the one before it.
//
// One call reads both: the workspace's state versions, newest first, two
// to a page, with their outputs included. A sensitive output present in
// both costs two more (its value is shown only one output at a time).
// Values are never logged, stored or shown: each is reduced, as soon as it
// is read, to the SHA-256 of its canonical JSON, and only which names
// differ is kept. What a comparison found is kept in memory by run ID (a
// state version never changes once TFE processed it), so every member
// downstream of one upstream costs that one read.

// StateVersions reads workspaces' state versions for output gating;
// *tfeclient.TFE is one.
type StateVersions interface {
	tfeclient.StateVersionReader
}

// outputsCache keeps what comparisons found, by run ID: names and counts,
// never values. Bounded: past its size it starts afresh.
type outputsCache struct {
	mu sync.Mutex
	m  map[string]cascade.OutputsDiff
}

const outputsCacheSize = 4096

func (c *outputsCache) get(runID string) (cascade.OutputsDiff, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.m[runID]
	return f, ok
}

func (c *outputsCache) put(runID string, f cascade.OutputsDiff) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= outputsCacheSize {
		c.m = map[string]cascade.OutputsDiff{}
	}
	c.m[runID] = f
}

// compareOutputs compares the outputs of the state version run wrote in
// a workspace with the state version before it, and returns what it found
// and the API calls it made. Only a failure that may pass (TFE
// unavailable) is an error; anything else that keeps the outputs from
// being compared is a finding (Unknown), and the member runs.
func (d *Dispatcher) compareOutputs(ctx context.Context, p *cascade.Plan, need cascade.OutputsNeed) (cascade.OutputsDiff, int, error) {
	if f, ok := d.outputs.get(need.RunID); ok {
		return f, 0, nil
	}
	if d.deps.StateVersions == nil {
		return cascade.OutputsDiff{Unknown: "the engine was not given access to state versions"}, 0, nil
	}
	name := p.Name(need.WorkspaceID)
	list, at, err := d.deps.StateVersions.NewestStateVersions(ctx, p.Organization, name, 2)
	calls := 1
	if err != nil {
		if why, ok := refused(err); ok {
			return cascade.OutputsDiff{Unknown: "TFE did not let the engine list its state versions (" + why + ")"}, calls, nil
		}
		return cascade.OutputsDiff{}, calls, fmt.Errorf("list the state versions of %s: %w", name, err)
	}
	f, n, err := d.diff(ctx, need.RunID, list, at)
	calls += n
	if err != nil {
		return f, calls, fmt.Errorf("read the outputs of %s: %w", name, err)
	}
	if !f.Pending {
		d.outputs.put(need.RunID, f)
	}
	return f, calls, nil
}

// refused reports a refusal or an absence: TFE answered, and asking again
// will not change its answer.
func refused(err error) (string, bool) {
	var se *tfeclient.StatusError
	if !errors.As(err, &se) {
		return "", false
	}
	switch tfeclient.Classify(err, nil) {
	case tfeclient.Unauthorized, tfeclient.Gone, tfeclient.Refused:
		return fmt.Sprintf("HTTP %d", se.Code), true
	}
	return "", false
}

// diff compares the newest state version, which must be the one runID
// wrote, with the one before it.
func (d *Dispatcher) diff(ctx context.Context, runID string, list []tfeclient.StateVersion, at time.Time) (cascade.OutputsDiff, int, error) {
	switch {
	case len(list) == 0:
		return cascade.OutputsDiff{Unknown: "it has no state version"}, 0, nil
	case list[0].RunID != runID:
		return cascade.OutputsDiff{Unknown: "its newest state version is not the one its run " + runID + " wrote"}, 0, nil
	case !list[0].Processed:
		return cascade.OutputsDiff{Pending: true, At: at}, 0, nil
	case len(list) < 2:
		return cascade.OutputsDiff{Count: len(list[0].Outputs), Unknown: "no state version before the one its run wrote"}, 0, nil
	case !list[1].Processed:
		return cascade.OutputsDiff{Count: len(list[0].Outputs), Unknown: "the state version before its run's is not processed"}, 0, nil
	case list[0].Partial || list[1].Partial:
		return cascade.OutputsDiff{Count: len(list[0].Outputs), Unknown: "TFE did not include every output of its state versions"}, 0, nil
	}
	now, before := list[0].Outputs, list[1].Outputs
	f := cascade.OutputsDiff{Count: len(now)}
	old := make(map[string]tfeclient.StateOutput, len(before))
	for _, o := range before {
		old[o.Name] = o
	}
	calls := 0
	var unreadable []string
	for _, o := range now {
		prev, ok := old[o.Name]
		delete(old, o.Name)
		switch {
		case !ok || prev.Sensitive != o.Sensitive:
			f.Changed = append(f.Changed, o.Name)
			continue
		case !o.Sensitive:
			a, errA := hashValue(o.Value)
			b, errB := hashValue(prev.Value)
			if errA != nil || errB != nil {
				unreadable = append(unreadable, o.Name)
			} else if a != b {
				f.Changed = append(f.Changed, o.Name)
			}
			continue
		}
		// Sensitive in both: only one output at a time shows its value.
		same, n, err := d.sameSensitive(ctx, o.ID, prev.ID)
		calls += n
		switch {
		case err != nil:
			if _, ok := refused(err); !ok {
				return f, calls, err
			}
			unreadable = append(unreadable, o.Name)
		case !same:
			f.Changed = append(f.Changed, o.Name)
		}
	}
	for name := range old {
		f.Changed = append(f.Changed, name) // removed
	}
	slices.Sort(f.Changed)
	if len(unreadable) > 0 && len(f.Changed) == 0 {
		slices.Sort(unreadable)
		f.Unknown = fmt.Sprintf("the value of %s could not be read to compare", joinNames(unreadable))
	}
	return f, calls, nil
}

// sameSensitive reads two sensitive outputs and reports whether their
// values are the same; the values are hashed as read and dropped.
func (d *Dispatcher) sameSensitive(ctx context.Context, a, b string) (bool, int, error) {
	var hashes [2][32]byte
	for k, id := range []string{a, b} {
		o, err := d.deps.StateVersions.ReadStateOutput(ctx, id)
		if err != nil {
			return false, k + 1, err
		}
		if hashes[k], err = hashValue(o.Value); err != nil {
			return false, k + 1, &tfeclient.StatusError{Code: http.StatusUnprocessableEntity}
		}
	}
	return hashes[0] == hashes[1], 2, nil
}

// hashValue is the SHA-256 of a JSON value's canonical form: object keys
// sorted, no spaces, numbers as TFE wrote them (so 1 and 1.0 differ: the
// comparison errs towards running).
func hashValue(raw json.RawMessage) ([32]byte, error) {
	if len(raw) == 0 {
		raw = json.RawMessage("null")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return [32]byte{}, err
	}
	canon, err := json.Marshal(v)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(canon), nil
}

func joinNames(names []string) string {
	switch len(names) {
	case 1:
		return names[0]
	case 2:
		return names[0] + " and " + names[1]
	}
	return fmt.Sprintf("%s and %d more", names[0], len(names)-1)
}
