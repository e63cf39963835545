package dispatcher_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
)

// clock is a test's time: it moves only when told.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// orgs is TFE's organizations, as tfeclient's ReadOrganization answers.
type orgs map[string]bool

func (o orgs) ReadOrganization(_ context.Context, name string) (tfeclient.Organization, error) {
	if name == "unreachable" {
		return tfeclient.Organization{}, errors.New("dial tcp: connection refused")
	}
	if !o[name] {
		return tfeclient.Organization{}, tfe.ErrResourceNotFound
	}
	return tfeclient.Organization{Name: name}, nil
}

func auditEngine(t *testing.T) (*dispatcher.Dispatcher, *clock, *observer.ObservedLogs) {
	t.Helper()
	js, _ := testutil.JetStream(t)
	clk := &clock{now: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)}
	core, logs := observer.New(zapcore.InfoLevel)
	d, err := dispatcher.New(context.Background(), dispatcher.Options{Now: clk.Now}, dispatcher.Deps{
		JetStream: js, Organizations: orgs{"acme": true, "beta": true}, Log: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	return d, clk, logs
}

// Every control is kept in the audit trail with who, why, when and what
// it changed, and logged once; a list replaced is recorded item by item,
// a removal with the request's who and why, and what stays keeps who
// decided it.
func TestControlsAreAudited(t *testing.T) {
	d, clk, logs := auditEngine(t)
	ctx := context.Background()
	ctl := func(by, why string) dispatcher.Control { return dispatcher.Control{By: by, Why: why} }

	if err := d.Controls().Pause(ctx, "acme", ctl("bob", "year-end prep")); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Minute)
	lifted, err := d.Controls().Resume(ctx, "acme", ctl("alice", "prep done"))
	if err != nil || lifted == nil || lifted.By != "bob" || lifted.Why != "year-end prep" {
		t.Fatalf("resume of bob's pause: lifted %+v, %v", lifted, err)
	}
	clk.add(time.Minute)
	if lifted, err := d.Controls().Resume(ctx, "acme", ctl("alice", "again")); err != nil || lifted != nil {
		t.Fatalf("resume with nothing paused: lifted %+v, %v; want nothing", lifted, err)
	}
	clk.add(time.Minute)
	yearEnd := dispatcher.Freeze{Organization: "acme", Start: clk.Now().Add(time.Hour), End: clk.Now().Add(48 * time.Hour), By: "carol", Why: "year end"}
	recs, err := d.Controls().SetFreezes(ctx, []dispatcher.Freeze{yearEnd}, dispatcher.Control{By: "carol"})
	if err != nil || len(recs) != 1 || recs[0].Action != dispatcher.AuditFreezeAdded {
		t.Fatalf("freeze added: %+v, %v", recs, err)
	}
	clk.add(time.Minute)
	// Lifting another's freeze with an empty list needs a why.
	if _, err := d.Controls().SetFreezes(ctx, nil, dispatcher.Control{By: "dave"}); !errors.Is(err, dispatcher.ErrBadControl) || !strings.Contains(err.Error(), "year end") {
		t.Fatalf("freeze removed without a why: %v, want it refused naming the freeze", err)
	}
	if fs, _ := d.Reads().Freezes(ctx); len(fs) != 1 {
		t.Fatalf("a refused removal removed the freeze: %+v", fs)
	}
	recs, err = d.Controls().SetFreezes(ctx, nil, ctl("dave", "the auditors are done early"))
	if err != nil || len(recs) != 1 || recs[0].Action != dispatcher.AuditFreezeRemoved || recs[0].By != "dave" || !strings.Contains(recs[0].Before, "carol: year end") {
		t.Fatalf("freeze removed: %+v, %v", recs, err)
	}
	clk.add(time.Minute)
	db := dispatcher.Exclusion{Organization: "acme", Name: "db", By: "erin", Why: "by hand"}
	tagged := dispatcher.Exclusion{Tag: "no-cascade", By: "erin", Why: "audited"}
	if recs, err = d.Controls().SetExclusions(ctx, []dispatcher.Exclusion{db, tagged}, dispatcher.Control{By: "erin"}); err != nil || len(recs) != 2 {
		t.Fatalf("exclusions added: %+v, %v", recs, err)
	}
	clk.add(time.Minute)
	tagged.By = "frank" // as the API sends back a list: the caller's name on every entry
	recs, err = d.Controls().SetExclusions(ctx, []dispatcher.Exclusion{tagged}, ctl("frank", "db is automated now"))
	if err != nil || len(recs) != 1 || recs[0].Action != dispatcher.AuditExclusionRemoved || recs[0].Workspace != "db" || recs[0].By != "frank" {
		t.Fatalf("exclusion removed: %+v, %v", recs, err)
	}
	if excl, _ := d.Reads().Exclusions(ctx); len(excl) != 1 || excl[0].By != "erin" || !excl[0].At.Equal(clk.Now().Add(-time.Minute)) {
		t.Errorf("the exclusion kept does not keep who decided it and when: %+v", excl)
	}

	trail, err := d.Reads().Audit(ctx, dispatcher.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ action, by, why, before, after string }{
		{dispatcher.AuditExclusionRemoved, "frank", "db is automated now", "workspace db in acme excluded from cascades (erin: by hand)", "not excluded"},
		{dispatcher.AuditExclusionAdded, "erin", "audited", "not excluded", "workspaces tagged no-cascade everywhere excluded"},
		{dispatcher.AuditExclusionAdded, "erin", "by hand", "not excluded", "workspace db in acme excluded"},
		{dispatcher.AuditFreezeRemoved, "dave", "the auditors are done early", "freeze window in acme from 2026-12-03T10:03:00Z to 2026-12-05T09:03:00Z (carol: year end)", "removed"},
		{dispatcher.AuditFreezeAdded, "carol", "year end", "no such freeze window", "freeze window in acme"},
		{dispatcher.AuditResume, "alice", "again", "not paused", "nothing was paused in acme"},
		{dispatcher.AuditResume, "alice", "prep done", "paused by bob since 2026-12-03T09:00:00Z: year-end prep", "not paused"},
		{dispatcher.AuditPause, "bob", "year-end prep", "not paused", "paused by bob"},
	}
	if len(trail) != len(want) {
		t.Fatalf("%d audit records, want %d: %+v", len(trail), len(want), trail)
	}
	for i, w := range want {
		r := trail[i]
		if r.Action != w.action || r.By != w.by || r.Why != w.why || !strings.Contains(r.Before, w.before) || !strings.Contains(r.After, w.after) {
			t.Errorf("record %d: %+v\nwant %+v", i, r, w)
		}
		if i > 0 && r.At.After(trail[i-1].At) {
			t.Errorf("record %d is newer than the one before it: not newest first", i)
		}
		if r.At.Location() != time.UTC {
			t.Errorf("record %d: time %s not in UTC", i, r.At)
		}
	}
	if trail[0].Organization != "acme" || trail[1].Organization != "" {
		t.Errorf("records do not say what they concern: %+v", trail[:2])
	}
	lines := logs.FilterMessage("operator control").All()
	if len(lines) != len(want) {
		t.Errorf("%d log lines of controls, want one a control (%d)", len(lines), len(want))
	}
	for _, l := range lines {
		f := l.ContextMap()
		if l.Level != zapcore.InfoLevel || f["by"] == "" || f["why"] == "" || f["action"] == "" {
			t.Errorf("log line %+v: want info with who, what and why", f)
		}
	}
}

