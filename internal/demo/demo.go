// Package demo runs the whole product in one process against the
// simulator: an embedded JetStream, the simulator loaded with a scenario,
// the daemon wired to it, notification configurations installed through
// the API as a user would; then it starts a root run, prints the cascade as
// it happens, and checks the scenario's expectations.
package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
	"github.com/tfe-orchestrator/orchestrator/internal/app"
	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/graph"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient/runstatus"
	"github.com/tfe-orchestrator/orchestrator/internal/tfegraph"
	"github.com/tfe-orchestrator/orchestrator/internal/tfenotify"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
	"github.com/tfe-orchestrator/orchestrator/internal/watchdog"
)

// Scenario is a demo: a simulator scenario, the workspace whose run starts
// the cascade, the watchdog's budgets, and what must happen.
type Scenario struct {
	Organization string           `yaml:"organization"`
	Root         string           `yaml:"root"`
	Timeout      time.Duration    `yaml:"timeout"`
	Budgets      watchdog.Budgets `yaml:"-"`
	BudgetSpec   []string         `yaml:"watchdog_budgets"`
	// Approve lists the workspaces whose cascade runs a person confirms
	// when they wait for one (the demo plays that person).
	Approve []string `yaml:"approve"`
	// Prepare lists workspaces applied once before the daemon starts, so
	// that they have a state version the cascade's is compared with
	// (output gating).
	Prepare   []Prepare       `yaml:"prepare"`
	Expect    Expect          `yaml:"expect"`
	Simulator tfesim.Scenario `yaml:"simulator"`
}

// Prepare is a workspace applied before the demo. Outputs, when set, are
// what that apply writes; the cascade's applies write the simulator
// scenario's.
type Prepare struct {
	Workspace string                   `yaml:"workspace"`
	Outputs   map[string]tfesim.Output `yaml:"outputs"`
}

// Expect lists workspaces by the state their cascade member must end in,
// and the alert kinds that must be raised.
type Expect struct {
	Applied []string `yaml:"applied"`
	// Approved: applied after a person confirmed the run.
	Approved       []string `yaml:"approved"`
	Failed         []string `yaml:"failed"`
	ForceCancelled []string `yaml:"force_cancelled"`
	Blocked        []string `yaml:"blocked"`
	Skipped        []string `yaml:"skipped"`
	// Gated: ran because an upstream changed an output (output gating);
	// OutputsUnchanged: skipped because none did.
	Gated            []string `yaml:"gated"`
	OutputsUnchanged []string `yaml:"outputs_unchanged"`
	Alerts           []string `yaml:"alerts"`
}

