//go:build !linux

package vfs

// Datasync is Sync where the system has no fdatasync.
func (f osFile) Datasync() error { return f.Sync() }
