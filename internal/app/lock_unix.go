//go:build unix

package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFileName is the file in the data directory that the daemon using it
// holds locked, with its process ID in it.
const LockFileName = "orchestrator.lock"

// dirLock is an exclusive flock on the data directory's lock file. The
// kernel releases it when the process ends, however it ends: a lock file
// left by a process that is gone blocks nobody.
type dirLock struct{ f *os.File }

// lockDataDir takes the data directory for this process, or says which
// process has it.
func lockDataDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			owner := strings.TrimSpace(string(b[:n]))
			if owner == "" {
				owner = "unknown"
			}
			return nil, fmt.Errorf("data directory %s is in use by another orchestrator (pid %s): two daemons on one store lose events; stop it or give another --data-dir", dir, owner)
		}
		return nil, fmt.Errorf("lock data directory %s: %w", dir, err)
	}
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt(pid, 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("write lock file: %w", err)
	}
	return &dirLock{f: f}, nil
}

// release empties the lock file and unlocks it.
func (l *dirLock) release() {
	_ = l.f.Truncate(0)
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	_ = l.f.Close()
}
