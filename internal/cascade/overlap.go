package cascade

// Overlapping cascades (C6): when several open cascades reach the same
// workspace, the oldest acts in it first. The shell keeps, for each
// workspace, the cascades that claim it, oldest first; Holder reads that
// claim list for one cascade.

// Claim is a cascade that claims a workspace, as the shell read it.
type Claim struct {
	ID string
	// Open: the cascade runs, or still cleans up after itself.
	Open bool
}

// Holder returns, of the cascades that claim a workspace before this one
// (older, oldest first), the one that acts in it first: the oldest that
// is open ("" when none). Those before it that ended without letting go
// of the workspace (a crash) are stale: their claims are to be removed.
func Holder(older []Claim) (holder string, stale []string) {
	for _, c := range older {
		if c.Open {
			return c.ID, stale
		}
		stale = append(stale, c.ID)
	}
	return "", stale
}

// ReleaseSetAside says whether member i's workspace is to be unlocked when
// its cascade is set aside: its records cannot be read, so which members
// it holds is not known. It lets go of what it may hold: a member it may
// have held (several upstreams, or a cycle), that no other open cascade
// claims (others), and that TFE shows locked by the engine's user (self),
// not by a run. ws is the workspace as TFE shows it; nil until read, and
// read asks for it when it is needed.
func ReleaseSetAside(p *Plan, i int, others []Claim, ws *Workspace, self string) (release, read bool) {
	m := &p.Members[i]
	if self == "" || (len(m.Upstreams) < 2 && m.Cycle == "") {
		return false, false // never held
	}
	for _, c := range others {
		if c.Open {
			return false, false // that cascade decides about the workspace
		}
	}
	if ws == nil {
		return false, true
	}
	return lockedBy(*ws, self), false
}

// lockedBy reports whether user self holds the workspace's lock.
func lockedBy(ws Workspace, self string) bool {
	return self != "" && ws.Locked && ws.LockedByRun == "" && ws.LockedByUser == self
}
