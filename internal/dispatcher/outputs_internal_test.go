package dispatcher

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
)

// fakeOutputs answers sensitive outputs' reads from a table; an ID not in
// it is refused (403).
type fakeOutputs map[string]string

func (f fakeOutputs) NewestStateVersions(context.Context, string, string, int) ([]tfeclient.StateVersion, time.Time, error) {
	return nil, time.Time{}, nil
}

func (f fakeOutputs) ReadStateOutput(_ context.Context, id string) (tfeclient.StateOutput, error) {
	v, ok := f[id]
	if !ok {
		return tfeclient.StateOutput{}, &tfeclient.StatusError{Code: 403}
	}
	return tfeclient.StateOutput{ID: id, Sensitive: true, Value: json.RawMessage(v)}, nil
}

// What counts as a changed output, value by value: exact numbers, key
// order ignored, sensitivity, additions and removals; what cannot be read
// is said, never taken as unchanged.
func TestOutputsDiff(t *testing.T) {
	out := func(id, name, value string) tfeclient.StateOutput {
		return tfeclient.StateOutput{ID: id, Name: name, Value: json.RawMessage(value)}
	}
	secret := func(id, name string) tfeclient.StateOutput {
		return tfeclient.StateOutput{ID: id, Name: name, Sensitive: true, Value: json.RawMessage("null")}
	}
	sv := func(run string, outs ...tfeclient.StateOutput) tfeclient.StateVersion {
		return tfeclient.StateVersion{ID: "sv-" + run, RunID: run, Processed: true, Outputs: outs}
	}
	for _, tc := range []struct {
		name    string
		list    []tfeclient.StateVersion
		secrets fakeOutputs
		changed string
		unknown string
		pending bool
		calls   int
		count   int
	}{
		{name: "same values, keys in another order", list: []tfeclient.StateVersion{
			sv("run-2", out("o3", "tags", `{"b":1,"a":[1,2]}`), out("o4", "id", `"x"`)),
			sv("run-1", out("o1", "id", `"x"`), out("o2", "tags", `{"a":[1,2],"b":1}`))}, count: 2},
		{name: "a number past float precision", list: []tfeclient.StateVersion{
			sv("run-2", out("o2", "n", `12345678901234567891`)), sv("run-1", out("o1", "n", `12345678901234567890`))}, changed: "n", count: 1},
		{name: "1 and 1.0 count as changed", list: []tfeclient.StateVersion{
			sv("run-2", out("o2", "n", `1.0`)), sv("run-1", out("o1", "n", `1`))}, changed: "n", count: 1},
		{name: "added, removed, sensitivity changed", list: []tfeclient.StateVersion{
			sv("run-2", out("o3", "new", `1`), secret("o4", "flip")), sv("run-1", out("o1", "old", `1`), out("o2", "flip", `1`))},
			changed: "flip,new,old", count: 2},
		{name: "sensitive, read and the same", list: []tfeclient.StateVersion{
			sv("run-2", secret("o2", "pw")), sv("run-1", secret("o1", "pw"))},
			secrets: fakeOutputs{"o1": `"s"`, "o2": `"s"`}, calls: 2, count: 1},
		{name: "sensitive, read and different", list: []tfeclient.StateVersion{
			sv("run-2", secret("o2", "pw")), sv("run-1", secret("o1", "pw"))},
			secrets: fakeOutputs{"o1": `"s"`, "o2": `"t"`}, changed: "pw", calls: 2, count: 1},
		{name: "sensitive, refused", list: []tfeclient.StateVersion{
			sv("run-2", secret("o2", "pw")), sv("run-1", secret("o1", "pw"))},
			secrets: fakeOutputs{"o1": `"s"`}, unknown: "the value of pw could not be read", calls: 1, count: 1},
		{name: "first state version", list: []tfeclient.StateVersion{sv("run-2", out("o1", "id", `1`))}, unknown: "no state version before", count: 1},
		{name: "a newer state version written since", list: []tfeclient.StateVersion{sv("run-3"), sv("run-2")}, unknown: "not the one its run run-2 wrote"},
		{name: "none at all", unknown: "no state version"},
		{name: "not processed yet", list: []tfeclient.StateVersion{{ID: "sv-2", RunID: "run-2"}, sv("run-1")}, pending: true},
		{name: "outputs left out of the include", list: []tfeclient.StateVersion{{ID: "sv-2", RunID: "run-2", Processed: true, Partial: true}, sv("run-1")},
			unknown: "did not include every output"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Dispatcher{deps: Deps{StateVersions: tc.secrets}}
			f, calls, err := d.diff(context.Background(), "run-2", tc.list, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(f.Changed, ","); got != tc.changed || f.Pending != tc.pending || calls != tc.calls || f.Count != tc.count ||
				(tc.unknown == "") != (f.Unknown == "") || !strings.Contains(f.Unknown, tc.unknown) {
				t.Errorf("got %+v in %d calls; want changed %q, unknown %q, pending %v, %d calls, %d outputs", f, calls, tc.changed, tc.unknown, tc.pending, tc.calls, tc.count)
			}
		})
	}
}
