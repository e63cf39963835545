package cascade

import "time"

// FullLook reports whether a look at an open cascade is a full one, which
// reads every member it can have reached: when it was asked for (a new
// cascade, an operator's control, a restart), or when the last full look
// is a Recheck ago, so that a lost webhook delays a cascade by at most
// that (lastFull is zero before the first).
func FullLook(asked bool, lastFull time.Time, pol Policy, now time.Time) bool {
	return asked || !now.Before(lastFull.Add(pol.withDefaults().Recheck))
}
