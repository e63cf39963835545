package dispatcher_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
	"github.com/tfe-orchestrator/orchestrator/internal/tfegraph"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// Benchmarks of the cascade engine through the simulator, with TFE's native
// run triggers firing: the API calls a cascade costs per member, a
// 1,000-member cascade under TFE's rate limit, and the KV operations an
// event costs with many cascades open. They measure counts more than
// times, take seconds to minutes each, and run only with -bench:
//
//	go test ./internal/dispatcher -run '^$' -bench . -benchtime 1x
//
// docs/benchmarks.md has the results. The engines run with the daemon's
// defaults (a second of debounce, a full look every minute, run triggers
// cached for five minutes), not the tests' short waits.

// graphCacheTTL is the daemon's default --graph-cache-ttl.
const graphCacheTTL = 5 * time.Minute

// countingTransport counts the API requests an engine sends (pings aside).
type countingTransport struct {
	next http.RoundTripper
	n    atomic.Int64
	tl   atomic.Pointer[timeline] // nil: none kept
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !strings.HasSuffix(r.URL.Path, "/ping") {
		c.n.Add(1)
		if tl := c.tl.Load(); tl != nil {
			tl.add(r)
		}
	}
	return c.next.RoundTrip(r)
}

// timeline counts requests by kind in steps of five seconds, to show
// where a benchmark's time goes.
type timeline struct {
	mu    sync.Mutex
	start time.Time
	steps []map[string]int
}

const timelineStep = 5 * time.Second

func (t *timeline) add(r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/api/v2"), "/")
	for i, p := range parts {
		if strings.HasPrefix(p, "ws-") || strings.HasPrefix(p, "run-") {
			parts[i] = ":id"
		}
	}
	kind := r.Method + " " + strings.Join(parts, "/")
	if len(parts) == 4 && parts[1] == "organizations" && parts[3] == "workspaces" {
		kind = "GET workspace list"
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	i := int(time.Since(t.start) / timelineStep)
	for len(t.steps) <= i {
		t.steps = append(t.steps, map[string]int{})
	}
	t.steps[i][kind]++
}

func (t *timeline) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b strings.Builder
	for i, step := range t.steps {
		total, kinds := 0, slices.Sorted(maps.Keys(step))
		for _, k := range kinds {
			total += step[k]
		}
		fmt.Fprintf(&b, "\n%4ds %4d", i*int(timelineStep/time.Second), total)
		for _, k := range kinds {
			fmt.Fprintf(&b, " %s=%d", k, step[k])
		}
	}
	return b.String()
}

// benchEngine makes an engine as the daemon does (its go-tfe client
// configures its limiter from the simulator's X-RateLimit-Limit), its graph
// cache keeping run triggers for cacheTTL. With run it consumes events
// and schedules looks until the benchmark ends; without, it does nothing
// on its own and the benchmark calls Handle and Reconcile.
func (h *harness) benchEngine(opts dispatcher.Options, cacheTTL time.Duration, run bool) (*dispatcher.Dispatcher, *countingTransport) {
	h.t.Helper()
	return h.benchEngineOn(h.js, opts, cacheTTL, run)
}

// benchEngineOn is benchEngine on a JetStream of the benchmark's (a
// replica's connection to a cluster).
func (h *harness) benchEngineOn(js jetstream.JetStream, opts dispatcher.Options, cacheTTL time.Duration, run bool) (*dispatcher.Dispatcher, *countingTransport) {
	h.t.Helper()
	ct := &countingTransport{next: http.DefaultTransport}
	client, err := tfe.NewClient(&tfe.Config{Address: h.simURL, Token: "sim-token", RetryServerErrors: true,
		HTTPClient: &http.Client{Timeout: 30 * time.Second, Transport: tfeclient.Transport(ct)}})
	if err != nil {
		h.t.Fatal(err)
	}
	opts.Address = h.simURL
	api := tfeclient.New(client)
	d, err := dispatcher.New(h.ctx, opts, dispatcher.Deps{
		JetStream: js, Runs: api, Workspaces: api, ToolVersions: api, Users: api,
		Planner: tfegraph.NewCache(api, cacheTTL, nil), Alerts: h.alerts,
		Log: benchLog(h.t),
	})
	if err != nil {
		h.t.Fatal(err)
	}
	if !run {
		return d, ct
	}
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("engine: %v", err)
		}
	})
	return d, ct
}

