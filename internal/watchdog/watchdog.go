// Package watchdog finds runs that stay in one status longer than that
// status's budget, force-cancels the ones that are safe to cancel, and
// tells operators about all of them.
//
// What it guarantees:
//
//   - One replica acts at a time: the leader holds a lease in JetStream KV
//     (the bucket's TTL expires it when the leader stops renewing) and stops
//     acting as soon as a renewal fails.
//   - A run is force-cancelled at most once, whichever replica leads: the
//     cancel is claimed in KV before it is made.
//   - Runs waiting for a person, or queued behind a locked workspace, get
//     reminders, never a cancel. A run in applying is never cancelled unless
//     the operator opted in; it gets an alert.
//   - With DryRun it decides and alerts, and cancels nothing.
package watchdog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	tfe "github.com/hashicorp/go-tfe"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
)

// AdminRuns is the part of go-tfe's admin runs API the watchdog uses.
type AdminRuns interface {
	List(ctx context.Context, options *tfe.AdminRunsListOptions) (*tfe.AdminRunsList, error)
	ForceCancel(ctx context.Context, runID string, options tfe.AdminRunForceCancelOptions) error
}

// Workspaces is the part of go-tfe's workspaces API the watchdog uses.
type Workspaces interface {
	ReadByID(ctx context.Context, workspaceID string) (*tfe.Workspace, error)
}

// Options configure a Watchdog. Zero values take the defaults.
type Options struct {
	Budgets Budgets
	// Interval between scans; default 1m.
	Interval time.Duration
	// LeaseTTL: a leader that stops renewing loses the lease after this;
	// default 15s.
	LeaseTTL time.Duration
	// Bucket of the lease and cancel claims; default "watchdog".
	Bucket string
	// AllowApplying lets the watchdog force-cancel runs stuck in applying.
	AllowApplying bool
	DryRun        bool
	// Instance names this replica in the lease; default a random name.
	Instance string
	Now      func() time.Time
}

// Deps are what a Watchdog talks to.
type Deps struct {
	JetStream  jetstream.JetStream
	AdminRuns  AdminRuns
	Workspaces Workspaces
	Alerts     alerts.Notifier
	Log        *zap.Logger
	Registerer prometheus.Registerer // nil: metrics registered nowhere
}

// Watchdog scans runs and acts on those stuck.
type Watchdog struct {
	opts    Options
	deps    Deps
	kv      jetstream.KeyValue
	leader  atomic.Bool
	metrics *metrics

	mu    sync.Mutex
	cache map[string]wsInfo
}

type wsInfo struct {
	name, org       string
	locked          bool
	planAvg, appAvg time.Duration
	at              time.Time
}

// New sets up the lease bucket.
func New(ctx context.Context, opts Options, deps Deps) (*Watchdog, error) {
	if opts.Interval == 0 {
		opts.Interval = time.Minute
	}
	if opts.LeaseTTL == 0 {
		opts.LeaseTTL = 15 * time.Second
	}
	if opts.Bucket == "" {
		opts.Bucket = "watchdog"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Instance == "" {
		opts.Instance = fmt.Sprintf("watchdog-%d", time.Now().UnixNano())
	}
	if opts.Interval < 0 || opts.LeaseTTL < time.Second {
		return nil, errors.New("watchdog: the interval must be positive and the lease TTL at least 1s")
	}
	kv, err := deps.JetStream.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: opts.Bucket, Description: "watchdog lease and cancel claims", TTL: opts.LeaseTTL, History: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("create KV bucket %s: %w", opts.Bucket, err)
	}
	return &Watchdog{opts: opts, deps: deps, kv: kv, metrics: newMetrics(deps.Registerer), cache: map[string]wsInfo{}}, nil
}

// Leader reports whether this replica holds the lease.
func (w *Watchdog) Leader() bool { return w.leader.Load() }

