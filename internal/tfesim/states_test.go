package tfesim_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// apply runs wsID (an auto-apply workspace on instant timing) to its end
// and checks that it ends in want.
func (e *testEnv) apply(wsID string, want tfe.RunStatus) *tfe.Run {
	e.t.Helper()
	r := e.run(wsID, tfe.RunCreateOptions{AutoApply: tfe.Bool(true)})
	e.wantStatus(r.ID, want)
	return r
}

func (e *testEnv) stateVersions(org, ws string, page, size int) *tfe.StateVersionList {
	e.t.Helper()
	list, err := e.client.StateVersions.List(e.ctx, &tfe.StateVersionListOptions{
		ListOptions:  tfe.ListOptions{PageNumber: page, PageSize: size},
		Organization: org, Workspace: ws,
	})
	if err != nil {
		e.t.Fatalf("list state versions: %v", err)
	}
	return list
}

func outputsByName(items []*tfe.StateVersionOutput) map[string]*tfe.StateVersionOutput {
	m := map[string]*tfe.StateVersionOutput{}
	for _, o := range items {
		m[o.Name] = o
	}
	return m
}

const outputsBehavior = `{"outputs": {
	"vpc_id": {"value": "vpc-1"},
	"db_password": {"value": "x", "sensitive": true},
	"azs": {"value": ["a", "b"]},
	"tags": {"value": {"env": "prod", "n": 3}},
	"count": {"value": 3},
	"enabled": {"value": true},
	"big": {"value": 12345678901234567890},
	"gone": {"value": null}
}}`

