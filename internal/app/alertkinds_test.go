package app_test

import (
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
	"github.com/tfe-orchestrator/orchestrator/internal/app"
	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
	"github.com/tfe-orchestrator/orchestrator/internal/watchdog"
)

// alertKindTests names, for every kind of alert docs/alerts.md lists, the tests
// that make its condition happen in the running daemon and see the alert
// where an operator would: on orchestrator.alerts.<kind> and at the
// webhook sink. A kind without a test here fails TestEveryAlertKindIsTested.
var alertKindTests = map[string][]string{
	alerts.KindCycle:           {"TestAlertCycle"},
	alerts.KindCascadeBlocked:  {"TestAlertCascadeBlocked"},
	alerts.KindDispatchFailed:  {"TestAlertDispatchFailed"},
	alerts.KindWorkspaceLocked: {"TestAlertWorkspaceLocked"},
	alerts.KindDeprecated:      {"TestAlertTerraformVersionDeprecated"},
	alerts.KindUncontrolledRun: {"TestAlertUncontrolledRun"},
	alerts.KindEventRejected:   {"TestAlertEventRejected"},
	alerts.KindEventDropped:    {"TestAlertEventDropped"},
	alerts.KindMalformedState:  {"TestAlertMalformedState"},
	alerts.KindStuckRun:        {"TestAlertStuckRun"},
	alerts.KindRunCancelled:    {"TestAlertRunForceCancelled"},
	alerts.KindReminder:        {"TestAlertApprovalReminder", "TestAlertWatchdogReminder"},
	alerts.KindWebhookRejected: {"TestWebhookRejectedAlert"},
	alerts.KindTFEUnauthorized: {"TestWrongTFETokenShown", "TestTFETokenRefusedThenAcceptedAgain"},
	alerts.KindHoldLifted:      {"TestAlertHoldLifted"},
}

// The table of alert kinds in docs/alerts.md, the kinds the alerts package defines
// and alertKindTests name the same kinds, and every test named exists: a
// new kind cannot be added without a test that raises it.
func TestEveryAlertKindIsTested(t *testing.T) {
	documented := readmeAlertKinds(t)
	defined := definedAlertKinds(t)
	tests := testFuncs(t)
	if len(documented) == 0 {
		t.Fatal("no alert kinds found in the table of docs/alerts.md")
	}
	for _, kind := range documented {
		if !slices.Contains(defined, kind) {
			t.Errorf("docs/alerts.md lists %s, which internal/alerts does not define", kind)
		}
		names := alertKindTests[kind]
		if len(names) == 0 {
			t.Errorf("no test raises %s: add one and name it in alertKindTests", kind)
		}
		for _, name := range names {
			if !tests[name] {
				t.Errorf("%s: the test %s does not exist", kind, name)
			}
		}
	}
	for _, kind := range defined {
		if !slices.Contains(documented, kind) {
			t.Errorf("internal/alerts defines %s, which the table of docs/alerts.md does not list", kind)
		}
	}
	for kind := range alertKindTests {
		if !slices.Contains(documented, kind) {
			t.Errorf("alertKindTests names %s, which docs/alerts.md does not list", kind)
		}
	}
}

// readmeAlertKinds reads the kinds from the table of docs/alerts.md (the
// README links to it).
func readmeAlertKinds(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../docs/alerts.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "# Alerts\n")
	if !ok {
		t.Fatal("docs/alerts.md has no Alerts heading")
	}
	row := regexp.MustCompile("^\\| `([a-z_]+)` \\|")
	var kinds []string
	inTable := false
	for line := range strings.Lines(section) {
		switch {
		case strings.HasPrefix(line, "| kind |"):
			inTable = true
		case inTable && strings.HasPrefix(line, "|"):
			if m := row.FindStringSubmatch(line); m != nil {
				kinds = append(kinds, m[1])
			}
		case inTable:
			return kinds
		}
	}
	return kinds
}

// definedAlertKinds reads the values of the Kind constants of the alerts
// package.
func definedAlertKinds(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../alerts/alerts.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Kind") || i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					v, _ := strconv.Unquote(lit.Value)
					kinds = append(kinds, v)
				}
			}
		}
	}
	return kinds
}

