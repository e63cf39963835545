package app

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	tfe "github.com/hashicorp/go-tfe"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
)

// tfeTransport sees every request of the process's go-tfe client that goes
// out, behind the rate limit of tfeclient's transport (retries included):
// it counts them by endpoint and status code, and reports any 401 or 403 to
// the token status.
type tfeTransport struct {
	next     http.RoundTripper
	requests *prometheus.CounterVec
	auth     *tfeAuth
}

func (t *tfeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	endpoint := tfeEndpoint(r.Method, r.URL.Path)
	res, err := t.next.RoundTrip(r)
	if err != nil {
		t.requests.WithLabelValues(endpoint, "error").Inc()
		return nil, err
	}
	t.requests.WithLabelValues(endpoint, strconv.Itoa(res.StatusCode)).Inc()
	if res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden {
		t.auth.refused(endpoint, res.StatusCode)
	}
	return res, nil
}

// tfePathWords are the path segments of the TFE API kept in the endpoint
// label; every other segment (IDs, organization and workspace names) is
// written :id. The label set is bounded by the calls the code makes.
var tfePathWords = map[string]bool{
	"api": true, "v2": true, "ping": true, "account": true, "details": true, "organizations": true,
	"workspaces": true, "run-triggers": true, "runs": true, "actions": true, "apply": true, "cancel": true,
	"discard": true, "force-cancel": true, "force-unlock": true, "lock": true, "unlock": true,
	"safe-delete": true, "comments": true, "notification-configurations": true, "verify": true,
	"admin": true, "terraform-versions": true, "configuration-versions": true,
	"current-state-version": true, "state-versions": true, "outputs": true, "users": true,
}

// tfeEndpoint is the method and the path with IDs and names replaced by
// :id, e.g. "POST /api/v2/runs/:id/actions/discard"; "other" for what is
// not an API path of a usual shape.
func tfeEndpoint(method, path string) string {
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
		if tfePathWords[s] {
			b.WriteString(s)
		} else {
			b.WriteString(":id")
		}
	}
	return b.String()
}

// tfeAuth is whether TFE accepts the daemon's API token, as far as the
// daemon knows: checked at start, refused by any 401 or 403 answer, and
// checked again every interval while refused, so that a token TFE accepts
// again (re-enabled, given back its permissions) recovers without a
// restart. A refusal is logged and alerted once per change, shown by
// /readyz and by orchestrator_tfe_token_valid. Nothing of the token is
// ever shown.
type tfeAuth struct {
	log    *zap.Logger
	alerts alerts.Notifier
	valid  prometheus.Gauge

	mu      sync.Mutex
	checked bool   // TFE answered a check, one way or the other
	problem string // why TFE refused the token; "" while it accepts it
}

func newTFEAuth(log *zap.Logger, notifier alerts.Notifier, reg prometheus.Registerer) *tfeAuth {
	a := &tfeAuth{log: log, alerts: notifier, valid: prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "orchestrator_tfe_token_valid",
		Help: "1 while TFE accepts the API token, 0 once it refused it (401 or 403) or before it answered.",
	})}
	reg.MustRegister(a.valid)
	return a
}

// refused records that TFE answered code to a request to endpoint.
func (a *tfeAuth) refused(endpoint string, code int) {
	problem := fmt.Sprintf("TFE refused the API token: %d %s on %s", code, http.StatusText(code), endpoint)
	a.mu.Lock()
	changed := a.problem == ""
	a.checked, a.problem = true, problem
	a.mu.Unlock()
	a.valid.Set(0)
	if !changed {
		return
	}
	a.log.Error("tfe refused the api token", zap.String("endpoint", endpoint), zap.Int("code", code))
	a.alerts.Raise(context.Background(), alerts.Alert{
		Kind: alerts.KindTFEUnauthorized, Severity: alerts.SeverityCritical, Key: "tfe-unauthorized",
		Message: problem + "; cascades are not dispatched and stuck runs not stopped until it is accepted (checked again every minute or as configured)",
	})
}

// accepted records that TFE accepted the token.
func (a *tfeAuth) accepted() {
	a.mu.Lock()
	was := a.problem
	a.checked, a.problem = true, ""
	a.mu.Unlock()
	a.valid.Set(1)
	if was != "" {
		a.log.Info("tfe accepts the api token again")
	}
}

// Problem says why the daemon is not ready as far as TFE goes; "" when TFE
// accepts the token or has not answered.
func (a *tfeAuth) Problem() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.problem
}

func (a *tfeAuth) ok() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.checked && a.problem == ""
}

// check reads the token's user (GET /api/v2/account/details). A 401 or 403
// reaches refused through the transport; any other failure leaves the
// status as it was.
func (a *tfeAuth) check(ctx context.Context, users tfe.Users) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	user, err := users.ReadCurrent(ctx)
	switch {
	case err == nil:
		a.accepted()
		a.log.Debug("tfe token checked", zap.String("user", user.Username))
	case tfeclient.Classify(err, nil) == tfeclient.Unauthorized || ctx.Err() != nil:
		// Recorded by the transport, or the daemon is stopping.
	default:
		a.log.Warn("tfe token not checked", zap.Error(err))
	}
}

// run checks the token again every interval until TFE accepts it, and
// again after any refusal, until ctx ends.
func (a *tfeAuth) run(ctx context.Context, users tfe.Users, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if !a.ok() {
				a.check(ctx, users)
			}
		}
	}
}
