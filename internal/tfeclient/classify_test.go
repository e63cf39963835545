package tfeclient_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
)

// answered is the Status of a call whose one request TFE answered code,
// recorded by the transport.
func answered(t *testing.T, code int) *tfeclient.Status {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }))
	defer srv.Close()
	ctx, status := tfeclient.Record(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := (&http.Client{Transport: tfeclient.Transport(http.DefaultTransport)}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	return status
}

func TestClassify(t *testing.T) {
	plain := errors.New("TFE said something")
	for _, tc := range []struct {
		name   string
		err    error
		status *tfeclient.Status
		want   tfeclient.Class
	}{
		{"go-tfe's 401", tfe.ErrUnauthorized, nil, tfeclient.Unauthorized},
		{"go-tfe's 404, wrapped", fmt.Errorf("read run: %w", tfe.ErrResourceNotFound), nil, tfeclient.Gone},
		{"not sent", fmt.Errorf("list: %w", tfeclient.ErrNotSent), nil, tfeclient.NotSent},
		{"a deadline", context.DeadlineExceeded, nil, tfeclient.Transient},
		{"a connection error", &net.OpError{Op: "dial", Err: errors.New("refused")}, nil, tfeclient.Transient},
		{"an error with nothing to tell", plain, nil, tfeclient.Transient},
		{"recorded 403", plain, answered(t, 403), tfeclient.Unauthorized},
		{"recorded 404", plain, answered(t, 404), tfeclient.Gone},
		{"recorded 409", plain, answered(t, 409), tfeclient.Refused},
		{"recorded 422", plain, answered(t, 422), tfeclient.Refused},
		{"recorded 429", plain, answered(t, 429), tfeclient.Transient},
		{"recorded 500", plain, answered(t, 500), tfeclient.Transient},
		{"a raw call's 401", &tfeclient.StatusError{Code: 401}, nil, tfeclient.Unauthorized},
		{"a raw call's 403, wrapped", fmt.Errorf("read output: %w", &tfeclient.StatusError{Code: 403}), nil, tfeclient.Unauthorized},
		{"a raw call's 404", &tfeclient.StatusError{Code: 404}, nil, tfeclient.Gone},
		{"a raw call's 400", &tfeclient.StatusError{Code: 400}, nil, tfeclient.Refused},
		{"a raw call's 422", &tfeclient.StatusError{Code: 422}, nil, tfeclient.Refused},
		{"a raw call's 429", &tfeclient.StatusError{Code: 429}, nil, tfeclient.Transient},
		{"a raw call's 503", &tfeclient.StatusError{Code: 503}, nil, tfeclient.Transient},
		{"the recorded answer before the error's", &tfeclient.StatusError{Code: 404}, answered(t, 409), tfeclient.Refused},
	} {
		if got := tfeclient.Classify(tc.err, tc.status); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