// testFuncs are the names of this package's test functions.
func testFuncs(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	fset := token.NewFileSet()
	for _, file := range files {
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			if fd, ok := decl.(*ast.FuncDecl); ok && fd.Recv == nil && strings.HasPrefix(fd.Name.Name, "Test") {
				out[fd.Name.Name] = true
			}
		}
	}
	return out
}

// alertEnv is the daemon, as serve runs it, against the simulator, with
// its alerts watched on NATS and at a webhook sink.
type alertEnv struct {
	t      *testing.T
	ctx    context.Context
	sim    *tfesim.Sim
	simURL string
	client *tfe.Client // a person's
	d      *daemon
	watch  *testutil.AlertWatch
}

// fastDispatch are engine settings for tests: short waits, so that what
// takes minutes in production takes a fraction of a second.
func fastDispatch() dispatcher.Options {
	return dispatcher.Options{
		LeaseTTL: 2 * time.Second, Debounce: 20 * time.Millisecond,
		Policy: cascade.Policy{
			Recheck: time.Second, LockedRetry: 100 * time.Millisecond, LockedAlertAfter: 300 * time.Millisecond,
			NativeGrace: 300 * time.Millisecond, Soon: 100 * time.Millisecond, CreateTimeout: 2 * time.Second,
			CreateSettle: 500 * time.Millisecond,
		},
	}
}

// newAlertEnv starts the simulator and the daemon with cfg against it,
// with fastDispatch's engine settings unless cfg has its own.
func newAlertEnv(t *testing.T, simOpts tfesim.Options, cfg app.Config) *alertEnv {
	t.Helper()
	sim, simURL, client := startSim(t, simOpts)
	watch := testutil.NewAlertWatch(t)
	cfg.TFE = app.TFEConfig{Address: simURL, Token: "sim-token"}
	cfg.Alerts.WebhookURL = watch.SinkURL()
	if cfg.Dispatcher.LeaseTTL == 0 {
		cfg.Dispatcher = fastDispatch()
	}
	d := startLogged(t, cfg, zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)))
	watch.Subscribe(t, connect(t, d))
	return &alertEnv{t: t, ctx: context.Background(), sim: sim, simURL: simURL, client: client, d: d, watch: watch}
}

