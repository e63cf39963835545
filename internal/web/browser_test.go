package web_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	tfe "github.com/hashicorp/go-tfe"
	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/api"
	"github.com/tfe-orchestrator/orchestrator/internal/app"
	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim/simtest"
)

// The page in a real browser: Debian's Chromium, headless, driven over the
// DevTools protocol by chromedp, against a daemon (embedded JetStream) and
// the simulator as TFE.

const (
	chromiumPath  = "/usr/bin/chromium"
	readSecret    = "read-token-0123456789abcdef"
	operateSecret = "operate-token-0123456789abcdef"
	webhookToken  = "webhook-secret"

	// runningFill is the fill of a running member's box (--running-fill in
	// style.css): the screenshot check looks for it.
	runningFill = 0xc6dbff

	// screenshotName is the file the screenshot of the running cascade is
	// kept in, under $ARTIFACTS_DIR; doneShotName that of the cascade
	// done, its members table and its audit trail; whyShotName that of the
	// why pane; auditShotName that of the audit trail of all.
	screenshotName = "web-running-cascade.png"
	doneShotName   = "web-done-cascade.png"
	auditShotName  = "web-audit-trail.png"
	whyShotName    = "web-why.png"

	// appWS is the last workspace of the cascade the page follows: a long
	// name with no place to break a line, as real ones have, which the
	// members table must still show within the page.
	appWS = "app_for_the_payments_platform_eu_west_1_primary_cluster_blue"
)

// stack is the simulator with organization acme, its run triggers firing
// and its notifications going to one daemon with API tokens of both roles.
type stack struct {
	sim    *tfesim.Sim
	tfe    *tfe.Client
	daemon *app.App
	base   string // the daemon's http://host:port
}

func startStack(t *testing.T) *stack {
	t.Helper()
	srv := simtest.Start(t, tfesim.Options{})
	sim, client := srv.Sim, srv.Client

	d, err := app.New(app.Config{
		HTTPListen: "127.0.0.1:0", DataDir: t.TempDir(),
		NATS:    app.NATSConfig{EmbeddedListen: "127.0.0.1:0"},
		TFE:     app.TFEConfig{Address: srv.URL, Token: "sim-token"},
		Webhook: events.WebhookOptions{Tokens: []string{webhookToken}},
		Dispatcher: dispatcher.Options{AckWait: time.Second, LeaseTTL: 2 * time.Second, Debounce: 20 * time.Millisecond,
			Policy: cascade.Policy{Recheck: time.Second, LockedRetry: 100 * time.Millisecond, NativeGrace: 300 * time.Millisecond,
				Soon: 100 * time.Millisecond, CreateTimeout: 2 * time.Second, CreateSettle: 500 * time.Millisecond}},
		DisableWatchdog: true,
		API:             app.APIConfig{ReadTokens: []string{"viewer:" + readSecret}, OperateTokens: []string{"alice:" + operateSecret}},
	}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("daemon stopped with %v", err)
		}
	})
	select {
	case <-d.Ready():
	case err := <-done:
		t.Fatalf("daemon stopped before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("daemon not ready in 30s")
	}
	base := "http://" + d.HTTPAddr()

	// seed → seed-app is a cascade that is over before the page is opened;
	// root → net → appWS is the one the page follows. Runs TFE's triggers
	// queue plan long enough to be stopped while the cascade is paused; net
	// plans long enough to be seen running.
	ws := func(name string, planMS int64) tfesim.WorkspaceSpec {
		return tfesim.WorkspaceSpec{Name: name, AutoApplyRunTrigger: true, Behavior: tfesim.Behavior{PlanDurationMS: planMS, ApplyDurationMS: 20}}
	}
	spec := tfesim.OrganizationSpec{Name: "acme", Email: "ops@acme.test",
		Workspaces:  []tfesim.WorkspaceSpec{ws("seed", 0), ws("seed-app", 0), ws("root", 0), ws("net", 3000), ws(appWS, 1000)},
		RunTriggers: []tfesim.RunTriggerSpec{{Source: "seed", Target: "seed-app"}, {Source: "root", Target: "net"}, {Source: "net", Target: appWS}},
		Notifications: []tfesim.ScenarioNotification{{NotificationSpec: tfesim.NotificationSpec{
			Name: "orchestrator", URL: base + "/webhooks/tfe", Token: webhookToken,
			Triggers: []string{"run:created", "run:planning", "run:needs_attention", "run:applying", "run:completed", "run:errored"},
		}}}}
	if err := sim.LoadScenario(&tfesim.Scenario{Organizations: []tfesim.OrganizationSpec{spec}}); err != nil {
		t.Fatal(err)
	}
	return &stack{sim: sim, tfe: client, daemon: d, base: base}
}

