package app_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tfe-orchestrator/orchestrator/internal/app"
	"github.com/tfe-orchestrator/orchestrator/internal/natsembed"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// Two daemons on one NATS and one TFE token share the rate limit: each
// takes half of 0.9 × what TFE advertises, and the one left takes all of it
// once the other stops. The metrics say so.
func TestReplicasShareTheTFERateLimit(t *testing.T) {
	seedPath := filepath.Join(t.TempDir(), "orchestrator.nk")
	seed, _, err := natsembed.LoadOrCreateSeed(seedPath)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown) // after the daemons stop
	_, simURL, _ := startSim(t, tfesim.Options{})
	cfg := app.Config{NATS: app.NATSConfig{URL: ns.ClientURL(), NKeyFile: seedPath}, DisableWatchdog: true,
		TFE: app.TFEConfig{Address: simURL, Token: "sim-token"}} // the simulator advertises no limit: 30
	first, second := start(t, cfg), start(t, cfg)
	shows := func(d *daemon, want ...string) func() bool {
		return func() bool {
			_, metrics := get(t, d.url("/metrics"))
			for _, w := range want {
				if !strings.Contains(metrics, w+"\n") {
					return false
				}
			}
			return true
		}
	}
	for i, d := range []*daemon{first, second} {
		waitFor(t, fmt.Sprintf("daemon %d to take half of 27/s", i+1), shows(d,
			"orchestrator_tfe_replicas 2", "orchestrator_tfe_rate_limit 13.5", "orchestrator_tfe_not_sent_total 0"))
	}
	second.stop()
	waitFor(t, "the daemon left to take all of 27/s", shows(first, "orchestrator_tfe_replicas 1", "orchestrator_tfe_rate_limit 27"))
}