// Run holds or waits for the lease, and scans every Interval while it
// leads, until ctx ends.
func (w *Watchdog) Run(ctx context.Context) error {
	defer w.setLeader(false)
	renew := time.NewTicker(w.opts.LeaseTTL / 3)
	defer renew.Stop()
	scan := time.NewTicker(w.opts.Interval)
	defer scan.Stop()
	var rev uint64
	for {
		rev = w.holdLease(ctx, rev)
		select {
		case <-ctx.Done():
			if w.Leader() {
				_ = w.kv.Delete(context.Background(), "leader", jetstream.LastRevision(rev)) // hand over at once
			}
			return nil
		case <-renew.C:
		case <-scan.C:
			if w.Leader() {
				if err := w.Scan(ctx); err != nil && ctx.Err() == nil {
					w.deps.Log.Warn("watchdog scan", zap.Error(err))
				}
			}
		}
	}
}

// holdLease takes the lease when it is free and renews it when held; it
// returns the lease's revision, 0 when not leading.
func (w *Watchdog) holdLease(ctx context.Context, rev uint64) uint64 {
	var err error
	if w.Leader() {
		rev, err = w.kv.Update(ctx, "leader", []byte(w.opts.Instance), rev)
		if err != nil {
			w.setLeader(false)
			w.deps.Log.Warn("watchdog lease lost", zap.Error(err))
			return 0
		}
		return rev
	}
	rev, err = w.kv.Create(ctx, "leader", []byte(w.opts.Instance))
	if err != nil {
		return 0
	}
	w.setLeader(true)
	w.deps.Log.Info("watchdog lease taken", zap.String("instance", w.opts.Instance))
	return rev
}

func (w *Watchdog) setLeader(v bool) {
	w.leader.Store(v)
	if v {
		w.metrics.leader.Set(1)
	} else {
		w.metrics.leader.Set(0)
	}
}

// activeStatuses are the statuses the scan asks the admin API for.
var activeStatuses = []tfe.RunStatus{
	tfe.RunPending, tfe.RunPlanQueued, tfe.RunPlanning, tfe.RunPlanned, tfe.RunConfirmed, tfe.RunApplyQueued,
	tfe.RunApplying, tfe.RunCostEstimating, tfe.RunCostEstimated, tfe.RunPolicyChecking, tfe.RunPolicyChecked,
	tfe.RunPolicyOverride, tfe.RunPolicySoftFailed, tfe.RunPostPlanAwaitingDecision, tfe.RunPostPlanRunning,
	tfe.RunPostPlanCompleted, tfe.RunFetching, tfe.RunFetchingCompleted, tfe.RunPrePlanRunning, tfe.RunPrePlanCompleted,
	tfe.RunQueuing, tfe.RunQueuingApply,
}

// Scan reads every run not yet final through the admin API (one call per
// 100 runs) and acts on those over budget. It acts only while leading.
func (w *Watchdog) Scan(ctx context.Context) error {
	statuses := make([]string, len(activeStatuses))
	for i, s := range activeStatuses {
		statuses[i] = string(s)
	}
	var runs []*tfe.AdminRun
	opts := &tfe.AdminRunsListOptions{RunStatus: strings.Join(statuses, ","), ListOptions: tfe.ListOptions{PageSize: 100}}
	for {
		page, err := w.deps.AdminRuns.List(ctx, opts)
		if err != nil {
			return fmt.Errorf("list runs: %w", err)
		}
		runs = append(runs, page.Items...)
		if page.Pagination == nil || page.NextPage == 0 {
			break
		}
		opts.PageNumber = page.NextPage
	}
	// A pending run behind another active run of its workspace is waiting
	// its turn, not stuck.
	busy := map[string]bool{}
	for _, r := range runs {
		if r.Status != tfe.RunPending && r.Workspace != nil {
			busy[r.Workspace.ID] = true
		}
	}
	stuck := map[string]int{}
	var errs []error
	for _, r := range runs {
		if r.Workspace == nil || (r.Status == tfe.RunPending && busy[r.Workspace.ID]) {
			continue
		}
		acted, err := w.check(ctx, r)
		if err != nil {
			errs = append(errs, err)
		}
		if acted {
			stuck[string(r.Status)]++
		}
	}
	w.metrics.stuck.Reset()
	for status, n := range stuck {
		w.metrics.stuck.WithLabelValues(status).Set(float64(n))
	}
	return errors.Join(errs...)
}

