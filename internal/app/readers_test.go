package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/api"
	"github.com/tfe-orchestrator/orchestrator/internal/app"
	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// Readers hold nothing up: 2,000 watch streams of the operator API (40
// read tokens of 50 streams each) are open on a cascade of organization
// beta while an operator pauses organization acme. The pause is stored
// and honoured (the run TFE's trigger queued in a paused cascade is
// stopped, none is created), the cascade continues after resume with
// each member applied once, the streams cost the engine one consumer
// between them, and every reader sees its cascade end. One stream over a
// token's cap, and one over the replica's, are answered 429 with
// Retry-After; a slot is free again once streams close.
func TestTwoThousandReadersHoldUpNoControl(t *testing.T) {
	const tokens, perToken = 40, 50
	sim, simURL, client := startSim(t, tfesim.Options{})
	var readTokens []string
	secret := func(i int) string { return fmt.Sprintf("read-token-r%02d-0123456789abcdef", i) }
	for i := range tokens + 1 { // the last one holds no stream until the cap is reached
		readTokens = append(readTokens, fmt.Sprintf("r%02d:%s", i, secret(i)))
	}
	o := dispatcher.Options{AckWait: time.Second, LeaseTTL: 2 * time.Second, Debounce: 20 * time.Millisecond,
		Policy: cascade.Policy{Recheck: time.Second, LockedRetry: 100 * time.Millisecond, NativeGrace: 300 * time.Millisecond,
			Soon: 100 * time.Millisecond, CreateTimeout: 2 * time.Second, CreateSettle: 500 * time.Millisecond}}
	d := startLogged(t, app.Config{TFE: app.TFEConfig{Address: simURL, Token: "sim-token"}, Dispatcher: o, DisableWatchdog: true,
		API: app.APIConfig{ReadTokens: readTokens, OperateTokens: []string{"alice:" + operateSecret},
			MaxStreams: tokens * perToken, MaxStreamsPerToken: perToken}}, zap.NewNop())
	notify := []tfesim.ScenarioNotification{{NotificationSpec: tfesim.NotificationSpec{
		Name: "orchestrator", URL: d.url("/webhooks/tfe"), Token: webhookToken,
		Triggers: []string{"run:created", "run:planning", "run:needs_attention", "run:applying", "run:completed", "run:errored"},
	}}}
	person := tfesim.WorkspaceSpec{Name: "gate", Behavior: tfesim.Behavior{PlanDurationMS: 100, ApplyDurationMS: 20}}
	if err := sim.LoadScenario(&tfesim.Scenario{Organizations: []tfesim.OrganizationSpec{
		{Name: "beta", Email: "ops@beta.test", Workspaces: []tfesim.WorkspaceSpec{ws("first", 0), person},
			RunTriggers: []tfesim.RunTriggerSpec{{Source: "first", Target: "gate"}}, Notifications: notify},
		// net's run, queued by the root's apply before any look, plans for
		// 5 s: long enough for a look on a loaded machine to stop it (the
		// root's own runs are what no hold can cover).
		{Name: "acme", Email: "ops@acme.test", Workspaces: []tfesim.WorkspaceSpec{ws("root", 0), ws("net", 5000), ws("app", 1000)},
			RunTriggers: []tfesim.RunTriggerSpec{{Source: "root", Target: "net"}, {Source: "net", Target: "app"}}, Notifications: notify},
	}}); err != nil {
		t.Fatal(err)
	}
	ops := &operators{t: t, ctx: context.Background(), sim: sim, client: client, a: d, b: d}
	reader := ops.api(d, secret(0))
	alice := ops.api(d, operateSecret)

	// The readers' cascade: gate's run waits for a person.
	first, err := client.Runs.Create(ops.ctx, tfe.RunCreateOptions{Workspace: &tfe.Workspace{ID: sim.WorkspaceID("beta", "first")},
		AutoApply: tfe.Bool(true), Message: tfe.String("deploy first")})
	if err != nil {
		t.Fatal(err)
	}
	watched := cascade.ID(first.ID)
	gate := ops.view(reader, watched, "gate to wait for a person", func(v *dispatcher.View) bool {
		return member(v, "gate").State == cascade.AwaitingApproval
	})

	nc := connect(t, d)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	consumers := func() int {
		t.Helper()
		st, err := js.Stream(ops.ctx, "KV_cascades")
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ops.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Consumers
	}
	before := consumers()

	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	hc := &http.Client{Transport: transport}
	watchURL := d.url("/api/v1/cascades/" + watched + "/watch")
	open := func(token string) (*http.Response, error) {
		req, err := http.NewRequest(http.MethodGet, watchURL, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		return hc.Do(req)
	}
	refused := func(token, cap string) {
		t.Helper()
		resp, err := open(token)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "30" || !strings.Contains(string(body), "too many watch streams") {
			t.Fatalf("a stream over %s: %d, Retry-After %q: %s", cap, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}

	// Each reader reads its stream to the view that says the cascade is
	// done.
	var (
		wg               sync.WaitGroup
		seen, ended, bad atomic.Int64
	)
	read := func(resp *http.Response) {
		defer wg.Done()
		defer resp.Body.Close()
		br := bufio.NewReaderSize(resp.Body, 4096)
		first := true
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			data, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "data: ")
			if !ok {
				continue
			}
			var v struct{ ID, State string }
			if err := json.Unmarshal([]byte(data), &v); err != nil || v.ID != watched {
				bad.Add(1)
				return
			}
			if first {
				seen.Add(1)
				first = false
			}
			if v.State == dispatcher.StateDone {
				ended.Add(1)
				return
			}
		}
	}
	started := time.Now()
	for i := range tokens {
		for range perToken {
			resp, err := open(secret(i))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				t.Fatalf("stream %d of token r%02d: %d %s", seen.Load(), i, resp.StatusCode, body)
			}
			wg.Add(1)
			go read(resp)
		}
		if i == 0 {
			refused(secret(0), "a token's cap")
		}
	}
	testutil.WaitFor(t, "every reader's first view", 60*time.Second, func() bool { return seen.Load() == tokens*perToken })
	t.Logf("%d streams open in %s", tokens*perToken, time.Since(started).Round(time.Millisecond))
	refused(secret(tokens), "the replica's cap")
	if got := consumers(); got > before+1 {
		t.Errorf("%d consumers of the cascades' stream with %d streams open, %d without", got, tokens*perToken, before)
	}
	if m := scrape(t, d); !strings.Contains(m, fmt.Sprintf("orchestrator_api_watch_streams %d", tokens*perToken)) {
		t.Errorf("the metrics do not count %d streams", tokens*perToken)
	}

	// The operator pauses acme with every stream open: stored, honoured.
	if _, err := alice.Pause(ops.ctx, "acme", api.Decision{Why: "readers everywhere"}); err != nil {
		t.Fatalf("pause with %d streams open: %v", tokens*perToken, err)
	}
	if ctl, err := reader.Controls(ops.ctx); err != nil || ctl.Paused["acme"].By != "alice" {
		t.Fatalf("controls: %+v, %v", ctl, err)
	}
	id := ops.start("root")
	ops.view(reader, id, "net to be held by the pause", func(v *dispatcher.View) bool {
		m := member(v, "net")
		return m.State == cascade.Waiting && strings.Contains(m.Reason, "dispatching paused")
	})
	waitFor(t, "the run TFE queued in net to be stopped", func() bool {
		runs := ops.runs("net")
		return len(runs) == 1 && (runs[0].Status == tfe.RunCanceled || runs[0].Status == tfe.RunDiscarded)
	})
	if n := ops.created("net", id); n != 0 {
		t.Fatalf("a paused cascade created %d runs in net", n)
	}
	if _, err := alice.Resume(ops.ctx, "acme", api.Decision{Why: "paused long enough"}); err != nil {
		t.Fatal(err)
	}
	v := ops.view(reader, id, "the cascade to finish", done)
	if v.Outcome != cascade.OutcomeApplied {
		t.Fatalf("outcome %s:%s", v.Outcome, states(v))
	}
	ops.appliedOnce(v, "net")
	ops.appliedOnce(v, "app")

	// A person confirms gate's run: every reader sees the cascade end.
	if err := client.Runs.Apply(ops.ctx, member(gate, "gate").RunID, tfe.RunApplyOptions{Comment: tfe.String("looks good")}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "every reader to see its cascade end", 60*time.Second, func() bool { return ended.Load() == tokens*perToken })
	wg.Wait()
	if n := bad.Load(); n != 0 {
		t.Errorf("%d readers got a view they could not read or of another cascade", n)
	}
	waitFor(t, "the streams to be counted closed", func() bool {
		return strings.Contains(scrape(t, d), "orchestrator_api_watch_streams 0")
	})
	resp, err := open(secret(tokens))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a stream once the others closed: %d", resp.StatusCode)
	}
}