// load adds the organization acme with workspaces and run triggers
// (source, target), its notifications sent to the daemon.
func (e *alertEnv) load(workspaces []tfesim.WorkspaceSpec, edges ...[2]string) {
	e.t.Helper()
	spec := tfesim.OrganizationSpec{Name: "acme", Email: "ops@acme.test", Workspaces: workspaces,
		Notifications: []tfesim.ScenarioNotification{{NotificationSpec: tfesim.NotificationSpec{
			Name: "orchestrator", URL: e.d.url("/webhooks/tfe"), Token: webhookToken,
			Triggers: []string{"run:created", "run:planning", "run:needs_attention", "run:applying", "run:completed", "run:errored"},
		}}}}
	for _, edge := range edges {
		spec.RunTriggers = append(spec.RunTriggers, tfesim.RunTriggerSpec{Source: edge[0], Target: edge[1]})
	}
	if err := e.sim.LoadScenario(&tfesim.Scenario{Organizations: []tfesim.OrganizationSpec{spec}}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *alertEnv) id(name string) string { return e.sim.WorkspaceID("acme", name) }

// run queues a run in a workspace through the API, as a person would, and
// returns its ID; it applies on its own when autoApply is set.
func (e *alertEnv) run(name string, autoApply bool) string {
	e.t.Helper()
	r, err := e.client.Runs.Create(e.ctx, tfe.RunCreateOptions{Workspace: &tfe.Workspace{ID: e.id(name)}, AutoApply: tfe.Bool(autoApply)})
	if err != nil {
		e.t.Fatal(err)
	}
	return r.ID
}

// runURL is the link to a run in TFE's UI an alert should carry.
func (e *alertEnv) runURL(workspace, runID string) string {
	return e.simURL + "/app/acme/workspaces/" + workspace + "/runs/" + runID
}

// wantAlert is what an alert must say. Empty fields must be empty in the
// alert too, but for Message, a part of the message.
type wantAlert struct {
	Kind, Severity, Organization, Workspace, WorkspaceID, RunID, RunURL, CascadeID, PageURL, Message string
}

// expect waits for an alert of want.Kind on NATS and at the sink and
// checks both against want; it returns the one seen on NATS.
func (e *alertEnv) expect(want wantAlert) alerts.Alert {
	e.t.Helper()
	return expectAlert(e.t, e.watch, want)
}

func expectAlert(t *testing.T, watch *testutil.AlertWatch, want wantAlert) alerts.Alert {
	t.Helper()
	onNATS, atSink := watch.Expect(t, want.Kind, 15*time.Second)
	for _, seen := range []struct {
		where string
		a     alerts.Alert
	}{{"on NATS", onNATS.Alert}, {"at the sink", atSink}} {
		a := seen.a
		for _, f := range []struct{ field, got, want string }{
			{"severity", a.Severity, want.Severity}, {"organization", a.Organization, want.Organization},
			{"workspace", a.Workspace, want.Workspace}, {"workspace_id", a.WorkspaceID, want.WorkspaceID},
			{"run_id", a.RunID, want.RunID}, {"run_url", a.RunURL, want.RunURL}, {"cascade_id", a.CascadeID, want.CascadeID},
			{"page_url", a.PageURL, want.PageURL},
		} {
			if f.got != f.want {
				t.Errorf("%s alert %s: %s is %q, want %q", want.Kind, seen.where, f.field, f.got, f.want)
			}
		}
		if !strings.Contains(a.Message, want.Message) {
			t.Errorf("%s alert %s: message %q does not say %q", want.Kind, seen.where, a.Message, want.Message)
		}
		if a.Key == "" || a.Time.IsZero() {
			t.Errorf("%s alert %s has no key or time: %+v", want.Kind, seen.where, a)
		}
	}
	if onNATS.Key != atSink.Key {
		t.Errorf("%s: the alert on NATS (%s) is not the one at the sink (%s)", want.Kind, onNATS.Key, atSink.Key)
	}
	return onNATS.Alert
}

// auto is a workspace that applies every run on its own.
func auto(name string) tfesim.WorkspaceSpec {
	return tfesim.WorkspaceSpec{Name: name, AutoApply: true, AutoApplyRunTrigger: true}
}

// review is a workspace whose runs wait for a person to confirm them.
func review(name string) tfesim.WorkspaceSpec { return tfesim.WorkspaceSpec{Name: name} }

// A run applies in a workspace whose downstream has a run-trigger cycle:
// the alert names the cycle and links the root run.
func TestAlertCycle(t *testing.T) {
	// Without TFE's own triggers: on a cycle of auto-applying workspaces
	// they would queue runs round it for ever.
	e := newAlertEnv(t, tfesim.Options{NoNativeRunTriggers: true}, app.Config{DisableWatchdog: true})
	e.load([]tfesim.WorkspaceSpec{auto("root"), auto("app"), auto("db")}, [2]string{"root", "app"}, [2]string{"app", "db"}, [2]string{"db", "app"})
	root := e.run("root", true)
	e.expect(wantAlert{Kind: alerts.KindCycle, Severity: alerts.SeverityCritical, Organization: "acme",
		Workspace: "root", WorkspaceID: e.id("root"), RunID: root, RunURL: e.runURL("root", root), CascadeID: cascade.ID(root),
		Message: "app → db → app"})
}

// An upstream's run errors: what depends on it is blocked, in one alert
// about the cascade, which names the root and links the cascade's page
// under the daemon's public URL.
func TestAlertCascadeBlocked(t *testing.T) {
	e := newAlertEnv(t, tfesim.Options{}, app.Config{DisableWatchdog: true, PublicURL: "https://orchestrator.example.com/"})
	failing := auto("b")
	failing.Behavior.Outcome = tfesim.OutcomeErrored
	e.load([]tfesim.WorkspaceSpec{auto("root"), failing, auto("c")}, [2]string{"root", "b"}, [2]string{"b", "c"})
	root := e.run("root", true)
	e.expect(wantAlert{Kind: alerts.KindCascadeBlocked, Severity: alerts.SeverityWarning, Organization: "acme",
		Workspace: "root", WorkspaceID: e.id("root"), CascadeID: cascade.ID(root), PageURL: "https://orchestrator.example.com/ui/#" + cascade.ID(root),
		Message: "c (upstream b failed"})
}

// TFE refuses the cascade's run: the member's current configuration
// version was created but never uploaded (an upload that died half way).
func TestAlertDispatchFailed(t *testing.T) {
	e := newAlertEnv(t, tfesim.Options{}, app.Config{DisableWatchdog: true})
	e.load([]tfesim.WorkspaceSpec{auto("root"), auto("b")}, [2]string{"root", "b"})
	if _, err := e.client.ConfigurationVersions.Create(e.ctx, e.id("b"), tfe.ConfigurationVersionCreateOptions{}); err != nil {
		t.Fatal(err)
	}
	root := e.run("root", true)
	e.expect(wantAlert{Kind: alerts.KindDispatchFailed, Severity: alerts.SeverityCritical, Organization: "acme",
		Workspace: "b", WorkspaceID: e.id("b"), CascadeID: cascade.ID(root), Message: "configuration version is not uploaded"})
}

// A member stays locked by a person past --locked-alert-after.
func TestAlertWorkspaceLocked(t *testing.T) {
	e := newAlertEnv(t, tfesim.Options{}, app.Config{DisableWatchdog: true})
	locked := auto("b")
	locked.Locked = true
	e.load([]tfesim.WorkspaceSpec{auto("root"), locked}, [2]string{"root", "b"})
	root := e.run("root", true)
	e.expect(wantAlert{Kind: alerts.KindWorkspaceLocked, Severity: alerts.SeverityWarning, Organization: "acme",
		Workspace: "b", WorkspaceID: e.id("b"), CascadeID: cascade.ID(root), Message: "b has waited"})
}

// A member's Terraform version is deprecated in the admin list: its run
// goes ahead, with a warning, whether TFE's run trigger queued it (what
// happens while TFE's triggers fire) or the cascade created it.
func TestAlertTerraformVersionDeprecated(t *testing.T) {
	for name, simOpts := range map[string]tfesim.Options{
		"TFE's run trigger queues the run": {},
		"the cascade creates the run":      {NoNativeRunTriggers: true},
	} {
		t.Run(name, func(t *testing.T) {
			e := newAlertEnv(t, simOpts, app.Config{DisableWatchdog: true})
			old := auto("b")
			old.TerraformVersion = "1.0.11" // deprecated in the simulator's list: "use 1.5 or later"
			e.load([]tfesim.WorkspaceSpec{auto("root"), old}, [2]string{"root", "b"})
			root := e.run("root", true)
			e.expect(wantAlert{Kind: alerts.KindDeprecated, Severity: alerts.SeverityWarning, Organization: "acme",
				Workspace: "b", WorkspaceID: e.id("b"), CascadeID: cascade.ID(root), Message: "Terraform 1.0.11, which is deprecated"})
			testutil.WaitFor(t, "b's run to apply", 15*time.Second, func() bool {
				list, err := e.client.Runs.List(e.ctx, e.id("b"), nil)
				return err == nil && len(list.Items) == 1 && list.Items[0].Status == tfe.RunApplied
			})
		})
	}
}

// d waits for b and for the root itself: the root's apply makes TFE queue
// a run in d at once, before any look of the cascade (no hold can cover
// it), and that run plans and applies before the cascade could stop it.
func TestAlertUncontrolledRun(t *testing.T) {
	e := newAlertEnv(t, tfesim.Options{}, app.Config{DisableWatchdog: true})
	b := auto("b")
	b.Behavior.PlanDurationMS = 1500
	e.load([]tfesim.WorkspaceSpec{auto("root"), b, auto("d")}, [2]string{"root", "b"}, [2]string{"root", "d"}, [2]string{"b", "d"})
	root := e.run("root", true)
	var early string
	testutil.WaitFor(t, "TFE's run in d", 15*time.Second, func() bool {
		list, err := e.client.Runs.List(e.ctx, e.id("d"), nil)
		if err != nil || len(list.Items) == 0 {
			return false
		}
		early = list.Items[len(list.Items)-1].ID
		return true
	})
	e.expect(wantAlert{Kind: alerts.KindUncontrolledRun, Severity: alerts.SeverityCritical, Organization: "acme",
		Workspace: "d", WorkspaceID: e.id("d"), RunID: early, RunURL: e.runURL("d", early), CascadeID: cascade.ID(root),
		Message: "applied in d before the cascade could stop it"})
}

// A person force-unlocks a member the cascade holds while it waits for its
// upstreams: the cascade says so and leaves the workspace unlocked.
func TestAlertHoldLifted(t *testing.T) {
	e := newAlertEnv(t, tfesim.Options{}, app.Config{DisableWatchdog: true})
	b, c := auto("b"), auto("c")
	b.Behavior.PlanDurationMS = 20000 // d waits for b long enough to be unlocked by hand
	e.load([]tfesim.WorkspaceSpec{auto("root"), b, c, auto("d")},
		[2]string{"root", "b"}, [2]string{"root", "c"}, [2]string{"b", "d"}, [2]string{"c", "d"})
	root := e.run("root", true)
	testutil.WaitFor(t, "the cascade to hold d", 30*time.Second, func() bool {
		w, err := e.client.Workspaces.ReadByID(e.ctx, e.id("d"))
		return err == nil && w.Locked && w.LockedBy != nil && w.LockedBy.User != nil
	})
	if _, err := e.client.Workspaces.ForceUnlock(e.ctx, e.id("d")); err != nil {
		t.Fatal(err)
	}
	e.expect(wantAlert{Kind: alerts.KindHoldLifted, Severity: alerts.SeverityWarning, Organization: "acme",
		Workspace: "d", WorkspaceID: e.id("d"), CascadeID: cascade.ID(root), Message: "does not lock it again"})
	w, err := e.client.Workspaces.ReadByID(e.ctx, e.id("d"))
	if err != nil {
		t.Fatal(err)
	}
	if w.Locked {
		t.Errorf("d was locked again after a person unlocked it (by %+v)", w.LockedBy)
	}
}

// A signed event says a run TFE does not know applied.
func TestAlertEventRejected(t *testing.T) {
	e := newAlertEnv(t, tfesim.Options{}, app.Config{DisableWatchdog: true})
	e.load([]tfesim.WorkspaceSpec{auto("network")})
	if code := signedPost(t, e.d.url("/webhooks/tfe"), runPayload("run-0000000000000001", "applied", time.Now().UTC())); code != http.StatusOK {
		t.Fatalf("a signed webhook: got %d, want 200", code)
	}
	e.expect(wantAlert{Kind: alerts.KindEventRejected, Severity: alerts.SeverityWarning, Organization: "acme",
		Message: "read run run-0000000000000001"})
}

// holdingProxy stands in front of the simulator and holds every request
// hold matches until the client gives up: TFE hanging on one endpoint.
func holdingProxy(t *testing.T, target string, hold func(*http.Request) bool) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ErrorLog = log.New(io.Discard, "", 0) // requests the daemon gives up on at its end
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hold(r) {
			<-r.Context().Done()
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TFE hangs while a root's run triggers are read: the event outlasts its
// ack wait on every delivery, and JetStream gives up on it.
func TestAlertEventDropped(t *testing.T) {
	sim, simURL, _ := startSim(t, tfesim.Options{})
	hung := holdingProxy(t, simURL, func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/run-triggers") })
	watch := testutil.NewAlertWatch(t)
	opts := fastDispatch()
	opts.AckWait, opts.MaxDeliver = 200*time.Millisecond, 2
	d := startLogged(t, app.Config{TFE: app.TFEConfig{Address: hung, Token: "sim-token"}, Dispatcher: opts, DisableWatchdog: true,
		Alerts: app.AlertsConfig{WebhookURL: watch.SinkURL()}}, zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)))
	watch.Subscribe(t, connect(t, d))
	e := &alertEnv{t: t, ctx: context.Background(), sim: sim, simURL: simURL, d: d, watch: watch}
	e.load([]tfesim.WorkspaceSpec{auto("root"), auto("b")}, [2]string{"root", "b"})
	if _, err := sim.CreateRun(e.id("root"), "deploy"); err != nil {
		t.Fatal(err)
	}
	e.expect(wantAlert{Kind: alerts.KindEventDropped, Severity: alerts.SeverityCritical, Message: "was delivered 2 times without being handled"})
}

// A member's record in KV is overwritten with something that is not one
// (a bug, another version, someone with access to NATS): the cascade is
// set aside and operators are told.
func TestAlertMalformedState(t *testing.T) {
	e := newAlertEnv(t, tfesim.Options{}, app.Config{DisableWatchdog: true})
	e.load([]tfesim.WorkspaceSpec{auto("root"), review("b")}, [2]string{"root", "b"})
	root := e.run("root", true)
	id := cascade.ID(root)
	js, err := jetstream.New(connect(t, e.d))
	if err != nil {
		t.Fatal(err)
	}
	var kv jetstream.KeyValue
	testutil.WaitFor(t, "the cascades bucket", 15*time.Second, func() bool {
		kv, err = js.KeyValue(e.ctx, "cascades")
		return err == nil
	})
	key := "m." + id + "." + e.id("b")
	var bRun string
	testutil.WaitFor(t, "b to await approval", 15*time.Second, func() bool {
		entry, err := kv.Get(e.ctx, key)
		if err != nil {
			return false
		}
		var st cascade.Status
		if json.Unmarshal(entry.Value(), &st) != nil {
			return false
		}
		bRun = st.RunID
		return st.State == cascade.AwaitingApproval
	})
	if _, err := kv.Put(e.ctx, key, []byte(`{"state":"finished-ish"}`)); err != nil {
		t.Fatal(err)
	}
	// A person confirms b's run: its events ask for a look at the cascade.
	if err := e.client.Runs.Apply(e.ctx, bRun, tfe.RunApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	e.expect(wantAlert{Kind: alerts.KindMalformedState, Severity: alerts.SeverityCritical, Message: key})
	testutil.WaitFor(t, "the cascade to be set aside", 15*time.Second, func() bool {
		entry, err := kv.Get(e.ctx, "meta."+id)
		var m dispatcher.Meta
		return err == nil && json.Unmarshal(entry.Value(), &m) == nil && m.State == dispatcher.StateSetAside
	})
}

// A run waits for a person in a member past --approval-reminder.
func TestAlertApprovalReminder(t *testing.T) {
	opts := fastDispatch()
	opts.Policy.ApprovalReminder = 200 * time.Millisecond
	e := newAlertEnv(t, tfesim.Options{}, app.Config{Dispatcher: opts, DisableWatchdog: true})
	e.load([]tfesim.WorkspaceSpec{auto("root"), review("b")}, [2]string{"root", "b"})
	root := e.run("root", true)
	var bRun string
	testutil.WaitFor(t, "TFE's run in b", 15*time.Second, func() bool {
		list, err := e.client.Runs.List(e.ctx, e.id("b"), nil)
		if err != nil || len(list.Items) == 0 {
			return false
		}
		bRun = list.Items[0].ID
		return true
	})
	e.expect(wantAlert{Kind: alerts.KindReminder, Severity: alerts.SeverityInfo, Organization: "acme",
		Workspace: "b", WorkspaceID: e.id("b"), RunID: bRun, RunURL: e.runURL("b", bRun), CascadeID: cascade.ID(root),
		Message: "for a person to confirm it"})
}

// fastWatchdog scans every 100ms with the budgets given.
func fastWatchdog(b watchdog.Budgets) watchdog.Options {
	return watchdog.Options{Interval: 100 * time.Millisecond, EventCheck: 100 * time.Millisecond, Budgets: b}
}

// A run waits for a person, or is queued behind a person's lock, past the
// awaiting budget: a reminder, never a cancel.
func TestAlertWatchdogReminder(t *testing.T) {
	locked := auto("held")
	locked.Locked = true
	for _, tc := range []struct {
		name, why string
		ws        tfesim.WorkspaceSpec
		status    tfe.RunStatus
	}{
		{"planned, waiting for a person", "waits for a person", review("held"), tfe.RunPlanned},
		{"pending behind a person's lock", "is queued behind a locked workspace", locked, tfe.RunPending},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newAlertEnv(t, tfesim.Options{}, app.Config{Watchdog: fastWatchdog(watchdog.Budgets{Awaiting: 200 * time.Millisecond})})
			e.load([]tfesim.WorkspaceSpec{tc.ws})
			r := e.run("held", tc.ws.AutoApply)
			e.expect(wantAlert{Kind: alerts.KindReminder, Severity: alerts.SeverityInfo, Organization: "acme",
				Workspace: "held", WorkspaceID: e.id("held"), RunID: r, RunURL: e.runURL("held", r), Message: tc.why})
			if run, err := e.client.Runs.Read(e.ctx, r); err != nil || run.Status != tc.status {
				t.Errorf("the run: got %v, %v; want it left %s", run.Status, err, tc.status)
			}
		})
	}
}