// benchReplica makes an engine as the daemon does since replicas share
// TFE's budget: its client waits for its turn in this replica's share of
// 0.9 × the X-RateLimit-Limit TFE announces, shared with the other replicas
// through JetStream, and the run triggers it reads are shared through KV.
func (h *harness) benchReplica(js jetstream.JetStream, opts dispatcher.Options, replicas int) (*dispatcher.Dispatcher, *countingTransport) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(h.ctx)
	budget, err := tfeclient.JoinJetStream(ctx, js, tfeclient.JetStreamOptions{Replicas: replicas})
	if err != nil {
		h.t.Fatal(err)
	}
	budgetDone := make(chan struct{})
	go func() { defer close(budgetDone); _ = budget.Run(ctx) }()
	limiter := tfeclient.NewLimiter(tfeclient.LimiterOptions{Shared: budget})
	ct := &countingTransport{next: http.DefaultTransport}
	client, err := tfeclient.NewClient(tfe.Config{Address: h.simURL, Token: "sim-token", RetryServerErrors: true,
		HTTPClient: &http.Client{Timeout: 60 * time.Second, Transport: ct}}, tfeclient.Options{Limiter: limiter})
	if err != nil {
		h.t.Fatal(err)
	}
	shared, err := dispatcher.NewGraphShare(h.ctx, js, "run-triggers", graphCacheTTL, replicas, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	opts.Address = h.simURL
	api := tfeclient.New(client)
	d, err := dispatcher.New(h.ctx, opts, dispatcher.Deps{
		JetStream: js, Runs: api, Workspaces: api, ToolVersions: api, Users: api,
		Planner: tfegraph.NewCache(api, graphCacheTTL, nil).WithShared(shared), Alerts: h.alerts,
		Log: benchLog(h.t),
	})
	if err != nil {
		h.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("engine: %v", err)
		}
		<-budgetDone
	})
	return d, ct
}

// uncounted is a go-tfe client for the benchmark's own checks and seeding:
// it hides the simulator's X-RateLimit-Limit from go-tfe, so it does not
// limit itself; lift the simulator's limit (liftRateLimit) while it works.
func (h *harness) uncounted() *tfe.Client {
	h.t.Helper()
	hide := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		res, err := http.DefaultTransport.RoundTrip(r)
		if err == nil && strings.HasSuffix(r.URL.Path, "/ping") {
			res.Header.Del("X-RateLimit-Limit")
		}
		return res, err
	})
	c, err := tfe.NewClient(&tfe.Config{Address: h.simURL, Token: "sim-token", HTTPClient: &http.Client{Timeout: 30 * time.Second, Transport: hide}})
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// liftRateLimit turns the simulator's rate limit off until the returned
// function puts it back.
func (h *harness) liftRateLimit() (restore func()) {
	h.t.Helper()
	if err := h.sim.SetFaults(tfesim.Faults{RateLimit: -1}); err != nil {
		h.t.Fatal(err)
	}
	return func() {
		if err := h.sim.SetFaults(tfesim.Faults{}); err != nil {
			h.t.Fatal(err)
		}
	}
}

// apiCost is what the simulator served, by kind of call.
type apiCost struct {
	Creates        int // POST /runs
	Stops          int // discard, cancel, force-cancel
	Applies        int // confirmations
	RunReads       int // GET /runs/:id
	RunLists       int // GET /workspaces/:id/runs
	WorkspaceLists int // GET /organizations/:org/workspaces (a page each)
	WorkspaceReads int // GET /workspaces/:id
	TriggerLists   int // GET /workspaces/:id/run-triggers
	Tools          int // GET /admin/terraform-versions
	Holds          int // lock and unlock (C13)
	Other          int
	// RateLimited requests were answered 429 (and retried); they are
	// counted in the routes above too, and taken out of total.
	RateLimited int
}

// costOf sorts the simulator's request counters; pings, the simulator's
// control API and configuration uploads are not API calls.
func costOf(st tfesim.Stats) apiCost {
	var c apiCost
	for route, n := range st.Requests {
		method, path, _ := strings.Cut(route, " ")
		path = strings.TrimPrefix(path, "/api/v2")
		switch {
		case strings.HasSuffix(path, "/ping") || strings.HasPrefix(path, "/_"):
		case method == "POST" && path == "/runs":
			c.Creates += n
		case method == "POST" && (strings.HasSuffix(path, "/actions/discard") || strings.HasSuffix(path, "/actions/cancel") ||
			strings.HasSuffix(path, "/actions/force-cancel")):
			c.Stops += n
		case method == "POST" && strings.HasSuffix(path, "/actions/apply"):
			c.Applies += n
		case method == "GET" && path == "/runs/{id}":
			c.RunReads += n
		case method == "GET" && path == "/workspaces/{id}/runs":
			c.RunLists += n
		case method == "GET" && path == "/organizations/{org}/workspaces":
			c.WorkspaceLists += n
		case method == "GET" && (path == "/workspaces/{id}" || path == "/organizations/{org}/workspaces/{name}"):
			c.WorkspaceReads += n
		case method == "GET" && path == "/workspaces/{id}/run-triggers":
			c.TriggerLists += n
		case method == "GET" && path == "/admin/terraform-versions":
			c.Tools += n
		case method == "POST" && (strings.HasSuffix(path, "/actions/lock") || strings.HasSuffix(path, "/actions/unlock")):
			c.Holds += n
		default:
			c.Other += n
		}
	}
	c.RateLimited = st.RateLimited
	return c
}

func (c apiCost) total() int {
	return c.Creates + c.Stops + c.Applies + c.RunReads + c.RunLists + c.WorkspaceLists + c.WorkspaceReads + c.TriggerLists + c.Tools + c.Holds + c.Other - c.RateLimited
}