// The outputs set through the control API come back through every
// endpoint go-tfe reads them with, typed as Terraform types literals,
// with the sensitive one's value null everywhere but its own show.
func TestStateVersionsOfApplies(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net")})

	if _, err := e.client.StateVersions.ReadCurrent(e.ctx, ws.ID); !errors.Is(err, tfe.ErrResourceNotFound) {
		t.Errorf("current state version before any apply: got %v, want ErrResourceNotFound", err)
	}
	if _, err := e.client.StateVersionOutputs.ReadCurrent(e.ctx, ws.ID); !errors.Is(err, tfe.ErrResourceNotFound) {
		t.Errorf("current outputs before any apply: got %v, want ErrResourceNotFound", err)
	}
	if list := e.stateVersions("acme", "net", 1, 20); len(list.Items) != 0 || list.TotalCount != 0 {
		t.Errorf("state versions before any apply: got %d (total %d)", len(list.Items), list.TotalCount)
	}

	if code, body := e.raw("PUT", "/_sim/workspaces/"+ws.ID+"/behavior", adminToken, outputsBehavior); code != http.StatusOK {
		t.Fatalf("set outputs: got %d %s", code, body)
	}
	run1 := e.apply(ws.ID, tfe.RunApplied)

	sv, err := e.client.StateVersions.ReadCurrentWithOptions(e.ctx, ws.ID, &tfe.StateVersionCurrentOptions{
		Include: []tfe.StateVersionIncludeOpt{tfe.SVoutputs, tfe.SVrun},
	})
	if err != nil {
		t.Fatal(err)
	}
	if sv.Serial != 1 || sv.Status != tfe.StateVersionFinalized || !sv.ResourcesProcessed || !sv.CreatedAt.Equal(epoch) ||
		sv.StateVersion != 4 || sv.TerraformVersion == "" || sv.DownloadURL == "" {
		t.Errorf("state version: serial %d status %s processed %v created %v format %d terraform %q download %q",
			sv.Serial, sv.Status, sv.ResourcesProcessed, sv.CreatedAt, sv.StateVersion, sv.TerraformVersion, sv.DownloadURL)
	}
	if sv.Run == nil || sv.Run.ID != run1.ID || sv.Run.Status != tfe.RunApplied {
		t.Errorf("state version's run: got %+v, want %s (included, applied)", sv.Run, run1.ID)
	}
	if len(sv.Outputs) != 7 {
		t.Fatalf("included outputs: got %d, want 7 (the null one writes none)", len(sv.Outputs))
	}
	var names []string
	for _, o := range sv.Outputs {
		names = append(names, o.Name)
	}
	if want := []string{"azs", "big", "count", "db_password", "enabled", "tags", "vpc_id"}; !reflect.DeepEqual(names, want) {
		t.Errorf("output order: got %v, want %v", names, want)
	}

	byName := outputsByName(sv.Outputs)
	for _, tc := range []struct {
		name     string
		typ      string
		detailed any
		value    any
	}{
		{"vpc_id", "string", "string", "vpc-1"},
		{"db_password", "string", "string", nil},
		{"azs", "array", []any{"tuple", []any{"string", "string"}}, []any{"a", "b"}},
		{"tags", "object", []any{"object", map[string]any{"env": "string", "n": "number"}}, map[string]any{"env": "prod", "n": 3.0}},
		{"count", "number", "number", 3.0},
		{"enabled", "boolean", "bool", true},
	} {
		o := byName[tc.name]
		if o == nil {
			t.Errorf("output %s missing", tc.name)
			continue
		}
		if o.Type != tc.typ || !reflect.DeepEqual(o.DetailedType, tc.detailed) || !reflect.DeepEqual(o.Value, tc.value) {
			t.Errorf("output %s: type %q detailed-type %#v value %#v; want %q %#v %#v",
				tc.name, o.Type, o.DetailedType, o.Value, tc.typ, tc.detailed, tc.value)
		}
		if o.Sensitive != (tc.name == "db_password") {
			t.Errorf("output %s: sensitive %v", tc.name, o.Sensitive)
		}
	}
	// Numbers keep every digit on the wire.
	if _, body := e.raw("GET", "/api/v2/state-version-outputs/"+byName["big"].ID, adminToken, ""); !strings.Contains(string(body), `"value":12345678901234567890`) {
		t.Errorf("big number: %s", body)
	}

	secret, err := e.client.StateVersionOutputs.Read(e.ctx, byName["db_password"].ID)
	if err != nil {
		t.Fatal(err)
	}
	if secret.Value != "x" || !secret.Sensitive {
		t.Errorf("show of the sensitive output: value %#v sensitive %v, want x, true", secret.Value, secret.Sensitive)
	}

	listed, err := e.client.StateVersions.ListOutputs(e.ctx, sv.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed.Items) != 7 || listed.TotalCount != 7 {
		t.Errorf("listed outputs: got %d (total %d), want 7", len(listed.Items), listed.TotalCount)
	}
	if o := outputsByName(listed.Items)["db_password"]; o == nil || o.Value != nil || !o.Sensitive {
		t.Errorf("listed sensitive output: %+v, want a null value", o)
	}
	current, err := e.client.StateVersionOutputs.ReadCurrent(e.ctx, ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	if o := outputsByName(current.Items)["db_password"]; len(current.Items) != 7 || o == nil || o.Value != nil {
		t.Errorf("current outputs: %d items, sensitive one %+v; want 7 and a null value", len(current.Items), o)
	}
	if o := outputsByName(current.Items)["vpc_id"]; o == nil || o.Value != "vpc-1" {
		t.Errorf("current outputs: vpc_id %+v", o)
	}

	// The same behaviour applied again writes the same values under the
	// next serial; a run with no changes writes nothing.
	e.sim.Advance(time.Minute)
	run2 := e.apply(ws.ID, tfe.RunApplied)
	b := e.behavior(ws.ID)
	b.Outcome = tfesim.OutcomeNoChanges
	e.behave(ws.ID, b)
	e.apply(ws.ID, tfe.RunPlannedAndFinished)

	list := e.stateVersions("acme", "net", 1, 20)
	if len(list.Items) != 2 || list.TotalCount != 2 {
		t.Fatalf("state versions after two applies and a no-change run: got %d (total %d), want 2", len(list.Items), list.TotalCount)
	}
	if list.Items[0].Serial != 2 || list.Items[1].Serial != 1 || list.Items[0].Run.ID != run2.ID {
		t.Errorf("list: serials %d, %d (run %s); want 2, 1 (run %s)", list.Items[0].Serial, list.Items[1].Serial, list.Items[0].Run.ID, run2.ID)
	}
	if !list.Items[0].CreatedAt.Equal(epoch.Add(time.Minute)) {
		t.Errorf("second state version created at %v, want %v", list.Items[0].CreatedAt, epoch.Add(time.Minute))
	}
	again, err := e.client.StateVersions.ReadWithOptions(e.ctx, list.Items[0].ID, &tfe.StateVersionReadOptions{Include: []tfe.StateVersionIncludeOpt{tfe.SVoutputs}})
	if err != nil {
		t.Fatal(err)
	}
	before, after := outputsByName(sv.Outputs), outputsByName(again.Outputs)
	for name, o := range before {
		if a := after[name]; a == nil || !reflect.DeepEqual(a.Value, o.Value) || a.ID == o.ID {
			t.Errorf("output %s in serial 2: %+v; want serial 1's value under a new ID", name, a)
		}
	}

	w, err := e.client.Workspaces.ReadByID(e.ctx, ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	if w.CurrentStateVersion == nil || w.CurrentStateVersion.ID != again.ID {
		t.Errorf("workspace current-state-version: got %+v, want %s", w.CurrentStateVersion, again.ID)
	}

	raw, err := e.client.StateVersions.Download(e.ctx, again.DownloadURL)
	if err != nil {
		t.Fatal(err)
	}
	var state struct {
		Version int   `json:"version"`
		Serial  int64 `json:"serial"`
		Outputs map[string]struct {
			Value     any  `json:"value"`
			Sensitive bool `json:"sensitive"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(raw, &state); err != nil {
		t.Fatalf("downloaded state: %v\n%s", err, raw)
	}
	if state.Version != 4 || state.Serial != 2 || state.Outputs["vpc_id"].Value != "vpc-1" || !state.Outputs["db_password"].Sensitive {
		t.Errorf("downloaded state: %s", raw)
	}
}

func (e *testEnv) behavior(wsID string) tfesim.Behavior {
	e.t.Helper()
	code, body := e.raw("GET", "/_sim/workspaces/"+wsID+"/behavior", adminToken, "")
	if code != http.StatusOK {
		e.t.Fatalf("get behavior: %d %s", code, body)
	}
	var b tfesim.Behavior
	if err := json.Unmarshal(body, &b); err != nil {
		e.t.Fatal(err)
	}
	return b
}

func TestStateVersionsListPagingAndFilters(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")
	e.org("other")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net")})
	e.workspace("other", tfe.WorkspaceCreateOptions{Name: tfe.String("net")})
	for range 5 {
		e.apply(ws.ID, tfe.RunApplied)
	}

	var serials []int64
	for page := 1; page <= 3; page++ {
		list := e.stateVersions("acme", "net", page, 2)
		if list.TotalCount != 5 || list.TotalPages != 3 || list.CurrentPage != page {
			t.Errorf("page %d: total %d pages %d current %d", page, list.TotalCount, list.TotalPages, list.CurrentPage)
		}
		for _, sv := range list.Items {
			serials = append(serials, sv.Serial)
		}
	}
	if want := []int64{5, 4, 3, 2, 1}; !reflect.DeepEqual(serials, want) {
		t.Errorf("serials over three pages: got %v, want %v", serials, want)
	}
	if list := e.stateVersions("other", "net", 1, 20); len(list.Items) != 0 {
		t.Errorf("the other organization's workspace of the same name: got %d state versions, want 0", len(list.Items))
	}
	if _, err := e.client.StateVersions.List(e.ctx, &tfe.StateVersionListOptions{Organization: "acme", Workspace: "nope"}); !errors.Is(err, tfe.ErrResourceNotFound) {
		t.Errorf("unknown workspace: got %v, want ErrResourceNotFound", err)
	}
	q := url.Values{"filter[organization][name]": {"acme"}}
	if code, _ := e.raw("GET", "/api/v2/state-versions?"+q.Encode(), adminToken, ""); code != http.StatusBadRequest {
		t.Errorf("without filter[workspace][name]: got %d, want 400", code)
	}
	q.Set("filter[workspace][name]", "net")
	q.Set("filter[status]", "discarded")
	var doc struct {
		Data []any `json:"data"`
	}
	_, body := e.raw("GET", "/api/v2/state-versions?"+q.Encode(), adminToken, "")
	if err := json.Unmarshal(body, &doc); err != nil || len(doc.Data) != 0 {
		t.Errorf("filter[status]=discarded: %s", body)
	}
}

// For Timing.StateProcessing after an apply its state version is not
// processed: no outputs anywhere, and current-state-version-outputs
// answers 503, which go-tfe returns as a plain error unless it retries
// server errors, in which case it waits the processing out.
func TestStateOutputsWhileProcessing(t *testing.T) {
	e := newEnv(t, tfesim.Options{Timing: &tfesim.Timing{StateProcessing: 5 * time.Second}})
	e.org("acme")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net")})
	if err := e.sim.SetOutputs(ws.ID, map[string]tfesim.Output{"vpc_id": {Value: "vpc-1"}}); err != nil {
		t.Fatal(err)
	}
	e.apply(ws.ID, tfe.RunApplied)

	sv, err := e.client.StateVersions.ReadCurrentWithOptions(e.ctx, ws.ID, &tfe.StateVersionCurrentOptions{Include: []tfe.StateVersionIncludeOpt{tfe.SVoutputs}})
	if err != nil {
		t.Fatal(err)
	}
	if sv.ResourcesProcessed || len(sv.Outputs) != 0 || sv.TerraformVersion != "" {
		t.Errorf("unprocessed state version: processed %v, %d outputs, terraform %q; want false, none, none", sv.ResourcesProcessed, len(sv.Outputs), sv.TerraformVersion)
	}
	if listed, err := e.client.StateVersions.ListOutputs(e.ctx, sv.ID, nil); err != nil || len(listed.Items) != 0 {
		t.Errorf("outputs of an unprocessed state version: %v, %v", listed, err)
	}
	_, err = e.client.StateVersionOutputs.ReadCurrent(e.ctx, ws.ID)
	if err == nil || errors.Is(err, tfe.ErrResourceNotFound) || !strings.Contains(err.Error(), "being processed") {
		t.Errorf("current outputs while processing: got %v, want the 503's error", err)
	}
	code, body := e.raw("GET", "/api/v2/workspaces/"+ws.ID+"/current-state-version-outputs", adminToken, "")
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), `"status":"503"`) {
		t.Errorf("current outputs while processing: got %d %s, want 503 with an error object", code, body)
	}

	// A client that retries server errors gets the outputs once they are.
	retrying, err := tfe.NewClient(&tfe.Config{Address: e.srv.URL, Token: adminToken, RetryServerErrors: true})
	if err != nil {
		t.Fatal(err)
	}
	const route = "GET /api/v2/workspaces/{id}/current-state-version-outputs"
	seen := e.sim.Stats().Requests[route]
	type result struct {
		list *tfe.StateVersionOutputsList
		err  error
	}
	done := make(chan result, 1)
	go func() {
		list, err := retrying.StateVersionOutputs.ReadCurrent(e.ctx, ws.ID)
		done <- result{list, err}
	}()
	eventually(t, "the retrying client is answered 503", func() bool { return e.sim.Stats().Requests[route] > seen })
	e.sim.Advance(5 * time.Second)
	select {
	case res := <-done:
		if res.err != nil || len(res.list.Items) != 1 || res.list.Items[0].Value != "vpc-1" {
			t.Errorf("retried current outputs: %+v, %v", res.list, res.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the retrying client did not get the outputs")
	}

	sv, err = e.client.StateVersions.Read(e.ctx, sv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !sv.ResourcesProcessed || len(sv.Outputs) != 1 {
		t.Errorf("processed state version: processed %v, %d outputs", sv.ResourcesProcessed, len(sv.Outputs))
	}

	// The next apply's state is the current one, and it is processed anew.
	e.apply(ws.ID, tfe.RunApplied)
	if _, err := e.client.StateVersionOutputs.ReadCurrent(e.ctx, ws.ID); err == nil {
		t.Error("current outputs right after a second apply: got them, want the 503")
	}
	e.sim.Advance(5 * time.Second)
	if cur, err := e.client.StateVersionOutputs.ReadCurrent(e.ctx, ws.ID); err != nil || len(cur.Items) != 1 {
		t.Errorf("current outputs once processed: %+v, %v", cur, err)
	}
}

func TestStateNotFound(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net")})
	if err := e.sim.SetOutputs(ws.ID, map[string]tfesim.Output{"vpc_id": {Value: "vpc-1"}}); err != nil {
		t.Fatal(err)
	}
	e.apply(ws.ID, tfe.RunApplied)
	sv, err := e.client.StateVersions.ReadCurrentWithOptions(e.ctx, ws.ID, &tfe.StateVersionCurrentOptions{Include: []tfe.StateVersionIncludeOpt{tfe.SVoutputs}})
	if err != nil || len(sv.Outputs) != 1 {
		t.Fatalf("current state version: %+v, %v", sv, err)
	}
	outputID := sv.Outputs[0].ID

	checkGone := func(what string) {
		t.Helper()
		for name, call := range map[string]func() error{
			"StateVersions.Read":              func() error { _, err := e.client.StateVersions.Read(e.ctx, sv.ID); return err },
			"StateVersions.ListOutputs":       func() error { _, err := e.client.StateVersions.ListOutputs(e.ctx, sv.ID, nil); return err },
			"StateVersionOutputs.Read":        func() error { _, err := e.client.StateVersionOutputs.Read(e.ctx, outputID); return err },
			"StateVersions.ReadCurrent":       func() error { _, err := e.client.StateVersions.ReadCurrent(e.ctx, ws.ID); return err },
			"StateVersionOutputs.ReadCurrent": func() error { _, err := e.client.StateVersionOutputs.ReadCurrent(e.ctx, ws.ID); return err },
		} {
			if err := call(); !errors.Is(err, tfe.ErrResourceNotFound) {
				t.Errorf("%s: %s: got %v, want ErrResourceNotFound", what, name, err)
			}
		}
	}
	for name, call := range map[string]func() error{
		"StateVersions.Read": func() error { _, err := e.client.StateVersions.Read(e.ctx, "sv-doesnotexist0000"); return err },
		"StateVersions.ListOutputs": func() error {
			_, err := e.client.StateVersions.ListOutputs(e.ctx, "sv-doesnotexist0000", nil)
			return err
		},
		"StateVersionOutputs.Read":  func() error { _, err := e.client.StateVersionOutputs.Read(e.ctx, "wsout-doesnotexist00"); return err },
		"StateVersions.ReadCurrent": func() error { _, err := e.client.StateVersions.ReadCurrent(e.ctx, "ws-doesnotexist0000"); return err },
	} {
		if err := call(); !errors.Is(err, tfe.ErrResourceNotFound) {
			t.Errorf("unknown ID: %s: got %v, want ErrResourceNotFound", name, err)
		}
	}
	if _, err := e.client.StateVersions.ReadWithOptions(e.ctx, sv.ID, &tfe.StateVersionReadOptions{Include: []tfe.StateVersionIncludeOpt{"nope"}}); !errors.Is(err, tfe.ErrInvalidIncludeValue) {
		t.Errorf("unknown include: got %v, want ErrInvalidIncludeValue", err)
	}

	// A deleted workspace's state goes with it, download included.
	if err := e.client.Workspaces.DeleteByID(e.ctx, ws.ID); err != nil {
		t.Fatal(err)
	}
	checkGone("after the workspace's deletion")
	req, err := http.NewRequest("GET", sv.DownloadURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("download after the workspace's deletion: got %d, want 404", res.StatusCode)
	}
}

// Outputs set in a scenario are written by the workspace's applies;
// SetOutputs changes them and nothing else; a destroy writes none.
func TestStateOutputsFromScenario(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	sc, err := tfesim.ParseScenario(strings.NewReader(`
organizations:
  - name: acme
    email: ops@acme.test
    workspaces:
      - name: net
        behavior:
          apply_duration_ms: 1000
          outputs:
            vpc_id: {value: vpc-1}
            subnets: {value: [10.0.1.0/24, 10.0.2.0/24]}
            port: {value: 443}
            token: {value: s3cret, sensitive: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.sim.LoadScenario(sc); err != nil {
		t.Fatal(err)
	}
	id := e.sim.WorkspaceID("acme", "net")
	r := e.run(id, tfe.RunCreateOptions{AutoApply: tfe.Bool(true)})
	e.sim.Advance(time.Second)
	e.wantStatus(r.ID, tfe.RunApplied)
	cur, err := e.client.StateVersionOutputs.ReadCurrent(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	got := outputsByName(cur.Items)
	if len(got) != 4 || got["vpc_id"].Value != "vpc-1" || got["port"].Value != 443.0 || got["port"].Type != "number" ||
		!reflect.DeepEqual(got["subnets"].Value, []any{"10.0.1.0/24", "10.0.2.0/24"}) || got["token"].Value != nil || !got["token"].Sensitive {
		t.Errorf("outputs from the scenario: %+v %+v %+v %+v", got["vpc_id"], got["subnets"], got["port"], got["token"])
	}

	if err := e.sim.SetOutputs(id, map[string]tfesim.Output{"vpc_id": {Value: "vpc-2"}}); err != nil {
		t.Fatal(err)
	}
	if b := e.behavior(id); b.ApplyDurationMS != 1000 || len(b.Outputs) != 1 || b.Outputs["vpc_id"].Value != "vpc-2" {
		t.Errorf("behaviour after SetOutputs: %+v, want the apply duration kept and one output", b)
	}
	if err := e.sim.SetOutputs(id, map[string]tfesim.Output{"bad name": {Value: 1}}); err == nil {
		t.Error("SetOutputs accepted an invalid output name")
	}
	r = e.run(id, tfe.RunCreateOptions{AutoApply: tfe.Bool(true)})
	e.sim.Advance(time.Second)
	e.wantStatus(r.ID, tfe.RunApplied)
	if cur, err := e.client.StateVersionOutputs.ReadCurrent(e.ctx, id); err != nil || len(cur.Items) != 1 || cur.Items[0].Value != "vpc-2" {
		t.Errorf("outputs after SetOutputs: %+v, %v", cur, err)
	}

	r = e.run(id, tfe.RunCreateOptions{AutoApply: tfe.Bool(true), IsDestroy: tfe.Bool(true)})
	e.sim.Advance(time.Second)
	e.wantStatus(r.ID, tfe.RunApplied)
	sv, err := e.client.StateVersions.ReadCurrent(e.ctx, id)
	if err != nil || sv.Serial != 3 {
		t.Fatalf("state after a destroy: %+v, %v", sv, err)
	}
	if cur, err := e.client.StateVersionOutputs.ReadCurrent(e.ctx, id); err != nil || len(cur.Items) != 0 {
		t.Errorf("outputs after a destroy: %+v, %v; want none", cur, err)
	}
}

func TestOutputsControlAPI(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net")})
	path := "/_sim/workspaces/" + ws.ID + "/behavior"
	for _, tc := range []struct {
		name, body string
		want       int
	}{
		{"valid", `{"outcome": "applied", "outputs": {"a-b_c": {"value": {"x": [1, "y", null]}}}}`, 200},
		{"name with a space", `{"outputs": {"a b": {"value": 1}}}`, 422},
		{"name starting with a digit", `{"outputs": {"1a": {"value": 1}}}`, 422},
		{"unknown output field", `{"outputs": {"a": {"val": 1}}}`, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := e.raw("PUT", path, adminToken, tc.body); code != tc.want {
				t.Errorf("got %d (%s), want %d", code, body, tc.want)
			}
		})
	}
	e.apply(ws.ID, tfe.RunApplied)
	cur, err := e.client.StateVersionOutputs.ReadCurrent(e.ctx, ws.ID)
	if err != nil || len(cur.Items) != 1 {
		t.Fatalf("current outputs: %+v, %v", cur, err)
	}
	want := []any{"object", map[string]any{"x": []any{"tuple", []any{"number", "string", "dynamic"}}}}
	if o := cur.Items[0]; o.Name != "a-b_c" || o.Type != "object" || !reflect.DeepEqual(o.DetailedType, want) {
		t.Errorf("output: %+v, want detailed-type %v", o, want)
	}
}
