// Package tfeclient owns what TFE means to the orchestrator, so that the
// rest of the code needs as little of go-tfe as it can:
//
//   - the transport every go-tfe call goes through: the one place where
//     the process's HTTP traffic to TFE is seen, counted (by Endpoint and
//     status) and its refusals of the token reported, and the rate limit
//     the replicas of a deployment share;
//   - what a caller learns from it that go-tfe's errors do not keep (the
//     HTTP status of an answer, whether the request was sent at all), and
//     Classify, the one reading of what a failed call means;
//   - EachPage and All, the one way TFE's lists are read page by page;
//   - Cache, the one cache of what was read, fresh for a TTL;
//   - StatusAt, when a run entered its status (the statuses themselves are
//     in the subpackage runstatus, which imports nothing);
//   - small interfaces in the orchestrator's own types (Workspace, Run,
//     RunTrigger, NotificationConfiguration, StateVersion, ...), one file
//     per concern, and TFE, their implementation over a go-tfe client:
//     the dispatcher, tfegraph, tfenotify, the watchdog and the demo
//     reach TFE through them and import no go-tfe (imports_test.go keeps
//     the list of the packages that do: the daemon's wiring and this
//     one).
//
// It guarantees that, with a Limiter, every request of the process (retries
// and go-tfe's /ping included) waits for its turn in this replica's share of
// the deployment's rate, that no request is sent while a back-off asked for
// by a 429 to any replica is in force, and that a request the limiter did
// not send fails with ErrNotSent (Classify: NotSent) and reached TFE in no
// form.
//
// go-tfe turns most answers into plain errors (it keeps sentinels only for
// 401 and 404); Record gives a call a place where the transport writes the
// status of the answers it got.
package tfeclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"

	tfe "github.com/hashicorp/go-tfe"
)

type recorderKey struct{}

// Status holds the HTTP status of the last answer TFE gave to requests made
// with a context from Record, and whether they were sent.
type Status struct {
	code atomic.Int32
	// unknown: a request went out and got no answer or a 5xx, so what it
	// did is unknown; notSent: the last request was not sent.
	unknown, notSent atomic.Bool
}

type sending int

const (
	sent sending = iota
	unknown
	notSent
)

func (s *Status) note(what sending) {
	if s == nil {
		return
	}
	switch what {
	case sent:
		s.notSent.Store(false)
	case unknown:
		s.unknown.Store(true)
	case notSent:
		s.notSent.Store(true)
	}
}

func (s *Status) answered(code int) {
	if s != nil {
		s.code.Store(int32(code))
	}
}

// NotSent reports whether the limiter kept the last request back, and no
// request before it went out with an outcome that is unknown.
func (s *Status) NotSent() bool {
	return s != nil && s.notSent.Load() && !s.unknown.Load()
}

// Code is the status of the last answer, 0 when none came.
func (s *Status) Code() int {
	if s == nil {
		return 0
	}
	return int(s.code.Load())
}

// Record returns a context whose requests through the transport (Transport,
// NewTransport) note their answer's status, and whether they were sent, in
// the returned Status. Use one per call.
func Record(ctx context.Context) (context.Context, *Status) {
	s := &Status{}
	return context.WithValue(ctx, recorderKey{}, s), s
}

// Class is what a failed call means for the caller.
type Class int

// Classes of failure.
const (
	// Transient: try again later, backing off (429, 5xx, timeouts,
	// connection errors).
	Transient Class = iota
	// Unauthorized: the token is wrong or lacks permission (401, 403);
	// retrying will not help until an operator fixes it.
	Unauthorized
	// Gone: what the call names does not exist, or is not visible to the
	// token (404).
	Gone
	// Refused: TFE refused the request as it stands (400, 409, 422).
	Refused
	// NotSent: the rate limiter did not send the request (its turn came
	// after its deadline, or its caller gave up waiting): TFE saw nothing,
	// nothing happened; try again in a later turn.
	NotSent
)

// StatusError is an answer of TFE's that was not a success, for a call
// made outside go-tfe's typed methods (a raw request), whose errors keep
// no status. Classify reads its code.
type StatusError struct{ Code int }

func (e *StatusError) Error() string { return fmt.Sprintf("TFE answered %d", e.Code) }

// Classify says what err, from a call whose answers status recorded, means.
// A *StatusError in err stands for the status when none was recorded.
// A call whose request the limiter did not send is NotSent: by ErrNotSent,
// or, when go-tfe returned the context's error in its place (the context
// ended while the request waited), by status.
func Classify(err error, status *Status) Class {
	if status == nil || !status.unknown.Load() {
		ctxErr := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
		if errors.Is(err, ErrNotSent) || status.NotSent() && ctxErr {
			return NotSent
		}
	}
	switch {
	case errors.Is(err, tfe.ErrUnauthorized):
		return Unauthorized
	case errors.Is(err, tfe.ErrResourceNotFound):
		return Gone
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return Transient
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return Transient
	}
	code := status.Code()
	var se *StatusError
	if code == 0 && errors.As(err, &se) {
		code = se.Code
	}
	switch {
	case code == http.StatusUnauthorized, code == http.StatusForbidden:
		return Unauthorized
	case code == http.StatusNotFound:
		return Gone
	case code == http.StatusBadRequest, code == http.StatusConflict, code == http.StatusUnprocessableEntity:
		return Refused
	}
	return Transient
}
