// Package tfeclient is where the orchestrator's HTTP traffic to TFE is
// seen: the transport every go-tfe call goes through, and what a caller
// learns from it that go-tfe's errors do not keep (the HTTP status of an
// answer), so that failures are classified where they are handled.
//
// go-tfe turns most answers into plain errors (it keeps sentinels only for
// 401 and 404); Record gives a call a place where the transport writes the
// status of the answers it got.
package tfeclient

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"

	tfe "github.com/hashicorp/go-tfe"
)

type recorderKey struct{}

// Status holds the HTTP status of the last answer TFE gave to requests made
// with a context from Record.
type Status struct{ code atomic.Int32 }

// Code is the status of the last answer, 0 when none came.
func (s *Status) Code() int {
	if s == nil {
		return 0
	}
	return int(s.code.Load())
}

// Record returns a context whose requests through Transport note their
// answer's status in the returned Status.
func Record(ctx context.Context) (context.Context, *Status) {
	s := &Status{}
	return context.WithValue(ctx, recorderKey{}, s), s
}

// Transport notes each answer's status in the Status of its request's
// context, when there is one.
func Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return roundTripper{next}
}

type roundTripper struct{ next http.RoundTripper }

func (t roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := t.next.RoundTrip(r)
	if s, ok := r.Context().Value(recorderKey{}).(*Status); ok && res != nil {
		s.code.Store(int32(res.StatusCode))
	}
	return res, err
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
)

// Classify says what err, from a call whose answers status recorded, means.
func Classify(err error, status *Status) Class {
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
	switch code := status.Code(); {
	case code == http.StatusUnauthorized, code == http.StatusForbidden:
		return Unauthorized
	case code == http.StatusNotFound:
		return Gone
	case code == http.StatusBadRequest, code == http.StatusConflict, code == http.StatusUnprocessableEntity:
		return Refused
	}
	return Transient
}