// start applies a run in a workspace and returns the ID of the cascade it
// starts.
func (s *stack) start(t *testing.T, workspace string) string {
	t.Helper()
	r, err := s.tfe.Runs.Create(context.Background(), tfe.RunCreateOptions{
		Workspace: &tfe.Workspace{ID: s.sim.WorkspaceID("acme", workspace)}, AutoApply: tfe.Bool(true), Message: tfe.String("deploy " + workspace)})
	if err != nil {
		t.Fatal(err)
	}
	return cascade.ID(r.ID)
}

// view waits until the API shows the cascade satisfying cond.
func (s *stack) view(t *testing.T, id, what string, cond func(*dispatcher.View) bool) *dispatcher.View {
	t.Helper()
	c := &api.Client{Server: s.base, Token: readSecret}
	var v *dispatcher.View
	testutil.WaitFor(t, what, 20*time.Second, func() bool {
		got, err := c.Show(context.Background(), id)
		v = got
		return err == nil && cond(got)
	})
	return v
}

// browser is a headless Chromium tab, with what its pages wrote to the
// console.
type browser struct {
	t       *testing.T
	ctx     context.Context
	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox, chromedp.DisableGPU,
		// This machine's network is closed: Chromium must not try to reach
		// its own services.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 900),
	)
	allocCtx, stopAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, stopTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { stopTab(); stopAlloc() })
	b := &browser{t: t, ctx: ctx}
	// The first action starts the browser and binds it to ctx, which has
	// no deadline: each step below has its own.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx, chromedp.EmulateViewport(1400, 900)) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start %s: %v", chromiumPath, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not start in 30s", chromiumPath)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	return b
}

// do runs the steps, failing the test if they do not finish in 20s.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v%s", what, err, b.consoleText())
	}
}

// eval evaluates a JavaScript expression in the page (awaiting a promise).
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// until waits for a JavaScript condition to hold in the page.
func (b *browser) until(what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(0))); err != nil {
		b.t.Fatalf("%s: %v%s", what, err, b.consoleText())
	}
}

func (b *browser) consoleText() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var s strings.Builder
	for _, m := range b.console {
		s.WriteString("\n\tconsole " + string(m.Type) + ": " + m.Text)
	}
	return s.String()
}

