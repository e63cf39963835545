package tfesim_test

import (
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// receiver is a webhook endpoint that verifies signatures the way the
// orchestrator must, and keeps what it received.
type receiver struct {
	t      *testing.T
	token  string
	srv    *httptest.Server
	status int

	mu       sync.Mutex
	payloads []map[string]any
	bad      int
}

func newReceiver(t *testing.T, token string) *receiver {
	rc := &receiver{t: t, token: token, status: http.StatusOK}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	got, err := hex.DecodeString(r.Header.Get(tfesim.SignatureHeader))
	want, _ := hex.DecodeString(tfesim.Sign(rc.token, body))
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if err != nil || !hmac.Equal(got, want) {
		rc.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil {
		rc.bad++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc.payloads = append(rc.payloads, p)
	w.WriteHeader(rc.status)
}

// events returns "trigger/status" of each payload received for runID.
func (rc *receiver) events(runID string) []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for _, p := range rc.payloads {
		if p["run_id"] != runID {
			continue
		}
		for _, n := range p["notifications"].([]any) {
			n := n.(map[string]any)
			out = append(out, n["trigger"].(string)+"/"+n["run_status"].(string))
		}
	}
	return out
}

func (rc *receiver) received() []map[string]any {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]map[string]any(nil), rc.payloads...)
}

var allRunTriggers = []tfe.NotificationTriggerType{
	tfe.NotificationTriggerCreated, tfe.NotificationTriggerPlanning, tfe.NotificationTriggerNeedsAttention,
	tfe.NotificationTriggerApplying, tfe.NotificationTriggerCompleted, tfe.NotificationTriggerErrored,
}

