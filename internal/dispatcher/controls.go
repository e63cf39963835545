package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
)

// Operators' controls, stored in JetStream so that every replica honours
// them, each with who decided and why: a pause, everywhere or in one
// organization; scheduled freeze windows; workspaces (by name or tag)
// cascades never run; and, of one cascade, its cancel, the members to run
// again (failed or blocked ones), and the blast-radius guard's go. The
// store keeps them (its doc comment lists their keys): those of one
// cascade go with its other records (the state TTL); the others live in
// the controls bucket, which has no TTL: a pause stays until someone lifts
// it.

// Controls are the operators' controls that change things: Pause,
// Resume, Cancel, Retry, Approve, SetExclusions and SetFreezes. Each is
// checked before it is stored (who and why bounded, names well formed, an
// organization TFE knows), stored, kept in the audit trail with who, why,
// when and what it changed, and then the cascades it may concern are
// looked at: that, and reopening a retried cascade, is all they ask of
// the engine. They share the engine's store and options;
// Dispatcher.Controls returns them.
type Controls struct {
	opts   *Options
	store  *store
	audit  jetstream.KeyValue // the audit trail, written
	log    *zap.Logger
	orgs   Organizations // nil: organizations are not checked
	engine engine
}

// engine is what a control asks of the engine (*Dispatcher is one).
type engine interface {
	// lookAt asks for a full look at a cascade now.
	lookAt(ctx context.Context, id string) error
	// lookAtRunning asks for a full look at every running cascade of an
	// organization, or of all when it is "".
	lookAtRunning(ctx context.Context, org string) error
	// reopen marks a finished cascade running again.
	reopen(ctx context.Context, id string) error
}

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
// or everywhere when it is empty). Its fields are cascade.Freeze's, which
// the core judges it as.
type Freeze struct {
	Organization string    `json:"organization,omitempty"`
	Start        time.Time `json:"start"`
	End          time.Time `json:"end"`
	By           string    `json:"by"`
	Why          string    `json:"why"`
}

// Exclusion keeps cascades out of the workspaces it names: by Name, or by
// Tag, in Organization or everywhere. Its fields are cascade.Exclusion's,
// which the core judges it as.
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

// validate checks a stored control: who and why within their limits (in
// bytes, four a character, so that every control once accepted is read).
func (c *Control) validate() error {
	if c.By == "" || len(c.By) > 4*MaxBy || len(c.Why) > 4*MaxWhy {
		return fmt.Errorf("%w: a control needs who (at most %d characters) and why (at most %d)", ErrBadControl, MaxBy, MaxWhy)
	}
	return nil
}