func (b *browser) signIn(token string) {
	b.t.Helper()
	b.do("sign in",
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.CSS("#signin-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("app")),
	)
}

// control uses a control of the page: its button, then the "why" dialog.
func (b *browser) control(button, why string) {
	b.t.Helper()
	b.do("use "+button,
		chromedp.Click(chromedp.ID(button)),
		chromedp.WaitVisible(chromedp.ID("why")),
		chromedp.SendKeys(chromedp.ID("why"), why),
		chromedp.Click(chromedp.ID("confirm-ok")),
		chromedp.WaitNotVisible(chromedp.ID("confirm")),
	)
}

func row(workspace, state string) chromedp.CSS {
	return chromedp.CSS(fmt.Sprintf(`#members tr[data-workspace=%q][data-state=%q]`, workspace, state))
}

// The page shows nothing without a token; with a read token it shows the
// cascades and no control; with an operate token it pauses dispatching,
// follows a cascade live as resume lets it go on, and shows a running
// member's box in the running colour.
func TestPageInAHeadlessBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("REQUIRE_CHROMIUM") == "1" {
			t.Fatalf("REQUIRE_CHROMIUM=1 and %s is missing: %v", chromiumPath, err)
		}
		t.Skipf("%s is missing: install Debian's chromium package to run the browser test (REQUIRE_CHROMIUM=1 makes this a failure)", chromiumPath)
	}
	began := time.Now()
	s := startStack(t)
	seed := s.start(t, "seed")
	s.view(t, seed, "the seed cascade to finish", func(v *dispatcher.View) bool { return v.State == dispatcher.StateDone })

	b := startBrowser(t)

	// Without a token: the sign-in form and nothing else; the page asked
	// the API nothing, and the API answers it 401.
	b.do("open the page", chromedp.Navigate(s.base+"/"), chromedp.WaitVisible(chromedp.ID("token")))
	if u := eval[string](b, `location.pathname`); u != "/ui/" {
		t.Errorf("GET / led to %s, want /ui/", u)
	}
	if eval[bool](b, `!document.getElementById('app').hidden || !document.getElementById('session').hidden`) {
		t.Error("without a token the page shows the cascades or the session")
	}
	if text := eval[string](b, `document.body.innerText`); strings.Contains(text, seed) || strings.Contains(text, "seed-app") {
		t.Errorf("without a token the page shows cascade data:\n%s", text)
	}
	if n := eval[int](b, `performance.getEntriesByType('resource').filter(e => e.name.includes('/api/')).length`); n != 0 {
		t.Errorf("without a token the page made %d API requests", n)
	}
	if code := eval[int](b, `fetch('../api/v1/cascades').then(r => r.status)`); code != http.StatusUnauthorized {
		t.Errorf("the API answered the browser without a token %d, want 401", code)
	}

	// A read token sees the cascades and no control; signing out forgets
	// the token and clears what was shown.
	b.signIn(readSecret)
	b.do("see the seed cascade", chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#cascades li[data-id=%q]`, seed))))
	if who := eval[string](b, `document.getElementById('who').textContent`); who != "viewer · read" {
		t.Errorf("who: %q", who)
	}
	if eval[bool](b, `!document.getElementById('pause-btn').hidden`) {
		t.Error("a read token is offered the pause control")
	}
	b.do("sign out", chromedp.Click(chromedp.ID("sign-out")), chromedp.WaitVisible(chromedp.ID("token")))
	if eval[bool](b, `sessionStorage.length > 0 || document.querySelectorAll('#cascades li').length > 0 || !document.getElementById('app').hidden`) {
		t.Error("after signing out the token is kept or cascades are still shown")
	}

	// An operate token pauses dispatching, with a why.
	b.signIn(operateSecret)
	b.do("see the pause control", chromedp.WaitVisible(chromedp.ID("pause-btn")))
	b.control("pause-btn", "audit of the network change")
	b.until("the page to show the pause", `document.getElementById('global-pause').textContent.includes('by alice: audit of the network change')`)
	ctl, err := (&api.Client{Server: s.base, Token: readSecret}).Controls(context.Background())
	if err != nil || ctl.Paused[""].By != "alice" || ctl.Paused[""].Why != "audit of the network change" {
		t.Fatalf("controls after the page paused: %+v, %v", ctl, err)
	}

	// A cascade starts while paused: the page shows it held, with why.
	id := s.start(t, "root")
	s.view(t, id, "the cascade to start", func(*dispatcher.View) bool { return true })
	li := chromedp.CSS(fmt.Sprintf(`#cascades li[data-id=%q] a`, id))
	b.do("open the cascade", chromedp.Click(chromedp.ID("refresh")), chromedp.WaitVisible(li), chromedp.Click(li),
		chromedp.WaitVisible(row("net", "waiting")), chromedp.WaitVisible(chromedp.CSS("#banners .banner.paused")))
	b.until("net to be held by the pause", `document.querySelector('#members tr[data-workspace="net"] td.reason').textContent.includes('paused')`)

	// Resume: net runs, then applies, then app, all seen live in the same
	// page (a reload would lose the mark).
	eval[bool](b, `window.sameDocument = true`)
	b.control("resume-btn", "audit done")
	b.do("see net running", chromedp.WaitVisible(row("net", "running")),
		chromedp.WaitReady(chromedp.CSS(`#graph g.node[data-workspace="net"][data-state="running"]`)))
	type rect struct{ X, Y, W, H float64 }
	box := eval[rect](b, `(() => { const r = document.querySelector('#graph g.node[data-workspace="net"] rect').getBoundingClientRect();
		return {X: r.x + scrollX, Y: r.y + scrollY, W: r.width, H: r.height}; })()`)
	shot := screenshot(t, b, screenshotName)
	b.do("see the cascade go on live", chromedp.WaitVisible(row("net", "applied")), chromedp.WaitVisible(row(appWS, "applied")))
	b.until("the cascade to be done", `document.querySelector('#c-title .badge').textContent === 'done: applied'`)
	if !eval[bool](b, `window.sameDocument === true`) {
		t.Error("the page was reloaded to show the cascade's progress")
	}
	v := s.view(t, id, "the cascade to be done", func(v *dispatcher.View) bool { return v.State == dispatcher.StateDone })
	if v.Outcome != cascade.OutcomeApplied {
		t.Errorf("outcome %s, want applied", v.Outcome)
	}

	checkScreenshot(t, shot, image.Rect(int(box.X), int(box.Y), int(box.X+box.W), int(box.Y+box.H)))

	checkDone(t, b)
	checkMembersFit(t, b, 1400, 900)
	checkMembersFit(t, b, 1024, 700) // a small laptop, or half a screen
	b.do("back to 1400 px", chromedp.EmulateViewport(1400, 900))
	screenshot(t, b, doneShotName)
	checkSearch(t, b, seed, id)
	checkWhy(t, s, b, seed)
	screenshot(t, b, whyShotName)
	checkAudit(t, b)
	screenshot(t, b, auditShotName)
	checkSince(t, b, seed)
	checkCascadeAudit(t, s, b)

	b.mu.Lock()
	for _, m := range b.console {
		if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
			t.Errorf("the page wrote to the console: %s: %s", m.Type, m.Text)
		}
	}
	b.mu.Unlock()
	t.Logf("browser test took %s", time.Since(began).Round(100*time.Millisecond))
}

