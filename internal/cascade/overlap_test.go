package cascade

import (
	"slices"
	"testing"
)

func TestHolder(t *testing.T) {
	for _, c := range []struct {
		name   string
		older  []Claim
		holder string
		stale  []string
	}{
		{"a workspace no older cascade claims is this cascade's to act in", nil, "", nil},
		{"an older open cascade acts first", []Claim{{ID: "c-1", Open: true}}, "c-1", nil},
		{"of several older open cascades, the oldest acts first", []Claim{{ID: "c-1", Open: true}, {ID: "c-2", Open: true}}, "c-1", nil},
		{"an older cascade that ended without letting go is let go of", []Claim{{ID: "c-1"}}, "", []string{"c-1"}},
		{"an ended one before an open one is let go of, and the open one acts first",
			[]Claim{{ID: "c-1"}, {ID: "c-2", Open: true}}, "c-2", []string{"c-1"}},
		{"claims after the one that acts first are left as they are",
			[]Claim{{ID: "c-1", Open: true}, {ID: "c-2"}}, "c-1", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			holder, stale := Holder(c.older)
			if holder != c.holder || !slices.Equal(stale, c.stale) {
				t.Errorf("got %q, stale %v; want %q, stale %v", holder, stale, c.holder, c.stale)
			}
		})
	}
}
