//go:build !unix

package app

// LockFileName is the file in the data directory that the daemon using it
// holds locked.
const LockFileName = "orchestrator.lock"

type dirLock struct{}

// lockDataDir does nothing where there is no flock: the data directory is
// not protected from a second daemon there.
func lockDataDir(string) (*dirLock, error) { return &dirLock{}, nil }

func (*dirLock) release() {}
