package dispatcher

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
)

// The audit trail: every control an operator uses — a pause, a resume, a
// cancel, a retry, an approval, each freeze window and each exclusion
// added or removed — is kept as a record in the audit bucket, with who,
// why, when, what it changed and what it concerns, for AuditRetention
// (the bucket's TTL), and logged once at info level.
//
// Keys name what a record concerns and when it was made:
//
//	<o_org|all>.<cascade|none>.<unix nanoseconds, 19 digits>-<random>
//
// The bucket's stream keeps them in the order they were made, so the
// newest are read from its end by direct gets, filtered by subject: no
// consumer, however many readers. Every field is bounded (MaxWhy, MaxBy,
// MaxName, and what a record says of before and after is cut at
// maxChange), so a record is a few KiB at most.

// Field limits of the controls, enforced when one is used (ErrBadControl).
const (
	// MaxWhy is the most characters a why holds.
	MaxWhy = 1000
	// MaxBy is the most characters a who holds, as it is stored (the
	// person's name and the token's).
	MaxBy = 200
	// MaxName is the most characters of a name a control gives: an
	// organization, a workspace, a tag.
	MaxName = 128
	// MaxList is the most freeze windows, or exclusions, kept at once.
	MaxList = 1000
	// maxListBytes bounds the stored list, under NATS's payload limit.
	maxListBytes = 512 << 10
	// maxChange bounds what a record says of before and after.
	maxChange = 1500
)

// The actions an audit record tells.
const (
	AuditPause            = "pause"
	AuditResume           = "resume"
	AuditCancel           = "cancel"
	AuditRetry            = "retry"
	AuditApprove          = "approve"
	AuditFreezeAdded      = "freeze_added"
	AuditFreezeRemoved    = "freeze_removed"
	AuditExclusionAdded   = "exclusion_added"
	AuditExclusionRemoved = "exclusion_removed"
)

// AuditRecord is one use of a control, as the audit trail keeps it.
type AuditRecord struct {
	At     time.Time `json:"at"`
	By     string    `json:"by"`
	Why    string    `json:"why"`
	Action string    `json:"action"`
	// What the control concerns: an organization ("" for everywhere), a
	// cascade, a member workspace (by name).
	Organization string `json:"organization,omitempty"`
	Cascade      string `json:"cascade,omitempty"`
	Workspace    string `json:"workspace,omitempty"`
	// Before and After say, in words, how things stood before the control
	// and after it.
	Before string `json:"before,omitempty"`
	After  string `json:"after,omitempty"`
}

// AuditFilter selects audit records; zero fields select all.
type AuditFilter struct {
	Since        time.Time
	Organization string
	Cascade      string
	// Limit: at most this many, newest first; default 100, at most 1000.
	Limit int
}

// Organizations reads TFE's organizations for the controls: an
// organization a control names must be one TFE knows. *tfeclient.TFE is
// one.
type Organizations interface {
	tfeclient.OrganizationReader
}

// ErrUnknownOrganization marks a control naming an organization TFE does
// not know.
var ErrUnknownOrganization = errors.New("not known to TFE")

func auditConfig(o Options) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket: o.AuditBucket, Description: "audit trail of the operators' controls of the run-trigger orchestrator",
		TTL: o.AuditRetention, History: 1, Storage: jetstream.FileStorage, Replicas: o.Replicas, MaxValueSize: 32 << 10, // a record is at most about 20 KiB (its fields bounded)
	}
}

// checkDecision checks who and why of a control being used.
func checkDecision(by, why string) error {
	switch n := utf8.RuneCountInString(why); {
	case strings.TrimSpace(why) == "":
		return fmt.Errorf("%w: why: say why (it is recorded with the control)", ErrBadControl)
	case n > MaxWhy:
		return fmt.Errorf("%w: why: at most %d characters, not %d", ErrBadControl, MaxWhy, n)
	}
	if by == "" || utf8.RuneCountInString(by) > MaxBy {
		return fmt.Errorf("%w: by: a control says who decided, in at most %d characters", ErrBadControl, MaxBy)
	}
	return nil
}