// A control's fields are bounded, and an organization it names must be one
// TFE knows.
func TestControlsAreChecked(t *testing.T) {
	d, _, _ := auditEngine(t)
	ctx := context.Background()
	long := strings.Repeat("x", 60000)
	if err := d.Controls().Pause(ctx, "", dispatcher.Control{By: "bob", Why: long}); !errors.Is(err, dispatcher.ErrBadControl) || !strings.Contains(err.Error(), "at most 1000 characters") {
		t.Errorf("a 60,000-character why: %v", err)
	}
	if err := d.Controls().Pause(ctx, "", dispatcher.Control{By: strings.Repeat("b", 300), Why: "w"}); !errors.Is(err, dispatcher.ErrBadControl) {
		t.Errorf("a 300-character who: %v", err)
	}
	if err := d.Controls().Pause(ctx, "nosuch", dispatcher.Control{By: "bob", Why: "w"}); !errors.Is(err, dispatcher.ErrUnknownOrganization) || !strings.Contains(err.Error(), "organization nosuch is not known to TFE") {
		t.Errorf("a pause of an unknown organization: %v", err)
	}
	if p, _ := d.Reads().Paused(ctx); len(p) != 0 {
		t.Errorf("a refused pause is in force: %+v", p)
	}
	now := time.Now()
	if _, err := d.Controls().SetFreezes(ctx, []dispatcher.Freeze{{Organization: "nosuch", Start: now, End: now.Add(time.Hour), By: "bob", Why: "w"}}, dispatcher.Control{By: "bob"}); !errors.Is(err, dispatcher.ErrUnknownOrganization) {
		t.Errorf("a freeze of an unknown organization: %v", err)
	}
	many := make([]dispatcher.Exclusion, dispatcher.MaxList+1)
	for i := range many {
		many[i] = dispatcher.Exclusion{Name: fmt.Sprintf("ws-%d", i), By: "bob", Why: "w"}
	}
	if _, err := d.Controls().SetExclusions(ctx, many, dispatcher.Control{By: "bob"}); !errors.Is(err, dispatcher.ErrBadControl) || !strings.Contains(err.Error(), "at most 1000 exclusions") {
		t.Errorf("1,001 exclusions: %v", err)
	}
	if trail, err := d.Reads().Audit(ctx, dispatcher.AuditFilter{}); err != nil || len(trail) != 0 {
		t.Errorf("refused controls left audit records: %+v, %v", trail, err)
	}

	// The brake works while TFE does not answer; its record says the
	// organization was not checked. A freeze, planned ahead, waits.
	if err := d.Controls().Pause(ctx, "unreachable", dispatcher.Control{By: "bob", Why: "incident"}); err != nil {
		t.Errorf("a pause while TFE does not answer: %v", err)
	}
	if trail, err := d.Reads().Audit(ctx, dispatcher.AuditFilter{}); err != nil || len(trail) != 1 || !strings.Contains(trail[0].After, "not checked") {
		t.Errorf("the record of a pause not checked: %+v, %v", trail, err)
	}
	if _, err := d.Controls().SetFreezes(ctx, []dispatcher.Freeze{{Organization: "unreachable", Start: now, End: now.Add(time.Hour), By: "bob", Why: "w"}}, dispatcher.Control{By: "bob"}); err == nil ||
		errors.Is(err, dispatcher.ErrUnknownOrganization) || errors.Is(err, dispatcher.ErrBadControl) {
		t.Errorf("a freeze while TFE does not answer: %v, want the engine's trouble", err)
	}
}

