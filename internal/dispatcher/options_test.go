package dispatcher

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/setting"
)

// A zero field takes DefaultOptions' value: every field of DefaultOptions
// is the one the engine runs with when the field is not set, and the
// defaults are valid.
func TestOptionsZeroTakesDefaultOptions(t *testing.T) {
	got := (&Options{}).withDefaults()
	want := DefaultOptions()
	if got.Instance == "" || got.Now == nil {
		t.Errorf("instance %q, clock set %v: want a name and a clock", got.Instance, got.Now != nil)
	}
	got.Instance, got.Now = "", nil
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range gv.NumField() {
		name := gv.Type().Field(i).Name
		if !reflect.DeepEqual(gv.Field(i).Interface(), wv.Field(i).Interface()) {
			t.Errorf("%s: a zero field runs with %v, DefaultOptions says %v", name, gv.Field(i).Interface(), wv.Field(i).Interface())
		}
	}
	def := DefaultOptions()
	if err := def.Validate(); err != nil {
		t.Errorf("DefaultOptions are refused: %v", err)
	}
}

// WalkPages: 0 is the default walk, a negative value turns it off (the
// checks for a walk then see no pages), a positive one is kept.
func TestOptionsWalkPages(t *testing.T) {
	for _, tc := range []struct{ set, want int }{{0, 3}, {5, 5}, {WalkOff, WalkOff}, {-7, WalkOff}} {
		o := Options{WalkPages: tc.set}
		if err := o.Validate(); err != nil {
			t.Errorf("WalkPages %d refused: %v", tc.set, err)
		}
		if got := o.withDefaults().WalkPages; got != tc.want {
			t.Errorf("WalkPages %d: runs with %d, want %d", tc.set, got, tc.want)
		}
		if on := o.withDefaults().WalkPages > 0; on != (tc.want > 0) {
			t.Errorf("WalkPages %d: walk on %v", tc.set, on)
		}
	}
}

// Validate names the field at fault, and those the rule ties it to.
func TestOptionsValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  Options
		field string
		text  string
	}{
		{"negative in flight", Options{MaxInFlight: -1}, "MaxInFlight", "MaxInFlight (-1) must not be negative"},
		{"negative guard", Options{GuardLimit: -2}, "GuardLimit", "GuardLimit (-2) must not be negative"},
		{"one delivery", Options{MaxDeliver: 1}, "MaxDeliver", "MaxDeliver (1) must be at least 2"},
		{"state under ack wait", Options{StateTTL: time.Second}, "StateTTL", "StateTTL (1s) must be longer than AckWait (30s)"},
		{"state under deliveries", Options{StateTTL: 4 * time.Minute}, "StateTTL", "must outlast every delivery of an event (MaxDeliver 10 × AckWait 30s)"},
		{"state under root age", Options{StateTTL: time.Hour}, "StateTTL", "StateTTL (1h) must be longer than RootMaxAge (24h)"},
		{"short ack wait", Options{AckWait: 10 * time.Millisecond}, "AckWait", "AckWait (10ms) must be at least 100ms"},
		{"short lease", Options{LeaseTTL: 500 * time.Millisecond}, "LeaseTTL", "LeaseTTL (500ms) must be at least 1s"},
		{"short audit", Options{AuditRetention: 30 * time.Minute}, "AuditRetention", "AuditRetention (30m) must be at least 1h"},
		{"replicas", Options{Replicas: 7}, "Replicas", "Replicas must be from 1 to 5, not 7"},
		{"negative debounce", Options{Debounce: -time.Second}, "Debounce", "Debounce (-1s) must not be negative"},
		{"policy", Options{Policy: cascade.Policy{Recheck: -time.Second}}, "Policy.Recheck", "Policy.Recheck (-1s) must not be negative"},
		{"run when", Options{Policy: cascade.Policy{RunWhen: "sometimes"}}, "Policy.RunWhen", "Policy.RunWhen must be changes, outputs or always"},
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