// check decides about one run; it reports whether the run is over budget.
func (w *Watchdog) check(ctx context.Context, r *tfe.AdminRun) (bool, error) {
	group, ok := GroupOf(string(r.Status))
	if !ok {
		return false, nil
	}
	age := w.opts.Now().Sub(enteredAt(r))
	// The workspace is read only for runs that may be over budget: its
	// averages set planning and applying budgets, its lock changes what a
	// pending run means, and its name goes into alerts.
	// With no history a budget is at its smallest: a run younger than that
	// is within budget whatever the workspace says.
	least := w.opts.Budgets.For(group, 0, 0)
	if r.Status == tfe.RunPending {
		least = min(least, w.opts.Budgets.For(GroupAwaiting, 0, 0))
	}
	if age <= least {
		return false, nil
	}
	info, err := w.workspace(ctx, r.Workspace.ID)
	if err != nil {
		return false, err
	}
	if r.Status == tfe.RunPending && info.locked {
		group = GroupAwaiting // behind a lock: a person has to act
	}
	budget := w.opts.Budgets.For(group, info.planAvg, info.appAvg)
	if age <= budget {
		return false, nil
	}
	org := orgOf(r)
	if org == "" {
		org = info.org
	}
	base := alerts.Alert{Organization: org, Workspace: info.name, WorkspaceID: r.Workspace.ID, RunID: r.ID}
	switch {
	case group == GroupAwaiting:
		why := "waits for a person"
		if r.Status == tfe.RunPending && info.locked {
			why = "is queued behind a locked workspace"
		}
		w.metrics.reminders.Inc()
		a := base
		a.Kind, a.Severity = alerts.KindReminder, alerts.SeverityInfo
		a.Message = fmt.Sprintf("run %s in %s %s: %s for %s (reminder every %s)", r.ID, info.name, why, r.Status, roundAge(age), budget)
		a.Key = fmt.Sprintf("reminder/%s/%s/%d", r.ID, r.Status, int64(age/budget))
		w.deps.Alerts.Raise(ctx, a)
		return true, nil
	case group == GroupApplying && !w.opts.AllowApplying:
		a := base
		a.Kind, a.Severity = alerts.KindStuckRun, alerts.SeverityCritical
		a.Message = fmt.Sprintf("run %s in %s has been applying for %s (budget %s); not cancelled: cancelling an apply can lose state, cancel it by hand if it is truly stuck",
			r.ID, info.name, roundAge(age), budget)
		a.Key = "stuck/" + r.ID + "/applying"
		w.deps.Alerts.Raise(ctx, a)
		return true, nil
	}
	return true, w.forceCancel(ctx, r, base, age, budget)
}