// A run stays in applying past its budget: an alert, never a cancel. In a
// dry run, a run stuck where it would be cancelled gets the same alert.
func TestAlertStuckRun(t *testing.T) {
	dryRun := fastDispatch()
	dryRun.DryRun = true
	for _, tc := range []struct {
		name, in, why string
		cfg           app.Config
		status        tfe.RunStatus
	}{
		{"applying", tfesim.StatusApplying, "has been applying",
			app.Config{Watchdog: fastWatchdog(watchdog.Budgets{Applying: 200 * time.Millisecond})}, tfe.RunApplying},
		{"dry run, planning", tfesim.StatusPlanning, "dry run: would force-cancel",
			app.Config{Watchdog: fastWatchdog(watchdog.Budgets{Planning: 200 * time.Millisecond}), Dispatcher: dryRun}, tfe.RunPlanning},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newAlertEnv(t, tfesim.Options{}, tc.cfg)
			stuck := auto("stuck")
			stuck.Behavior.StuckIn = tc.in
			e.load([]tfesim.WorkspaceSpec{stuck})
			r := e.run("stuck", true)
			e.expect(wantAlert{Kind: alerts.KindStuckRun, Severity: alerts.SeverityCritical, Organization: "acme",
				Workspace: "stuck", WorkspaceID: e.id("stuck"), RunID: r, RunURL: e.runURL("stuck", r), Message: tc.why})
			if run, err := e.client.Runs.Read(e.ctx, r); err != nil || run.Status != tc.status {
				t.Errorf("the stuck run: got %v, %v; want it left %s", run.Status, err, tc.status)
			}
		})
	}
}

// A run stays in planning past its budget: force-cancelled, with an alert.
func TestAlertRunForceCancelled(t *testing.T) {
	e := newAlertEnv(t, tfesim.Options{}, app.Config{Watchdog: fastWatchdog(watchdog.Budgets{Planning: 200 * time.Millisecond})})
	plan := auto("plan")
	plan.Behavior.StuckIn = tfesim.StatusPlanning
	e.load([]tfesim.WorkspaceSpec{plan})
	r := e.run("plan", true)
	e.expect(wantAlert{Kind: alerts.KindRunCancelled, Severity: alerts.SeverityWarning, Organization: "acme",
		Workspace: "plan", WorkspaceID: e.id("plan"), RunID: r, RunURL: e.runURL("plan", r), Message: "force-cancelled"})
	if run, err := e.client.Runs.Read(e.ctx, r); err != nil || run.Status != tfe.RunCanceled {
		t.Errorf("the run stuck in planning: got %v, %v; want it canceled", run.Status, err)
	}
}