func (c apiCost) String() string {
	s := fmt.Sprintf("%d calls: %d creates, %d stops, %d applies, %d run reads, %d run lists, %d workspace list pages, %d workspace reads, %d run-trigger lists, %d tool lists, %d locks and unlocks",
		c.total(), c.Creates, c.Stops, c.Applies, c.RunReads, c.RunLists, c.WorkspaceLists, c.WorkspaceReads, c.TriggerLists, c.Tools, c.Holds)
	if c.Other > 0 {
		s += fmt.Sprintf(", %d other", c.Other)
	}
	if c.RateLimited > 0 {
		s += fmt.Sprintf(" (%d more answered 429 and retried)", c.RateLimited)
	}
	return s
}

// measured is one cascade, measured.
type measured struct {
	view *dispatcher.View
	// cost is the engine's calls, from the simulator's counters: the
	// benchmark's own (the root's creation, a person's confirmations) are
	// taken out.
	cost apiCost
	// engine is the engine's requests counted at its own transport, 429s
	// included: a check on cost.
	engine int64
	// wall is from the root's apply (TFE's clock) to the cascade's end
	// (the engine's clock: the same machine).
	wall time.Duration
}

func (m measured) perMember() float64 { return float64(m.cost.total()) / float64(len(m.view.Members)) }

// quiet waits until the engine has made no API call for a while: what the
// last cascade left (late events, a last look) is not counted in the next.
func quiet(ct *countingTransport, d time.Duration) {
	last, since := ct.n.Load(), time.Now()
	for time.Since(since) < d {
		time.Sleep(100 * time.Millisecond)
		if n := ct.n.Load(); n != last {
			last, since = n, time.Now()
		}
	}
}

