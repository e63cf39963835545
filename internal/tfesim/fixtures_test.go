package tfesim_test

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	tfe "github.com/hashicorp/go-tfe"
	"github.com/hashicorp/jsonapi"

	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// The JSON samples of the TFE API pages (testdata/seeds, copied verbatim
// from ../shared/seeds) and the simulator's answers for the same objects
// decode through go-tfe's types to the same fields.

func decodeOne(t *testing.T, raw []byte, dst any) {
	t.Helper()
	if err := jsonapi.UnmarshalPayload(bytes.NewReader(raw), dst); err != nil {
		t.Fatalf("decode: %v\n%s", err, raw)
	}
}

func decodeMany(t *testing.T, raw []byte, typ any) []any {
	t.Helper()
	items, err := jsonapi.UnmarshalManyPayload(bytes.NewReader(raw), reflect.TypeOf(typ))
	if err != nil {
		t.Fatalf("decode: %v\n%s", err, raw)
	}
	return items
}

func seed(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "seeds", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// populated lists the exported fields of struct v that are not zero.
func populated(v any) []string {
	rv := reflect.Indirect(reflect.ValueOf(v))
	var out []string
	for i := range rv.NumField() {
		f := rv.Type().Field(i)
		if f.IsExported() && !rv.Field(i).IsZero() {
			out = append(out, f.Name)
		}
	}
	return out
}

// samePopulated checks that every field the seed fills, the simulator fills
// too, except those it does not model (with the reason in unmodelled).
func samePopulated(t *testing.T, seedObj, simObj any, unmodelled map[string]string) {
	t.Helper()
	have := populated(simObj)
	for _, f := range populated(seedObj) {
		if _, skip := unmodelled[f]; skip {
			continue
		}
		if !slices.Contains(have, f) {
			t.Errorf("field %s is set in the seed sample but not in the simulator's answer", f)
		}
	}
}

func sameFields(t *testing.T, seedObj, simObj any, fields ...string) {
	t.Helper()
	a, b := reflect.Indirect(reflect.ValueOf(seedObj)), reflect.Indirect(reflect.ValueOf(simObj))
	for _, f := range fields {
		if x, y := a.FieldByName(f).Interface(), b.FieldByName(f).Interface(); !reflect.DeepEqual(x, y) {
			t.Errorf("%s: seed %v, simulator %v", f, x, y)
		}
	}
}

func TestSeedFixtures(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("my-organization")
	ws1 := e.workspace("my-organization", tfe.WorkspaceCreateOptions{
		Name: tfe.String("workspace-1"), Description: tfe.String("Example workspace for documentation."),
		TerraformVersion: tfe.String("1.0.4"), ExecutionMode: tfe.String("agent"), AgentPoolID: tfe.String("apool-QxGd2tRjympfMvQc"),
	})
	// Like the sample's workspace, ws1 has a current run; it has finished,
	// so that a user may lock the workspace.
	applied := e.run(ws1.ID, tfe.RunCreateOptions{})
	if err := e.client.Runs.Apply(e.ctx, applied.ID, tfe.RunApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	ws2 := e.workspace("my-organization", tfe.WorkspaceCreateOptions{Name: tfe.String("workspace-2")})

	// The show-workspace sample of the Workspaces page is malformed (its
	// relationships close early, leaving "type" outside "data"), so go-tfe
	// cannot decode it; the lock sample is the same object, well formed.
	t.Run("workspace", func(t *testing.T) {
		var fromSeed, fromSim tfe.Workspace
		decodeOne(t, seed(t, "workspace-lock.json"), &fromSeed)
		_, raw := e.raw("POST", "/api/v2/workspaces/"+ws1.ID+"/actions/lock", adminToken, `{"reason":"test"}`)
		decodeOne(t, raw, &fromSim)
		samePopulated(t, &fromSeed, &fromSim, map[string]string{
			"ID":                   "generated",
			"VCSRepo":              "VCS connections are not simulated",
			"ApplyDurationAverage": "no run has applied yet",
			"PlanDurationAverage":  "no run has applied yet",
			"RunFailures":          "no run has failed yet",
			"RunsCount":            "no run has finished yet",
		})
		sameFields(t, &fromSeed, &fromSim, "Name", "Description", "AutoApply", "ExecutionMode", "TerraformVersion",
			"Locked", "Environment", "Operations", "AllowDestroyPlan", "GlobalRemoteState", "QueueAllRuns", "Actions")
		if fromSim.LockedBy == nil || fromSim.LockedBy.User == nil {
			t.Error("lock answer: locked-by is not a user")
		}
	})

	t.Run("run trigger", func(t *testing.T) {
		rt, err := e.client.RunTriggers.Create(e.ctx, ws1.ID, tfe.RunTriggerCreateOptions{Sourceable: ws2})
		if err != nil {
			t.Fatal(err)
		}
		var fromSeed, fromSim tfe.RunTrigger
		decodeOne(t, seed(t, "run-trigger-show.json"), &fromSeed)
		_, raw := e.raw("GET", "/api/v2/run-triggers/"+rt.ID, adminToken, "")
		decodeOne(t, raw, &fromSim)
		samePopulated(t, &fromSeed, &fromSim, map[string]string{"ID": "generated"})
		sameFields(t, &fromSeed, &fromSim, "WorkspaceName", "SourceableName")

		seedList := decodeMany(t, seed(t, "run-triggers-list.json"), &tfe.RunTrigger{})
		_, raw = e.raw("GET", "/api/v2/workspaces/"+ws1.ID+"/run-triggers?filter%5Brun-trigger%5D%5Btype%5D=inbound", adminToken, "")
		simList := decodeMany(t, raw, &tfe.RunTrigger{})
		if len(simList) != 1 {
			t.Fatalf("got %d triggers, want 1", len(simList))
		}
		samePopulated(t, seedList[0], simList[0], map[string]string{"ID": "generated"})
	})

	t.Run("admin runs", func(t *testing.T) {
		if _, err := e.client.Workspaces.Lock(e.ctx, ws2.ID, tfe.WorkspaceLockOptions{}); err != nil {
			t.Fatal(err)
		}
		e.run(ws2.ID, tfe.RunCreateOptions{}) // stays pending, like the sample's run
		seedList := decodeMany(t, seed(t, "admin-runs-list.json"), &tfe.AdminRun{})
		_, raw := e.raw("GET", "/api/v2/admin/runs?filter%5Bstatus%5D=pending", adminToken, "")
		simList := decodeMany(t, raw, &tfe.AdminRun{})
		if len(simList) != 1 {
			t.Fatalf("got %d runs, want 1", len(simList))
		}
		samePopulated(t, seedList[0], simList[0], map[string]string{
			"ID":               "generated",
			"HasChanges":       "a pending run has not planned; the sample's true is an artifact",
			"StatusTimestamps": "checked below: the sample's pending run has planned-at and discarded-at",
		})
		sameFields(t, seedList[0], simList[0], "Status")
		if simList[0].(*tfe.AdminRun).StatusTimestamps == nil {
			t.Error("status-timestamps missing")
		}
	})

	t.Run("terraform version", func(t *testing.T) {
		var fromSeed tfe.AdminTerraformVersion
		decodeOne(t, seed(t, "terraform-version-show.json"), &fromSeed)
		list, err := e.client.Admin.TerraformVersions.List(e.ctx, &tfe.AdminTerraformVersionsListOptions{Filter: "0.11.8"})
		if err != nil || len(list.Items) != 1 {
			t.Fatalf("find 0.11.8: %v", err)
		}
		if _, err := e.client.Admin.TerraformVersions.Update(e.ctx, list.Items[0].ID, tfe.AdminTerraformVersionUpdateOptions{
			URL: tfe.String(fromSeed.URL), Sha: tfe.String(fromSeed.Sha), Enabled: tfe.Bool(true), Official: tfe.Bool(true), Deprecated: tfe.Bool(false),
		}); err != nil {
			t.Fatal(err)
		}
		var fromSim tfe.AdminTerraformVersion
		_, raw := e.raw("GET", "/api/v2/admin/terraform-versions/"+list.Items[0].ID, adminToken, "")
		decodeOne(t, raw, &fromSim)
		samePopulated(t, &fromSeed, &fromSim, map[string]string{"ID": "generated"})
		sameFields(t, &fromSeed, &fromSim, "Version", "URL", "Sha", "Deprecated", "DeprecatedReason", "Official", "Enabled", "Beta", "Usage")
	})
}
