// Package watchdog finds runs that stay in one status longer than that
// status's budget, force-cancels the ones that are safe to cancel, and
// tells operators about all of them. It has the engine's shape: scan (read
// TFE), decide (Judge, pure), act.
//
// What it guarantees:
//
//   - One replica acts at a time: the leader holds a lease.Lease in
//     JetStream KV (the bucket's TTL expires it when the leader stops
//     renewing), renewed in the background whatever a scan takes. The lease
//     is fenced by deadline: before each write (a claim, a cancel) the
//     leader checks that the lease is surely its own for long enough, and
//     the write ends by the lease's deadline; a lease lost, or past its
//     deadline, stops every write.
//   - A run is cancelled at most once, whichever replica leads and however
//     leadership moves: each action is claimed in a bucket of its own, kept
//     for ClaimTTL (days), long after any lease.
//   - It sees status changes between scans by following the run event
//     stream; a run the events say is overdue costs one read to confirm. A
//     run TFE no longer knows is dropped, and the runs followed are bounded
//     (MaxTracked).
//   - Runs waiting for a person, or queued behind a person's lock, get
//     reminders, never a cancel; a run queued behind another run waits its
//     turn. A run in applying is never cancelled unless the operator opted
//     in; it gets an alert.
//   - With DryRun it decides and alerts, and cancels nothing.
package watchdog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/lease"
	"github.com/tfe-orchestrator/orchestrator/internal/setting"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient/runstatus"
)

// Workspaces is what the watchdog reads of workspaces: their current runs
// (ScanWorkspaces) and the workspace of a run that may be stuck.
type Workspaces interface {
	tfeclient.WorkspaceLister
	tfeclient.WorkspaceReader
}

// Runs is what the watchdog does with runs one at a time: reading a run
// the events say is overdue, and, where there is no admin API, stopping it.
type Runs interface {
	tfeclient.RunReader
	tfeclient.RunStopper
}

// Scan modes.
const (
	// ScanAdmin lists active runs through the admin runs API (TFE, with a
	// site-admin token) and force-cancels through it.
	ScanAdmin = "admin"
	// ScanWorkspaces reads each workspace's current run (one list call per
	// 100 workspaces of each organization) and cancels with the user's
	// actions: force-cancel when TFE allows it, else cancel, else discard.
	// For HCP Terraform, which has no admin API.
	ScanWorkspaces = "workspaces"
)

// Options configure a Watchdog. A zero field takes its default, the value
// DefaultOptions has; none is turned off by 0. Validate refuses what cannot
// work, naming the field (a *setting.Error).
type Options struct {
	// Budgets: a zero budget takes its default (see Budgets); negative
	// refused.
	Budgets Budgets
	// Interval between scans; default 1m; negative refused.
	Interval time.Duration
	// LeaseTTL: a leader that stops renewing loses the lease after this;
	// default 15s, at least 1s.
	LeaseTTL time.Duration
	// Bucket of the lease; default "watchdog". ClaimsBucket (default
	// "watchdog-claims") keeps the cancel claims, for ClaimTTL (default 7
	// days), well past any lease: a run is cancelled once, whichever
	// replica leads and whenever.
	Bucket       string
	ClaimsBucket string
	ClaimTTL     time.Duration
	// Replicas of both buckets: the stream's; default 1.
	Replicas int
	// Address is TFE's address, for run links in alerts.
	Address string
	// MaxTracked bounds the runs followed from the events; the oldest are
	// forgotten first (a scan still finds them); default 100,000.
	MaxTracked int
	// AllowApplying lets the watchdog force-cancel runs stuck in applying.
	AllowApplying bool
	DryRun        bool
	// Instance names this replica in the lease; default a random name.
	Instance string
	// Scan is ScanAdmin (default) or ScanWorkspaces.
	Scan string
	// Organizations are scanned in ScanWorkspaces mode, which needs one at
	// least; TFE organization names.
	Organizations []string
	// Stream is the run event stream the watchdog follows, so that it sees
	// status changes between scans; empty for none.
	Stream string
	// EventCheck is how often runs known from the events are checked;
	// default 10s.
	EventCheck time.Duration
	Now        func() time.Time
}

