package tfeclient

import (
	"net/http"
	"strings"
)

// pathWords are the path segments of the TFE API kept in an endpoint;
// every other segment (IDs, organization and workspace names) is written
// :id. The endpoints are so bounded by the calls the code makes.
var pathWords = map[string]bool{
	"api": true, "v2": true, "ping": true, "account": true, "details": true, "organizations": true,
	"workspaces": true, "run-triggers": true, "runs": true, "actions": true, "apply": true, "cancel": true,
	"discard": true, "force-cancel": true, "force-unlock": true, "lock": true, "unlock": true,
	"safe-delete": true, "comments": true, "notification-configurations": true, "verify": true,
	"admin": true, "terraform-versions": true, "configuration-versions": true,
	"current-state-version": true, "state-versions": true, "outputs": true, "users": true,
}

// Endpoint is a request's method and path with IDs and names replaced by
// :id, e.g. "POST /api/v2/runs/:id/actions/discard"; "other" for what is
// not an API path of a usual shape. It names requests in metrics and logs
// without what they name.
func Endpoint(method, path string) string {
	switch method {
	case http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete:
	default:
		return "other"
	}
	segments := strings.Split(strings.Trim(path, "/"), "/")
	if len(segments) < 3 || len(segments) > 8 || segments[0] != "api" || segments[1] != "v2" {
		return "other"
	}
	var b strings.Builder
	b.WriteString(method)
	b.WriteByte(' ')
	for _, s := range segments {
		b.WriteByte('/')
		if pathWords[s] {
			b.WriteString(s)
		} else {
			b.WriteString(":id")
		}
	}
	return b.String()
}
