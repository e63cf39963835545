package cascade

import (
	"strings"
	"testing"
)

// Explain answers "why didn't billing run?" in words a person acts on:
// each row sets statuses and checks the sentence names the cause and, where
// there is one, the command that fixes it.
func TestExplain(t *testing.T) {
	// net → payments → billing; net → db; db ⇄ cache (a cycle) → report.
	p := plan(t, "net", "net>payments", "payments>billing", "net>db", "db>cache", "cache>db", "cache>report", "net>ledger", "ledger>report")
	idx := func(name string) int {
		for i, m := range p.Members {
			if m.Name == name {
				return i
			}
		}
		t.Fatalf("no member %s", name)
		return -1
	}
	base := func() []Status {
		st := make([]Status, len(p.Members))
		for i := range st {
			st[i] = Initial(p, i)
		}
		return st
	}
	for _, tc := range []struct {
		name   string
		member string
		set    func(st []Status)
		want   []string
	}{
		{"waiting for an upstream", "billing", func(st []Status) {
			st[idx("payments")] = Status{State: Running, RunID: "run-p", RunStatus: "planning"}
		}, []string{"billing has not run yet in the cascade from net (c-run-root)", "waits for payments to finish"}},
		{"running", "payments", func(st []Status) {
			st[idx("payments")] = Status{State: Running, RunID: "run-p", RunStatus: "planning"}
		}, []string{"payments is running", "run run-p is planning"}},
		{"awaiting a person", "payments", func(st []Status) {
			st[idx("payments")] = Status{State: AwaitingApproval, RunID: "run-p", RunStatus: "planned"}
		}, []string{"waiting for a person", "run-p planned changes", "confirmed in TFE", "what depends on payments does not run"}},
		{"blocked by a failed upstream", "billing", func(st []Status) {
			st[idx("payments")] = Status{State: Failed, Cause: CauseRun, Reason: "run errored", RunID: "run-p"}
			st[idx("billing")] = Status{State: Blocked, Cause: CauseUpstream, Reason: "upstream payments failed (run errored)"}
		}, []string{"billing did not run in the cascade from net", "depends on payments, which failed (run errored)",
			"orchestrator cascades retry c-run-root payments", "billing then runs"}},
		{"failed", "payments", func(st []Status) {
			st[idx("payments")] = Status{State: Failed, Cause: CauseRun, Reason: "run errored", RunID: "run-p"}
		}, []string{"payments failed", "run errored", "What depends on it did not run", "orchestrator cascades retry c-run-root payments"}},
		{"on a cycle", "db", nil, []string{"db never runs in a cascade", "on run-trigger cycle", "remove one of the cycle's run triggers"}},
		{"downstream of a cycle", "report", nil, []string{"report never runs in a cascade", "downstream of run-trigger cycle"}},
		{"skipped, nothing changed", "billing", func(st []Status) {
			st[idx("payments")] = Status{State: NoChanges, RunID: "run-p", Cause: CauseRun}
			st[idx("billing")] = Status{State: Skipped, Cause: CauseUnchanged, Reason: "no upstream changed"}
		}, []string{"billing was skipped", "none of its upstreams changed anything"}},
		{"excluded", "billing", func(st []Status) {
			st[idx("billing")] = Status{State: Skipped, Cause: CauseOperator, Reason: "excluded by an operator: alice: frozen for audit"}
		}, []string{"billing was skipped", "excluded by an operator: alice: frozen for audit"}},
		{"preflight", "payments", func(st []Status) {
			st[idx("payments")] = Status{State: Blocked, Cause: CausePreflight, Reason: "the workspace uses local execution"}
		}, []string{"payments did not run", "local execution", "orchestrator cascades retry c-run-root payments"}},
		{"applied, adopted", "payments", func(st []Status) {
			st[idx("payments")] = Status{State: Applied, RunID: "run-p", Adopted: true, Cause: CauseRun}
		}, []string{"payments applied", "run run-p", "queued by TFE's run triggers"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := base()
			if tc.set != nil {
				tc.set(st)
			}
			got := Explain(p, st, idx(tc.member))
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("explanation %q does not say %q", got, w)
				}
			}
		})
	}
}