// forceCancel cancels a stuck run through the admin API, once.
func (w *Watchdog) forceCancel(ctx context.Context, r *tfe.AdminRun, base alerts.Alert, age, budget time.Duration) error {
	comment := fmt.Sprintf("force-cancelled by the run-trigger orchestrator's watchdog: %s for %s, over its budget of %s",
		r.Status, roundAge(age), budget)
	a := base
	a.Severity = alerts.SeverityCritical
	if w.opts.DryRun {
		a.Kind = alerts.KindStuckRun
		a.Message = fmt.Sprintf("dry run: would force-cancel run %s, %s", r.ID, strings.TrimPrefix(comment, "force-cancelled by the run-trigger orchestrator's watchdog: "))
		a.Key = "stuck/" + r.ID + "/" + string(r.Status)
		w.deps.Alerts.Raise(ctx, a)
		return nil
	}
	if !w.Leader() {
		return nil // the lease went while scanning: stop acting at once
	}
	if _, err := w.kv.Create(ctx, "cancel."+r.ID, []byte(w.opts.Instance)); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return nil // cancelled already, by this or another leader
		}
		return fmt.Errorf("claim the cancel of %s: %w", r.ID, err)
	}
	if err := w.deps.AdminRuns.ForceCancel(ctx, r.ID, tfe.AdminRunForceCancelOptions{Comment: &comment}); err != nil {
		_ = w.kv.Delete(ctx, "cancel."+r.ID) // let a later scan try again
		return fmt.Errorf("force-cancel %s: %w", r.ID, err)
	}
	w.metrics.cancels.Inc()
	w.deps.Log.Info("stuck run force-cancelled", zap.String("run_id", r.ID), zap.String("workspace_id", r.Workspace.ID),
		zap.String("status", string(r.Status)), zap.Duration("age", age), zap.Duration("budget", budget))
	a.Kind = alerts.KindRunCancelled
	a.Message = fmt.Sprintf("run %s in %s was %s", r.ID, base.Workspace, comment)
	a.Key = "cancelled/" + r.ID
	w.deps.Alerts.Raise(ctx, a)
	return nil
}

// workspace reads what the watchdog needs of a workspace, cached for a
// few scans; a locked workspace is read again each time.
func (w *Watchdog) workspace(ctx context.Context, id string) (wsInfo, error) {
	now := w.opts.Now()
	w.mu.Lock()
	info, ok := w.cache[id]
	w.mu.Unlock()
	if ok && !info.locked && now.Sub(info.at) < 5*w.opts.Interval {
		return info, nil
	}
	ws, err := w.deps.Workspaces.ReadByID(ctx, id)
	if err != nil {
		return wsInfo{}, fmt.Errorf("read workspace %s: %w", id, err)
	}
	info = wsInfo{name: ws.Name, locked: ws.Locked, planAvg: ws.PlanDurationAverage, appAvg: ws.ApplyDurationAverage, at: now}
	if ws.Organization != nil {
		info.org = ws.Organization.Name
	}
	w.mu.Lock()
	w.cache[id] = info
	w.mu.Unlock()
	return info, nil
}

// roundAge keeps an age readable: to the second from a minute up, to the
// tenth of a second below.
func roundAge(d time.Duration) time.Duration {
	if d >= time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

func orgOf(r *tfe.AdminRun) string {
	if r.Organization != nil {
		return r.Organization.Name
	}
	return ""
}

// enteredAt is when the run entered its current status.
func enteredAt(r *tfe.AdminRun) time.Time {
	ts := r.StatusTimestamps
	if ts != nil {
		var t time.Time
		switch r.Status {
		case tfe.RunPlanQueued:
			t = ts.PlanQueuedAt
		case tfe.RunPlanning:
			t = ts.PlanningAt
		case tfe.RunPlanned:
			t = ts.PlannedAt
		case tfe.RunConfirmed:
			t = ts.ConfirmedAt
		case tfe.RunApplyQueued:
			t = ts.ApplyQueuedAt
		case tfe.RunApplying:
			t = ts.ApplyingAt
		case tfe.RunCostEstimated:
			t = ts.CostEstimatedAt
		case tfe.RunPolicyChecked:
			t = ts.PolicyCheckedAt
		}
		if !t.IsZero() {
			return t
		}
	}
	return r.CreatedAt
}

type metrics struct {
	stuck     *prometheus.GaugeVec
	cancels   prometheus.Counter
	reminders prometheus.Counter
	leader    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		stuck: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orchestrator_watchdog_stuck_runs", Help: "Runs over their status budget at the last scan, by status.",
		}, []string{"status"}),
		cancels: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orchestrator_watchdog_force_cancels_total", Help: "Stuck runs force-cancelled.",
		}),
		reminders: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orchestrator_watchdog_reminders_total", Help: "Reminders about runs waiting for a person or a lock.",
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orchestrator_watchdog_leader", Help: "1 while this replica holds the watchdog lease.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.stuck, m.cancels, m.reminders, m.leader)
	}
	return m
}
