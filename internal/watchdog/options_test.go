package watchdog

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/setting"
)

// A zero field takes DefaultOptions' value, and the defaults are valid.
func TestOptionsZeroTakesDefaultOptions(t *testing.T) {
	got := Options{}.withDefaults()
	if got.Instance == "" || got.Now == nil {
		t.Errorf("instance %q, clock set %v: want a name and a clock", got.Instance, got.Now != nil)
	}
	got.Instance, got.Now = "", nil
	if want := DefaultOptions(); !reflect.DeepEqual(got, want) {
		t.Errorf("a zero Options runs with\n%+v\nDefaultOptions says\n%+v", got, want)
	}
	if err := DefaultOptions().Validate(); err != nil {
		t.Errorf("DefaultOptions are refused: %v", err)
	}
}

// Validate names the field at fault.
func TestOptionsValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  Options
		field string
		text  string
	}{
		{"negative interval", Options{Interval: -time.Minute}, "Interval", "Interval (-1m) must not be negative"},
		{"short lease", Options{LeaseTTL: 500 * time.Millisecond}, "LeaseTTL", "LeaseTTL (500ms) must be at least 1s"},
		{"scan mode", Options{Scan: "all"}, "Scan", `Scan must be admin or workspaces, not "all"`},
		{"workspaces without organizations", Options{Scan: ScanWorkspaces}, "Scan", "Scan workspaces needs Organizations"},
		{"organization name", Options{Organizations: []string{"acme corp"}}, "Organizations", `Organizations "acme corp" is not a TFE organization name`},
		{"negative budget", Options{Budgets: Budgets{Planning: -time.Second}}, "Budgets", "Budgets planning=-1s must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.Validate()
			var se *setting.Error
			if !errors.As(err, &se) {
				t.Fatalf("got %v, want a *setting.Error", err)
			}
			if se.Field != tc.field || !strings.Contains(se.Error(), tc.text) {
				t.Errorf("got field %q, %q; want field %q saying %q", se.Field, se.Error(), tc.field, tc.text)
			}
		})
	}
}