// checkDone checks that the cascade shown, done, has no live dot: it
// changes no more, though its watch stream stays open.
func checkDone(t *testing.T, b *browser) {
	t.Helper()
	if eval[bool](b, `(() => { const l = document.getElementById('live');
		return l.classList.contains('on') || l.classList.contains('off') || getComputedStyle(l, '::before').content !== 'none'; })()`) {
		t.Errorf("a done cascade shows a live dot: %q", eval[string](b, `document.getElementById('live').outerHTML`))
	}
	if text := eval[string](b, `document.getElementById('live').textContent`); text != "finished" {
		t.Errorf("a done cascade says %q beside its title, want finished", text)
	}
}

// checkMembersFit checks at a window size that the members table, with
// its long workspace name, ends within its pane and the window, and that
// the page does not scroll sideways.
func checkMembersFit(t *testing.T, b *browser, width, height int64) {
	t.Helper()
	b.do(fmt.Sprintf("resize to %dx%d", width, height), chromedp.EmulateViewport(width, height))
	b.until("the members table to be laid out at "+fmt.Sprint(width), fmt.Sprintf(`document.documentElement.clientWidth === %d`, width))
	type fit struct {
		Table, Pane, Name, Client, Scroll float64
	}
	got := eval[fit](b, fmt.Sprintf(`(() => {
		const right = (e) => e.getBoundingClientRect().right;
		const d = document.documentElement;
		return {Table: right(document.getElementById('members')), Pane: right(document.getElementById('detail')),
			Name: right(document.querySelector('#members tr[data-workspace=%q] td.name')),
			Client: d.clientWidth, Scroll: d.scrollWidth};
	})()`, appWS))
	if got.Table > got.Pane+0.5 || got.Table > got.Client+0.5 || got.Name > got.Client+0.5 || got.Scroll > got.Client+0.5 {
		t.Errorf("at %d px the members table does not fit: its right edge at %.0f, its pane's at %.0f, the long name's at %.0f, the window %.0f wide, the page %.0f",
			width, got.Table, got.Pane, got.Name, got.Client, got.Scroll)
	}
}

