package cascade

import (
	"testing"
	"time"
)

func TestFullLook(t *testing.T) {
	pol := Policy{Recheck: time.Minute}
	for _, c := range []struct {
		name     string
		asked    bool
		lastFull time.Time
		want     bool
	}{
		{"a look asked to be full is full", true, at(99), true},
		{"the first look at a cascade is full", false, time.Time{}, true},
		{"a look a recheck period after the last full one is full", false, at(40), true},
		{"a look sooner than that reads only what events and timers name", false, at(41), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := FullLook(c.asked, c.lastFull, pol, at(100)); got != c.want {
				t.Errorf("FullLook = %v, want %v", got, c.want)
			}
		})
	}
}