func (e *testEnv) subscribe(wsID string, rc *receiver) *tfe.NotificationConfiguration {
	e.t.Helper()
	nc, err := e.client.NotificationConfigurations.Create(e.ctx, wsID, tfe.NotificationConfigurationCreateOptions{
		DestinationType: tfe.NotificationDestination(tfe.NotificationDestinationTypeGeneric),
		Enabled:         tfe.Bool(true),
		Name:            tfe.String("orchestrator"),
		Token:           tfe.String(rc.token),
		URL:             tfe.String(rc.srv.URL),
		Triggers:        allRunTriggers,
	})
	if err != nil {
		e.t.Fatalf("create notification configuration: %v", err)
	}
	return nc
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestNotifications(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	rc := newReceiver(t, "notification-secret")
	e.org("acme")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net")})
	nc := e.subscribe(ws.ID, rc)

	t.Run("verification on create", func(t *testing.T) {
		got := rc.received()
		if len(got) != 1 {
			t.Fatalf("got %d payloads on create, want the verification payload", len(got))
		}
		p := got[0]
		n := p["notifications"].([]any)[0].(map[string]any)
		if n["trigger"] != "verification" || p["run_id"] != nil || p["workspace_id"] != nil || p["organization_name"] != nil ||
			p["notification_configuration_id"] != nc.ID || p["payload_version"] != float64(1) {
			t.Errorf("verification payload: got %v", p)
		}
	})

	t.Run("a confirmed run", func(t *testing.T) {
		r := e.run(ws.ID, tfe.RunCreateOptions{Message: tfe.String("deploy")})
		e.sim.Advance(time.Second)
		if err := e.client.Runs.Apply(e.ctx, r.ID, tfe.RunApplyOptions{}); err != nil {
			t.Fatal(err)
		}
		e.sim.Advance(time.Second)
		want := []string{"run:created/pending", "run:planning/planning", "run:needs_attention/planned",
			"run:applying/applying", "run:completed/applied"}
		eventually(t, "the run's notifications", func() bool { return len(rc.events(r.ID)) >= len(want) })
		if got := rc.events(r.ID); !equalStrings(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
		var p map[string]any
		for _, x := range rc.received() {
			if x["run_id"] == r.ID {
				p = x
			}
		}
		for field, want := range map[string]any{
			"workspace_id": ws.ID, "workspace_name": "net", "organization_name": "acme",
			"run_message": "deploy", "notification_configuration_id": nc.ID, "payload_version": float64(1),
		} {
			if p[field] != want {
				t.Errorf("%s: got %v, want %v", field, p[field], want)
			}
		}
		for _, field := range []string{"run_url", "run_created_at", "run_created_by"} {
			if s, _ := p[field].(string); s == "" {
				t.Errorf("%s is empty", field)
			}
		}
	})

	t.Run("errored and cancelled runs", func(t *testing.T) {
		e.behave(ws.ID, tfesim.Behavior{Outcome: tfesim.OutcomeErrored})
		errored := e.run(ws.ID, tfe.RunCreateOptions{})
		e.behave(ws.ID, tfesim.Behavior{PlanDurationMS: 60_000})
		canceled := e.run(ws.ID, tfe.RunCreateOptions{})
		if err := e.client.Runs.Cancel(e.ctx, canceled.ID, tfe.RunCancelOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the errored run's last event", func() bool { return len(rc.events(errored.ID)) >= 3 })
		eventually(t, "the cancelled run's last event", func() bool { return len(rc.events(canceled.ID)) >= 3 })
		if got, want := rc.events(errored.ID), []string{"run:created/pending", "run:planning/planning", "run:errored/errored"}; !equalStrings(got, want) {
			t.Errorf("errored run: got %v, want %v", got, want)
		}
		if got, want := rc.events(canceled.ID), []string{"run:created/pending", "run:planning/planning", "run:errored/canceled"}; !equalStrings(got, want) {
			t.Errorf("cancelled run: got %v, want %v", got, want)
		}
	})

	t.Run("dropped notifications", func(t *testing.T) {
		e.behave(ws.ID, tfesim.Behavior{DropNotifications: true})
		r := e.run(ws.ID, tfe.RunCreateOptions{})
		e.sim.Advance(time.Second)
		e.wantStatus(r.ID, tfe.RunPlanned)
		e.sim.Flush()
		if got := rc.events(r.ID); len(got) != 0 {
			t.Errorf("got %v, want nothing while notifications are dropped", got)
		}
		if st := e.sim.Stats(); st.Notifications.Dropped != 3 {
			t.Errorf("dropped: got %d, want 3 (created, planning, needs attention)", st.Notifications.Dropped)
		}
	})

	t.Run("every payload was signed", func(t *testing.T) {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if rc.bad != 0 {
			t.Errorf("%d deliveries failed verification", rc.bad)
		}
	})
}

func TestNotificationConfigurations(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	rc := newReceiver(t, "secret")
	e.org("acme")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net")})
	nc := e.subscribe(ws.ID, rc)

	got, err := e.client.NotificationConfigurations.Read(e.ctx, nc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "orchestrator" || got.URL != rc.srv.URL || got.Token != "" || len(got.Triggers) != 6 ||
		got.DestinationType != tfe.NotificationDestinationTypeGeneric || got.SubscribableChoice.Workspace.ID != ws.ID {
		t.Errorf("read: got %+v (the token must never be returned)", got)
	}
	list, err := e.client.NotificationConfigurations.List(e.ctx, ws.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 {
		t.Errorf("list: got %d, want 1", len(list.Items))
	}
	updated, err := e.client.NotificationConfigurations.Update(e.ctx, nc.ID, tfe.NotificationConfigurationUpdateOptions{
		Triggers: []tfe.NotificationTriggerType{tfe.NotificationTriggerCompleted},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(updated.Triggers) != 1 || updated.Triggers[0] != "run:completed" {
		t.Errorf("update: got triggers %v", updated.Triggers)
	}
	if _, err := e.client.NotificationConfigurations.Verify(e.ctx, nc.ID); err != nil {
		t.Fatal(err)
	}
	// go-tfe does not decode delivery-responses, so read them from the wire.
	_, body := e.raw("GET", "/api/v2/notification-configurations/"+nc.ID, adminToken, "")
	var doc struct {
		Data struct {
			Attributes struct {
				Responses []struct{ Code, Successful string } `json:"delivery-responses"`
			} `json:"attributes"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if rs := doc.Data.Attributes.Responses; len(rs) != 2 || rs[1].Code != "200" || rs[1].Successful != "true" {
		t.Errorf("after verify: got delivery responses %+v, want two, the last with code 200", rs)
	}

	rc.mu.Lock()
	rc.status = http.StatusInternalServerError
	rc.mu.Unlock()
	_, err = e.client.NotificationConfigurations.Create(e.ctx, ws.ID, tfe.NotificationConfigurationCreateOptions{
		DestinationType: tfe.NotificationDestination(tfe.NotificationDestinationTypeGeneric),
		Enabled:         tfe.Bool(true), Name: tfe.String("failing"), URL: tfe.String(rc.srv.URL), Token: tfe.String("secret"),
	})
	if err == nil {
		t.Error("a configuration whose URL fails verification was saved")
	}
	if err := e.client.NotificationConfigurations.Delete(e.ctx, nc.ID); err != nil {
		t.Fatal(err)
	}
	list, err = e.client.NotificationConfigurations.List(e.ctx, ws.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 0 {
		t.Errorf("after delete and a failed create: got %d configurations, want 0", len(list.Items))
	}
}

// Notification configurations are listed whole, with no pagination
// metadata, unless a page is asked for, as TFE documents.
func TestNotificationConfigurationPaging(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	rc := newReceiver(t, "secret")
	e.org("acme")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net")})
	for range 3 {
		e.subscribe(ws.ID, rc)
	}
	all, err := e.client.NotificationConfigurations.List(e.ctx, ws.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Items) != 3 || all.Pagination != nil && all.TotalCount != 0 {
		t.Errorf("unpaged: got %d items and pagination %+v, want 3 and none", len(all.Items), all.Pagination)
	}
	_, body := e.raw("GET", "/api/v2/workspaces/"+ws.ID+"/notification-configurations", adminToken, "")
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["meta"] != nil || doc["links"] != nil {
		t.Errorf("unpaged: got meta %v and links %v, want neither", doc["meta"], doc["links"])
	}
	paged, err := e.client.NotificationConfigurations.List(e.ctx, ws.ID, &tfe.NotificationConfigurationListOptions{ListOptions: tfe.ListOptions{PageSize: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if len(paged.Items) != 2 || paged.Pagination == nil || paged.TotalCount != 3 || paged.NextPage != 2 {
		t.Errorf("paged: got %d items and pagination %+v, want 2 of 3 with a next page", len(paged.Items), paged.Pagination)
	}
}

// Each status a run enters and the trigger TFE sends for it (nothing for
// the others); a plan-only run sends nothing.
func TestNotificationTriggersByStatus(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	rc := newReceiver(t, "secret")
	e.org("acme")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net")})
	e.subscribe(ws.ID, rc)
	for _, tc := range []struct {
		name   string
		play   func() string // runs a run, returns its ID
		events []string
	}{
		{"confirmed and applied", func() string {
			r := e.run(ws.ID, tfe.RunCreateOptions{})
			e.must(e.client.Runs.Apply(e.ctx, r.ID, tfe.RunApplyOptions{}))
			return r.ID
		}, []string{"run:created/pending", "run:planning/planning", "run:needs_attention/planned", "run:applying/applying", "run:completed/applied"}},
		{"discarded", func() string {
			r := e.run(ws.ID, tfe.RunCreateOptions{})
			e.must(e.client.Runs.Discard(e.ctx, r.ID, tfe.RunDiscardOptions{}))
			return r.ID
		}, []string{"run:created/pending", "run:planning/planning", "run:needs_attention/planned"}},
		{"force-cancelled by an admin", func() string {
			r := e.run(ws.ID, tfe.RunCreateOptions{})
			e.must(e.client.Admin.Runs.ForceCancel(e.ctx, r.ID, tfe.AdminRunForceCancelOptions{}))
			return r.ID
		}, []string{"run:created/pending", "run:planning/planning", "run:needs_attention/planned", "run:errored/canceled"}},
		{"plan-only", func() string {
			return e.run(ws.ID, tfe.RunCreateOptions{PlanOnly: tfe.Bool(true)}).ID
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.play()
			e.sim.Tick() // what the action set due happens at the clock's time
			e.sim.Flush()
			if got := rc.events(id); !equalStrings(got, tc.events) {
				t.Errorf("got %v, want %v", got, tc.events)
			}
		})
	}
}
