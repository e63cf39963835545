package dispatcher

import (
	"context"
	"slices"
	"testing"
	"time"
)

func TestDueNow(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	now := at(100)
	for _, tc := range []struct {
		name    string
		dueAt   map[string]time.Time
		retry   map[string]time.Time
		running []string
		free    int
		want    []string
		next    time.Time
	}{
		{name: "the longest due goes first, whatever its name",
			dueAt: map[string]time.Time{"a": at(90), "b": at(10), "c": at(50)}, free: 3,
			want: []string{"b", "c", "a"}},
		{name: "a cascade due again and again waits behind one due before it",
			dueAt: map[string]time.Time{"large": at(99), "small": at(20)}, free: 1,
			want: []string{"small"}},
		{name: "no more than the free workers",
			dueAt: map[string]time.Time{"a": at(1), "b": at(2), "c": at(3)}, free: 2,
			want: []string{"a", "b"}},
		{name: "no free worker: none, and no wake-up for what is due",
			dueAt: map[string]time.Time{"a": at(1)}, free: 0},
		{name: "one being looked at is not taken twice",
			dueAt: map[string]time.Time{"a": at(1), "b": at(2)}, running: []string{"a"}, free: 2,
			want: []string{"b"}},
		{name: "not yet due: the wake-up is the earliest",
			dueAt: map[string]time.Time{"a": at(130), "b": at(110), "c": at(50)}, free: 4,
			want: []string{"c"}, next: at(110)},
		{name: "a retry later than the due time defers it",
			dueAt: map[string]time.Time{"a": at(10), "b": at(20)}, retry: map[string]time.Time{"a": at(105)}, free: 2,
			want: []string{"b"}, next: at(105)},
		{name: "a retry past is no obstacle, and ties go by name",
			dueAt: map[string]time.Time{"b": at(10), "a": at(10)}, retry: map[string]time.Time{"b": at(5)}, free: 2,
			want: []string{"a", "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			running := map[string]bool{}
			for _, id := range tc.running {
				running[id] = true
			}
			got, next := dueNow(tc.dueAt, tc.retry, running, now, tc.free)
			if !slices.Equal(got, tc.want) {
				t.Errorf("ready: got %v, want %v", got, tc.want)
			}
			if !next.Equal(tc.next) {
				t.Errorf("next: got %v, want %v", next, tc.next)
			}
		})
	}
}

// A look's bound is a cancellation, not a deadline, so that nats.go still
// bounds each of its JetStream requests on its own.
func TestLookBoundLeavesRequestsTheirOwnTimeout(t *testing.T) {
	ctx, cancel := bounded(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, ok := ctx.Deadline(); ok {
		t.Fatal("the look's context has a deadline: nats.go would not time its requests out")
	}
	select {
	case <-ctx.Done():
	case <-time.After(time.Minute):
		t.Fatal("the look's context was not cancelled after its bound")
	}
	ctx, cancel = bounded(context.Background(), time.Hour)
	cancel()
	if ctx.Err() == nil {
		t.Fatal("cancel did not end the look's context")
	}
}
