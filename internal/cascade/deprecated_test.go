package cascade

import (
	"strings"
	"testing"
)

// A member on a deprecated Terraform version is warned about whether the
// cascade creates its run or takes the one TFE's run trigger queued, which
// is what happens while TFE's triggers fire (C8).
func TestDeprecatedVersionWarnedWhenTFEsRunIsTaken(t *testing.T) {
	s := newSit(plan(t, "a", "a>b")).seen("b", native("run-b1", "planning", at(0.001), true))
	d := Decide(Input{Plan: s.p, Statuses: s.st, Now: s.now, Facts: Facts{Workspaces: s.ws, Runs: s.runs, Lists: s.list,
		Tools: map[string]Tool{"1.9.8": {Enabled: true, Deprecated: true}}}})
	noRefused(t, d)
	if b := state(t, d, s.p, "b", Running); b.RunID != "run-b1" || !b.Adopted {
		t.Errorf("b: got run %q adopted %v, want run-b1 taken", b.RunID, b.Adopted)
	}
	got := alerts(d, AlertDeprecated)
	if len(got) != 1 || got[0].WorkspaceID != "ws-b" || !strings.Contains(got[0].Message, "Terraform 1.9.8, which is deprecated") {
		t.Errorf("alerts: got %+v, want one %s about b", got, AlertDeprecated)
	}
}
