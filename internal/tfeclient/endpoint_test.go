package tfeclient_test

import (
	"testing"

	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
)

// The endpoint label keeps the API's words and writes every ID and name
// :id, so its values are bounded by the calls the code makes.
func TestEndpoint(t *testing.T) {
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/api/v2/ping", "GET /api/v2/ping"},
		{"GET", "/api/v2/account/details", "GET /api/v2/account/details"},
		{"POST", "/api/v2/runs", "POST /api/v2/runs"},
		{"GET", "/api/v2/runs/run-8F5JFydVYAmtTjET", "GET /api/v2/runs/:id"},
		{"POST", "/api/v2/runs/run-8F5JFydVYAmtTjET/actions/discard", "POST /api/v2/runs/:id/actions/discard"},
		{"GET", "/api/v2/workspaces/ws-2HRvNs49EWPjDqT1/run-triggers", "GET /api/v2/workspaces/:id/run-triggers"},
		{"GET", "/api/v2/organizations/acme/workspaces/network", "GET /api/v2/organizations/:id/workspaces/:id"},
		{"GET", "/api/v2/organizations/another-org/workspaces", "GET /api/v2/organizations/:id/workspaces"},
		{"POST", "/api/v2/admin/runs/run-x/actions/force-cancel", "POST /api/v2/admin/runs/:id/actions/force-cancel"},
		{"GET", "/_archivist/v1/object/secret", "other"},
		{"GET", "/api/v2/a/b/c/d/e/f/g/h", "other"},
		{"BREW", "/api/v2/runs", "other"},
	} {
		if got := tfeclient.Endpoint(tc.method, tc.path); got != tc.want {
			t.Errorf("%s %s: got %q, want %q", tc.method, tc.path, got, tc.want)
		}
	}
}
