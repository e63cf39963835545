package tfesim_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"testing"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

func tarGz(t *testing.T) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	body := []byte("terraform {}\n")
	if err := tw.WriteHeader(&tar.Header{Name: "main.tf", Mode: 0o644, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	tw.Write(body)
	tw.Close()
	gz.Close()
	return &buf
}

func TestSmoke(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net"), AutoApply: tfe.Bool(true)})
	r := e.run(ws.ID, tfe.RunCreateOptions{Message: tfe.String("hi")})
	t.Logf("run %s %s", r.ID, r.Status)
	got, err := e.client.Workspaces.ReadByID(e.ctx, ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", got)
	t.Logf("%s", e.status(r.ID))
}