// LoadScenario reads a demo scenario file, refusing unknown fields.
func LoadScenario(path string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var sc Scenario
	if err := dec.Decode(&sc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, b := range sc.BudgetSpec {
		if err := sc.Budgets.Set(b); err != nil {
			return nil, fmt.Errorf("%s: watchdog_budgets: %w", path, err)
		}
	}
	if sc.Timeout == 0 {
		sc.Timeout = time.Minute
	}
	if sc.Root == "" || sc.Organization == "" {
		return nil, fmt.Errorf("%s: organization and root are required", path)
	}
	return &sc, nil
}

// Options configure a demo run.
type Options struct {
	Scenario *Scenario
	Out      io.Writer
	Color    bool
	// Picture is the file the Mermaid picture of the outcome goes to; empty
	// for none.
	Picture string
	// KeepServing keeps the daemon, its web page and the simulator up
	// after the summary, until ctx ends, for a person to look around; it
	// prints the exports that point the CLI and go-tfe tools at them, and
	// the page's link to the cascade.
	KeepServing bool
	// Log is the daemon's logger; nil logs nothing.
	Log *zap.Logger
}

// Row is one workspace of the cascade in the summary.
type Row struct {
	Workspace string
	RunID     string
	State     cascade.State
	RunStatus string
	Reason    string
	WaitedFor []string
	Duration  time.Duration
	// Approved: a person confirmed its run.
	Approved bool
	Cause    string
	// OutputsChanged are the upstream outputs whose change made it run
	// (output gating), by name.
	OutputsChanged []string
}

// Report is how a demo ended.
type Report struct {
	CascadeID string
	Rows      []Row
	RunsSaved int
	Alerts    []alerts.Alert
	// Failures are the expectations that did not hold.
	Failures []string
}

// Run runs the demo.
func Run(ctx context.Context, o Options) (*Report, error) {
	sc := o.Scenario
	log := o.Log
	if log == nil {
		log = zap.NewNop()
	}
	p := &printer{w: o.Out, color: o.Color, start: time.Now()}
	outer := ctx
	ctx, cancel := context.WithTimeout(ctx, sc.Timeout)
	defer cancel()

	simToken, hookToken, pageToken := randomToken(), randomToken(), randomToken()
	sim, simURL, stopSim, err := startSimulator(ctx, sc, simToken)
	if err != nil {
		return nil, err
	}
	defer stopSim()
	p.say("simulator up at %s with organization %s", simURL, sc.Organization)
	if err := prepare(ctx, sc, sim, simURL, simToken, p); err != nil {
		return nil, err
	}

	dataDir, err := os.MkdirTemp("", "orchestrator-demo-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dataDir)
	d, err := app.New(app.Config{
		HTTPListen: "127.0.0.1:0", DataDir: dataDir,
		NATS:    app.NATSConfig{EmbeddedListen: "127.0.0.1:0"},
		TFE:     app.TFEConfig{Address: simURL, Token: simToken},
		Webhook: events.WebhookOptions{Tokens: []string{hookToken}},
		API:     app.APIConfig{OperateTokens: []string{"demo:" + pageToken}},
		Dispatcher: dispatcher.Options{
			AckWait: 5 * time.Second, Debounce: 100 * time.Millisecond, LeaseTTL: 5 * time.Second,
			Policy: cascade.Policy{Recheck: 5 * time.Second, LockedRetry: time.Second, LockedAlertAfter: 10 * time.Second,
				NativeGrace: time.Second, Soon: 200 * time.Millisecond},
		},
		Watchdog:      watchdog.Options{Interval: 500 * time.Millisecond, LeaseTTL: 3 * time.Second, Budgets: sc.Budgets},
		GraphCacheTTL: time.Minute,
	}, log)
	if err != nil {
		return nil, err
	}
	daemonCtx, stopDaemon := context.WithCancel(context.Background())
	daemonDone := make(chan error, 1)
	go func() { daemonDone <- d.Run(daemonCtx) }()
	defer func() { stopDaemon(); <-daemonDone }()
	select {
	case <-d.Ready():
	case err := <-daemonDone:
		return nil, fmt.Errorf("daemon: %w", err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.say("daemon up: webhooks at http://%s/webhooks/tfe, embedded JetStream at %s", d.HTTPAddr(), d.NATSURL())
	p.say("web page at http://%s/ui/: sign in with the operate token %s", d.HTTPAddr(), pageToken)

	client, err := tfeclient.Connect(simURL, simToken)
	if err != nil {
		return nil, err
	}
	installed, err := tfenotify.Install(ctx, client, tfenotify.Options{
		Organization: sc.Organization, URL: "http://" + d.HTTPAddr() + "/webhooks/tfe", Token: hookToken,
	})
	if err != nil {
		return nil, fmt.Errorf("install notification configurations: %w", err)
	}
	p.say("notification configurations installed on %d workspaces (each verified by TFE)", len(installed))

	nc, err := d.ConnectNATS()
	if err != nil {
		return nil, fmt.Errorf("connect to the daemon's NATS: %w", err)
	}
	defer nc.Close()
	var alertsMu sync.Mutex
	var raised []alerts.Alert
	sub, err := nc.Subscribe(alerts.Subject+".>", func(m *nats.Msg) {
		var a alerts.Alert
		if json.Unmarshal(m.Data, &a) == nil {
			alertsMu.Lock()
			raised = append(raised, a)
			alertsMu.Unlock()
			p.alert(a)
		}
	})
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()

	rootID := sim.WorkspaceID(sc.Organization, sc.Root)
	if rootID == "" {
		return nil, fmt.Errorf("root workspace %q is not in the scenario", sc.Root)
	}
	run, err := client.CreateRun(ctx, rootID, tfeclient.RunOptions{Message: "demo: apply " + sc.Root, AutoApply: true})
	if err != nil {
		return nil, fmt.Errorf("start the root run: %w", err)
	}
	id := cascade.ID(run.ID)
	p.say("%s: run %s queued by a person; when it applies, cascade %s starts", sc.Root, run.ID, id)

	reads := d.Cascades()
	if reads == nil {
		return nil, errors.New("the daemon runs no cascade engine")
	}
	v, approved, err := follow(ctx, reads, client, id, sc.Approve, p)
	if err != nil {
		return nil, err
	}
	rep := &Report{CascadeID: id, Rows: rows(v, approved), RunsSaved: v.RunsSaved}
	alertsMu.Lock()
	rep.Alerts = append(rep.Alerts, raised...)
	alertsMu.Unlock()
	p.summary(rep)
	if o.Picture != "" {
		g, err := tfegraph.LoadOrganization(ctx, client, sc.Organization)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(o.Picture, []byte(mermaid(g, sc.Root, rep.Rows)), 0o644); err != nil {
			return nil, fmt.Errorf("write the picture: %w", err)
		}
		p.say("picture of the cascade written to %s (Mermaid)", o.Picture)
	}
	rep.Failures = check(sc.Expect, rep)
	for _, f := range rep.Failures {
		p.say("EXPECTATION FAILED: %s", f)
	}
	if o.KeepServing {
		server := "http://" + d.HTTPAddr()
		p.say("the daemon and its web page stay up at %s/ui/ until the demo is stopped (Ctrl-C)", server)
		p.block("To use them from another shell, in the repository's root, paste:",
			"",
			"  export ORCHESTRATOR_SERVER="+server,
			"  export ORCHESTRATOR_API_TOKEN="+pageToken,
			"  export TFE_ADDRESS="+simURL,
			"  export TFE_TOKEN="+simToken,
			"  go run ./cmd/orchestrator cascades show "+id,
			"  go run ./cmd/orchestrator graph --organization "+sc.Organization,
			"",
			"The cascade on the web page (sign in with the ORCHESTRATOR_API_TOKEN above): "+server+"/ui/#"+id)
		<-outer.Done()
	}
	return rep, nil
}

// prepare applies the scenario's Prepare workspaces, before any daemon
// listens: each gets the state version a cascade's is compared with. The
// runs TFE's run triggers queue from them run their course too; the
// demo's cascade starts once every workspace is at rest.
func prepare(ctx context.Context, sc *Scenario, sim *tfesim.Sim, simURL, token string, p *printer) error {
	if len(sc.Prepare) == 0 {
		return nil
	}
	client, err := tfeclient.Connect(simURL, token)
	if err != nil {
		return err
	}
	var names []string
	for _, pr := range sc.Prepare {
		id := sim.WorkspaceID(sc.Organization, pr.Workspace)
		if id == "" {
			return fmt.Errorf("prepare: workspace %q is not in the scenario", pr.Workspace)
		}
		if pr.Outputs != nil {
			if err := sim.SetOutputs(id, pr.Outputs); err != nil {
				return fmt.Errorf("prepare %s: %w", pr.Workspace, err)
			}
		}
		if _, err := client.CreateRun(ctx, id, tfeclient.RunOptions{Message: "demo: prepare " + pr.Workspace, AutoApply: true}); err != nil {
			return fmt.Errorf("prepare %s: %w", pr.Workspace, err)
		}
		names = append(names, pr.Workspace)
	}
	p.say("preparing %s: a first apply each, so that the cascade has state to compare outputs with", strings.Join(names, ", "))
	for {
		busy := false
		err := client.ListWorkspaces(ctx, sc.Organization, tfeclient.WorkspaceQuery{CurrentRun: true}, func(page []tfeclient.Workspace) (bool, error) {
			for _, w := range page {
				busy = busy || (w.CurrentRun != nil && !cascade.Final(w.CurrentRun.Status))
			}
			return !busy, nil
		})
		if err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		if !busy {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("prepare: runs did not finish: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	// The cascade's applies write the scenario's outputs.
	for _, pr := range sc.Prepare {
		if pr.Outputs == nil {
			continue
		}
		if err := sim.SetOutputs(sim.WorkspaceID(sc.Organization, pr.Workspace), scenarioOutputs(sc, pr.Workspace)); err != nil {
			return fmt.Errorf("prepare %s: %w", pr.Workspace, err)
		}
	}
	return nil
}

// scenarioOutputs are the outputs the simulator scenario gives a workspace.
func scenarioOutputs(sc *Scenario, name string) map[string]tfesim.Output {
	for _, o := range sc.Simulator.Organizations {
		if o.Name != sc.Organization {
			continue
		}
		for _, w := range o.Workspaces {
			if w.Name == name {
				return w.Behavior.Outputs
			}
		}
	}
	return nil
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func startSimulator(ctx context.Context, sc *Scenario, token string) (*tfesim.Sim, string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", nil, err
	}
	url := "http://" + ln.Addr().String()
	sim, err := tfesim.New(tfesim.Options{Token: token, RateLimit: -1, Address: url})
	if err != nil {
		ln.Close()
		return nil, "", nil, err
	}
	if err := sim.LoadScenario(&sc.Simulator); err != nil {
		ln.Close()
		return nil, "", nil, err
	}
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 5 * time.Second}
	simCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = srv.Serve(ln) }()
	go func() { defer wg.Done(); _ = sim.Run(simCtx) }()
	stop := func() {
		cancel()
		_ = srv.Close()
		wg.Wait()
	}
	return sim, url, stop, nil
}

// follow prints each member's state change, through the engine's read
// model, until the cascade is done. Runs waiting for a person in the
// workspaces of approve are confirmed, as that person would, after a
// moment. It returns the last view and the runs the person confirmed.
func follow(ctx context.Context, reads *dispatcher.Reads, runs tfeclient.RunApplier, id string, approve []string, p *printer) (*dispatcher.View, map[string]bool, error) {
	var views <-chan *dispatcher.View
	for views == nil {
		w, err := reads.Watch(ctx, id)
		switch {
		case err == nil:
			views = w
		case !errors.Is(err, dispatcher.ErrNoCascade):
			return nil, nil, err
		default:
			select { // the root has not applied yet
			case <-ctx.Done():
				return nil, nil, fmt.Errorf("cascade %s never started: %w", id, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	approved := map[string]bool{}
	last := map[string]string{}
	announced := false
	for {
		var v *dispatcher.View
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("cascade %s did not finish in time: %w", id, ctx.Err())
		case got, ok := <-views:
			if !ok {
				return nil, nil, fmt.Errorf("cascade %s: the view ended", id)
			}
			v = got
		}
		if !announced {
			announced = true
			p.say("cascade %s: %d workspaces downstream of %s", id, len(v.Members), v.Root)
			for _, cy := range v.Cycles {
				p.say("cycle found: %s", cy)
			}
		}
		for _, m := range v.Members {
			key := string(m.State) + "/" + m.RunID + "/" + m.RunStatus
			if last[m.Name] == key {
				continue
			}
			last[m.Name] = key
			p.member(m)
			if m.State == cascade.AwaitingApproval && slices.Contains(approve, m.Name) && !approved[m.RunID] {
				approved[m.RunID] = true
				go func(name, runID string) {
					select { // a person reads the plan first
					case <-ctx.Done():
						return
					case <-time.After(time.Second):
					}
					if err := runs.ApplyRun(ctx, runID, "plan reviewed: approved"); err == nil {
						p.say("%s: a person reviewed run %s's plan and confirmed it", name, runID)
					}
				}(m.Name, m.RunID)
			}
		}
		if v.State == dispatcher.StateDone {
			p.say("cascade %s done: %s", id, v.Outcome)
			return v, approved, nil
		}
	}
}

// rows builds the summary from the cascade's last view.
func rows(v *dispatcher.View, approved map[string]bool) []Row {
	out := make([]Row, 0, len(v.Members))
	for _, m := range v.Members {
		r := Row{Workspace: m.Name, RunID: m.RunID, State: m.State, RunStatus: m.RunStatus, Reason: m.Reason,
			WaitedFor: m.WaitsFor, Approved: approved[m.RunID], Cause: m.Cause, OutputsChanged: m.OutputsChanged}
		if !m.FinishedAt.IsZero() && !m.ReadyAt.IsZero() && m.RunID != "" {
			r.Duration = m.FinishedAt.Sub(m.ReadyAt)
		}
		out = append(out, r)
	}
	return out
}

// check compares the outcome with the expectations.
func check(e Expect, rep *Report) []string {
	byName := map[string]Row{}
	for _, r := range rep.Rows {
		byName[r.Workspace] = r
	}
	var fails []string
	want := func(names []string, ok func(Row) bool, what string) {
		for _, n := range names {
			r, found := byName[n]
			if !found || !ok(r) {
				fails = append(fails, fmt.Sprintf("%s should have %s (got %s %s)", n, what, r.State, r.RunStatus))
			}
		}
	}
	want(e.Applied, func(r Row) bool { return r.State == cascade.Applied }, "applied")
	want(e.Approved, func(r Row) bool { return r.State == cascade.Applied && r.Approved }, "applied after a person approved it")
	want(e.Failed, func(r Row) bool { return r.State == cascade.Failed }, "failed")
	// TFE's admin force-cancel ends a run canceled; a user's force-cancel
	// may end it force_canceled (TFE's pages say both). The watchdog's
	// alert for the run is what tells its force-cancel from a person's
	// cancel.
	forceCancelled := func(r Row) bool {
		return r.State == cascade.Failed && (r.RunStatus == runstatus.Canceled || r.RunStatus == runstatus.ForceCanceled) &&
			slices.ContainsFunc(rep.Alerts, func(a alerts.Alert) bool { return a.Kind == alerts.KindRunCancelled && a.RunID == r.RunID })
	}
	want(e.ForceCancelled, forceCancelled, "been force-cancelled")
	want(e.Blocked, func(r Row) bool { return r.State == cascade.Blocked && r.RunID == "" }, "been blocked and never dispatched")
	want(e.Skipped, func(r Row) bool { return r.State == cascade.Skipped && r.RunID == "" }, "been skipped")
	want(e.Gated, func(r Row) bool { return r.State == cascade.Applied && len(r.OutputsChanged) > 0 }, "applied because an upstream output changed")
	want(e.OutputsUnchanged, func(r Row) bool {
		return r.State == cascade.Skipped && r.Cause == cascade.CauseOutputsUnchanged && r.RunID == ""
	}, "been skipped because no upstream output changed")
	for _, kind := range e.Alerts {
		if !slices.ContainsFunc(rep.Alerts, func(a alerts.Alert) bool { return a.Kind == kind }) {
			fails = append(fails, "no "+kind+" alert was raised")
		}
	}
	return fails
}

// mermaid draws the organization's graph with the cascade's outcome.
func mermaid(g *graph.Graph, root string, rows []Row) string {
	state := map[string]Row{}
	for _, r := range rows {
		state[r.Workspace] = r
	}
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	ids := map[string]string{}
	for i, w := range g.Workspaces() {
		ids[w.ID] = fmt.Sprintf("n%d", i)
		label := w.Name
		class := "untouched"
		if w.Name == root {
			label, class = w.Name+"<br/>root", "applied"
		} else if r, ok := state[w.Name]; ok {
			label = w.Name + "<br/>" + string(r.State)
			if r.RunStatus != "" && string(r.State) != r.RunStatus {
				label += " (" + r.RunStatus + ")"
			}
			class = string(r.State)
		}
		fmt.Fprintf(&b, "  %s[\"%s\"]:::%s\n", ids[w.ID], label, class)
	}
	for _, e := range g.Edges() {
		fmt.Fprintf(&b, "  %s --> %s\n", ids[e.Source], ids[e.Target])
	}
	b.WriteString(`  classDef applied fill:#d4f7d4,stroke:#2a8a2a
  classDef failed fill:#f9d0d0,stroke:#c00
  classDef blocked fill:#eee,stroke:#999,stroke-dasharray: 4 2
  classDef skipped fill:#eee,stroke:#999
  classDef no_changes fill:#e8f0ff,stroke:#69c
  classDef dispatched fill:#fff5cc,stroke:#c90
  classDef waiting fill:#fff,stroke:#999
  classDef untouched fill:#fff,stroke:#ccc
`)
	return b.String()
}