// checkSearch searches the list for a workspace: only the cascades it is
// the root or a member of are left.
func checkSearch(t *testing.T, b *browser, seed, id string) {
	t.Helper()
	has := func(c string) string { return fmt.Sprintf(`document.querySelector('#cascades li[data-id=%q]')`, c) }
	b.do("search seed-app", chromedp.SendKeys(chromedp.ID("f-ws"), "seed-app"))
	b.until("the list to show the seed cascade only", has(seed)+` !== null && `+has(id)+` === null`)
	eval[bool](b, `(() => { const i = document.getElementById('f-ws'); i.value = ''; i.dispatchEvent(new Event('input')); return true; })()`)
	b.do("search net", chromedp.SendKeys(chromedp.ID("f-ws"), "net"))
	b.until("the list to show the followed cascade only", has(id)+` !== null && `+has(seed)+` === null`)
	eval[bool](b, `(() => { const i = document.getElementById('f-ws'); i.value = ''; i.dispatchEvent(new Event('input')); return true; })()`)
	b.until("the list to show both again", has(id)+` !== null && `+has(seed)+` !== null`)
}

// checkWhy asks the why panel about a workspace: it explains what the
// cascade that reached it did, with a link to that cascade.
func checkWhy(t *testing.T, s *stack, b *browser, seed string) {
	t.Helper()
	b.do("ask why about seed-app", chromedp.Click(chromedp.ID("why-link")), chromedp.WaitVisible(chromedp.ID("why-ws")),
		chromedp.SendKeys(chromedp.ID("why-ws"), "seed-app"), chromedp.Click(chromedp.CSS(`#why-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#why-result li[data-cascade=%q]`, seed))))
	text := eval[string](b, `document.getElementById('why-result').innerText`)
	w, err := (&api.Client{Server: s.base, Token: readSecret}).Why(context.Background(), "", "seed-app")
	if err != nil || len(w.Cascades) != 1 || w.Cascades[0].Explanation == "" {
		t.Fatalf("why seed-app from the API: %+v, %v", w, err)
	}
	if !strings.Contains(text, w.Cascades[0].Explanation) || !strings.Contains(text, seed) {
		t.Errorf("the why panel about seed-app says:\n%s\nwant the API's explanation: %s", text, w.Cascades[0].Explanation)
	}
	if h := eval[string](b, fmt.Sprintf(`document.querySelector('#why-result li[data-cascade=%q] a').getAttribute('href')`, seed)); h != "#"+seed {
		t.Errorf("the why panel links the cascade to %q", h)
	}
}

// checkAudit opens the audit trail: the pause and the resume used through
// the page are there, with who and why.
func checkAudit(t *testing.T, b *browser) {
	t.Helper()
	b.do("open the audit trail", chromedp.Click(chromedp.ID("audit-link")),
		chromedp.WaitVisible(chromedp.CSS(`#audit li[data-action="pause"]`)), chromedp.WaitVisible(chromedp.CSS(`#audit li[data-action="resume"]`)))
	pause := eval[string](b, `document.querySelector('#audit li[data-action="pause"]').innerText`)
	if !strings.Contains(pause, "alice") || !strings.Contains(pause, "audit of the network change") || !strings.Contains(pause, "everywhere") {
		t.Errorf("the audit trail shows the pause as:\n%s", pause)
	}
	resume := eval[string](b, `document.querySelector('#audit li[data-action="resume"]').innerText`)
	if !strings.Contains(resume, "alice") || !strings.Contains(resume, "audit done") {
		t.Errorf("the audit trail shows the resume as:\n%s", resume)
	}
	if first := eval[string](b, `document.querySelector('#audit li').dataset.action`); first != "resume" {
		t.Errorf("the audit trail starts with %s, want the resume (newest first)", first)
	}
}

// checkSince narrows the list to the last hour: the list is asked with a
// since, and the cascades of the test, all recent, are still listed.
func checkSince(t *testing.T, b *browser, seed string) {
	t.Helper()
	eval[bool](b, `(() => { const s = document.getElementById('f-since'); s.value = '1h'; s.dispatchEvent(new Event('change')); return true; })()`)
	b.until("the list to be asked for the last hour", `performance.getEntriesByType('resource').some(e => /\/api\/v1\/cascades\?.*since=20/.test(e.name))`)
	b.until("the seed cascade to be listed since an hour ago", fmt.Sprintf(`document.querySelector('#cascades li[data-id=%q]') !== null`, seed))
}