// checkName checks a name a control gives (what: "organization",
// "workspace"): letters, digits, - and _, at most MaxName.
func checkName(what, name string) error {
	ok := name != "" && len(name) <= MaxName
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
	}
	if !ok {
		return fmt.Errorf("%w: %s %q: want letters, digits, - and _, at most %d characters", ErrBadControl, what, clip(name, 64), MaxName)
	}
	return nil
}

// organizationChecker returns knownOrganization, remembering its answers:
// a list names the same organizations many times.
func (ctl *Controls) organizationChecker() func(context.Context, string) error {
	seen := map[string]error{}
	return func(ctx context.Context, org string) error {
		if err, ok := seen[org]; ok {
			return err
		}
		err := ctl.knownOrganization(ctx, org)
		if err == nil || errors.Is(err, ErrBadControl) || errors.Is(err, ErrUnknownOrganization) {
			seen[org] = err
		}
		return err
	}
}

// knownOrganization checks that TFE knows org ("" names none).
func (ctl *Controls) knownOrganization(ctx context.Context, org string) error {
	if org == "" {
		return nil
	}
	if err := checkName("organization", org); err != nil {
		return err
	}
	if ctl.orgs == nil {
		return nil
	}
	_, err := ctl.orgs.ReadOrganization(ctx, org)
	switch {
	case err != nil && tfeclient.Classify(err, nil) == tfeclient.Gone:
		return fmt.Errorf("organization %s is %w", org, ErrUnknownOrganization)
	case err != nil:
		return fmt.Errorf("check organization %s with TFE: %w", org, err)
	}
	return nil
}

// clip cuts s to at most n characters.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// auditKey is where a record is kept.
func auditKey(r *AuditRecord) string {
	org, id := "all", "none"
	if r.Organization != "" {
		org = "o_" + r.Organization
	}
	if r.Cascade != "" {
		id = r.Cascade
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s.%s.%019d-%s", org, id, r.At.UnixNano(), hex.EncodeToString(b[:]))
}

// auditWriteTimeout bounds the writes of a control's records.
const auditWriteTimeout = 10 * time.Second

// record keeps the records of a control's use and logs each once. The
// control is in force already: its records are written even when the
// caller has gone (the request's context ended), and a record that cannot
// be kept is an error saying so; its log line stays.
func (ctl *Controls) record(ctx context.Context, recs ...AuditRecord) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditWriteTimeout)
	defer cancel()
	var failed error
	for _, r := range recs {
		if r.At.IsZero() {
			r.At = ctl.opts.Now()
		}
		r.At = r.At.UTC()
		r.Why, r.Before, r.After = clip(r.Why, MaxWhy), clip(r.Before, maxChange), clip(r.After, maxChange)
		ctl.log.Info("operator control", zap.String("action", r.Action), zap.String("by", r.By), zap.String("why", r.Why),
			zap.String("organization", r.Organization), zap.String("cascade_id", r.Cascade), zap.String("workspace", r.Workspace),
			zap.String("before", r.Before), zap.String("after", r.After))
		data, err := json.Marshal(r)
		if err != nil {
			return err
		}
		ctl.store.count(1)
		if _, err := ctl.audit.Put(ctx, auditKey(&r), data); err != nil && failed == nil {
			failed = fmt.Errorf("the control is in force, but its audit record could not be stored: %w", err)
		}
	}
	return failed
}

// auditFilter is the subject filter of f, in the audit bucket.
func (rm *Reads) auditFilter(f AuditFilter) string {
	org, id := "*", "*"
	if f.Organization != "" {
		org = "o_" + f.Organization
	}
	if f.Cascade != "" {
		id = f.Cascade
	}
	return "$KV." + rm.audit.Bucket() + "." + org + "." + id + ".*"
}

