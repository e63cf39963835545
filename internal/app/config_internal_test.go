package app

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
	"github.com/tfe-orchestrator/orchestrator/internal/watchdog"
)

// Every field the flag tables name is a field of the component's options:
// a field renamed in the component and not here would have its errors
// name the field instead of the flag.
func TestFlagTablesNameRealFields(t *testing.T) {
	for _, tc := range []struct {
		options any
		flags   map[string]string
	}{
		{dispatcher.Options{}, dispatcherFlags}, {watchdog.Options{}, watchdogFlags}, {events.StreamOptions{}, streamFlags},
		{events.WebhookOptions{}, webhookFlags}, {tfeclient.LimiterOptions{}, limiterFlags},
	} {
		typ := reflect.TypeOf(tc.options)
		for field, flag := range tc.flags {
			t2 := typ
			for _, part := range strings.Split(field, ".") {
				f, ok := t2.FieldByName(part)
				if !ok {
					t.Errorf("%s: %s has no field %s (for %s)", typ, t2, part, flag)
					break
				}
				t2 = f.Type
			}
		}
	}
}

// The configuration checks a component's options as the daemon gives
// them, and names the flags: the dispatcher's cache TTL is the graph
// cache's, its replicas the stream's.
func TestConfigValidateNamesTheFlagsOfDerivedOptions(t *testing.T) {
	tok := events.WebhookOptions{Tokens: []string{"t"}}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Webhook: tok, Dispatcher: dispatcher.Options{Workers: -1}}, "--reconcile-workers (-1) must not be negative"},
		{Config{Webhook: tok, Dispatcher: dispatcher.Options{StateTTL: 4 * time.Minute}},
			"--state-ttl (4m) must outlast every delivery of an event (--max-event-deliveries 10 × --ack-wait 30s)"},
		{Config{Webhook: tok, Dispatcher: dispatcher.Options{EventWorkers: -1}}, "the dispatcher's EventWorkers (-1) must not be negative"},
		{Config{Webhook: tok, Watchdog: watchdog.Options{Budgets: watchdog.Budgets{Queued: -time.Minute}}}, "--watchdog-budget queued=-1m must be positive"},
		{Config{Webhook: tok, Watchdog: watchdog.Options{Scan: watchdog.ScanWorkspaces}}, "--watchdog-scan workspaces needs --watchdog-organization"},
		{Config{Webhook: tok, TFE: TFEConfig{RateLimit: -1}}, "--tfe-rate-limit (-1) must be 0 (0.9 × what TFE advertises)"},
		{Config{Webhook: tok, Stream: events.StreamOptions{Replicas: 6}}, "--stream-replicas must be from 1 to 5, not 6"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
	disabled := Config{Webhook: tok, DisableWatchdog: true, Watchdog: watchdog.Options{Scan: watchdog.ScanWorkspaces}}
	if err := disabled.Validate(); err != nil {
		t.Errorf("a watchdog that does not run needs no organizations: %v", err)
	}
}
