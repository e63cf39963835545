package runstatus_test

import (
	"testing"

	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient/runstatus"
)

func TestVocabulary(t *testing.T) {
	all := runstatus.All()
	if len(all) != 33 {
		t.Errorf("%d statuses, want TFE's 33", len(all))
	}
	seen := map[string]bool{}
	var final []string
	for _, s := range all {
		if seen[s] {
			t.Errorf("%s listed twice", s)
		}
		seen[s] = true
		if !runstatus.Known(s) {
			t.Errorf("%s is listed but not known", s)
		}
		if runstatus.Final(s) {
			final = append(final, s)
		}
	}
	want := []string{"planned_and_finished", "planned_and_saved", "applied", "discarded", "errored", "canceled", "force_canceled"}
	if len(final) != len(want) {
		t.Fatalf("final statuses %v, want %v", final, want)
	}
	for i := range want {
		if final[i] != want[i] {
			t.Fatalf("final statuses %v, want %v", final, want)
		}
	}
	for _, s := range []string{"", "Applied", "applied ", "finished", "other"} {
		if runstatus.Known(s) || runstatus.Final(s) {
			t.Errorf("%q is known or final", s)
		}
	}
	all[0] = "changed"
	if runstatus.All()[0] != runstatus.Pending {
		t.Error("All hands out the vocabulary itself: a caller changed it")
	}
}
