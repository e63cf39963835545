package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
)

// Operators' controls, stored in JetStream so that every replica honours
// them, each with who decided and why:
//
//	ctl.pause                 dispatching paused everywhere
//	ctl.pause.<org>           dispatching paused in one organization
//	ctl.freeze                scheduled freeze windows
//	ctl.exclude               workspaces (by name or tag) cascades never run
//	ctl.cancel.<cascade>      the cascade is cancelled
//	ctl.retry.<cascade>       members to run again (failed ones), by workspace
//	ctl.approve.<cascade>     the blast-radius guard lets the cascade go
//
// Those of one cascade go with its other records (the state TTL); the
// others live in the controls bucket, which has no TTL: a pause stays
// until someone lifts it.

// Control is an operator's decision.
type Control struct {
	By  string    `json:"by"`
	Why string    `json:"why"`
	At  time.Time `json:"at"`
	// StopRuns, on a cancel: also stop the cascade's runs that have not
	// started applying.
	StopRuns bool `json:"stop_runs,omitempty"`
	// ID tells one retry from the next.
	ID string `json:"id,omitempty"`
}

// Freeze is a window during which no cascade dispatches (in Organization,
// or everywhere when it is empty).
type Freeze struct {
	Organization string    `json:"organization,omitempty"`
	Start        time.Time `json:"start"`
	End          time.Time `json:"end"`
	By           string    `json:"by"`
	Why          string    `json:"why"`
}

// Exclusion keeps cascades out of the workspaces it names: by Name, or by
// Tag, in Organization or everywhere.
type Exclusion struct {
	Organization string    `json:"organization,omitempty"`
	Name         string    `json:"name,omitempty"`
	Tag          string    `json:"tag,omitempty"`
	By           string    `json:"by"`
	Why          string    `json:"why"`
	At           time.Time `json:"at"`
}

// ErrBadControl marks a control the engine refuses: what is wrong is in
// the error's text.
var ErrBadControl = errors.New("control refused")

func (c *Control) validate() error {
	if c.By == "" || len(c.By) > 200 || len(c.Why) > 2000 {
		return fmt.Errorf("%w: a control needs who (at most 200 characters) and why (at most 2000)", ErrBadControl)
	}
	return nil
}

// cascadePlan reads the plan of the cascade a control names.
func (d *Dispatcher) cascadePlan(ctx context.Context, id string) (*cascade.Plan, error) {
	p, err := d.store.plan(ctx, id)
	if isMissing(err) {
		return nil, fmt.Errorf("cascade %s: %w", id, ErrNoCascade)
	}
	if err != nil {
		return nil, fmt.Errorf("cascade %s: %w", id, err)
	}
	return p, nil
}

func (c Control) describe() string {
	s := c.By
	if c.Why != "" {
		s += ": " + c.Why
	}
	return s
}