// checkCascadeAudit cancels a cascade through the page: the cascade's
// view then lists the cancel, with who and why, from its audit trail.
func checkCascadeAudit(t *testing.T, s *stack, b *browser) {
	t.Helper()
	op := &api.Client{Server: s.base, Token: operateSecret}
	if _, err := op.Pause(context.Background(), "acme", api.Decision{By: "bob", Why: "hold seed-app"}); err != nil {
		t.Fatal(err)
	}
	id := s.start(t, "seed")
	s.view(t, id, "the second seed cascade to be held by the pause", func(v *dispatcher.View) bool { return v.Paused != "" })
	li := chromedp.CSS(fmt.Sprintf(`#cascades li[data-id=%q] a`, id))
	b.do("open the second seed cascade", chromedp.Click(chromedp.ID("refresh")), chromedp.WaitVisible(li), chromedp.Click(li),
		chromedp.WaitVisible(row("seed-app", "waiting")), chromedp.WaitVisible(chromedp.CSS(`#c-audit li.none`)))
	b.control("cancel-btn", "seed-app is not wanted tonight")
	b.do("see the cancel in the cascade's trail", chromedp.WaitVisible(chromedp.CSS(`#c-audit li[data-action="cancel"]`)))
	text := eval[string](b, `document.getElementById('c-audit').innerText`)
	if !strings.Contains(text, "alice") || !strings.Contains(text, "seed-app is not wanted tonight") {
		t.Errorf("the cascade's trail shows the cancel as:\n%s", text)
	}
	if _, err := op.Resume(context.Background(), "acme", api.Decision{Why: "done"}); err != nil {
		t.Fatal(err)
	}

	// A member's name leads to why for it: both seed cascades reached it.
	b.do("follow seed-app's name to why", chromedp.Click(chromedp.CSS(`#members tr[data-workspace="seed-app"] td.name a`)),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#why-result li[data-cascade=%q]`, id))))
	if n := eval[int](b, `document.querySelectorAll('#why-result li').length`); n != 2 {
		t.Errorf("why seed-app from its member row lists %d cascades, want the 2 that reached it", n)
	}
	if hash := eval[string](b, `location.hash`); hash != "#why/acme/seed-app" {
		t.Errorf("the member's name led to %s, want #why/acme/seed-app", hash)
	}
}

// screenshot takes the whole page as PNG and keeps it: in $ARTIFACTS_DIR
// when set, else in a temporary directory that outlives the test.
func screenshot(t *testing.T, b *browser, name string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := os.Getenv("ARTIFACTS_DIR")
	if dir == "" {
		if dir, err = os.MkdirTemp("", "orchestrator-web-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	return shot
}

// checkScreenshot decodes the PNG and checks that it is a whole page and
// that the running member's box is painted in the running colour.
func checkScreenshot(t *testing.T, shot []byte, box image.Rectangle) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 1400 || b.Dy() < 900 {
		t.Errorf("screenshot is %dx%d, want at least the 1400x900 viewport", b.Dx(), b.Dy())
	}
	if box.Dx() < 100 || box.Dy() < 30 {
		t.Fatalf("the running member's box is %v: too small to be the graph's box", box)
	}
	inner := box.Inset(3)
	painted := 0
	for y := inner.Min.Y; y < inner.Max.Y; y++ {
		for x := inner.Min.X; x < inner.Max.X; x++ {
			if near(img.At(x, y), runningFill) {
				painted++
			}
		}
	}
	area := inner.Dx() * inner.Dy()
	if painted*2 < area {
		t.Errorf("%d of the %d pixels of the running member's box %v are the running colour #%06x, want at least half", painted, area, box, runningFill)
	}
}

// near reports whether c is within a small distance of the RGB colour want.
func near(c interface{ RGBA() (r, g, b, a uint32) }, want uint32) bool {
	r, g, b, _ := c.RGBA()
	d := func(got uint32, shift uint) bool {
		w := int(want>>shift) & 0xff
		g := int(got >> 8)
		return g-w <= 4 && w-g <= 4
	}
	return d(r, 16) && d(g, 8) && d(b, 0)
}
