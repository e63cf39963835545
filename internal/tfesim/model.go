package tfesim

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Clock tells the simulator what time it is. Runs move through their
// statuses when the clock passes the time their next transition is due, so a
// test that owns the clock decides exactly when that happens.
type Clock interface {
	Now() time.Time
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// ManualClock is a Clock that moves only when told to. It is safe for
// concurrent use.
type ManualClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewManualClock returns a clock standing at t.
func NewManualClock(t time.Time) *ManualClock { return &ManualClock{now: t} }

// Now returns the clock's current time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *ManualClock) advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// Run statuses the simulator uses, spelled as TFE spells them.
const (
	StatusPending            = "pending"
	StatusPlanQueued         = "plan_queued"
	StatusPlanning           = "planning"
	StatusPlanned            = "planned"
	StatusConfirmed          = "confirmed"
	StatusApplyQueued        = "apply_queued"
	StatusApplying           = "applying"
	StatusApplied            = "applied"
	StatusPlannedAndFinished = "planned_and_finished"
	StatusErrored            = "errored"
	StatusCanceled           = "canceled"
	StatusDiscarded          = "discarded"
	StatusForceCanceled      = "force_canceled"
)

// Outcomes a workspace's behaviour can give its runs.
const (
	OutcomeApplied   = "applied"
	OutcomeErrored   = "errored"
	OutcomeNoChanges = "no_changes"
)

func isFinal(status string) bool {
	switch status {
	case StatusApplied, StatusPlannedAndFinished, StatusErrored, StatusCanceled,
		StatusDiscarded, StatusForceCanceled:
		return true
	}
	return false
}

// Behavior is how a workspace's runs play out. The zero value plans and
// applies at once, with changes, and writes no outputs.
type Behavior struct {
	PlanDurationMS    int64  `json:"plan_duration_ms" yaml:"plan_duration_ms"`
	ApplyDurationMS   int64  `json:"apply_duration_ms" yaml:"apply_duration_ms"`
	Outcome           string `json:"outcome" yaml:"outcome"`
	StuckIn           string `json:"stuck_in" yaml:"stuck_in"`
	DropNotifications bool   `json:"drop_notifications" yaml:"drop_notifications"`
	// Outputs are what every apply of the workspace writes to its new state
	// version, by output name, until they are changed: an apply with the
	// same outputs writes the same values again under a new serial.
	Outputs map[string]Output `json:"outputs,omitempty" yaml:"outputs"`
}

// Output is one output value a workspace's applies write to its state.
// Value is any JSON value (in a scenario, any YAML value JSON can hold);
// its type and detailed-type are derived from it as Terraform would for a
// literal. A null value writes no output: Terraform keeps no null outputs
// in state.
type Output struct {
	Value     any  `json:"value" yaml:"value"`
	Sensitive bool `json:"sensitive,omitempty" yaml:"sensitive"`
}

// stuckable lists the statuses a run can be told to stay in.
var stuckable = map[string]bool{
	StatusPlanQueued: true, StatusPlanning: true, StatusApplyQueued: true, StatusApplying: true,
}

func (b Behavior) validate() error {
	switch b.Outcome {
	case "", OutcomeApplied, OutcomeErrored, OutcomeNoChanges:
	default:
		return errUnprocessable("outcome must be applied, errored or no_changes")
	}
	if b.StuckIn != "" && !stuckable[b.StuckIn] {
		return errUnprocessable("stuck_in must be empty or one of plan_queued, planning, apply_queued, applying")
	}
	if b.PlanDurationMS < 0 || b.ApplyDurationMS < 0 {
		return errUnprocessable("durations must not be negative")
	}
	for name := range b.Outputs {
		if !validOutputName.MatchString(name) {
			return errUnprocessable(fmt.Sprintf("output name %q is invalid: a letter or _, then letters, digits, _ and -", name))
		}
	}
	return nil
}

// normalized validates b and returns it with its outputs' values deep
// copied into the simulator's own JSON form (numbers as json.Number), so
// that the caller's maps are never shared with the simulator's state. The
// map and values it returns are never changed afterwards (a change of
// outputs replaces the map), so state versions share them and readers may
// encode a copy of the Behavior after releasing s.mu.
func (b Behavior) normalized() (Behavior, error) {
	if err := b.validate(); err != nil {
		return b, err
	}
	if b.Outputs == nil {
		return b, nil
	}
	outputs := make(map[string]Output, len(b.Outputs))
	for name, o := range b.Outputs {
		v, err := jsonValue(o.Value)
		if err != nil {
			return b, errUnprocessable(fmt.Sprintf("output %q: the value is not JSON: %v", name, err))
		}
		outputs[name] = Output{Value: v, Sensitive: o.Sensitive}
	}
	b.Outputs = outputs
	return b, nil
}

type workspace struct {
	id                  string
	org                 string
	name                string
	description         string
	createdAt           time.Time
	updatedAt           time.Time
	autoApply           bool
	autoApplyRunTrigger bool
	executionMode       string
	terraformVersion    string
	workingDirectory    string
	agentPoolID         string
	resourceCount       int
	tags                []string
	userLock            *userLock // a lock a user took, nil when none
	behavior            Behavior
	runs                []*run // in creation order
	// currentRun is the run that most recently left pending, kept after it
	// ends until the next one starts; nil for a workspace that never ran.
	currentRun *run
	// currentCV is the configuration version runs use when they name none.
	currentCV *configVersion
	// states are the state versions its applies wrote, oldest first; the
	// last is the current one.
	states []*stateVersion
}

// userLock is a lock a user took through the API or a scenario.
type userLock struct {
	by     *user
	reason string
}

// activeRun is the run that holds ws's lock: its current run, until that
// run ends. Plan-only runs never hold it.
func (ws *workspace) activeRun() *run {
	if r := ws.currentRun; r != nil && !isFinal(r.status) {
		return r
	}
	return nil
}

// locked reports whether a user or a run holds ws.
func (ws *workspace) locked() bool { return ws.userLock != nil || ws.activeRun() != nil }

type runTrigger struct {
	id        string
	seq       uint64
	target    *workspace
	source    *workspace
	createdAt time.Time
}

type comment struct {
	id   string
	body string
	by   *user
}

type run struct {
	id                     string
	seq                    uint64
	ws                     *workspace
	cv                     *configVersion
	status                 string
	message                string
	source                 string
	triggerReason          string
	autoApply              bool
	isDestroy              bool
	planOnly               bool
	hasChanges             bool
	createdAt              time.Time
	createdBy              *user
	confirmedBy            *user // who applied it by hand; nil when it auto-applied or never applied
	updatedBy              *user // who caused its latest change, for notifications
	timestamps             map[string]time.Time
	nextAt                 time.Time // when the next automatic transition is due; zero while waiting
	outcome                string
	cancelRequested        bool
	canceledAt             time.Time
	forceCancelAvailableAt time.Time
	comments               []comment
}

type configVersion struct {
	id            string
	seq           uint64
	ws            *workspace
	status        string
	source        string
	autoQueueRuns bool
	speculative   bool
	provisional   bool
	uploadSecret  string
	createdAt     time.Time
	uploadedAt    time.Time
}

type notificationConfig struct {
	id              string
	ws              *workspace
	name            string
	destinationType string
	enabled         bool
	token           string
	url             string
	triggers        []string
	createdAt       time.Time
	updatedAt       time.Time
	responses       []deliveryResponse
}

type deliveryResponse struct {
	URL        string              `json:"url"`
	Body       string              `json:"body"`
	Code       string              `json:"code"`
	Headers    map[string][]string `json:"headers"`
	SentAt     string              `json:"sent-at"`
	Successful string              `json:"successful"`
}

type toolVersion struct {
	id               string
	version          string
	url              string // the linux/amd64 build's, or empty
	sha              string
	archs            []toolArch
	deprecated       bool
	deprecatedReason string
	official         bool
	enabled          bool
	beta             bool
	createdAt        time.Time
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// newID returns prefix + "-" + 16 alphanumerics, the shape of TFE's IDs.
func newID(prefix string) string {
	var b strings.Builder
	b.Grow(len(prefix) + 17)
	b.WriteString(prefix)
	b.WriteByte('-')
	for range 16 {
		b.WriteByte(idAlphabet[rand.IntN(len(idAlphabet))])
	}
	return b.String()
}
