package dispatcher

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
)

// A retry resumes the members blocked behind the retried one, and only
// those: one also blocked by another failed upstream stays blocked.
//
//	root → a → b → c
//	root → x → d ← b   (x failed too: d waits for both)
func TestRetryUnblocksWhatOnlyTheRetriedMemberBlocked(t *testing.T) {
	p := &cascade.Plan{ID: "c-run-x", Root: cascade.Root{WorkspaceID: "ws-root", WorkspaceName: "root"}, Members: []cascade.Member{
		{WorkspaceID: "ws-a", Name: "a", Upstreams: []string{"ws-root"}},
		{WorkspaceID: "ws-x", Name: "x", Upstreams: []string{"ws-root"}},
		{WorkspaceID: "ws-b", Name: "b", Upstreams: []string{"ws-a"}},
		{WorkspaceID: "ws-c", Name: "c", Upstreams: []string{"ws-b"}},
		{WorkspaceID: "ws-d", Name: "d", Upstreams: []string{"ws-b", "ws-x"}},
	}}
	up := cascade.Status{State: cascade.Blocked, Cause: cascade.CauseUpstream, Reason: "upstream a failed (run errored)"}
	st := []cascade.Status{
		{State: cascade.Failed, Cause: cascade.CauseRun, Reason: "run errored"},
		{State: cascade.Failed, Cause: cascade.CauseRun, Reason: "run errored"},
		up, up, up,
	}
	if got := unblocks(p, st, 0); !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("retry of a resumes %v, want [b c]", got)
	}
	if got := unblocks(p, st, 1); len(got) != 0 {
		t.Errorf("retry of x resumes %v, want none (d still waits for a's branch)", got)
	}

	for i, want := range map[int]string{2: "b is blocked by its upstream", 4: "retry a, x, and it resumes"} {
		err := notRetriable(p, st, i)
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), want) {
			t.Errorf("retry of %s: %v, want a conflict saying %q", p.Members[i].Name, err, want)
		}
	}
	if retriable(st[2]) || !retriable(st[0]) {
		t.Error("retriable: a member blocked by its upstream is not, a failed one is")
	}
	for _, s := range []cascade.Status{
		{State: cascade.Blocked, Cause: cascade.CausePreflight}, {State: cascade.Blocked, Cause: cascade.CauseRefused},
	} {
		if !retriable(s) {
			t.Errorf("retriable(%s, %s) is false", s.State, s.Cause)
		}
	}
	for _, s := range []cascade.Status{
		{State: cascade.Applied}, {State: cascade.Skipped}, {State: cascade.Running, RunID: "run-1"}, {State: cascade.Waiting},
		{State: cascade.Blocked, Cause: cascade.CauseOperator}, {State: cascade.Blocked, Cause: cascade.CauseCycle},
	} {
		if retriable(s) {
			t.Errorf("retriable(%s, %s) is true", s.State, s.Cause)
		}
	}
	err := notRetriable(p, []cascade.Status{{State: cascade.Applied}}, 0)
	if err == nil || err.Error() != "control does not fit the cascade: a is applied: only a failed or blocked member can be retried" {
		t.Errorf("retry of an applied member: %v", err)
	}
}
