// Package vfs is the small filesystem interface every durable part of oncelog
// goes through, so tests can crash it, fail it and trace it.
//
// Contract: a successful Write is only in the OS page cache; it survives a
// process crash but not a machine crash until Sync (or Datasync) on the file
// returns nil.
// A created or renamed file's directory entry is durable only after SyncDir
// on its parent. Callers treat any error from Write or Sync as sticky: the
// data's state on disk is unknown and must not be retried (see
// internal/partlog).
package vfs

import (
	"io"
	"os"
)

// File is an open file. It is the subset of *os.File that oncelog uses.
type File interface {
	io.ReaderAt
	io.Writer
	// WriteAt writes at off, as os.File.WriteAt does (an error on a file
	// opened with O_APPEND).
	io.WriterAt
	io.Closer
	// Sync makes every completed Write durable.
	Sync() error
	// Datasync makes every completed write durable with the metadata needed
	// to read it back (fdatasync(2)): cheaper than Sync when the writes
	// changed neither the size nor the allocation of the file.
	Datasync() error
	// WriteBack writes the dirty pages of the n bytes at off to the device
	// and waits for them (sync_file_range(2) where the system has it; a
	// no-op elsewhere). It makes nothing durable, neither the data (the
	// device may still cache it) nor the size or allocation: it only moves
	// the write-back of a range out of a later Sync or Datasync, which then
	// finds those pages clean. An error is a write error: sticky.
	WriteBack(off, n int64) error
	// Truncate changes the file's size; the next Write of an O_APPEND file
	// goes to the new end.
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
	// Name is the path the file was opened with.
	Name() string
}

// OSFiler is implemented by the Files of OS alone (not by MemFS's, nor by
// a FaultFS's, whose faults a caller going around them would skip): the
// *os.File behind the File, for a caller that hands byte ranges of it to
// the kernel (sendfile(2)) instead of reading them. The *os.File is the
// File's own: it is valid until the File is closed, and the caller must
// neither close it nor move its position (use positional calls only).
type OSFiler interface {
	OSFile() *os.File
}

// FS is a filesystem. Paths are slash-separated as for the os package.
type FS interface {
	// OpenFile opens name with os flags (os.O_RDONLY, os.O_RDWR, os.O_CREATE,
	// os.O_TRUNC, os.O_APPEND, os.O_EXCL) as os.OpenFile does.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	Remove(name string) error
	RemoveAll(name string) error
	Rename(oldpath, newpath string) error
	MkdirAll(dir string, perm os.FileMode) error
	// ReadDir returns the names of the entries of dir, sorted.
	ReadDir(dir string) ([]string, error)
	Stat(name string) (os.FileInfo, error)
	// SyncDir makes the directory entries of dir durable.
	SyncDir(dir string) error
}
