package app

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	tfe "github.com/hashicorp/go-tfe"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
)

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
