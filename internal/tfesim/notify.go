package tfesim

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Notification triggers TFE sends for runs. go-tfe (v1.111.2, and its v2
// models) and TFE's documentation (up to the 2025 pages) name no others:
// no finer-grained triggers beside run:needs_attention and run:errored
// were found, so none is simulated.
const (
	TriggerCreated        = "run:created"
	TriggerPlanning       = "run:planning"
	TriggerNeedsAttention = "run:needs_attention"
	TriggerApplying       = "run:applying"
	TriggerCompleted      = "run:completed"
	TriggerErrored        = "run:errored"
	TriggerVerification   = "verification"
)

var validTriggers = map[string]bool{
	TriggerCreated: true, TriggerPlanning: true, TriggerNeedsAttention: true,
	TriggerApplying: true, TriggerCompleted: true, TriggerErrored: true,
	"assessment:check_failure": true, "assessment:drifted": true, "assessment:failed": true,
	"workspace:auto_destroy_reminder": true, "workspace:auto_destroy_run_results": true,
}

// SignatureHeader carries the HMAC-SHA512 of the body, keyed by the
// notification configuration's token, in lowercase hex.
const SignatureHeader = "X-TFE-Notification-Signature"

// triggerFor maps a status a run enters to the notification trigger TFE sends
// for it, and the message it sends with it. Statuses with no trigger send
// nothing; that includes discarded, for which TFE documents no notification.
// "Run Canceled" is the message of TFE's documented sample payload; the
// other messages are the simulator's own.
func triggerFor(status string) (trigger, message string) {
	switch status {
	case StatusPending:
		return TriggerCreated, "Run created"
	case StatusPlanning:
		return TriggerPlanning, "Run planning"
	case StatusPlanned:
		return TriggerNeedsAttention, "Run needs attention"
	case StatusApplying:
		return TriggerApplying, "Run applying"
	case StatusApplied:
		return TriggerCompleted, "Applied"
	case StatusPlannedAndFinished:
		return TriggerCompleted, "Planned, no changes"
	case StatusErrored:
		return TriggerErrored, "Errored"
	case StatusCanceled, StatusForceCanceled:
		return TriggerErrored, "Run Canceled"
	}
	return "", ""
}

// Payload is the generic notification body, version 1, as TFE sends it.
// Pointer fields are null in the verification payload.
type Payload struct {
	PayloadVersion              int            `json:"payload_version"`
	NotificationConfigurationID string         `json:"notification_configuration_id"`
	RunURL                      *string        `json:"run_url"`
	RunID                       *string        `json:"run_id"`
	RunMessage                  *string        `json:"run_message"`
	RunCreatedAt                *string        `json:"run_created_at"`
	RunCreatedBy                *string        `json:"run_created_by"`
	WorkspaceID                 *string        `json:"workspace_id"`
	WorkspaceName               *string        `json:"workspace_name"`
	OrganizationName            *string        `json:"organization_name"`
	Notifications               []Notification `json:"notifications"`
}

// Notification is one event in a Payload.
type Notification struct {
	Message      string  `json:"message"`
	Trigger      string  `json:"trigger"`
	RunStatus    *string `json:"run_status"`
	RunUpdatedAt *string `json:"run_updated_at"`
	RunUpdatedBy *string `json:"run_updated_by"`
}

func ptr(s string) *string { return &s }

// rfc3339 formats t as RFC 3339 with milliseconds, so that runs a few
// milliseconds apart keep their order.
func rfc3339(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// notifyRun queues the notification for r's new status to every enabled
// configuration of its workspace that subscribes to the trigger.
// Plan-only runs notify no one: TFE documents that speculative plans do
// not support notifications.
func (s *Sim) notifyRun(r *run, at time.Time) {
	trigger, message := triggerFor(r.status)
	if trigger == "" || r.planOnly {
		return
	}
	if r.status == StatusPlanned && r.autoApply {
		return // it goes on at once: nothing needs a person's attention
	}
	ws := r.ws
	for _, nc := range s.workspaceNotifications(ws) {
		if !nc.enabled || !contains(nc.triggers, trigger) {
			continue
		}
		if ws.behavior.DropNotifications {
			s.count(func(st *Stats) { st.Notifications.Dropped++ })
			continue
		}
		p := Payload{
			PayloadVersion:              1,
			NotificationConfigurationID: nc.id,
			RunURL:                      ptr(s.opts.Address + "/app/" + ws.org + "/" + ws.name + "/runs/" + r.id),
			RunID:                       ptr(r.id),
			RunMessage:                  ptr(r.message),
			RunCreatedAt:                ptr(rfc3339(r.createdAt)),
			RunCreatedBy:                ptr(r.createdBy.username),
			WorkspaceID:                 ptr(ws.id),
			WorkspaceName:               ptr(ws.name),
			OrganizationName:            ptr(ws.org),
			Notifications: []Notification{{
				Message:      message,
				Trigger:      trigger,
				RunStatus:    ptr(r.status),
				RunUpdatedAt: ptr(rfc3339(at)),
				RunUpdatedBy: ptr(r.updatedBy.username),
			}},
		}
		s.notify.enqueue(delivery{ncID: nc.id, url: nc.url, token: nc.token, payload: p})
	}
}

func verificationPayload(nc *notificationConfig) Payload {
	return Payload{
		PayloadVersion:              1,
		NotificationConfigurationID: nc.id,
		Notifications: []Notification{{
			Message: "Verification of " + nc.name,
			Trigger: TriggerVerification,
		}},
	}
}

// Sign returns the signature TFE puts in SignatureHeader for body under token.
func Sign(token string, body []byte) string {
	m := hmac.New(sha512.New, []byte(token))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

type delivery struct {
	ncID    string
	url     string
	token   string
	payload Payload
}

// notifier delivers notifications one at a time, in the order they were
// queued, so that a receiver sees a run's events in the order they happened.
// Like TFE, it does not retry a failed delivery.
type notifier struct {
	client *http.Client
	log    *zap.Logger
	record func(ncID string, resp deliveryResponse, ok bool)

	mu      sync.Mutex
	queue   []delivery
	wake    chan struct{}
	pending sync.WaitGroup
}

func newNotifier(client *http.Client, log *zap.Logger, record func(string, deliveryResponse, bool)) *notifier {
	return &notifier{client: client, log: log, record: record, wake: make(chan struct{}, 1)}
}

func (n *notifier) enqueue(d delivery) {
	n.mu.Lock()
	n.queue = append(n.queue, d)
	n.pending.Add(1)
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *notifier) run(ctx context.Context) {
	for {
		n.mu.Lock()
		batch := n.queue
		n.queue = nil
		n.mu.Unlock()
		for _, d := range batch {
			n.send(ctx, d)
			n.pending.Done()
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			n.drop()
			return
		case <-n.wake:
		}
	}
}

// drop discards what is still queued at shutdown.
func (n *notifier) drop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for range n.queue {
		n.pending.Done()
	}
	n.queue = nil
}

// send delivers one payload and reports whether the receiver answered 2xx.
func (n *notifier) send(ctx context.Context, d delivery) bool {
	body, err := json.Marshal(d.payload)
	if err != nil {
		return false
	}
	resp := deliveryResponse{URL: d.url, SentAt: rfc3339(time.Now()), Successful: "false"}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, bytes.NewReader(body))
	if err != nil {
		n.record(d.ncID, resp, false)
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "TFE")
	if d.token != "" {
		req.Header.Set(SignatureHeader, Sign(d.token, body))
	}
	res, err := n.client.Do(req)
	if err != nil {
		n.log.Debug("notification delivery failed", zap.String("notification_configuration_id", d.ncID), zap.Error(err))
		n.record(d.ncID, resp, false)
		return false
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	ok := res.StatusCode >= 200 && res.StatusCode < 300
	resp.Body = string(b)
	resp.Code = strconv.Itoa(res.StatusCode)
	resp.Headers = res.Header
	resp.Successful = strconv.FormatBool(ok)
	n.record(d.ncID, resp, ok)
	return ok
}

// Flush waits until every notification queued so far has been delivered or
// given up. It is meant for tests and the demo; Run must be running.
func (s *Sim) Flush() { s.notify.pending.Wait() }

func (s *Sim) recordDelivery(ncID string, resp deliveryResponse, ok bool) {
	s.count(func(st *Stats) {
		if ok {
			st.Notifications.Delivered++
		} else {
			st.Notifications.Failed++
		}
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if nc := s.ncs[ncID]; nc != nil {
		nc.responses = append(nc.responses, resp)
		if len(nc.responses) > 10 {
			nc.responses = nc.responses[len(nc.responses)-10:]
		}
	}
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
