package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A KV bucket's reads are direct gets, which any replica of its stream
// answers. One that lags gives an older entry; a compare-and-swap written
// on its revision fails, and read again from the same replica fails again:
// on a cluster that lost a node such loops went on for minutes. LastEntry
// asks the stream's leader instead (a message get), whose answer is the
// last write; a compare-and-swap that lost reads with it.

// DeletedError is LastEntry's answer for a key whose last entry is a
// delete or purge marker: the key is missing (errors.Is
// jetstream.ErrKeyNotFound), and a write that creates it again must be an
// update on the marker's revision. (A KV create would read the marker
// with a direct get, from any replica.)
type DeletedError struct{ Revision uint64 }

func (e *DeletedError) Error() string {
	return fmt.Sprintf("key deleted at revision %d", e.Revision)
}

// Is makes a deleted key a missing one.
func (e *DeletedError) Is(target error) bool { return target == jetstream.ErrKeyNotFound }

// DeletedAt is the revision of the delete marker err reports, or 0.
func DeletedAt(err error) uint64 {
	var d *DeletedError
	if errors.As(err, &d) {
		return d.Revision
	}
	return 0
}

// WrongLastSequence reports a KV write on a revision that was not the
// key's last: another writer got there first, or the revision came from a
// lagging replica. Single and replicated streams report it with different
// codes; both count.
func WrongLastSequence(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && (api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// leaderReadTimeout bounds a read from the leader, as nats.go bounds its
// own JetStream requests: an answer lost in a leader's election would
// otherwise be waited for as long as ctx allows.
const leaderReadTimeout = 5 * time.Second

// LastEntry reads key's last entry in kv from its stream's leader. A key
// never written is jetstream.ErrKeyNotFound; a deleted one is a
// *DeletedError.
func LastEntry(ctx context.Context, nc *nats.Conn, kv jetstream.KeyValue, key string) (jetstream.KeyValueEntry, error) {
	bucket := kv.Bucket()
	req, err := json.Marshal(map[string]string{"last_by_subj": "$KV." + bucket + "." + key})
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, leaderReadTimeout)
	defer cancel()
	msg, err := nc.RequestWithContext(rctx, "$JS.API.STREAM.MSG.GET.KV_"+bucket, req)
	if err != nil {
		return nil, fmt.Errorf("read %s from the leader: %w", key, err)
	}
	var resp struct {
		Message *struct {
			Seq  uint64    `json:"seq"`
			Hdrs []byte    `json:"hdrs"`
			Data []byte    `json:"data"`
			Time time.Time `json:"time"`
		} `json:"message"`
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, fmt.Errorf("read %s from the leader: %w", key, err)
	}
	switch {
	case resp.Error != nil && resp.Error.Code == 404:
		return nil, jetstream.ErrKeyNotFound
	case resp.Error != nil:
		return nil, fmt.Errorf("read %s from the leader: %s", key, resp.Error.Description)
	case resp.Message == nil:
		return nil, fmt.Errorf("read %s from the leader: an empty answer", key)
	}
	m := resp.Message
	if op := markerOf(m.Hdrs); op != jetstream.KeyValuePut {
		return nil, &DeletedError{Revision: m.Seq}
	}
	return &entry{bucket: bucket, key: key, value: m.Data, revision: m.Seq, created: m.Time}, nil
}

// markerOf reads the KV operation from a stored message's headers.
func markerOf(hdrs []byte) jetstream.KeyValueOp {
	if len(hdrs) == 0 {
		return jetstream.KeyValuePut
	}
	h, err := nats.DecodeHeadersMsg(hdrs)
	if err != nil {
		if bytes.Contains(hdrs, []byte("KV-Operation")) {
			return jetstream.KeyValueDelete // unreadable, but a marker
		}
		return jetstream.KeyValuePut
	}
	switch h.Get("KV-Operation") {
	case "DEL":
		return jetstream.KeyValueDelete
	case "PURGE":
		return jetstream.KeyValuePurge
	}
	return jetstream.KeyValuePut
}

// entry is a jetstream.KeyValueEntry read from the leader.
type entry struct {
	bucket, key string
	value       []byte
	revision    uint64
	created     time.Time
}

func (e *entry) Bucket() string                  { return e.bucket }
func (e *entry) Key() string                     { return e.key }
func (e *entry) Value() []byte                   { return e.value }
func (e *entry) Revision() uint64                { return e.revision }
func (e *entry) Created() time.Time              { return e.created }
func (e *entry) Delta() uint64                   { return 0 }
func (e *entry) Operation() jetstream.KeyValueOp { return jetstream.KeyValuePut }
