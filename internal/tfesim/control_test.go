package tfesim_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"

	tfe "github.com/hashicorp/go-tfe"
	"golang.org/x/sync/errgroup"

	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// Three go-tfe clients on one token send about 60 requests/s, twice what the
// token is allowed (each client limits itself to 0.66 × 30/s after a burst
// of 9): the simulator answers 429s, go-tfe retries them, and no request is
// lost.
func TestRateLimit(t *testing.T) {
	e := newEnv(t, tfesim.Options{RateLimit: 30})
	e.org("acme")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net")})
	e.sim.ResetStats()

	const clients, perClient = 3, 50
	var g errgroup.Group
	for range clients {
		c := e.newClient(adminToken)
		g.Go(func() error {
			for range perClient {
				if _, err := c.Workspaces.ReadByID(e.ctx, ws.ID); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("a request was lost: %v", err)
	}
	st := e.sim.Stats()
	if st.RateLimited == 0 {
		t.Error("no request was rate limited")
	}
	t.Logf("%d requests answered 429", st.RateLimited)
	served := st.Requests["GET /api/v2/workspaces/{id}"]
	if served != clients*perClient+st.RateLimited {
		t.Errorf("got %d requests for %d reads and %d 429s; want them to add up", served, clients*perClient, st.RateLimited)
	}
}

func TestRateLimitAnswer(t *testing.T) {
	e := newEnv(t, tfesim.Options{RateLimit: 2})
	var limited int
	for range 5 {
		req, _ := http.NewRequest("GET", e.srv.URL+"/api/v2/organizations/none", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.Header.Get("X-RateLimit-Limit") != "2" {
			t.Errorf("X-RateLimit-Limit: got %q, want 2", res.Header.Get("X-RateLimit-Limit"))
		}
		if res.StatusCode == http.StatusTooManyRequests {
			limited++
			if res.Header.Get("X-RateLimit-Reset") == "" {
				t.Error("429 without X-RateLimit-Reset")
			}
		}
	}
	if limited == 0 {
		t.Error("5 requests at once on a limit of 2 were all served")
	}
}

func TestFaults(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")
	if code, _ := e.raw("PUT", "/_sim/faults", adminToken, `{"error_rate": 1}`); code != http.StatusOK {
		t.Fatalf("set faults: got %d", code)
	}
	if _, err := e.client.Organizations.Read(e.ctx, "acme"); err == nil {
		t.Error("a read succeeded with every request failing")
	}
	if code, _ := e.raw("PUT", "/_sim/faults", adminToken, `{"error_rate": 2}`); code != http.StatusUnprocessableEntity {
		t.Errorf("error_rate 2: got %d, want 422", code)
	}
	if code, _ := e.raw("PUT", "/_sim/faults", adminToken, `{"error_rate": 0, "latency_ms": 1}`); code != http.StatusOK {
		t.Fatalf("clear faults: got %d", code)
	}
	if _, err := e.client.Organizations.Read(e.ctx, "acme"); err != nil {
		t.Errorf("read after clearing faults: %v", err)
	}
	if st := e.sim.Stats(); st.InjectedErrors == 0 {
		t.Error("no injected error was counted")
	}
}

func TestControlAPI(t *testing.T) {
	e := newEnv(t, tfesim.Options{UserTokens: []string{"user-token"}})
	e.org("acme")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net")})
	path := "/_sim/workspaces/" + ws.ID + "/behavior"

	for _, tc := range []struct {
		name, token, body string
		want              int
	}{
		{"valid", adminToken, `{"plan_duration_ms": 5, "apply_duration_ms": 6, "outcome": "errored", "stuck_in": "planning"}`, 200},
		{"unknown outcome", adminToken, `{"outcome": "exploded"}`, 422},
		{"unknown stuck status", adminToken, `{"stuck_in": "applied"}`, 422},
		{"negative duration", adminToken, `{"plan_duration_ms": -1}`, 422},
		{"unknown field", adminToken, `{"plan_ms": 1}`, 400},
		{"malformed", adminToken, `{`, 400},
		{"not an admin", "user-token", `{}`, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := e.raw("PUT", path, tc.token, tc.body); code != tc.want {
				t.Errorf("got %d (%s), want %d", code, body, tc.want)
			}
		})
	}
	_, body := e.raw("GET", path, adminToken, "")
	var b tfesim.Behavior
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(b, tfesim.Behavior{PlanDurationMS: 5, ApplyDurationMS: 6, Outcome: "errored", StuckIn: "planning"}) {
		t.Errorf("behavior after invalid updates: got %+v, want the valid one unchanged", b)
	}
	if code, _ := e.raw("PUT", "/_sim/workspaces/ws-doesnotexist0000/behavior", adminToken, `{}`); code != http.StatusNotFound {
		t.Errorf("unknown workspace: got %d, want 404", code)
	}

	e.sim.ResetStats()
	if _, err := e.client.Workspaces.ReadByID(e.ctx, ws.ID); err != nil {
		t.Fatal(err)
	}
	_, body = e.raw("GET", "/_sim/stats", adminToken, "")
	var st tfesim.Stats
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	if st.Requests["GET /api/v2/workspaces/{id}"] != 1 {
		t.Errorf("stats: got %v, want one GET /api/v2/workspaces/{id}", st.Requests)
	}
}

func TestConfigurationVersions(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")
	ws, err := e.client.Workspaces.Create(e.ctx, "acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net"), AutoApply: tfe.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	cv, err := e.client.ConfigurationVersions.Create(e.ctx, ws.ID, tfe.ConfigurationVersionCreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cv.Status != tfe.ConfigurationPending || cv.UploadURL == "" || !cv.AutoQueueRuns {
		t.Fatalf("created: status %s upload-url %q auto-queue %v", cv.Status, cv.UploadURL, cv.AutoQueueRuns)
	}
	if err := e.client.ConfigurationVersions.UploadTarGzip(e.ctx, cv.UploadURL, strings.NewReader("not a tarball")); err == nil {
		t.Error("an upload that is not a gzipped tar was accepted")
	}
	if err := e.client.ConfigurationVersions.UploadTarGzip(e.ctx, cv.UploadURL, tarGz(t)); err != nil {
		t.Fatal(err)
	}
	got, err := e.client.ConfigurationVersions.Read(e.ctx, cv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != tfe.ConfigurationUploaded {
		t.Errorf("after upload: got %s, want uploaded", got.Status)
	}
	runs, err := e.client.Runs.List(e.ctx, ws.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs.Items) != 1 || runs.Items[0].ConfigurationVersion.ID != cv.ID || runs.Items[0].Status != tfe.RunApplied {
		t.Errorf("auto-queued runs: got %d, want one applied run of %s", len(runs.Items), cv.ID)
	}
}

func TestTerraformVersions(t *testing.T) {
	e := newEnv(t, tfesim.Options{UserTokens: []string{"user-token"}})
	admin := e.client.Admin.TerraformVersions

	all, err := admin.List(e.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Items) < 3 || all.Items[0].Version != "1.12.0-rc1" {
		t.Fatalf("list: got %d versions, first %q; want the seeded versions newest first", len(all.Items), all.Items[0].Version)
	}
	exact, err := admin.List(e.ctx, &tfe.AdminTerraformVersionsListOptions{Filter: "1.5.7", Search: "0."})
	if err != nil {
		t.Fatal(err)
	}
	if len(exact.Items) != 1 || exact.Items[0].Version != "1.5.7" {
		t.Errorf("filter[version]=1.5.7: got %d, want exactly 1.5.7", len(exact.Items))
	}
	search, err := admin.List(e.ctx, &tfe.AdminTerraformVersionsListOptions{Search: "0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(search.Items) != 6 { // 0.11.8, 0.12.31, 0.13.7, 0.14.11, 0.15.5, 1.0.11
		t.Errorf("search[version]=0.1: got %d, want 6", len(search.Items))
	}

	created, err := admin.Create(e.ctx, tfe.AdminTerraformVersionCreateOptions{
		Version: tfe.String("1.10.0-beta1"), URL: tfe.String("https://example.test/tf.zip"), Sha: tfe.String("abc"),
		Official: tfe.Bool(false), Enabled: tfe.Bool(true), Beta: tfe.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !created.Enabled || !created.Beta || created.Official || created.Deprecated {
		t.Errorf("created: %+v", created)
	}
	if _, err := admin.Create(e.ctx, tfe.AdminTerraformVersionCreateOptions{Version: tfe.String("1.10.0-beta1"), URL: tfe.String("u"), Sha: tfe.String("s")}); err == nil {
		t.Error("a duplicate version was created")
	}
	for _, body := range []string{
		`{"data":{"type":"terraform-versions","attributes":{"version":"one","url":"u","sha":"s"}}}`,
		`{"data":{"type":"terraform-versions","attributes":{"version":"1.2.3","sha":"s"}}}`,
	} {
		if code, _ := e.raw("POST", "/api/v2/admin/terraform-versions", adminToken, body); code != http.StatusUnprocessableEntity {
			t.Errorf("create %s: got %d, want 422", body, code)
		}
	}
	updated, err := admin.Update(e.ctx, created.ID, tfe.AdminTerraformVersionUpdateOptions{
		Deprecated: tfe.Bool(true), DeprecatedReason: tfe.String("use 1.9.8"), Enabled: tfe.Bool(false),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !updated.Deprecated || updated.DeprecatedReason == nil || *updated.DeprecatedReason != "use 1.9.8" || updated.Enabled {
		t.Errorf("updated: %+v", updated)
	}
	shown, err := admin.Read(e.ctx, created.ID)
	if err != nil || !shown.Deprecated {
		t.Errorf("show: %+v, %v", shown, err)
	}

	e.org("acme")
	if _, err := e.client.Workspaces.Create(e.ctx, "acme", tfe.WorkspaceCreateOptions{Name: tfe.String("pinned"), TerraformVersion: tfe.String("1.10.0-beta1")}); err != nil {
		t.Fatal(err)
	}
	if code, _ := e.raw("DELETE", "/api/v2/admin/terraform-versions/"+created.ID, adminToken, ""); code != http.StatusUnprocessableEntity {
		t.Errorf("delete a version in use: got %d, want 422", code)
	}
	if code, _ := e.raw("DELETE", "/api/v2/admin/terraform-versions/"+all.Items[0].ID, adminToken, ""); code != http.StatusUnprocessableEntity {
		t.Errorf("delete an official version: got %d, want 422", code)
	}
	if err := e.client.Workspaces.Delete(e.ctx, "acme", "pinned"); err != nil {
		t.Fatal(err)
	}
	if err := admin.Delete(e.ctx, created.ID); err != nil {
		t.Errorf("delete: %v", err)
	}
	if _, err := admin.Read(e.ctx, created.ID); !errors.Is(err, tfe.ErrResourceNotFound) {
		t.Errorf("read after delete: got %v, want ErrResourceNotFound", err)
	}
	if code, _ := e.raw("GET", "/api/v2/admin/terraform-versions", "user-token", ""); code != http.StatusNotFound {
		t.Errorf("list as a non-admin: got %d, want 404", code)
	}
}

// The simulator is safe for concurrent use: many clients create runs in
// many workspaces while the lifecycle advances (run with -race).
func TestConcurrentUse(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")
	var ids []string
	for i := range 8 {
		ids = append(ids, e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String(fmt.Sprintf("w%d", i)), AutoApply: tfe.Bool(true)}).ID)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				if _, err := e.client.Runs.Create(e.ctx, tfe.RunCreateOptions{Workspace: &tfe.Workspace{ID: id}}); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
				e.sim.Tick()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
	list, err := e.client.Admin.Runs.List(e.ctx, &tfe.AdminRunsListOptions{RunStatus: "applied"})
	if err != nil {
		t.Fatal(err)
	}
	if list.TotalCount != 40 {
		t.Errorf("got %d applied runs, want 40", list.TotalCount)
	}
}
