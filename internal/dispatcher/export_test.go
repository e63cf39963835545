package dispatcher

import promtest "github.com/prometheus/client_golang/prometheus/testutil"

// Metric reads the count of run events the engine consumed with a result
// (handled, retried, rejected, dropped).
func (d *Dispatcher) Metric(result string) float64 {
	return promtest.ToFloat64(d.metrics.events.WithLabelValues(result))
}

// KVOps is the number of KV operations the engine's store made.
func (d *Dispatcher) KVOps() int64 { return d.store.ops.Load() }

// MemberKey is the key of a member's status in the cascades bucket.
func MemberKey(cascadeID, workspaceID string) string { return memberKey(cascadeID, workspaceID) }

// CascadesBucket is the name of the bucket cascades are kept in.
func (d *Dispatcher) CascadesBucket() string { return d.store.kv.Bucket() }