// Audit returns the audit records f selects, newest first.
//
// It reads the bucket's stream backwards, by windows of sequences that
// double in size, each read forward by direct gets filtered by subject,
// until it has f.Limit records or reaches f.Since (or the oldest kept): a
// few requests, no consumer.
func (rm *Reads) Audit(ctx context.Context, f AuditFilter) ([]AuditRecord, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	for what, name := range map[string]string{"organization": f.Organization, "cascade": f.Cascade} {
		if name != "" {
			if err := checkName(what, name); err != nil {
				return nil, err
			}
		}
	}
	rm.store.count(1)
	st, err := rm.audit.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the audit bucket: %w", err)
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return nil, fmt.Errorf("read the audit bucket: a status of type %T", st)
	}
	info := bs.StreamInfo()
	lo, hi := info.State.FirstSeq, info.State.LastSeq
	if info.State.Msgs == 0 {
		return []AuditRecord{}, nil
	}
	if !f.Since.IsZero() {
		from, found, err := rm.auditSeqSince(ctx, f.Since)
		if err != nil {
			return nil, err
		}
		if !found {
			return []AuditRecord{}, nil
		}
		lo = max(lo, from)
	}
	filter := rm.auditFilter(f)
	out := []AuditRecord{}
	window := uint64(min(scanBatch, max(limit, 32))) // the newest first, then wider
	for hi >= lo && len(out) < limit {
		start := lo
		if hi-lo+1 > window {
			start = hi - window + 1
		}
		var chunk []AuditRecord
		if err := rm.auditRange(ctx, filter, start, hi, func(r AuditRecord) { chunk = append(chunk, r) }); err != nil {
			return nil, err
		}
		for i := len(chunk) - 1; i >= 0 && len(out) < limit; i-- {
			if !chunk[i].At.Before(f.Since) {
				out = append(out, chunk[i])
			}
		}
		if start == lo {
			break
		}
		hi, window = start-1, min(window*2, 1<<16)
	}
	return out, nil
}

// auditSeqSince is the sequence of the first record kept since t.
func (rm *Reads) auditSeqSince(ctx context.Context, t time.Time) (uint64, bool, error) {
	req := struct {
		StartTime time.Time `json:"start_time"`
		NextFor   string    `json:"next_by_subj"`
		Batch     int       `json:"batch"`
	}{t.UTC(), "$KV." + rm.audit.Bucket() + ".>", 1}
	var seq uint64
	rm.store.count(1)
	if _, err := rm.store.direct(ctx, rm.audit, req, func(_ string, rev uint64, _ []byte) error {
		seq = rev
		return nil
	}); err != nil {
		return 0, false, fmt.Errorf("read the audit bucket: %w", err)
	}
	return seq, seq != 0, nil
}

// auditRange calls fn with each record of the stream sequences from..to
// that matches filter, oldest first.
func (rm *Reads) auditRange(ctx context.Context, filter string, from, to uint64, fn func(AuditRecord)) error {
	for seq := from; seq <= to; {
		req := struct {
			Seq     uint64 `json:"seq"`
			NextFor string `json:"next_by_subj"`
			Batch   int    `json:"batch"`
		}{seq, filter, int(min(uint64(scanBatch), to-seq+1))}
		var last uint64
		rm.store.count(1)
		eob, err := rm.store.direct(ctx, rm.audit, req, func(key string, rev uint64, value []byte) error {
			last = rev
			if rev > to {
				return nil
			}
			var r AuditRecord
			if err := decode(value, &r); err != nil {
				rm.log.Warn("unreadable audit record skipped", zap.String("key", key), zap.Error(err))
				return nil
			}
			fn(r)
			return nil
		})
		if err != nil {
			return fmt.Errorf("read the audit bucket: %w", err)
		}
		if eob != nil { // the last message sent, also when it was a deletion fn did not see
			if n, err := strconv.ParseUint(eob.Header.Get("Nats-Last-Sequence"), 10, 64); err == nil && n > last {
				last = n
			}
		}
		if eob == nil || last == 0 || last >= to || eob.Header.Get("Nats-Num-Pending") == "0" {
			return nil
		}
		seq = last + 1
	}
	return nil
}

