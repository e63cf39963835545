package tfeclient

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Cache keeps what was read from TFE, by key, for a TTL. It is safe for
// concurrent use and holds no lock while a value is read from TFE.
//
// An entry is fresh while less than the TTL has passed since it was read
// (by the cache's clock); a stale entry is never returned. Only values are
// kept: a caller that wants a failure remembered (negative caching) stores
// the value that stands for it.
type Cache[K comparable, V any] struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[K]cached[V]
	loading map[K]*loadCall[V]
}

type cached[V any] struct {
	value V
	at    time.Time // when it was read
}

// loadCall is a Load under way; done closes when value and err are set.
type loadCall[V any] struct {
	done  chan struct{}
	value V
	err   error
}

// NewCache returns a cache whose entries stay fresh for ttl. now is the
// clock; nil is time.Now.
func NewCache[K comparable, V any](ttl time.Duration, now func() time.Time) *Cache[K, V] {
	if now == nil {
		now = time.Now
	}
	return &Cache[K, V]{ttl: ttl, now: now, entries: map[K]cached[V]{}, loading: map[K]*loadCall[V]{}}
}

// TTL is how long an entry stays fresh.
func (c *Cache[K, V]) TTL() time.Duration { return c.ttl }

// Get returns key's value when it is fresh.
func (c *Cache[K, V]) Get(key K) (V, bool) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fresh(key, now)
}

func (c *Cache[K, V]) fresh(key K, now time.Time) (V, bool) {
	e, ok := c.entries[key]
	if !ok {
		var zero V
		return zero, false
	}
	if now.Sub(e.at) >= c.ttl {
		delete(c.entries, key)
		var zero V
		return zero, false
	}
	return e.value, true
}

// Put keeps value for key as read now.
func (c *Cache[K, V]) Put(key K, value V) { c.PutAt(key, value, c.now()) }

// PutAt keeps value for key as read at at: it is fresh until at + TTL.
func (c *Cache[K, V]) PutAt(key K, value V, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries[key] = cached[V]{value: value, at: at}
}

// Invalidate drops key's entry, so that it is read again on next use.
func (c *Cache[K, V]) Invalidate(key K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, key)
}

// InvalidateAll empties the cache.
func (c *Cache[K, V]) InvalidateAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
}

// Load returns key's value when it is fresh, and otherwise reads it with
// load and keeps it, as read when load returned, unless load failed. One
// load runs at a time for a key: callers that come meanwhile wait for it
// and share its value or its error (or get ctx's error when ctx ends
// first).
func (c *Cache[K, V]) Load(ctx context.Context, key K, load func(ctx context.Context) (V, error)) (V, error) {
	c.mu.Lock()
	if v, ok := c.fresh(key, c.now()); ok {
		c.mu.Unlock()
		return v, nil
	}
	if call, ok := c.loading[key]; ok {
		c.mu.Unlock()
		select {
		case <-call.done:
			return call.value, call.err
		case <-ctx.Done():
			var zero V
			return zero, ctx.Err()
		}
	}
	call := &loadCall[V]{done: make(chan struct{})}
	c.loading[key] = call
	c.mu.Unlock()

	defer func() {
		c.mu.Lock()
		delete(c.loading, key)
		if call.err == nil {
			c.entries[key] = cached[V]{value: call.value, at: c.now()}
		}
		c.mu.Unlock()
		close(call.done)
	}()
	call.err = errLoadPanicked // until load returns
	call.value, call.err = load(ctx)
	return call.value, call.err
}

// errLoadPanicked is what the callers waiting for a load that panicked get.
var errLoadPanicked = errors.New("tfe cache: the load panicked")
