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