// describePause words a pause in force, for a record's before or after.
func describePause(c *Control) string {
	if c == nil {
		return "not paused"
	}
	return fmt.Sprintf("paused by %s since %s: %s", c.By, c.At.UTC().Format(time.RFC3339), c.Why)
}

func describeFreeze(f Freeze) string {
	where := "everywhere"
	if f.Organization != "" {
		where = "in " + f.Organization
	}
	return fmt.Sprintf("freeze window %s from %s to %s (%s: %s)", where, f.Start.UTC().Format(time.RFC3339), f.End.UTC().Format(time.RFC3339), f.By, f.Why)
}

func describeExclusion(x Exclusion) string {
	what := "workspace " + x.Name
	if x.Tag != "" {
		what = "workspaces tagged " + x.Tag
	}
	where := "everywhere"
	if x.Organization != "" {
		where = "in " + x.Organization
	}
	return fmt.Sprintf("%s %s excluded from cascades (%s: %s)", what, where, x.By, x.Why)
}

// FreezeState is a freeze window and whether it is in force.
type FreezeState struct {
	Freeze
	// State: in_force, upcoming or over.
	State string `json:"state"`
}

// Status is what is in force: the operators' controls, the guard, and the
// replicas seen.
type Status struct {
	// Paused: by organization, "" for everywhere.
	Paused     map[string]Control `json:"paused"`
	Freezes    []FreezeState      `json:"freezes"`
	Exclusions []Exclusion        `json:"exclusions"`
	// GuardLimit: a cascade of more members waits for an approval; 0 for
	// no guard.
	GuardLimit int  `json:"guard_limit"`
	DryRun     bool `json:"dry_run"`
	// Instance is the replica that answers.
	Instance string `json:"instance"`
	// Reconciling names the replicas that hold a cascade's lease now;
	// replicas with nothing to do are not seen (they do not announce
	// themselves).
	Reconciling []string `json:"replicas_reconciling"`
	// AuditRetention is how long audit records are kept.
	AuditRetention string `json:"audit_retention"`
}

// Paused returns the pauses in force: "" for the global one, else the
// organization.
func (rm *Reads) Paused(ctx context.Context) (map[string]Control, error) {
	return rm.store.pauses(ctx)
}

// Exclusions returns the exclusion list.
func (rm *Reads) Exclusions(ctx context.Context) ([]Exclusion, error) {
	return rm.store.exclusions(ctx)
}

// Freezes returns the freeze windows.
func (rm *Reads) Freezes(ctx context.Context) ([]Freeze, error) {
	return rm.store.freezes(ctx)
}

// Status returns what is in force now.
func (rm *Reads) Status(ctx context.Context) (*Status, error) {
	paused, err := rm.Paused(ctx)
	if err != nil {
		return nil, err
	}
	fs, err := rm.Freezes(ctx)
	if err != nil {
		return nil, err
	}
	excl, err := rm.Exclusions(ctx)
	if err != nil {
		return nil, err
	}
	s := &Status{Paused: paused, Freezes: []FreezeState{}, Exclusions: excl, GuardLimit: rm.opts.GuardLimit, DryRun: rm.opts.DryRun,
		Instance: rm.opts.Instance, Reconciling: []string{}, AuditRetention: rm.opts.AuditRetention.String()}
	if s.Exclusions == nil {
		s.Exclusions = []Exclusion{}
	}
	now := rm.opts.Now()
	for _, f := range fs {
		s.Freezes = append(s.Freezes, FreezeState{Freeze: f, State: cascade.Freeze(f).Phase(now)})
	}
	holders, err := rm.store.leaseHolders(ctx, 100)
	if err != nil {
		return nil, err
	}
	for _, h := range holders {
		s.Reconciling = append(s.Reconciling, clip(h, MaxName))
	}
	return s, nil
}
