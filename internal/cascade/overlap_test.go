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

func TestReleaseSetAside(t *testing.T) {
	p := plan(t, "a", "a>b", "a>c", "b>c") // c has two upstreams, b one
	mine := &Workspace{ID: "ws-c", Locked: true, LockedByUser: "user-engine"}
	for _, c := range []struct {
		name          string
		member        string
		others        []Claim
		ws            *Workspace
		self          string
		release, read bool
	}{
		{"a member with one upstream was never held: nothing is read", "b", nil, nil, "user-engine", false, false},
		{"without the engine's user no hold was taken", "c", nil, nil, "", false, false},
		{"a member the cascade may have held has its workspace read", "c", nil, nil, "user-engine", false, true},
		{"an ended cascade's claim does not keep it", "c", []Claim{{ID: "c-old"}}, nil, "user-engine", false, true},
		{"a workspace another open cascade claims is left to that cascade", "c", []Claim{{ID: "c-other", Open: true}}, mine, "user-engine", false, false},
		{"a workspace TFE shows locked by the engine's user is unlocked", "c", nil, mine, "user-engine", true, false},
		{"one locked by a person is left alone", "c", nil, &Workspace{Locked: true, LockedBy: "ana", LockedByUser: "user-ana"}, "user-engine", false, false},
		{"one locked by a run is left alone", "c", nil, &Workspace{Locked: true, LockedByRun: "run-1"}, "user-engine", false, false},
		{"one not locked is left alone", "c", nil, &Workspace{}, "user-engine", false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			release, read := ReleaseSetAside(p, p.Index("ws-"+c.member), c.others, c.ws, c.self)
			if release != c.release || read != c.read {
				t.Errorf("got release %v, read %v; want %v, %v", release, read, c.release, c.read)
			}
		})
	}
	t.Run("a member on a cycle may have been held", func(t *testing.T) {
		p := plan(t, "a", "a>b", "b>c", "c>b")
		if _, read := ReleaseSetAside(p, p.Index("ws-b"), nil, nil, "user-engine"); !read {
			t.Error("b, on a cycle: its workspace is not read")
		}
	})
}
