// Package ratelog bounds what outsiders can make the daemon write to its
// log. Anyone who reaches the HTTP port can send requests that are refused
// (no signature, no token, a path that is not served); each is worth a
// line, but a flood of them must not become a flood of log.
//
// It guarantees that a Limiter lets at most Burst lines through at once
// and then one per Every, whatever the rate of requests; that the lines it
// holds back are counted, and the count written in one line ("N
// suppressed") just before the next line that goes through, so that a
// flood that lasts shows as one count per Every; and that Clean turns a
// value taken from a request into at most a bounded number of printable
// ASCII bytes.
package ratelog

import (
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Defaults of a Limiter: ten lines at once, then one a second.
const (
	DefaultBurst = 10
	DefaultEvery = time.Second
)

// Limiter is a token bucket of log lines. Its zero value is not usable:
// use New.
type Limiter struct {
	burst float64
	every time.Duration
	now   func() time.Time

	mu     sync.Mutex
	tokens float64
	last   time.Time
	held   int64
}

// New returns a limiter of burst lines at once, then one per every; zero
// values take the defaults, now nil takes time.Now.
func New(burst int, every time.Duration, now func() time.Time) *Limiter {
	if burst <= 0 {
		burst = DefaultBurst
	}
	if every <= 0 {
		every = DefaultEvery
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{burst: float64(burst), every: every, now: now, tokens: float64(burst)}
}

// Allow reports whether a line may be written now. When it may, held is
// the number of lines held back since the last one that was; when it may
// not, the line is counted as held back.
func (l *Limiter) Allow() (ok bool, held int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if !l.last.IsZero() {
		if gone := now.Sub(l.last); gone > 0 {
			l.tokens = min(l.burst, l.tokens+float64(gone)/float64(l.every))
		}
	}
	l.last = now
	if l.tokens < 1 {
		l.held++
		return false, 0
	}
	l.tokens--
	held, l.held = l.held, 0
	return true, held
}

// Warn writes msg with fields at WARN level if the limiter lets a line
// through; before it, when lines were held back, one line says how many.
func (l *Limiter) Warn(log *zap.Logger, msg string, fields ...zap.Field) {
	ok, held := l.Allow()
	if !ok {
		return
	}
	if held > 0 {
		log.Warn("log lines suppressed", zap.String("of", msg), zap.Int64("suppressed", held),
			zap.String("limit", strconv.Itoa(int(l.burst))+" at once, then one per "+l.every.String()))
	}
	log.Warn(msg, fields...)
}

// Clean returns s as at most max bytes of printable ASCII: other bytes
// become '?', and a longer s is cut, with the number of bytes left out
// said at the end.
func Clean(s string, max int) string {
	cut := 0
	if len(s) > max {
		cut = len(s) - max
		s = s[:max]
	}
	b := make([]byte, 0, len(s)+24)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		b = append(b, c)
	}
	if cut > 0 {
		b = append(b, "...(+"...)
		b = strconv.AppendInt(b, int64(cut), 10)
		b = append(b, " bytes)"...)
	}
	return string(b)
}