// cascadePlan reads the plan of the cascade a control names.
func (ctl *Controls) cascadePlan(ctx context.Context, id string) (*cascade.Plan, error) {
	p, err := ctl.store.plan(ctx, id)
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

// controls is what operators decided about a cascade: the records read,
// and the core's controls they make (cascade.EvaluateControls) before any
// member workspace is seen. A look evaluates the records again as it sees
// workspaces, for exclusions by tag.
type controls struct {
	cascade.Controls
	records cascade.ControlRecords
}

// controls gathers what operators decided about a cascade. A control that
// cannot be read is reported to the core (Unreadable), which holds the
// cascade; what was read before it still counts. It is the read model's,
// and the engine's looks read the controls through it too.
func (rm *Reads) controls(ctx context.Context, p *cascade.Plan) (controls, error) {
	r, err := rm.controlRecords(ctx, p)
	if err != nil {
		return controls{}, err
	}
	return controls{Controls: cascade.EvaluateControls(p, r, nil, rm.opts.Now()), records: r}, nil
}

func (rm *Reads) controlRecords(ctx context.Context, p *cascade.Plan) (cascade.ControlRecords, error) {
	var r cascade.ControlRecords
	hold := func(err error) (cascade.ControlRecords, error) {
		if errors.Is(err, errMalformed) {
			r.Unreadable = err.Error()
			return r, nil
		}
		return r, err
	}
	for i, org := range []string{"", p.Organization} {
		pc, err := rm.store.pause(ctx, org)
		if err != nil {
			return hold(err)
		}
		if pc != nil && i == 0 {
			r.Pause = pc.describe()
		} else if pc != nil {
			r.OrgPause = pc.describe()
		}
	}
	freezes, err := rm.store.freezes(ctx)
	if err != nil {
		return hold(err)
	}
	for _, f := range freezes {
		r.Freezes = append(r.Freezes, cascade.Freeze(f))
	}
	if cc, err := rm.store.cancellation(ctx, p.ID); err != nil {
		return hold(err)
	} else if cc != nil {
		r.Cancelled, r.CancelRuns = cc.describe(), cc.StopRuns
	}
	excl, err := rm.store.exclusions(ctx)
	if err != nil {
		return hold(err)
	}
	for _, x := range excl {
		r.Exclusions = append(r.Exclusions, cascade.Exclusion(x))
	}
	retries, err := rm.store.retries(ctx, p.ID)
	if err != nil && !errors.Is(err, errMalformed) {
		return r, err
	}
	r.Retries = map[string]string{}
	for ws, rc := range retries {
		r.Retries[ws] = rc.ID
	}
	r.GuardLimit = rm.opts.GuardLimit
	if held, _ := cascade.Guard(len(p.Members), r.GuardLimit, ""); held {
		ac, err := rm.store.approval(ctx, p.ID)
		if err != nil {
			return hold(err)
		}
		if ac != nil {
			r.ApprovedBy = ac.describe()
		}
	}
	return r, nil
}

// Setting controls. Each is checked (who, why and names within their
// limits, an organization TFE knows), stored, recorded in the audit trail,
// and then every cascade it may concern gets a look.

// newControl checks a control being used and stamps it.
func (ctl *Controls) newControl(c *Control) error {
	if err := checkDecision(c.By, c.Why); err != nil {
		return err
	}
	if c.At.IsZero() {
		c.At = ctl.opts.Now()
	}
	c.At = c.At.UTC()
	return nil
}

func where(org string) string {
	if org == "" {
		return "everywhere"
	}
	return "in " + org
}

// Pause stops new dispatching everywhere, or in one organization, which
// TFE must know. A pause is the brake of an incident: when TFE cannot
// say whether it knows the organization (it does not answer), the pause
// is taken all the same, and its record says it was not checked.
func (ctl *Controls) Pause(ctx context.Context, org string, c Control) error {
	if err := ctl.newControl(&c); err != nil {
		return err
	}
	unchecked := ""
	if err := ctl.knownOrganization(ctx, org); errors.Is(err, ErrBadControl) || errors.Is(err, ErrUnknownOrganization) {
		return err
	} else if err != nil {
		ctl.log.Warn("pause taken without checking its organization", zap.String("organization", org), zap.Error(err))
		unchecked = "; the organization was not checked: TFE did not answer"
	}
	before, err := ctl.store.pause(ctx, org)
	if err != nil && !errors.Is(err, errMalformed) {
		return err
	}
	if err := ctl.store.putPause(ctx, org, c); err != nil {
		return err
	}
	rerr := ctl.record(ctx, AuditRecord{At: c.At, By: c.By, Why: c.Why, Action: AuditPause, Organization: org,
		Before: describePause(before), After: describePause(&c) + " (" + where(org) + unchecked + ")"})
	return errors.Join(ctl.engine.lookAtRunning(ctx, org), rerr)
}

// Resume lifts a pause, and returns it; nil when nothing was paused there.
// The same cascades continue.
func (ctl *Controls) Resume(ctx context.Context, org string, c Control) (*Control, error) {
	if err := ctl.newControl(&c); err != nil {
		return nil, err
	}
	if org != "" {
		if err := checkName("organization", org); err != nil {
			return nil, err
		}
	}
	lifted, err := ctl.store.liftPause(ctx, org)
	if err != nil {
		return nil, err
	}
	after := "not paused (" + where(org) + ")"
	if lifted == nil {
		after = "nothing was paused " + where(org)
	}
	rerr := ctl.record(ctx, AuditRecord{At: c.At, By: c.By, Why: c.Why, Action: AuditResume, Organization: org,
		Before: describePause(lifted), After: after})
	return lifted, errors.Join(ctl.engine.lookAtRunning(ctx, org), rerr)
}

// Cancel stops a cascade; with c.StopRuns, its runs that have not started
// applying are stopped too.
func (ctl *Controls) Cancel(ctx context.Context, id string, c Control) error {
	if err := ctl.newControl(&c); err != nil {
		return err
	}
	p, err := ctl.cascadePlan(ctx, id)
	if err != nil {
		return err
	}
	before, err := ctl.store.cancellation(ctx, id)
	if err != nil && !errors.Is(err, errMalformed) {
		return err
	}
	if err := ctl.store.putCancellation(ctx, id, c); err != nil {
		return err
	}
	was, now := "not cancelled", "cancelled: it dispatches nothing more"
	if before != nil {
		was = "cancelled by " + before.describe()
	}
	if c.StopRuns {
		now += ", and its runs that have not started applying are stopped"
	}
	rerr := ctl.record(ctx, AuditRecord{At: c.At, By: c.By, Why: c.Why, Action: AuditCancel, Organization: p.Organization, Cascade: id,
		Before: was, After: now})
	return errors.Join(ctl.engine.lookAt(ctx, id), rerr)
}

// ErrConflict marks a control that does not fit the cascade as it stands
// (a retry of a member that did not fail, an approval of a cascade the
// guard does not hold): what is wrong is in the error's text.
var ErrConflict = errors.New("control does not fit the cascade")

// RetryResult is what a retry sets in motion: the member that runs again,
// and the members blocked behind it that resume (by name), those whose
// only blocked or failed upstreams are the retried one or others it
// resumes.
type RetryResult struct {
	Member   string   `json:"member"`
	Unblocks []string `json:"unblocks"`
}

// Retry runs a failed (or preflight-blocked, or refused) member again,
// and resumes what it blocked; it returns what it set in motion. A member
// in any other state, or in a cancelled cascade, is refused (ErrConflict),
// and nothing changes: a retry never reopens a cascade for a member that
// did not fail.
func (ctl *Controls) Retry(ctx context.Context, id, workspaceID string, c Control) (*RetryResult, error) {
	if err := ctl.newControl(&c); err != nil {
		return nil, err
	}
	p, err := ctl.cascadePlan(ctx, id)
	if err != nil {
		return nil, err
	}
	i := p.Index(workspaceID)
	if i < 0 {
		return nil, fmt.Errorf("%w: workspace %s is not a member of cascade %s", ErrBadControl, workspaceID, id)
	}
	if cc, err := ctl.store.cancellation(ctx, id); err != nil && !errors.Is(err, errMalformed) {
		return nil, err
	} else if cc != nil {
		return nil, fmt.Errorf("%w: cascade %s is cancelled (%s): nothing in it runs again", ErrConflict, id, cc.describe())
	}
	st, _, err := ctl.store.readMembers(ctx, p, true)
	if err != nil {
		return nil, err
	}
	if why := cascade.WhyNotRetriable(p, st, i); why != "" {
		return nil, fmt.Errorf("%w: %s", ErrConflict, why)
	}
	res := &RetryResult{Member: p.Members[i].Name, Unblocks: cascade.Unblocks(p, st, i)}
	c.ID = strconv.FormatInt(c.At.UnixNano(), 36)
	tries, err := ctl.store.addRetry(ctx, id, workspaceID, c)
	if err != nil {
		return nil, err
	}
	name := p.Name(workspaceID)
	after := fmt.Sprintf("member %s runs again (retry %s; members retried in this cascade: %d)", name, c.ID, tries)
	if len(res.Unblocks) > 0 {
		after += "; it resumes " + strings.Join(res.Unblocks, ", ")
	}
	rerr := ctl.record(ctx, AuditRecord{At: c.At, By: c.By, Why: c.Why, Action: AuditRetry, Organization: p.Organization, Cascade: id,
		Workspace: name, Before: ctl.describeMember(ctx, p, workspaceID), After: after})
	if err := ctl.engine.reopen(ctx, id); err != nil {
		return nil, err
	}
	return res, errors.Join(ctl.engine.lookAt(ctx, id), rerr)
}

// Approve lets a cascade the blast-radius guard holds go. A cascade the
// guard does not hold (no guard, few enough members, approved already,
// or no longer running) is refused (ErrConflict), and nothing changes.
func (ctl *Controls) Approve(ctx context.Context, id string, c Control) error {
	if err := ctl.newControl(&c); err != nil {
		return err
	}
	p, err := ctl.cascadePlan(ctx, id)
	if err != nil {
		return err
	}
	before, err := ctl.store.approval(ctx, id)
	if err != nil && !errors.Is(err, errMalformed) {
		return err
	}
	approvedBy := ""
	if before != nil {
		approvedBy = before.describe()
	}
	if held, why := cascade.Guard(len(p.Members), ctl.opts.GuardLimit, approvedBy); !held {
		return fmt.Errorf("%w: the blast-radius guard does not hold cascade %s: %s", ErrConflict, id, why)
	}
	if m, _, err := ctl.store.meta(ctx, id); err != nil {
		return err
	} else if m.State != StateRunning {
		return fmt.Errorf("%w: the blast-radius guard does not hold cascade %s: it is %s", ErrConflict, id, m.State)
	}
	if err := ctl.store.putApproval(ctx, id, c); err != nil {
		return err
	}
	was := fmt.Sprintf("%d members; the blast-radius guard (limit %d) holds it until approved", len(p.Members), ctl.opts.GuardLimit)
	rerr := ctl.record(ctx, AuditRecord{At: c.At, By: c.By, Why: c.Why, Action: AuditApprove, Organization: p.Organization, Cascade: id,
		Before: was, After: "approved: the guard lets it go"})
	return errors.Join(ctl.engine.lookAt(ctx, id), rerr)
}

// SetExclusions replaces the exclusion list. An exclusion kept as it was
// (the same organization, workspace or tag, and why) keeps who decided it
// and when; each one added or removed is recorded in the audit trail, a
// removal with c's who and why (required when anything is removed). It
// returns the records.
func (ctl *Controls) SetExclusions(ctx context.Context, excl []Exclusion, c Control) ([]AuditRecord, error) {
	if len(excl) > MaxList {
		return nil, fmt.Errorf("%w: at most %d exclusions, not %d", ErrBadControl, MaxList, len(excl))
	}
	now := ctl.opts.Now().UTC()
	for i, x := range excl {
		if (x.Name == "") == (x.Tag == "") {
			return nil, fmt.Errorf("%w: exclusions[%d]: an exclusion names a workspace or a tag (not both)", ErrBadControl, i)
		}
		if err := checkDecision(x.By, x.Why); err != nil {
			return nil, fmt.Errorf("exclusions[%d]: %w", i, err)
		}
		if x.Name != "" {
			if err := checkName("workspace", x.Name); err != nil {
				return nil, fmt.Errorf("exclusions[%d]: %w", i, err)
			}
		}
		if n := utf8.RuneCountInString(x.Tag); n > MaxName || strings.ContainsAny(x.Tag, "\x00\n\r\t") {
			return nil, fmt.Errorf("%w: exclusions[%d]: a tag of at most %d characters, on one line", ErrBadControl, i, MaxName)
		}
		if x.At.IsZero() {
			excl[i].At = now
		}
	}
	key := func(x Exclusion) string {
		return x.Organization + "\x00" + x.Name + "\x00" + strings.ToLower(x.Tag) + "\x00" + x.Why
	}
	var recs []AuditRecord
	known := ctl.organizationChecker()
	// An unreadable list is replaced, each new one recorded as added.
	err := ctl.store.replaceExclusions(ctx, func(old []Exclusion) ([]Exclusion, error) {
		was := map[string]Exclusion{}
		for _, x := range old {
			was[key(x)] = x
		}
		next := make([]Exclusion, 0, len(excl))
		recs = nil
		kept := map[string]bool{}
		for _, x := range excl {
			k := key(x)
			if kept[k] {
				continue // given twice: once is enough
			}
			kept[k] = true
			if o, ok := was[k]; ok {
				next = append(next, o)
				continue
			}
			if err := known(ctx, x.Organization); err != nil {
				return nil, err
			}
			next = append(next, x)
			recs = append(recs, AuditRecord{At: now, By: x.By, Why: x.Why, Action: AuditExclusionAdded, Organization: x.Organization,
				Workspace: x.Name, Before: "not excluded", After: describeExclusion(x)})
		}
		for _, o := range old {
			if !kept[key(o)] {
				if err := checkDecision(c.By, c.Why); err != nil {
					return nil, fmt.Errorf("%w (the request removes the exclusion of %s; a removal is recorded with the request's who and why)", err, describeExclusion(o))
				}
				recs = append(recs, AuditRecord{At: now, By: c.By, Why: c.Why, Action: AuditExclusionRemoved, Organization: o.Organization,
					Workspace: o.Name, Before: describeExclusion(o), After: "not excluded"})
			}
		}
		return next, nil
	})
	if err != nil {
		return nil, err
	}
	rerr := ctl.record(ctx, recs...)
	return recs, errors.Join(ctl.engine.lookAtRunning(ctx, ""), rerr)
}

// SetFreezes replaces the freeze windows. A window kept as it was (the
// same organization, start, end and why) keeps who decided it; each one
// added or removed is recorded in the audit trail, a removal with c's who
// and why (required when anything is removed). It returns the records.
func (ctl *Controls) SetFreezes(ctx context.Context, fs []Freeze, c Control) ([]AuditRecord, error) {
	if len(fs) > MaxList {
		return nil, fmt.Errorf("%w: at most %d freeze windows, not %d", ErrBadControl, MaxList, len(fs))
	}
	for i, f := range fs {
		if !f.End.After(f.Start) {
			return nil, fmt.Errorf("%w: freezes[%d]: a freeze window ends after it starts", ErrBadControl, i)
		}
		if err := checkDecision(f.By, f.Why); err != nil {
			return nil, fmt.Errorf("freezes[%d]: %w", i, err)
		}
	}
	key := func(f Freeze) string {
		return f.Organization + "\x00" + f.Start.UTC().Format(time.RFC3339Nano) + "\x00" + f.End.UTC().Format(time.RFC3339Nano) + "\x00" + f.Why
	}
	now := ctl.opts.Now().UTC()
	var recs []AuditRecord
	known := ctl.organizationChecker()
	err := ctl.store.replaceFreezes(ctx, func(old []Freeze) ([]Freeze, error) {
		was := map[string]Freeze{}
		for _, f := range old {
			was[key(f)] = f
		}
		next := make([]Freeze, 0, len(fs))
		recs = nil
		kept := map[string]bool{}
		for _, f := range fs {
			k := key(f)
			if kept[k] {
				continue
			}
			kept[k] = true
			if o, ok := was[k]; ok {
				next = append(next, o)
				continue
			}
			if err := known(ctx, f.Organization); err != nil {
				return nil, err
			}
			f.Start, f.End = f.Start.UTC(), f.End.UTC()
			next = append(next, f)
			recs = append(recs, AuditRecord{At: now, By: f.By, Why: f.Why, Action: AuditFreezeAdded, Organization: f.Organization,
				Before: "no such freeze window", After: describeFreeze(f)})
		}
		for _, o := range old {
			if !kept[key(o)] {
				if err := checkDecision(c.By, c.Why); err != nil {
					return nil, fmt.Errorf("%w (the request removes the %s; a removal is recorded with the request's who and why)", err, describeFreeze(o))
				}
				recs = append(recs, AuditRecord{At: now, By: c.By, Why: c.Why, Action: AuditFreezeRemoved, Organization: o.Organization,
					Before: describeFreeze(o), After: "freeze window removed"})
			}
		}
		return next, nil
	})
	if err != nil {
		return nil, err
	}
	rerr := ctl.record(ctx, recs...)
	return recs, errors.Join(ctl.engine.lookAtRunning(ctx, ""), rerr)
}

// describeMember words how a member stands, for a record's before.
func (ctl *Controls) describeMember(ctx context.Context, p *cascade.Plan, ws string) string {
	i := p.Index(ws)
	st := cascade.Initial(p, i)
	if v, ok, err := ctl.store.member(ctx, p.ID, ws); err == nil && ok {
		st = v
	}
	s := fmt.Sprintf("member %s (%s) %s", p.Name(ws), ws, st.State)
	if st.Reason != "" {
		s += ": " + st.Reason
	}
	if st.RunID != "" {
		s += " (run " + st.RunID + ")"
	}
	return s
}