// The audit trail is listed newest first, filtered and limited, reading
// back from its end in a few requests however long it is.
func TestAuditListsNewestFirst(t *testing.T) {
	d, clk, _ := auditEngine(t)
	ctx := context.Background()
	start := clk.Now()
	const n = 600 // more than two windows of the walk back
	for i := range n {
		org := []string{"acme", "beta"}[i%2]
		if err := d.Controls().Pause(ctx, org, dispatcher.Control{By: "bob", Why: fmt.Sprintf("pause %d", i)}); err != nil {
			t.Fatal(err)
		}
		clk.add(time.Second)
	}
	before := d.KVOps()
	last, err := d.Reads().Audit(ctx, dispatcher.AuditFilter{Limit: 3})
	if err != nil || len(last) != 3 || last[0].Why != "pause 599" || last[2].Why != "pause 597" {
		t.Fatalf("the last 3: %+v, %v", last, err)
	}
	if ops := d.KVOps() - before; ops > 3 {
		t.Errorf("the last 3 records took %d requests, want at most 3", ops)
	}
	acme, err := d.Reads().Audit(ctx, dispatcher.AuditFilter{Organization: "acme", Limit: 1000})
	if err != nil || len(acme) != n/2 || acme[0].Why != "pause 598" || acme[n/2-1].Why != "pause 0" {
		t.Fatalf("acme's: %d records, %v", len(acme), err)
	}
	for i, r := range acme {
		if r.Organization != "acme" || (i > 0 && !r.At.Before(acme[i-1].At)) {
			t.Fatalf("acme's record %d: %+v", i, r)
		}
	}
	since, err := d.Reads().Audit(ctx, dispatcher.AuditFilter{Since: start.Add(590 * time.Second), Limit: 1000})
	if err != nil || len(since) != 10 || since[9].Why != "pause 590" {
		t.Fatalf("since the 590th: %d records, %v", len(since), err)
	}
	if none, err := d.Reads().Audit(ctx, dispatcher.AuditFilter{Cascade: "c-run-none"}); err != nil || len(none) != 0 {
		t.Errorf("a cascade without controls: %+v, %v", none, err)
	}
	if future, err := d.Reads().Audit(ctx, dispatcher.AuditFilter{Since: time.Now().Add(time.Hour)}); err != nil || len(future) != 0 {
		t.Errorf("since a time to come: %+v, %v", future, err)
	}
}
