package tfesim_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim/simtest"
)

const adminToken = "admin-token-for-tests"

// testEnv is a simulator on a manual clock behind a real HTTP server, and a
// go-tfe client talking to it.
type testEnv struct {
	t      *testing.T
	ctx    context.Context
	sim    *tfesim.Sim
	clock  *tfesim.ManualClock
	srv    *simtest.Server
	client *tfe.Client
}

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newEnv(t *testing.T, opts tfesim.Options) *testEnv {
	t.Helper()
	clock := tfesim.NewManualClock(epoch)
	if opts.Token == "" {
		opts.Token = adminToken
	}
	if opts.RateLimit == 0 {
		opts.RateLimit = 10000 // tests that are not about the rate limit should not wait on it
	}
	if opts.Clock == nil {
		opts.Clock = clock
	}
	srv := simtest.Start(t, opts) // instant runs unless a test times them
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return &testEnv{t: t, ctx: ctx, sim: srv.Sim, clock: clock, srv: srv, client: srv.Client}
}

func (e *testEnv) newClient(token string) *tfe.Client {
	e.t.Helper()
	return e.srv.NewClient(e.t, token)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, 10*time.Second, cond)
}

func (e *testEnv) org(name string) *tfe.Organization {
	e.t.Helper()
	o, err := e.client.Organizations.Create(e.ctx, tfe.OrganizationCreateOptions{Name: tfe.String(name), Email: tfe.String("ops@" + name + ".test")})
	if err != nil {
		e.t.Fatalf("create organization %s: %v", name, err)
	}
	return o
}

// workspace creates a workspace with an uploaded configuration version.
func (e *testEnv) workspace(org string, opts tfe.WorkspaceCreateOptions) *tfe.Workspace {
	e.t.Helper()
	ws, err := e.client.Workspaces.Create(e.ctx, org, opts)
	if err != nil {
		e.t.Fatalf("create workspace %s: %v", *opts.Name, err)
	}
	cv, err := e.client.ConfigurationVersions.Create(e.ctx, ws.ID, tfe.ConfigurationVersionCreateOptions{AutoQueueRuns: tfe.Bool(false)})
	if err != nil {
		e.t.Fatalf("create configuration version: %v", err)
	}
	if err := e.client.ConfigurationVersions.UploadTarGzip(e.ctx, cv.UploadURL, tarGz(e.t)); err != nil {
		e.t.Fatalf("upload configuration: %v", err)
	}
	return ws
}

func (e *testEnv) run(wsID string, opts tfe.RunCreateOptions) *tfe.Run {
	e.t.Helper()
	opts.Workspace = &tfe.Workspace{ID: wsID}
	r, err := e.client.Runs.Create(e.ctx, opts)
	if err != nil {
		e.t.Fatalf("create run: %v", err)
	}
	return r
}

func (e *testEnv) status(runID string) tfe.RunStatus {
	e.t.Helper()
	r, err := e.client.Runs.Read(e.ctx, runID)
	if err != nil {
		e.t.Fatalf("read run %s: %v", runID, err)
	}
	return r.Status
}

func (e *testEnv) behave(wsID string, b tfesim.Behavior) {
	e.t.Helper()
	if err := e.sim.SetBehavior(wsID, b); err != nil {
		e.t.Fatalf("set behavior: %v", err)
	}
}

// tarGz returns a gzipped tar holding one Terraform file.
func tarGz(t *testing.T) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	body := []byte("terraform {}\n")
	if err := tw.WriteHeader(&tar.Header{Name: "main.tf", Mode: 0o644, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}