// measure runs one cascade from root and returns what it cost. Where a
// person approves, one confirms each run the cascade waits on (through the
// API, as in the UI); poll is how often the read model is looked at.
func (h *harness) measure(d *dispatcher.Dispatcher, ct *countingTransport, root string, person bool, poll, timeout time.Duration) measured {
	h.t.Helper()
	quiet(ct, 3*time.Second)
	h.sim.ResetStats()
	before, started := ct.n.Load(), time.Now()
	rootRun := h.start(root) // one create, the benchmark's
	id := cascade.ID(rootRun)

	var approvals atomic.Int64
	ctx, stop := context.WithCancel(h.ctx)
	var wg sync.WaitGroup
	if person {
		wg.Go(func() {
			confirmed := map[string]bool{}
			for ctx.Err() == nil {
				if v, err := d.Reads().Snapshot(ctx, id); err == nil {
					for _, m := range v.Members {
						if m.State == cascade.AwaitingApproval && !confirmed[m.RunID] {
							if h.client.Runs.Apply(ctx, m.RunID, tfe.RunApplyOptions{Comment: tfe.String("looks good")}) == nil {
								confirmed[m.RunID] = true
							}
							approvals.Add(1) // each try reached the API
						}
					}
				}
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		})
	}
	var v *dispatcher.View
	deadline := time.Now().Add(timeout)
	for {
		var err error
		v, err = d.Reads().Snapshot(h.ctx, id)
		if err == nil && v.State == dispatcher.StateDone {
			break
		}
		if time.Now().After(deadline) {
			stop()
			if v != nil {
				h.t.Fatalf("cascade %s not done after %s:%s", id, timeout, states(v))
			}
			h.t.Fatalf("cascade %s not done after %s: %v", id, timeout, err)
		}
		time.Sleep(poll)
	}
	st := h.sim.Stats()
	engine := ct.n.Load() - before
	stop()
	wg.Wait()

	c := costOf(st)
	c.Creates--
	c.Applies -= int(approvals.Load())
	if v.Outcome != cascade.OutcomeApplied {
		h.t.Fatalf("got %s:%s", v.Outcome, states(v))
	}
	if list, err := d.Reads().List(h.ctx, dispatcher.Filter{Since: started.Add(-time.Second)}); err != nil || len(list) != 1 {
		h.t.Fatalf("got %d cascades started (%v), want 1: %+v", len(list), err, list)
	}
	r, err := h.client.Runs.Read(h.ctx, rootRun)
	if err != nil {
		h.t.Fatal(err)
	}
	return measured{view: v, cost: c, engine: engine, wall: v.FinishedAt.Sub(r.StatusTimestamps.AppliedAt)}
}

// check checks a measured cascade against TFE's records (one applied run
// per member, in order, none left going) with a client of its own and the
// rate limit lifted, so that neither the check nor the limit's budget
// counts.
func (h *harness) check(m measured, rootRun string) {
	h.t.Helper()
	defer h.liftRateLimit()()
	hc := *h
	hc.client = h.uncounted()
	hc.checkOnce(m.view, rootRun)
}

// seedHistory gives every workspace a run that finished with no changes
// (and sent no notification) long before the benchmark, as workspaces of a
// live organization have. TFE's workspace list, newest current run first,
// puts a workspace that never ran first (PostgreSQL sorts NULLs first in
// descending order), and the engine reads that list to find what changed:
// without this seed it measures a new organization, not the steady state.
func (h *harness) seedHistory(o org) {
	h.t.Helper()
	defer h.liftRateLimit()()
	for _, w := range o.workspaces {
		b := w.Behavior
		b.Outcome, b.DropNotifications, b.PlanDurationMS, b.ApplyDurationMS = tfesim.OutcomeNoChanges, true, 0, 0
		if err := h.sim.SetBehavior(h.id(w.Name), b); err != nil {
			h.t.Fatal(err)
		}
		if _, err := h.sim.CreateRun(h.id(w.Name), "seed"); err != nil {
			h.t.Fatal(err)
		}
	}
	seeding := map[string]bool{}
	for _, w := range o.workspaces {
		seeding[w.Name] = true
	}
	c := h.uncounted()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		pending := 0
		opts := &tfe.WorkspaceListOptions{Include: []tfe.WSIncludeOpt{tfe.WSCurrentRun}, ListOptions: tfe.ListOptions{PageSize: 100}}
		for {
			list, err := c.Workspaces.List(h.ctx, "acme", opts)
			if err != nil {
				h.t.Fatal(err)
			}
			for _, w := range list.Items {
				if seeding[w.Name] && (w.CurrentRun == nil || w.CurrentRun.Status != tfe.RunPlannedAndFinished) {
					pending++
				}
			}
			if list.NextPage == 0 {
				break
			}
			opts.PageNumber = list.NextPage
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%d workspaces still seeding", pending)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, w := range o.workspaces {
		if err := h.sim.SetBehavior(h.id(w.Name), w.Behavior); err != nil {
			h.t.Fatal(err)
		}
	}
}

// diamond is a → {b, c} → d; c finishes a little after b, as upstreams do.
func diamond(kind approval, planMS int64) org {
	return org{
		workspaces: []tfesim.WorkspaceSpec{
			wsKind("a", autoApply, planMS, 20), wsKind("b", kind, planMS, 20),
			wsKind("c", kind, planMS+400, 20), wsKind("d", kind, planMS, 20),
		},
		edges: [][2]string{{"a", "b"}, {"a", "c"}, {"b", "d"}, {"c", "d"}},
	}
}

// fanIn is a root, width workspaces after it, and a sink after all of
// them: the sink has width upstreams, which finish 150 ms apart.
func fanIn(width int, kind approval, planMS int64) org {
	o := org{workspaces: []tfesim.WorkspaceSpec{wsKind("root", autoApply, planMS, 20), wsKind("sink", kind, planMS, 20)}}
	for i := range width {
		name := fmt.Sprintf("f%02d", i)
		o.workspaces = append(o.workspaces, wsKind(name, kind, planMS+int64(i)*150, 20))
		o.edges = append(o.edges, [2]string{"root", name}, [2]string{name, "sink"})
	}
	return o
}

var kindNames = map[approval]string{autoApply: "auto-apply", triggerApply: "trigger-apply", personApproves: "person-approves"}

// BenchmarkAPICallsPerMember measures the API calls per member of a
// cascade, native run triggers firing: cold (a new engine: no run triggers
// cached, no Terraform versions known) and warm (a second cascade from the
// same root, right after).
func BenchmarkAPICallsPerMember(b *testing.B) {
	type shape struct {
		name string
		org  func(approval) org
		root string
	}
	// Runs take longer than the engine's second of debounce, as real ones
	// do, except in chain20-short, where a look sees several members at once.
	chain20 := shape{"chain20", func(k approval) org { return chain(20, k, 2500) }, "c00"}
	chain20short := shape{"chain20-short", func(k approval) org { return chain(20, k, 300) }, "c00"}
	diamond4 := shape{"diamond", func(k approval) org { return diamond(k, 3000) }, "a"}
	fanIn10 := shape{"fanin10", func(k approval) org { return fanIn(10, k, 3000) }, "root"}
	layers3x5 := shape{"layers3x5", func(k approval) org { return layered(3, 5, k, 3000, 20) }, "root"}
	for _, tc := range []struct {
		shape shape
		kind  approval
	}{
		{chain20, triggerApply}, {chain20, autoApply}, {chain20, personApproves}, {chain20short, triggerApply},
		{diamond4, triggerApply}, {diamond4, personApproves},
		{fanIn10, triggerApply}, {fanIn10, personApproves},
		{layers3x5, triggerApply}, {layers3x5, autoApply}, {layers3x5, personApproves},
	} {
		b.Run(tc.shape.name+"/"+kindNames[tc.kind], func(b *testing.B) {
			var cold, warm, coldS, warmS float64
			for range b.N {
				o := tc.shape.org(tc.kind)
				h := newHarness(b, o, tfesim.Options{})
				d, ct := h.benchEngine(dispatcher.Options{}, graphCacheTTL, true)
				person := tc.kind == personApproves
				for _, phase := range []struct {
					name        string
					calls, secs *float64
				}{{"cold", &cold, &coldS}, {"warm", &warm, &warmS}} {
					r := h.measure(d, ct, tc.shape.root, person, 100*time.Millisecond, 2*time.Minute)
					h.check(r, r.view.RootRunID)
					*phase.calls += r.perMember() / float64(b.N)
					*phase.secs += r.wall.Seconds() / float64(b.N)
					b.Logf("%s: %d members, %.2f calls per member, %s; the engine's transport counted %d; %s from the root's apply",
						phase.name, len(r.view.Members), r.perMember(), r.cost, r.engine, r.wall.Round(time.Millisecond))
				}
			}
			b.ReportMetric(cold, "cold-calls/member")
			b.ReportMetric(warm, "warm-calls/member")
			b.ReportMetric(coldS, "cold-s")
			b.ReportMetric(warmS, "warm-s")
		})
	}
}

// BenchmarkCascade1000 runs a cascade of 1,000 members (10 layers of 100,
// each member with two upstreams, auto-apply-run-trigger only) under TFE's
// default rate limit of 30 requests per second, and compares its wall time
// with the bound the rate limit sets. The engine's go-tfe client limits
// itself to 0.66 × the X-RateLimit-Limit TFE announces (19.8 requests per
// second): both bounds are reported, and the runs' own critical path.
//
// Plans take 10 s and applies 0.5 s: a member's first upstream to apply
// makes TFE queue a run in it that must be stopped while it plans, and a
// layer's hundred stops take five seconds at 19.8 requests per second.
//
//   - seeded: every workspace ran once before (seedHistory); a cold
//     cascade, then a warm one. In the cold one the first layer plans for
//     90 s: reading the graph cold takes over a minute under the limit,
//     and a first-layer run that applies before the cascade is planned
//     starts a cascade of its own (see cold-graph). Run triggers are
//     cached for longCacheTTL here: the cold cascade and its check take
//     longer than the daemon's five minutes, after which the second
//     cascade would read the graph cold again.
//   - new-organization: the same cold cascade where no workspace ever ran.
//   - cold-graph: the cold cascade with 10 s plans in the first layer too;
//     it counts the cascades started in the first two minutes (one is
//     right) and does not wait for them.
func BenchmarkCascade1000(b *testing.B) {
	const longCacheTTL = 30 * time.Minute
	const layers, width, planMS, applyMS, firstPlanMS = 10, 100, 10000, 500, 90000
	critical := func(first int64) float64 { return float64(first+applyMS+(layers-1)*(planMS+applyMS)) / 1000 }
	report := func(b *testing.B, what string, r measured, first int64) {
		calls := r.cost.total()
		b.Logf("%s: %d members in %s; %.2f calls per member, %s; the engine's transport counted %d; bound at 30/s %.1f s, at go-tfe's 19.8/s %.1f s; the runs' critical path %.1f s",
			what, len(r.view.Members), r.wall.Round(time.Millisecond), r.perMember(), r.cost, r.engine,
			float64(calls)/30, float64(calls)/19.8, critical(first))
		b.ReportMetric(r.wall.Seconds(), what+"-s")
		b.ReportMetric(r.perMember(), what+"-calls/member")
		b.ReportMetric(float64(calls)/30, what+"-bound-s")
	}
	setup := func(b *testing.B, seeded bool, first int64) (*harness, org) {
		o := layered(layers, width, triggerApply, planMS, applyMS)
		for i := range o.workspaces {
			if strings.HasPrefix(o.workspaces[i].Name, "l00-") {
				o.workspaces[i].Behavior.PlanDurationMS += first - planMS // the layer's jitter stays
			}
		}
		h := newHarness(b, o, tfesim.Options{RateLimit: 30})
		if seeded {
			h.seedHistory(o)
		}
		return h, o
	}
	b.Run("seeded", func(b *testing.B) {
		for range b.N {
			h, o := setup(b, true, firstPlanMS)
			d, ct := h.benchEngine(dispatcher.Options{}, longCacheTTL, true)
			cold := h.measure(d, ct, "root", false, time.Second, 15*time.Minute)
			report(b, "cold", cold, firstPlanMS)
			h.check(cold, cold.view.RootRunID)
			for _, w := range o.workspaces {
				if strings.HasPrefix(w.Name, "l00-") {
					w.Behavior.PlanDurationMS -= firstPlanMS - planMS
					if err := h.sim.SetBehavior(h.id(w.Name), w.Behavior); err != nil {
						b.Fatal(err)
					}
				}
			}
			warm := h.measure(d, ct, "root", false, time.Second, 15*time.Minute)
			report(b, "warm", warm, planMS)
			h.check(warm, warm.view.RootRunID)
		}
	})
	b.Run("new-organization", func(b *testing.B) {
		for range b.N {
			h, _ := setup(b, false, firstPlanMS)
			d, ct := h.benchEngine(dispatcher.Options{}, graphCacheTTL, true)
			cold := h.measure(d, ct, "root", false, time.Second, 15*time.Minute)
			report(b, "cold", cold, firstPlanMS)
			h.check(cold, cold.view.RootRunID)
		}
	})
	b.Run("cold-graph", func(b *testing.B) {
		for range b.N {
			h, _ := setup(b, true, planMS)
			d, ct := h.benchEngine(dispatcher.Options{}, graphCacheTTL, true)
			quiet(ct, 3*time.Second)
			h.sim.ResetStats()
			start := time.Now()
			rootRun := h.start("root")
			time.Sleep(2 * time.Minute)
			list, err := d.Reads().List(h.ctx, dispatcher.Filter{Since: start.Add(-time.Second)})
			if err != nil {
				b.Fatal(err)
			}
			var roots []string
			for _, s := range list {
				roots = append(roots, s.Root)
			}
			b.Logf("the root's run %s applied; %d cascades started in two minutes, from %s; %s", rootRun, len(list), strings.Join(roots, ", "), costOf(h.sim.Stats()))
			b.ReportMetric(float64(len(list)), "cascades")
		}
	})
}

// BenchmarkKVOpsPerEvent opens many cascades (a root and one member each,
// whose run waits for a person, so none ends) and counts the KV operations
// of an event about the member of one of them: the workspace index finds
// its cascade, whatever the number of others. The engine does nothing on
// its own here (no consumer, no scheduler): the benchmark calls Handle and
// Reconcile, so every KV operation counted is the event's or the look's.
func BenchmarkKVOpsPerEvent(b *testing.B) {
	for _, open := range []int{10, 1000} {
		b.Run(fmt.Sprintf("open=%d", open), func(b *testing.B) {
			o := org{workspaces: []tfesim.WorkspaceSpec{wsKind("lone", autoApply, 0, 0)}}
			for i := range open {
				r, m := fmt.Sprintf("r%04d", i), fmt.Sprintf("m%04d", i)
				o.workspaces = append(o.workspaces, wsKind(r, autoApply, 0, 0), wsKind(m, personApproves, 0, 0))
				o.edges = append(o.edges, [2]string{r, m})
			}
			h := newHarness(b, o, tfesim.Options{})
			var offset atomic.Int64 // the engine's clock runs ahead by this
			opts := dispatcher.Options{Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }}
			d, ct := h.benchEngine(opts, graphCacheTTL, false)
			ctx := h.ctx

			// Open the cascades: every root applies, TFE queues a run in its
			// member, which waits for a person; the applied events start
			// the cascades.
			roots := make([]string, open)
			for i := range open {
				var err error
				if roots[i], err = h.sim.CreateRun(h.id(fmt.Sprintf("r%04d", i)), "deploy"); err != nil {
					b.Fatal(err)
				}
			}
			c := h.uncounted()
			for i, id := range roots {
				waitFor(b, "a root to apply", func() bool {
					r, err := c.Runs.Read(ctx, id)
					return err == nil && r.Status == tfe.RunApplied
				})
				name := fmt.Sprintf("r%04d", i)
				if err := d.Handle(ctx, &events.RunEvent{Organization: "acme", WorkspaceID: h.id(name), WorkspaceName: name, RunID: id,
					Trigger: "run:completed", Status: "applied", UpdatedAt: time.Now()}); err != nil {
					b.Fatal(err)
				}
			}
			// One look at each, so that every member has taken its run.
			for _, id := range roots {
				if err := d.Reconcile(ctx, cascade.ID(id)); err != nil {
					b.Fatal(err)
				}
			}

			// The events, about cascades spread over the open ones; each
			// round ends with a look at the cascade, which takes the mark
			// off. The setup dominates the benchmark's time, so b.N stays 1
			// unless -benchtime asks for more rounds.
			const sample = 50
			kv := map[string]int64{}
			var handleNS int64
			for range b.N {
				for s := range sample {
					id := cascade.ID(roots[s*open/sample])
					v, err := d.Reads().Snapshot(ctx, id)
					if err != nil {
						b.Fatal(err)
					}
					mem := v.Members[0]
					if mem.State != cascade.AwaitingApproval {
						b.Fatalf("%s: got %s, want awaiting approval", mem.Name, mem.State)
					}
					event := func(what, wsID, wsName, runID, status string) {
						before, start := d.KVOps(), time.Now()
						if err := d.Handle(ctx, &events.RunEvent{Organization: "acme", WorkspaceID: wsID, WorkspaceName: wsName, RunID: runID,
							Trigger: "run:needs_attention", Status: status, UpdatedAt: time.Now()}); err != nil {
							b.Fatal(err)
						}
						if what == "look" {
							handleNS += time.Since(start).Nanoseconds()
						}
						kv[what] += d.KVOps() - before
					}
					// Its run waits for a person: worth a look (the cascade
					// is marked for one).
					event("look", mem.WorkspaceID, mem.Name, mem.RunID, "planned")
					// The same again: the cascade is marked already.
					event("again", mem.WorkspaceID, mem.Name, mem.RunID, "planned")
					// Its run moving on: nothing to look at.
					event("same", mem.WorkspaceID, mem.Name, mem.RunID, "planning")
					// A workspace no cascade holds.
					event("none", h.id("lone"), "lone", "run-notacascaderun1", "planning")

					before, calls := d.KVOps(), ct.n.Load()
					if err := d.Reconcile(ctx, id); err != nil {
						b.Fatal(err)
					}
					kv["look-kv"] += d.KVOps() - before
					kv["look-calls"] += ct.n.Load() - calls
				}
			}
			n := float64(b.N * sample)
			b.Logf("KV operations per event: %.2f (worth a look), %.2f (the same again), %.2f (a member's run moving on), %.2f (a workspace no cascade holds); the look that follows: %.2f KV operations, %.2f API calls; %.0f µs per event worth a look",
				float64(kv["look"])/n, float64(kv["again"])/n, float64(kv["same"])/n, float64(kv["none"])/n, float64(kv["look-kv"])/n, float64(kv["look-calls"])/n, float64(handleNS)/n/1e3)
			b.ReportMetric(float64(kv["look"])/n, "kv-ops/event")
			b.ReportMetric(float64(kv["again"])/n, "kv-ops/repeated-event")
			b.ReportMetric(float64(kv["same"])/n, "kv-ops/no-look-event")
			b.ReportMetric(float64(kv["none"])/n, "kv-ops/unheld-event")
			b.ReportMetric(float64(kv["look-kv"])/n, "kv-ops/look")
			b.ReportMetric(float64(handleNS)/n/1e3, "µs/event")

			// A full look at every open cascade, as each gets once a
			// Recheck (a minute) while it is open: what open cascades
			// cost in the background.
			offset.Store(int64(dispatcher.Options{}.Policy.WithDefaults().Recheck + time.Second))
			before, calls := d.KVOps(), ct.n.Load()
			for _, id := range roots {
				if err := d.Reconcile(ctx, cascade.ID(id)); err != nil {
					b.Fatal(err)
				}
			}
			b.Logf("a full look at each of %d open cascades: %.2f API calls and %.1f KV operations each", open,
				float64(ct.n.Load()-calls)/float64(open), float64(d.KVOps()-before)/float64(open))
			b.ReportMetric(float64(ct.n.Load()-calls)/float64(open), "recheck-calls/cascade")
			b.ReportMetric(float64(d.KVOps()-before)/float64(open), "recheck-kv-ops/cascade")
		})
	}
}