// readControl reads one control; nil when there is none.
func (s *store) readControl(ctx context.Context, key string) (*Control, error) {
	e, err := s.get(ctx, key)
	if isMissing(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var c Control
	if err := decode(e.Value(), &c); err != nil || c.validate() != nil {
		if err == nil {
			err = c.validate()
		}
		return nil, s.malformed(e.Key(), err)
	}
	return &c, nil
}

func (s *store) readList(ctx context.Context, key string, v any) error {
	e, err := s.get(ctx, key)
	if isMissing(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := decode(e.Value(), v); err != nil {
		return s.malformed(e.Key(), err)
	}
	return nil
}

// controls is what operators decided about a cascade, for a look: the
// core's controls, the exclusions (those by tag apply once members are
// seen), and when a freeze window in force ends.
type controls struct {
	cascade.Controls
	exclusions []Exclusion
	resumeAt   time.Time
}

// controls gathers what operators decided about a cascade. A control that
// cannot be read holds the cascade (paused) until it is fixed: better
// stopped than run against an operator's wish.
func (d *Dispatcher) controls(ctx context.Context, p *cascade.Plan) (controls, error) {
	var c controls
	now := d.opts.Now()
	hold := func(err error) (controls, error) {
		if errors.Is(err, errMalformed) {
			c.Paused = "a control record cannot be read (" + err.Error() + ")"
			return c, nil
		}
		return c, err
	}
	for _, key := range []string{"ctl.pause", "ctl.pause." + p.Organization} {
		pc, err := d.store.readControl(ctx, key)
		if err != nil {
			return hold(err)
		}
		if pc != nil {
			c.Paused = pc.describe()
		}
	}
	var freezes []Freeze
	if err := d.store.readList(ctx, "ctl.freeze", &freezes); err != nil {
		return hold(err)
	}
	for _, f := range freezes {
		in := (f.Organization == "" || f.Organization == p.Organization)
		switch {
		case in && !now.Before(f.Start) && now.Before(f.End):
			c.Paused = fmt.Sprintf("freeze window until %s (%s: %s)", f.End.Format(time.RFC3339), f.By, f.Why)
			c.wakeAt(f.End)
		case in && now.Before(f.Start):
			c.wakeAt(f.Start)
		}
	}
	if cc, err := d.store.readControl(ctx, "ctl.cancel."+p.ID); err != nil {
		return hold(err)
	} else if cc != nil {
		c.Cancelled, c.CancelRuns = cc.describe(), cc.StopRuns
	}
	if err := d.store.readList(ctx, "ctl.exclude", &c.exclusions); err != nil {
		return hold(err)
	}
	for _, m := range p.Members {
		for _, x := range c.exclusions {
			if (x.Organization == "" || x.Organization == p.Organization) && x.Name != "" && x.Name == m.Name {
				if c.Excluded == nil {
					c.Excluded = map[string]string{}
				}
				c.Excluded[m.WorkspaceID] = x.By + ": " + x.Why
			}
		}
	}
	var retries map[string]Control
	if err := d.store.readList(ctx, "ctl.retry."+p.ID, &retries); err != nil && !errors.Is(err, errMalformed) {
		return c, err
	}
	c.Retries = map[string]string{}
	for ws, rc := range retries {
		c.Retries[ws] = rc.ID
	}
	if limit := d.opts.GuardLimit; limit > 0 && len(p.Members) > limit {
		ac, err := d.store.readControl(ctx, "ctl.approve."+p.ID)
		if err != nil {
			return hold(err)
		}
		if ac == nil {
			c.Held = fmt.Sprintf("%d members, more than %d: waiting for an operator's go", len(p.Members), limit)
		}
	}
	return c, nil
}

func (c *controls) wakeAt(t time.Time) {
	if c.resumeAt.IsZero() || t.Before(c.resumeAt) {
		c.resumeAt = t
	}
}

// byTag adds the members whose observed tags an exclusion names.
func (c *controls) byTag(p *cascade.Plan, f *cascade.Facts) {
	for _, m := range p.Members {
		w, seen := f.Workspaces[m.WorkspaceID]
		if !seen {
			continue
		}
		for _, x := range c.exclusions {
			if (x.Organization == "" || x.Organization == p.Organization) && x.Tag != "" && slices.Contains(w.Tags, strings.ToLower(x.Tag)) {
				if c.Excluded == nil {
					c.Excluded = map[string]string{}
				}
				c.Excluded[m.WorkspaceID] = x.By + ": " + x.Why + " (tag " + x.Tag + ")"
			}
		}
	}
}

// Setting controls. Each is stored, then every cascade it may concern gets
// a look.

func (d *Dispatcher) putControl(ctx context.Context, key string, c Control) error {
	if err := c.validate(); err != nil {
		return err
	}
	if c.At.IsZero() {
		c.At = d.opts.Now()
	}
	data, _ := json.Marshal(c)
	d.store.count(1)
	if _, err := d.store.bucket(key).Put(ctx, key, data); err != nil {
		return fmt.Errorf("store control %s: %w", key, err)
	}
	d.log.Info("operator control set", zap.String("control", key), zap.String("by", c.By), zap.String("why", c.Why))
	return nil
}

func (d *Dispatcher) deleteControl(ctx context.Context, key, by, why string) error {
	d.store.count(1)
	if err := d.store.bucket(key).Delete(ctx, key); err != nil && !isMissing(err) {
		return fmt.Errorf("remove control %s: %w", key, err)
	}
	d.log.Info("operator control removed", zap.String("control", key), zap.String("by", by), zap.String("why", why))
	return nil
}

// lookAtRunning asks for a full look at every running cascade (of org, or
// all when it is empty).
func (d *Dispatcher) lookAtRunning(ctx context.Context, org string) error {
	metas, err := d.metas(ctx)
	if err != nil {
		return err
	}
	for id, m := range metas {
		if m.State == StateRunning && (org == "" || m.Organization == org) {
			if err := d.store.markDirty(ctx, id, "", d.opts.Now(), true); err != nil {
				return err
			}
		}
	}
	d.nudge()
	return nil
}

// Pause stops new dispatching everywhere, or in one organization.
func (d *Dispatcher) Pause(ctx context.Context, org string, c Control) error {
	if err := d.putControl(ctx, pauseKey(org), c); err != nil {
		return err
	}
	return d.lookAtRunning(ctx, org)
}

// Resume lifts a pause; the same cascades continue.
func (d *Dispatcher) Resume(ctx context.Context, org, by, why string) error {
	if err := d.deleteControl(ctx, pauseKey(org), by, why); err != nil {
		return err
	}
	return d.lookAtRunning(ctx, org)
}

func pauseKey(org string) string {
	if org == "" {
		return "ctl.pause"
	}
	return "ctl.pause." + org
}

// Paused returns the pauses in force: "" for the global one, else the
// organization.
func (d *Dispatcher) Paused(ctx context.Context) (map[string]Control, error) {
	out := map[string]Control{}
	keys := []string{"ctl.pause"}
	err := d.store.scan(ctx, d.store.ctl, "ctl.pause.*", func(key string, _ uint64, _ []byte) error {
		keys = append(keys, key)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, key := range keys {
		c, err := d.store.readControl(ctx, key)
		if err != nil || c == nil {
			continue
		}
		out[strings.TrimPrefix(strings.TrimPrefix(key, "ctl.pause"), ".")] = *c
	}
	return out, nil
}

// Cancel stops a cascade; with c.StopRuns, its runs that have not started
// applying are stopped too.
func (d *Dispatcher) Cancel(ctx context.Context, id string, c Control) error {
	if _, err := d.cascadePlan(ctx, id); err != nil {
		return err
	}
	if err := d.putControl(ctx, "ctl.cancel."+id, c); err != nil {
		return err
	}
	d.nudge()
	return d.store.markDirty(ctx, id, "", d.opts.Now(), true)
}

// Retry runs a failed (or preflight-blocked) member again, and resumes
// what it blocked.
func (d *Dispatcher) Retry(ctx context.Context, id, workspaceID string, c Control) error {
	p, err := d.cascadePlan(ctx, id)
	if err != nil {
		return err
	}
	if p.Index(workspaceID) < 0 {
		return fmt.Errorf("%w: workspace %s is not a member of cascade %s", ErrBadControl, workspaceID, id)
	}
	if err := c.validate(); err != nil {
		return err
	}
	c.ID, c.At = strconv.FormatInt(d.opts.Now().UnixNano(), 36), d.opts.Now()
	key := "ctl.retry." + id
	for {
		var retries map[string]Control
		e, err := d.store.get(ctx, key)
		var rev uint64
		switch {
		case isMissing(err):
		case err != nil:
			return err
		default:
			rev = e.Revision()
			if decode(e.Value(), &retries) != nil {
				retries = nil // unreadable: start over
			}
		}
		if retries == nil {
			retries = map[string]Control{}
		}
		retries[workspaceID] = c
		data, _ := json.Marshal(retries)
		if rev == 0 {
			_, err = d.store.kv.Create(ctx, key, data)
		} else {
			_, err = d.store.kv.Update(ctx, key, data, rev)
		}
		if err == nil {
			break
		}
		if !isConflict(err) {
			return fmt.Errorf("store the retry of %s in %s: %w", workspaceID, id, err)
		}
	}
	d.log.Info("operator control set", zap.String("control", key), zap.String("workspace", p.Name(workspaceID)), zap.String("workspace_id", workspaceID),
		zap.String("by", c.By), zap.String("why", c.Why))
	if err := d.reopen(ctx, id); err != nil {
		return err
	}
	d.nudge()
	return d.store.markDirty(ctx, id, "", d.opts.Now(), true)
}

// reopen marks a finished cascade running again (a retry).
func (d *Dispatcher) reopen(ctx context.Context, id string) error {
	for {
		m, rev, err := d.store.meta(ctx, id)
		if err != nil {
			return err
		}
		if m.State == StateRunning {
			return nil
		}
		m.State, m.Outcome, m.FinishedAt = StateRunning, "", time.Time{}
		if _, err := d.store.putMeta(ctx, id, m, rev); err == nil || !isConflict(err) {
			return err
		}
	}
}

// Approve lets a cascade the blast-radius guard holds go.
func (d *Dispatcher) Approve(ctx context.Context, id string, c Control) error {
	if _, err := d.cascadePlan(ctx, id); err != nil {
		return err
	}
	if err := d.putControl(ctx, "ctl.approve."+id, c); err != nil {
		return err
	}
	d.nudge()
	return d.store.markDirty(ctx, id, "", d.opts.Now(), true)
}

// SetExclusions replaces the exclusion list.
func (d *Dispatcher) SetExclusions(ctx context.Context, excl []Exclusion) error {
	for _, x := range excl {
		if (x.Name == "") == (x.Tag == "") || x.By == "" {
			return fmt.Errorf("%w: an exclusion names a workspace or a tag (not both), and who decided", ErrBadControl)
		}
	}
	data, _ := json.Marshal(excl)
	d.store.count(1)
	if _, err := d.store.ctl.Put(ctx, "ctl.exclude", data); err != nil {
		return err
	}
	return d.lookAtRunning(ctx, "")
}

// Exclusions returns the exclusion list.
func (d *Dispatcher) Exclusions(ctx context.Context) ([]Exclusion, error) {
	var excl []Exclusion
	err := d.store.readList(ctx, "ctl.exclude", &excl)
	return excl, err
}

// SetFreezes replaces the freeze windows.
func (d *Dispatcher) SetFreezes(ctx context.Context, fs []Freeze) error {
	for _, f := range fs {
		if !f.End.After(f.Start) || f.By == "" {
			return fmt.Errorf("%w: a freeze window ends after it starts, and says who decided", ErrBadControl)
		}
	}
	data, _ := json.Marshal(fs)
	d.store.count(1)
	if _, err := d.store.ctl.Put(ctx, "ctl.freeze", data); err != nil {
		return err
	}
	return d.lookAtRunning(ctx, "")
}

// Freezes returns the freeze windows.
func (d *Dispatcher) Freezes(ctx context.Context) ([]Freeze, error) {
	var fs []Freeze
	err := d.store.readList(ctx, "ctl.freeze", &fs)
	return fs, err
}
