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
	"sort"
	"strings"
	"sync"
	"time"

	tfe "github.com/hashicorp/go-tfe"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
	"github.com/tfe-orchestrator/orchestrator/internal/app"
	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/graph"
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
	Expect       Expect           `yaml:"expect"`
	Simulator    tfesim.Scenario  `yaml:"simulator"`
}

// Expect lists workspaces by the state their cascade member must end in,
// and the alert kinds that must be raised.
type Expect struct {
	Applied        []string `yaml:"applied"`
	Failed         []string `yaml:"failed"`
	ForceCancelled []string `yaml:"force_cancelled"`
	Blocked        []string `yaml:"blocked"`
	Skipped        []string `yaml:"skipped"`
	Alerts         []string `yaml:"alerts"`
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
	Log     *zap.Logger
}

// Row is one workspace of the cascade in the summary.
type Row struct {
	Workspace string
	RunID     string
	State     dispatcher.MemberState
	RunStatus string
	Reason    string
	WaitedFor []string
	Duration  time.Duration
}

// Report is how a demo ended.
type Report struct {
	CascadeID string
	Rows      []Row
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
	ctx, cancel := context.WithTimeout(ctx, sc.Timeout)
	defer cancel()

	simToken, hookToken := randomToken(), randomToken()
	sim, simURL, stopSim, err := startSimulator(ctx, sc, simToken)
	if err != nil {
		return nil, err
	}
	defer stopSim()
	p.say("simulator up at %s with organization %s", simURL, sc.Organization)

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
		Dispatcher: dispatcher.Options{
			AckWait: 5 * time.Second, ReconcileInterval: time.Second, ReconcileAfter: 5 * time.Second,
			LockedRetry: time.Second, LockedAlertAfter: 10 * time.Second,
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

	client, err := tfe.NewClient(&tfe.Config{Address: simURL, Token: simToken})
	if err != nil {
		return nil, err
	}
	installed, err := tfenotify.Install(ctx, client.Workspaces, client.NotificationConfigurations, tfenotify.Options{
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
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}

	rootID := sim.WorkspaceID(sc.Organization, sc.Root)
	if rootID == "" {
		return nil, fmt.Errorf("root workspace %q is not in the scenario", sc.Root)
	}
	run, err := client.Runs.Create(ctx, tfe.RunCreateOptions{Workspace: &tfe.Workspace{ID: rootID}, Message: tfe.String("demo: apply " + sc.Root)})
	if err != nil {
		return nil, fmt.Errorf("start the root run: %w", err)
	}
	id := dispatcher.CascadeID(run.ID)
	p.say("%s: run %s queued by a person; when it applies, cascade %s starts", sc.Root, run.ID, id)

	c, err := follow(ctx, js, id, p)
	if err != nil {
		return nil, err
	}
	rep := &Report{CascadeID: id}
	if rep.Rows, err = rows(ctx, js, client, c); err != nil {
		return nil, err
	}
	alertsMu.Lock()
	rep.Alerts = append(rep.Alerts, raised...)
	alertsMu.Unlock()
	p.summary(rep)
	if o.Picture != "" {
		g, err := tfegraph.LoadOrganization(ctx, client.Workspaces, client.RunTriggers, sc.Organization)
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
	return rep, nil
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

// follow prints each member's state change until the cascade is done.
func follow(ctx context.Context, js jetstream.JetStream, id string, p *printer) (*dispatcher.Cascade, error) {
	var kv jetstream.KeyValue
	for {
		var err error
		if kv, err = js.KeyValue(ctx, "cascades"); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the cascades bucket never appeared: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	w, err := kv.Watch(ctx, "cascade."+id)
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.Stop() }()
	members, err := kv.Watch(ctx, "m."+id+".*")
	if err != nil {
		return nil, err
	}
	defer func() { _ = members.Stop() }()
	done, err := kv.Watch(ctx, "done."+id)
	if err != nil {
		return nil, err
	}
	defer func() { _ = done.Stop() }()

	var c *dispatcher.Cascade
	last := map[string]dispatcher.MemberState{}
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cascade %s did not finish in time: %w", id, ctx.Err())
		case e := <-w.Updates():
			if e == nil || c != nil {
				continue
			}
			c = &dispatcher.Cascade{}
			if err := json.Unmarshal(e.Value(), c); err != nil {
				return nil, err
			}
			p.say("cascade %s: %d workspaces downstream of %s", id, len(c.Members), c.RootName)
			for _, cy := range c.Cycles {
				p.say("cycle found: %s", cy)
			}
		case e := <-members.Updates():
			if e == nil || c == nil {
				continue
			}
			var st dispatcher.Status
			if json.Unmarshal(e.Value(), &st) != nil {
				continue
			}
			wsID := strings.TrimPrefix(e.Key(), "m."+id+".")
			if last[wsID] == st.State {
				continue
			}
			last[wsID] = st.State
			sp := c.Members[wsID]
			p.member(sp.Name, st)
		case e := <-done.Updates():
			if e == nil {
				continue
			}
			p.say("cascade %s done: %s", id, e.Value())
			if c == nil {
				entry, err := kv.Get(ctx, "cascade."+id)
				if err != nil {
					return nil, err
				}
				c = &dispatcher.Cascade{}
				if err := json.Unmarshal(entry.Value(), c); err != nil {
					return nil, err
				}
			}
			return c, nil
		}
	}
}

// rows builds the summary from the cascade's state and the runs.
func rows(ctx context.Context, js jetstream.JetStream, client *tfe.Client, c *dispatcher.Cascade) ([]Row, error) {
	kv, err := js.KeyValue(ctx, "cascades")
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(c.Members))
	for id := range c.Members {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := c.Members[ids[i]], c.Members[ids[j]]
		if a.Layer != b.Layer {
			return a.Layer < b.Layer
		}
		return a.Name < b.Name
	})
	var out []Row
	for _, id := range ids {
		sp := c.Members[id]
		st := dispatcher.Status{State: sp.Initial, Reason: sp.Reason}
		if e, err := kv.Get(ctx, "m."+c.ID+"."+id); err == nil {
			_ = json.Unmarshal(e.Value(), &st)
		} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, err
		}
		r := Row{Workspace: sp.Name, RunID: st.RunID, State: st.State, RunStatus: st.RunStatus, Reason: st.Reason}
		for _, up := range sp.Barrier {
			if u := c.Members[up]; u != nil {
				r.WaitedFor = append(r.WaitedFor, u.Name)
			} else {
				r.WaitedFor = append(r.WaitedFor, c.RootName)
			}
		}
		if st.RunID != "" {
			if run, err := client.Runs.Read(ctx, st.RunID); err == nil {
				r.RunStatus = string(run.Status)
				if !st.FinishedAt.IsZero() {
					r.Duration = st.FinishedAt.Sub(st.DispatchedAt)
				}
			}
		}
		out = append(out, r)
	}
	return out, nil
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
	want(e.Applied, func(r Row) bool { return r.State == dispatcher.Applied }, "applied")
	want(e.Failed, func(r Row) bool { return r.State == dispatcher.Failed }, "failed")
	// TFE's admin force-cancel ends a run canceled; a user's force-cancel
	// may end it force_canceled (TFE's pages say both). The watchdog's
	// alert for the run is what tells its force-cancel from a person's
	// cancel.
	forceCancelled := func(r Row) bool {
		return r.State == dispatcher.Failed && (r.RunStatus == "canceled" || r.RunStatus == "force_canceled") &&
			slices.ContainsFunc(rep.Alerts, func(a alerts.Alert) bool { return a.Kind == alerts.KindRunCancelled && a.RunID == r.RunID })
	}
	want(e.ForceCancelled, forceCancelled, "been force-cancelled")
	want(e.Blocked, func(r Row) bool { return r.State == dispatcher.Blocked && r.RunID == "" }, "been blocked and never dispatched")
	want(e.Skipped, func(r Row) bool { return r.State == dispatcher.Skipped && r.RunID == "" }, "been skipped")
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