// benchLog is the engines' logger: errors only, or, with
// ORCHESTRATOR_BENCH_LOG=file, everything from info up into that file.
func benchLog(t testing.TB) *zap.Logger {
	path := os.Getenv("ORCHESTRATOR_BENCH_LOG")
	if path == "" {
		return zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	}
	return debugLog(t, path)
}

// BenchmarkHundredCascades: an organization of 10,000 workspaces, most of
// them unrelated to any cascade (half never ran, half ran once long ago),
// and 100 small cascades (a root, three members, a sink that waits for the
// three) started within a few seconds, under TFE's limit of 30 requests a
// second, native run triggers firing. Each sink's workspace applies
// run-trigger runs on its own, so it is held (C13) while its upstreams
// run. The benchmark checks TFE's records (every member one applied run,
// each sink after its three upstreams) and reports the wall time against
// the larger of the runs' own critical path and the calls at 30/s, the
// calls per member, the answers 429, and the process's peak RSS
// (simulator included). replicas=3 runs three engines on a three-node
// NATS cluster.
func BenchmarkHundredCascades(b *testing.B) {
	// Plans take 20 s: reading a hundred closures' run triggers cold takes
	// about 20 s at 27 requests a second, and a cascade can hold its
	// fan-in only once it knows it. With 3 s plans the first layer applies
	// before the cascades' first looks and the sinks apply once per
	// upstream (docs/benchmarks.md).
	const cascades, unrelated, planMS, applyMS = 100, 9500, 20000, 1000
	critical := float64(3*(planMS+applyMS)) / 1000 // root, members, sink
	for _, replicas := range []int{1, 3} {
		b.Run(fmt.Sprintf("replicas=%d", replicas), func(b *testing.B) {
			for range b.N {
				o := org{}
				var idle, ran org
				for c := range cascades {
					root, sink := fmt.Sprintf("r%03d", c), fmt.Sprintf("s%03d", c)
					o.workspaces = append(o.workspaces, wsKind(root, autoApply, planMS, applyMS), wsKind(sink, triggerApply, planMS, applyMS))
					for m := range 3 {
						name := fmt.Sprintf("m%03d-%d", c, m)
						o.workspaces = append(o.workspaces, wsKind(name, triggerApply, planMS+int64(m)*200, applyMS))
						o.edges = append(o.edges, [2]string{root, name}, [2]string{name, sink})
					}
				}
				for i := range unrelated {
					w := wsKind(fmt.Sprintf("u%05d", i), triggerApply, 20, 20)
					if i%2 == 0 {
						ran.workspaces = append(ran.workspaces, w)
					} else {
						idle.workspaces = append(idle.workspaces, w)
					}
				}
				all := o
				all.workspaces = append(append(append([]tfesim.WorkspaceSpec{}, o.workspaces...), ran.workspaces...), idle.workspaces...)
				var h *harness
				var engines []*dispatcher.Dispatcher
				var servers []*server.Server
				simOpts := tfesim.Options{RateLimit: 30}
				if replicas == 1 {
					h = newHarness(b, all, simOpts)
				} else {
					servers = cluster(b)
					h = newHarnessOn(b, connect(b, servers, 0), events.StreamOptions{Replicas: 3}, all, simOpts)
				}
				h.seedHistory(org{workspaces: append(append([]tfesim.WorkspaceSpec{}, o.workspaces...), ran.workspaces...)})
				var cts []*countingTransport
				for r := range replicas {
					opts := dispatcher.Options{Replicas: replicas}
					js := h.js
					if replicas > 1 {
						js = connect(b, servers, r)
					}
					d, ct := h.benchReplica(js, opts, replicas)
					engines = append(engines, d)
					cts = append(cts, ct)
				}
				for _, ct := range cts {
					quiet(ct, 3*time.Second)
				}
				h.sim.ResetStats()
				started := time.Now()
				tl := &timeline{start: started}
				for _, ct := range cts {
					ct.tl.Store(tl)
				}
				restore := h.liftRateLimit()
				c := h.uncounted()
				var roots []string
				for i := range cascades {
					r, err := c.Runs.Create(h.ctx, tfe.RunCreateOptions{Workspace: &tfe.Workspace{ID: h.id(fmt.Sprintf("r%03d", i))},
						Message: tfe.String("deploy"), AutoApply: tfe.Bool(true)})
					if err != nil {
						b.Fatal(err)
					}
					roots = append(roots, r.ID)
				}
				restore()
				created := time.Since(started)
				deadline := time.Now().Add(30 * time.Minute)
				for pending := slices.Clone(roots); len(pending) > 0; {
					pending = slices.DeleteFunc(pending, func(r string) bool {
						v, err := engines[0].Reads().Snapshot(h.ctx, cascade.ID(r))
						return err == nil && v.State == dispatcher.StateDone
					})
					if time.Now().After(deadline) {
						b.Fatalf("%d of %d cascades not done after 30 minutes", len(pending), cascades)
					}
					time.Sleep(time.Second)
				}
				wall := time.Since(started)
				st := h.sim.Stats()
				cost := costOf(st)
				members := cascades * 4
				restore = h.liftRateLimit()
				twice := 0
				var waits []time.Duration
				for i := range cascades {
					v, err := engines[0].Reads().Snapshot(h.ctx, cascade.ID(roots[i]))
					if err != nil {
						b.Fatal(err)
					}
					if v.Outcome != cascade.OutcomeApplied {
						b.Errorf("cascade %s: %s:%s", v.ID, v.Outcome, states(v))
						twice++
						continue
					}
					h.checkOnce(v, roots[i])
					waits = append(waits, h.sinkWait(v))
				}
				restore()
				slices.Sort(waits)
				b.Logf("requests by kind, every %s from the roots' creation:%s", timelineStep, tl)
				b.Logf("sinks started planning %s after their last upstream applied (median), %s at most",
					waits[len(waits)/2].Round(100*time.Millisecond), waits[len(waits)-1].Round(100*time.Millisecond))
				bound := max(critical, float64(cost.total())/30)
				b.Logf("%d cascades of 4 members among %d workspaces, %d replica(s): %s wall (roots created in %s), bound %.1f s (critical path %.1f s, %d calls at 30/s %.1f s), ratio %.2f; %.2f calls per member; %d answered 429 (%.1f%%); %s; peak RSS %d MB; %d cascades not applied",
					cascades, len(all.workspaces), replicas, wall.Round(time.Second), created.Round(time.Millisecond), bound, critical, cost.total(), float64(cost.total())/30,
					wall.Seconds()/bound, float64(cost.total())/float64(members), st.RateLimited, 100*float64(st.RateLimited)/float64(max(1, cost.total())), cost, peakRSSMB(), twice)
				b.ReportMetric(wall.Seconds(), "wall-s")
				b.ReportMetric(wall.Seconds()/bound, "wall/bound")
				b.ReportMetric(float64(cost.total())/float64(members), "calls/member")
				b.ReportMetric(float64(st.RateLimited), "429s")
				b.ReportMetric(float64(peakRSSMB()), "peak-RSS-MB")
			}
		})
	}
}

// peakRSSMB is the process's peak resident set size (Linux), in MB.
func peakRSSMB() int {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb)
			return kb / 1024
		}
	}
	return 0
}

// sinkWait is how long the cascade's sink (its member with several
// upstreams) waited to start planning once its last upstream applied: the
// engine's part of the critical path (TFE's records).
func (h *harness) sinkWait(v *dispatcher.View) time.Duration {
	h.t.Helper()
	var last, planning time.Time
	for _, m := range v.Members {
		r, err := h.client.Runs.Read(h.ctx, m.RunID)
		if err != nil {
			h.t.Fatal(err)
		}
		if len(m.WaitsFor) > 1 {
			planning = r.StatusTimestamps.PlanningAt
		} else if r.StatusTimestamps.AppliedAt.After(last) {
			last = r.StatusTimestamps.AppliedAt
		}
	}
	return planning.Sub(last)
}
