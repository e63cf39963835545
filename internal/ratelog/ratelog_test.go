package ratelog_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tfe-orchestrator/orchestrator/internal/ratelog"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// A flood writes the burst, then nothing until the bucket refills; the
// next line that goes through is preceded by the count of those held back.
func TestLimiterBoundsAFlood(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	l := ratelog.New(3, time.Second, c.now)
	for range 1000 {
		l.Warn(log, "request refused")
	}
	if n := logs.Len(); n != 3 {
		t.Fatalf("1000 lines at one instant: %d written, want the burst of 3", n)
	}
	c.add(999 * time.Millisecond)
	l.Warn(log, "request refused")
	if n := logs.Len(); n != 3 {
		t.Fatalf("before a second passed: %d lines, want still 3", n)
	}
	c.add(time.Millisecond)
	l.Warn(log, "request refused")
	all := logs.All()
	if len(all) != 5 {
		t.Fatalf("a second later: %d lines, want 5 (a count, then the line)", len(all))
	}
	if all[3].Message != "log lines suppressed" || all[3].ContextMap()["suppressed"] != int64(998) || all[3].ContextMap()["of"] != "request refused" {
		t.Errorf("the count line: %s %v, want 998 suppressed of \"request refused\"", all[3].Message, all[3].ContextMap())
	}
	if all[4].Message != "request refused" {
		t.Errorf("after the count: %q, want the line", all[4].Message)
	}
	c.add(time.Hour) // refills to the burst, no more
	for range 10 {
		l.Warn(log, "request refused")
	}
	if n := logs.Len(); n != 5+3 { // the burst again; the count of the 7 held back goes with the next line
		t.Errorf("after an hour, 10 lines: %d in all, want 8", n)
	}
}

func TestClean(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"/webhooks/tfe", 128, "/webhooks/tfe"},
		{"/a b\x00\n\xff", 128, "/a b???"},
		{strings.Repeat("x", 10), 8, strings.Repeat("x", 8) + "...(+2 bytes)"},
	} {
		if got := ratelog.Clean(tc.in, tc.max); got != tc.want {
			t.Errorf("Clean(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := ratelog.Clean(strings.Repeat("/é", 30000), 128); len(got) > 160 {
		t.Errorf("a 90 KB value cleaned to %d bytes, want at most 128 and the note", len(got))
	}
}
