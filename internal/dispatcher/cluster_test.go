package dispatcher_test

import (
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// cluster starts three NATS servers with JetStream, clustered over routes
// on loopback, in the test's process.
func cluster(t testing.TB) []*server.Server {
	t.Helper()
	ports := make([]int, 3)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	var servers []*server.Server
	for i := range ports {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: os.Getenv("NATS_LOG") == "",
			Cluster: server.ClusterOpts{Name: "orchestrator", Host: "127.0.0.1", Port: ports[i]},
			Routes:  server.RoutesFromStr(joinRoutes(routes)),
		}
		ns, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		if os.Getenv("NATS_LOG") != "" {
			ns.ConfigureLogger()
		}
		go ns.Start()
		t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
		servers = append(servers, ns)
	}
	for _, ns := range servers {
		// A minute: on a loaded machine a clustered server took over
		// ten seconds to accept clients.
		if !ns.ReadyForConnections(time.Minute) {
			t.Fatal("a NATS server did not start")
		}
	}
	// A stream of three replicas can be placed once the meta leader sees
	// all three peers online, not as soon as a leader is elected.
	testutil.WaitFor(t, "the JetStream leader to see three peers", time.Minute, func() bool {
		for _, ns := range servers {
			if ns.JetStreamIsLeader() && len(ns.JetStreamClusterPeers()) == 3 {
				return true
			}
		}
		return false
	})
	return servers
}

func joinRoutes(routes []string) string {
	out := ""
	for i, r := range routes {
		if i > 0 {
			out += ","
		}
		out += r
	}
	return out
}

// connect opens a JetStream connection to the cluster, preferring server i.
func connect(t testing.TB, servers []*server.Server, i int) jetstream.JetStream {
	t.Helper()
	urls := servers[i].ClientURL()
	for j, ns := range servers {
		if j != i {
			urls += "," + ns.ClientURL()
		}
	}
	nc, err := nats.Connect(urls, nats.DontRandomize(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// Three replicas on a three-node NATS cluster, stream and state replicated
// three times: a replica and a NATS node die in the middle of a cascade,
// and it completes, each member applied once.
//
// Plans last until the test ends them (pace), as they take tens of
// seconds in TFE: while the cluster replaces a lost stream leader (a
// request to the dead one times out after 5s), no replica can act, and a
// run TFE queued too early must still be planning when they can again (a
// shorter plan would apply uncontrolled, which is what the README's limits
// say). The second layer's plans end only once the replica and the node
// are lost: they are lost mid-cascade, however fast the machine.
func TestClusterNodeAndReplicaLostMidCascade(t *testing.T) {
	servers := cluster(t)
	h := newHarnessOn(t, connect(t, servers, 0), events.StreamOptions{Replicas: 3}, layered(2, 3, triggerApply, untilEnded, 20), tfesim.Options{})
	opts := fastOptions()
	opts.Replicas = 3
	d, _ := h.engineOn(connect(t, servers, 0), opts, nil)
	_, stopB := h.engineOn(connect(t, servers, 1), opts, nil)
	h.engineOn(connect(t, servers, 2), opts, nil)
	for _, bucket := range []string{"KV_cascades", "KV_cascade-leases"} {
		st, err := h.js.Stream(h.ctx, bucket)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.CachedInfo().Config.Replicas; got != 3 {
			t.Errorf("%s: got %d replicas, want 3", bucket, got)
		}
	}
	root := h.start("root")
	id := cascade.ID(root)
	first := h.pace(d, root, "l00-000", "l00-001", "l00-002")
	// Deadlines for "never happened" with three NATS servers and three
	// engines under the race detector beside the rest of the suite: with
	// 8 s plans, the first layer applied in about 10 s and the cascade
	// ended in about 27 s alone, and took over 30 s and 120 s in two full
	// runs here.
	h.until(d, id, "the first layer to apply", 90*time.Second, func(v *dispatcher.View) bool {
		return v.Counts[string(cascade.Applied)] >= 3
	})
	first()
	stopB()
	servers[1].Shutdown()
	h.pace(d, root)
	v := h.done(d, id, 4*time.Minute)
	if v.Outcome != cascade.OutcomeApplied {
		t.Fatalf("got %s:%s", v.Outcome, states(v))
	}
	h.checkOnce(v, root)
}

// The same cluster with runs that plan in a few hundred milliseconds, far
// shorter than a look can be late while the cluster replaces a lost
// leader, and a run-trigger cycle whose workspaces apply run-trigger runs
// on their own (C13): every member applies exactly once, none from a run
// TFE queued before its last upstream applied, and the cycle's native
// runs are stopped every time, whether a replica and a NATS node die
// mid-cascade or a fifth of TFE's answers are 503.
func TestClusterFastRuns(t *testing.T) {
	fast := layered(2, 3, triggerApply, 300, 50)
	fast.workspaces = append(fast.workspaces, wsKind("cyc-a", triggerApply, 300, 50), wsKind("cyc-b", triggerApply, 300, 50))
	fast.edges = append(fast.edges, [2]string{"l00-000", "cyc-a"}, [2]string{"cyc-a", "cyc-b"}, [2]string{"cyc-b", "cyc-a"})
	for _, tc := range []struct {
		name  string
		fault func(h *harness, servers []*server.Server, stopB func())
	}{
		{"a replica and a NATS node lost", func(_ *harness, servers []*server.Server, stopB func()) {
			stopB()
			servers[1].Shutdown()
		}},
		{"a fifth of TFE's answers 503", func(h *harness, _ []*server.Server, _ func()) {
			if err := h.sim.SetFaults(tfesim.Faults{ErrorRate: 0.2}); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			servers := cluster(t)
			h := newHarnessOn(t, connect(t, servers, 0), events.StreamOptions{Replicas: 3}, fast,
				// Runs queue for a second before planning: the cascade's
				// first look, which takes the holds, must come before the
				// first layer applies, on a loaded machine too.
				tfesim.Options{Timing: &tfesim.Timing{Queue: time.Second}})
			opts := fastOptions()
			opts.Replicas = 3
			d, _ := h.engineOn(connect(t, servers, 0), opts, nil)
			_, stopB := h.engineOn(connect(t, servers, 1), opts, nil)
			h.engineOn(connect(t, servers, 2), opts, nil)
			root := h.start("root")
			id := cascade.ID(root)
			// The deadline is for "never happened": three NATS servers
			// and three engines under the race detector beside the rest
			// of the suite took over 30 s here for what takes 3 s alone.
			h.until(d, id, "the first layer to apply", 90*time.Second, func(v *dispatcher.View) bool {
				return v.Counts[string(cascade.Applied)] >= 1
			})
			tc.fault(h, servers, stopB)
			v := h.done(d, id, 3*time.Minute)
			if err := h.sim.SetFaults(tfesim.Faults{}); err != nil {
				t.Fatal(err)
			}
			h.checkOnce(v, root)
			for _, name := range []string{"cyc-a", "cyc-b"} {
				if n := len(h.applied(name)); n > 0 {
					t.Errorf("%s, on a cycle, applied %d runs:%s", name, n, describeRuns(h.runs(name)))
				}
			}
			for _, m := range v.Members {
				if m.State != cascade.Applied && m.Cause != cascade.CauseCycle {
					t.Errorf("%s: %s (%s), want applied", m.Name, m.State, m.Reason)
				}
			}
		})
	}
}
