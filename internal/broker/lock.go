package broker

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDataDir takes an exclusive lock on DIR/.lock for the life of the
// process, so that two brokers (a restart racing a slow shutdown, or a
// second `oncelog serve` by mistake) never write the same logs. The lock
// is released by the kernel when the process dies, so a crash never leaves
// it behind.
func lockDataDir(dir string) (unlock func(), err error) {
	name := filepath.Join(dir, ".lock")
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("data directory lock %s: %w", name, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if err == syscall.EWOULDBLOCK {
			return nil, fmt.Errorf("data directory %s is in use by another oncelog process (lock %s held); stop it first", dir, name)
		}
		return nil, fmt.Errorf("data directory lock %s: %w", name, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