// DefaultOptions are the options a zero field takes: the one place the
// watchdog's defaults are written. Instance and Now, which are per
// process, are left out (a random name and time.Now).
func DefaultOptions() Options {
	return Options{
		Interval:     time.Minute,
		LeaseTTL:     15 * time.Second,
		Bucket:       "watchdog",
		ClaimsBucket: "watchdog-claims",
		ClaimTTL:     7 * 24 * time.Hour,
		Replicas:     1,
		MaxTracked:   100_000,
		Scan:         ScanAdmin,
		EventCheck:   10 * time.Second,
	}
}

func (o Options) withDefaults() Options {
	def := DefaultOptions()
	dur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	dur(&o.Interval, def.Interval)
	dur(&o.LeaseTTL, def.LeaseTTL)
	dur(&o.ClaimTTL, def.ClaimTTL)
	dur(&o.EventCheck, def.EventCheck)
	if o.Bucket == "" {
		o.Bucket = def.Bucket
	}
	if o.ClaimsBucket == "" {
		o.ClaimsBucket = def.ClaimsBucket
	}
	if o.Replicas == 0 {
		o.Replicas = def.Replicas
	}
	if o.MaxTracked == 0 {
		o.MaxTracked = def.MaxTracked
	}
	if o.Scan == "" {
		o.Scan = def.Scan
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Instance == "" {
		o.Instance = fmt.Sprintf("watchdog-%d", time.Now().UnixNano())
	}
	return o
}

// maxOrganizationName is the longest TFE organization name accepted.
const maxOrganizationName = 128

// Validate reports the first option that cannot work, as a *setting.Error
// naming its field.
func (o Options) Validate() error {
	for _, f := range []struct {
		field string
		v     time.Duration
	}{{"Interval", o.Interval}, {"ClaimTTL", o.ClaimTTL}, {"EventCheck", o.EventCheck}} {
		if f.v < 0 {
			return setting.Errorf("{"+f.field+"} (%s) must not be negative", setting.Duration(f.v))
		}
	}
	if o.LeaseTTL < 0 || (o.LeaseTTL > 0 && o.LeaseTTL < time.Second) {
		return setting.Errorf("{LeaseTTL} (%s) must be at least 1s", setting.Duration(o.LeaseTTL))
	}
	if o.Replicas < 0 || o.Replicas > 5 {
		return setting.Errorf("{Replicas} must be from 1 to 5, not %d", o.Replicas)
	}
	if o.MaxTracked < 0 {
		return setting.Errorf("{MaxTracked} (%d) must not be negative", o.MaxTracked)
	}
	for _, org := range o.Organizations {
		if !events.ValidName(org, maxOrganizationName) {
			return setting.Errorf("{Organizations} %q is not a TFE organization name (letters, digits, - and _)", org)
		}
	}
	switch o.Scan {
	case "", ScanAdmin:
	case ScanWorkspaces:
		if len(o.Organizations) == 0 {
			return setting.Errorf("{Scan} workspaces needs {Organizations}")
		}
	default:
		return setting.Errorf("{Scan} must be admin or workspaces, not %q", o.Scan)
	}
	for _, b := range []struct {
		group Group
		v     time.Duration
	}{
		{GroupQueued, o.Budgets.Queued}, {GroupPlanning, o.Budgets.Planning}, {GroupApplying, o.Budgets.Applying}, {GroupAwaiting, o.Budgets.Awaiting},
		{"planning floor", o.Budgets.PlanningFloor}, {"applying floor", o.Budgets.ApplyingFloor},
	} {
		if b.v < 0 {
			return setting.Errorf("{Budgets} %s=%s must be positive", b.group, setting.Duration(b.v))
		}
	}
	if o.Budgets.Factor < 0 {
		return setting.Errorf("{Budgets} factor %v must be positive", o.Budgets.Factor)
	}
	return nil
}

// Deps are what a Watchdog talks to.
type Deps struct {
	JetStream  jetstream.JetStream
	AdminRuns  tfeclient.AdminRuns // ScanAdmin
	Runs       Runs                // reading overdue runs; stopping them in ScanWorkspaces
	Workspaces Workspaces
	Alerts     alerts.Notifier
	Log        *zap.Logger
	Registerer prometheus.Registerer // nil: metrics registered nowhere
}

// Watchdog scans runs and acts on those stuck.
type Watchdog struct {
	opts        Options
	deps        Deps
	kv          jetstream.KeyValue // the lease
	claims      jetstream.KeyValue
	lease       atomic.Pointer[lease.Lease] // nil when not leading
	stopKeep    func()                      // stops the lease's renewal; Run's alone
	leaseNow    func() time.Time            // the lease's clock: the wall clock, as the bucket's TTL
	metrics     *metrics
	tracker     tracker
	eventChecks atomic.Int64

	// cache keeps what the watchdog read of workspaces, for five intervals.
	cache *tfeclient.Cache[string, wsInfo]
}

type wsInfo struct {
	name, org       string
	locked          bool
	lockedByRun     string
	planAvg, appAvg time.Duration
}

// New sets up the lease bucket.
func New(ctx context.Context, opts Options, deps Deps) (*Watchdog, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	opts = opts.withDefaults()
	// Replicas starting at once all set the buckets up (events.Ensure),
	// within the caller's deadline or a minute.
	kv, err := events.EnsureKeyValue(ctx, deps.JetStream, jetstream.KeyValueConfig{
		Bucket: opts.Bucket, Description: "watchdog lease", TTL: opts.LeaseTTL, History: 1, Replicas: opts.Replicas,
	})
	if err != nil {
		return nil, err
	}
	claims, err := events.EnsureKeyValue(ctx, deps.JetStream, jetstream.KeyValueConfig{
		Bucket: opts.ClaimsBucket, Description: "runs the watchdog cancelled, so that none is cancelled twice", TTL: opts.ClaimTTL,
		History: 1, Replicas: opts.Replicas, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, err
	}
	return &Watchdog{opts: opts, deps: deps, kv: kv, claims: claims, leaseNow: time.Now, metrics: newMetrics(deps.Registerer),
		cache:   tfeclient.NewCache[string, wsInfo](5*opts.Interval, opts.Now),
		tracker: tracker{max: opts.MaxTracked}}, nil
}

// leaderKey is the lease's key in its bucket.
const leaderKey = "leader"

// Leader reports whether this replica holds the lease, and its deadline
// has not passed.
func (w *Watchdog) Leader() bool {
	l := w.lease.Load()
	return l != nil && l.Held()
}

// Run holds or waits for the lease, follows the run events, and while it
// leads scans every Interval and checks the runs the events know of every
// EventCheck, until ctx ends.
func (w *Watchdog) Run(ctx context.Context) error {
	defer w.letGo()
	if w.opts.Stream != "" {
		followCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			w.follow(followCtx)
		}()
		defer func() { stop(); <-done }()
	}
	renew := time.NewTicker(w.opts.LeaseTTL / 3)
	defer renew.Stop()
	scan := time.NewTicker(w.opts.Interval)
	defer scan.Stop()
	check := time.NewTicker(w.opts.EventCheck)
	defer check.Stop()
	for {
		w.holdLease(ctx)
		select {
		case <-ctx.Done():
			return nil // letGo hands the lease over at once
		case <-renew.C:
		case <-scan.C:
			if w.Leader() {
				if err := w.Scan(ctx); err != nil && ctx.Err() == nil {
					w.deps.Log.Warn("watchdog scan", zap.Error(err))
				}
			}
		case <-check.C:
			if w.Leader() && w.opts.Stream != "" {
				if err := w.CheckEvents(ctx); err != nil && ctx.Err() == nil {
					w.deps.Log.Warn("watchdog event check", zap.Error(err))
				}
			}
		}
	}
}

// holdLease checks the lease held (renewed in the background), and takes
// the lease when it is free. A lease past its deadline is renewed at once
// (its renewal was late); one that cannot be is let go.
func (w *Watchdog) holdLease(ctx context.Context) {
	if l := w.lease.Load(); l != nil {
		if l.Held() {
			return
		}
		err := l.Renew(ctx)
		if err == nil {
			return
		}
		w.letGo()
		w.deps.Log.Warn("watchdog lease lost", zap.Error(err))
	}
	l, ok, err := lease.AcquireOn(ctx, w.deps.JetStream.Conn(), w.kv, leaderKey, w.opts.Instance, w.opts.LeaseTTL, w.leaseNow)
	if err != nil || !ok {
		return
	}
	w.stopKeep = l.Keep(ctx)
	w.lease.Store(l)
	w.setLeader(true)
	w.deps.Log.Info("watchdog lease taken", zap.String("instance", w.opts.Instance))
}

// letGo stops leading: the lease's renewal stops and the lease is handed
// back at once (when still ours).
func (w *Watchdog) letGo() {
	if w.stopKeep != nil {
		w.stopKeep()
		w.stopKeep = nil
	}
	if l := w.lease.Swap(nil); l != nil {
		l.Release(context.Background())
	}
	w.setLeader(false)
}

// fenced returns ctx bounded by the lease's deadline, for a write; false
// when this replica does not lead, or the lease is not surely its own for
// a quarter of its TTL more.
func (w *Watchdog) fenced(ctx context.Context) (context.Context, context.CancelFunc, bool) {
	l := w.lease.Load()
	if l == nil {
		return nil, nil, false
	}
	until, err := l.Deadline(l.TTL() / 4)
	if err != nil {
		return nil, nil, false
	}
	wctx, cancel := context.WithDeadline(ctx, until)
	return wctx, cancel, true
}

func (w *Watchdog) setLeader(v bool) {
	if v {
		w.metrics.leader.Set(1)
	} else {
		w.metrics.leader.Set(0)
	}
}

// activeStatuses are the statuses the scan asks the admin API for: those
// with a budget, in the order a run passes them.
var activeStatuses = func() []string {
	var out []string
	for _, s := range runstatus.All() {
		if _, ok := GroupOf(s); ok {
			out = append(out, s)
		}
	}
	return out
}()

// candidate is a run not yet final, as either scan mode sees it.
type candidate struct {
	id          string
	status      string
	entered     time.Time // when it entered its status
	workspaceID string
	org         string
	actions     tfeclient.RunActions // ScanWorkspaces only
}

// Scan reads the runs not yet final and acts on those over budget. It acts
// only while leading.
func (w *Watchdog) Scan(ctx context.Context) error {
	var runs []candidate
	var err error
	if w.opts.Scan == ScanWorkspaces {
		runs, err = w.currentRuns(ctx)
	} else {
		runs, err = w.adminRuns(ctx)
	}
	if err != nil {
		return err
	}
	// A pending run behind another active run of its workspace is waiting
	// its turn, not stuck.
	busy := map[string]bool{}
	for _, r := range runs {
		if r.status != runstatus.Pending {
			busy[r.workspaceID] = true
		}
	}
	stuck := map[string]int{}
	var errs []error
	for _, r := range runs {
		if r.status == runstatus.Pending && busy[r.workspaceID] {
			continue
		}
		over, err := w.check(ctx, r)
		if err != nil {
			errs = append(errs, err)
		}
		if over {
			stuck[r.status]++
		}
	}
	w.metrics.stuck.Reset()
	for status, n := range stuck {
		w.metrics.stuck.WithLabelValues(status).Set(float64(n))
	}
	return errors.Join(errs...)
}

// adminRuns lists every run not yet final: one call per 100 runs.
func (w *Watchdog) adminRuns(ctx context.Context) ([]candidate, error) {
	runs, err := w.deps.AdminRuns.ListAdminRuns(ctx, activeStatuses)
	if err != nil {
		return nil, err
	}
	var out []candidate
	for _, r := range runs {
		if r.WorkspaceID == "" {
			continue
		}
		out = append(out, candidate{id: r.ID, status: r.Status, entered: enteredAt(r), workspaceID: r.WorkspaceID, org: r.Organization})
	}
	return out, nil
}

// currentRuns reads each workspace's current run, with the workspace list
// (one call per 100 workspaces), and keeps what the list says of each
// workspace so that no further read is needed.
func (w *Watchdog) currentRuns(ctx context.Context) ([]candidate, error) {
	var out []candidate
	now := w.opts.Now()
	for _, org := range w.opts.Organizations {
		err := w.deps.Workspaces.ListWorkspaces(ctx, org, tfeclient.WorkspaceQuery{CurrentRun: true}, func(page []tfeclient.Workspace) (bool, error) {
			for _, ws := range page {
				w.cache.PutAt(ws.ID, infoOf(ws), now)
				r := ws.CurrentRun
				if r == nil || r.Status == "" {
					continue
				}
				if _, active := GroupOf(r.Status); !active {
					continue
				}
				out = append(out, candidate{id: r.ID, status: r.Status, entered: enteredAt(*r), workspaceID: ws.ID, org: org, actions: r.Actions})
			}
			return true, nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// check decides about one run and acts on the verdict; it reports whether
// the run is over budget. The workspace is read only for a run that may be
// over budget: its averages set planning and applying budgets, its lock
// changes what a pending run means, and its name goes into alerts.
func (w *Watchdog) check(ctx context.Context, r candidate) (bool, error) {
	now := w.opts.Now()
	if !MayBeOver(r.status, r.entered, w.opts.Budgets, now) {
		return false, nil
	}
	info, err := w.workspace(ctx, r.workspaceID)
	if err != nil {
		return false, err
	}
	v := Judge(Facts{Status: r.status, Entered: r.entered, HeldByPerson: info.locked && info.lockedByRun == "",
		HeldByRun: info.locked && info.lockedByRun != "" && info.lockedByRun != r.id, PlanAvg: info.planAvg, ApplyAvg: info.appAvg},
		w.opts.Budgets, w.opts.AllowApplying, now)
	org := r.org
	if org == "" {
		org = info.org
	}
	base := alerts.Alert{Organization: org, Workspace: info.name, WorkspaceID: r.workspaceID, RunID: r.id, RunURL: w.runURL(org, info.name, r.id)}
	switch v.Action {
	case None:
		return false, nil
	case Remind:
		w.metrics.reminders.Inc()
		a := base
		a.Kind, a.Severity = alerts.KindReminder, alerts.SeverityInfo
		a.Message = fmt.Sprintf("run %s in %s %s: %s for %s (reminder every %s)", r.id, info.name, v.Why, r.status, roundAge(v.Age), v.Budget)
		a.Key = fmt.Sprintf("reminder/%s/%s/%d", r.id, r.status, int64(v.Age/v.Budget))
		w.deps.Alerts.Raise(ctx, a)
	case Alert:
		a := base
		a.Kind, a.Severity = alerts.KindStuckRun, alerts.SeverityCritical
		a.Message = fmt.Sprintf("run %s in %s has been applying for %s (budget %s); not cancelled: cancelling an apply can lose state, cancel it by hand if it is truly stuck",
			r.id, info.name, roundAge(v.Age), v.Budget)
		a.Key = "stuck/" + r.id + "/applying"
		w.deps.Alerts.Raise(ctx, a)
	case Cancel:
		return true, w.forceCancel(ctx, r, base, v.Age, v.Budget)
	}
	return true, nil
}

// runURL is where a person sees a run in TFE's UI.
func (w *Watchdog) runURL(org, workspace, runID string) string {
	if w.opts.Address == "" || org == "" || workspace == "" {
		return ""
	}
	return w.opts.Address + "/app/" + org + "/workspaces/" + workspace + "/runs/" + runID
}

// forceCancel cancels a stuck run, once: through the admin API, or with
// the user's actions where there is none.
func (w *Watchdog) forceCancel(ctx context.Context, r candidate, base alerts.Alert, age, budget time.Duration) error {
	comment := fmt.Sprintf("force-cancelled by the run-trigger orchestrator's watchdog: %s for %s, over its budget of %s",
		r.status, roundAge(age), budget)
	a := base
	a.Severity = alerts.SeverityCritical
	if w.opts.DryRun {
		a.Kind = alerts.KindStuckRun
		a.Message = fmt.Sprintf("dry run: would force-cancel run %s in %s, %s", r.id, base.Workspace, strings.TrimPrefix(comment, "force-cancelled by the run-trigger orchestrator's watchdog: "))
		a.Key = "stuck/" + r.id + "/" + r.status
		w.deps.Alerts.Raise(ctx, a)
		return nil
	}
	action := w.cancelAction(r)
	if action == "" {
		a.Kind = alerts.KindStuckRun
		a.Message = fmt.Sprintf("run %s in %s is stuck: %s for %s (budget %s); TFE allows no cancel of it now: cancel it by hand",
			r.id, base.Workspace, r.status, roundAge(age), budget)
		a.Key = "stuck/" + r.id + "/" + r.status
		w.deps.Alerts.Raise(ctx, a)
		return nil
	}
	// Fenced: only the leader writes, each write checked against the
	// lease's deadline and ended by it. The lease gone or too near its
	// deadline (while scanning), nothing more is written.
	wctx, cancel, ok := w.fenced(ctx)
	if !ok {
		return nil
	}
	defer cancel()
	// One claim per run and action: a cancel request, then the
	// force-cancel TFE allows after it, each happen once.
	claim := "cancel." + r.id + "." + action
	if _, err := w.claims.Create(wctx, claim, []byte(w.opts.Instance)); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return nil // done already, by this or another leader
		}
		return fmt.Errorf("claim the cancel of %s: %w", r.id, err)
	}
	if !w.Leader() { // the lease's deadline, checked again before TFE's write
		_ = w.claims.Delete(ctx, claim) // not cancelled: let a later scan try again
		return nil
	}
	if err := w.cancel(wctx, r, action, comment); err != nil {
		_ = w.claims.Delete(ctx, claim) // let a later scan try again
		return err
	}
	w.metrics.cancels.Inc()
	w.deps.Log.Info("stuck run cancelled", zap.String("run_id", r.id), zap.String("workspace", base.Workspace), zap.String("workspace_id", r.workspaceID),
		zap.String("status", r.status), zap.String("action", action), zap.Duration("age", age), zap.Duration("budget", budget))
	a.Kind, a.Severity = alerts.KindRunCancelled, alerts.SeverityWarning // done: someone should look, nothing burns
	a.Message = fmt.Sprintf("run %s in %s was %s", r.id, base.Workspace, comment)
	if action != "force-cancel" {
		a.Message += " (" + action + " requested: without the admin API a stuck run is force-cancelled once TFE allows it)"
	}
	a.Key = "cancelled/" + r.id + "/" + action
	w.deps.Alerts.Raise(ctx, a)
	return nil
}

// cancelAction says how a stuck run can be stopped now: "force-cancel",
// "cancel", "discard", or "" when TFE allows none of them.
func (w *Watchdog) cancelAction(r candidate) string {
	if w.opts.Scan == ScanAdmin {
		return "force-cancel"
	}
	switch act := r.actions; {
	case act.ForceCancelable:
		return "force-cancel"
	case act.Cancelable:
		return "cancel"
	case act.Discardable:
		return "discard"
	}
	return ""
}

// cancel stops a run the way cancelAction chose.
func (w *Watchdog) cancel(ctx context.Context, r candidate, action, comment string) error {
	switch {
	case w.opts.Scan == ScanAdmin:
		return w.deps.AdminRuns.AdminForceCancelRun(ctx, r.id, comment)
	case action == "force-cancel":
		return w.deps.Runs.ForceCancelRun(ctx, r.id, comment)
	case action == "cancel":
		return w.deps.Runs.CancelRun(ctx, r.id, comment)
	default:
		return w.deps.Runs.DiscardRun(ctx, r.id, comment)
	}
}

// workspace reads what the watchdog needs of a workspace, cached for a
// few scans; a locked workspace is read again each time.
func (w *Watchdog) workspace(ctx context.Context, id string) (wsInfo, error) {
	now := w.opts.Now()
	if info, ok := w.cache.Get(id); ok && !info.locked {
		return info, nil
	}
	ws, err := w.deps.Workspaces.ReadWorkspace(ctx, id)
	if err != nil {
		return wsInfo{}, err
	}
	info := infoOf(ws)
	w.cache.PutAt(id, info, now)
	return info, nil
}

func infoOf(ws tfeclient.Workspace) wsInfo {
	return wsInfo{name: ws.Name, org: ws.Organization, locked: ws.Locked, lockedByRun: ws.LockedByRun,
		planAvg: ws.PlanDurationAverage, appAvg: ws.ApplyDurationAverage}
}

// roundAge keeps an age readable: to the second from a minute up, to the
// tenth of a second below.
func roundAge(d time.Duration) time.Duration {
	if d >= time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

// enteredAt is when a run entered its current status: by TFE's status
// timestamps, or its creation when they do not say.
func enteredAt(r tfeclient.Run) time.Time {
	if !r.StatusAt.IsZero() {
		return r.StatusAt
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
