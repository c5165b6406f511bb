package vfs

import (
	"errors"
	"os"
)

// Operation names passed to a FaultFS's inject function.
const (
	OpOpen      = "open"
	OpRead      = "read"
	OpWrite     = "write"
	OpSync      = "sync"
	OpTruncate  = "truncate"
	OpStat      = "stat"
	OpClose     = "close"
	OpRemove    = "remove"
	OpRemoveAll = "removeall"
	OpRename    = "rename"
	OpMkdirAll  = "mkdirall"
	OpReadDir   = "readdir"
	OpSyncDir   = "syncdir"
)

// ErrInjected is a convenient error for inject functions to return.
var ErrInjected = errors.New("vfs: injected fault")

// NewFaultFS wraps inner so that every operation first calls inject with the
// operation's name (the Op constants) and the path it concerns (for Rename,
// the old path). A non-nil error is returned instead of doing the operation,
// which is then not done at all: a failed Write writes nothing, a failed
// Sync syncs nothing (Close is the exception: see faultFile.Close). inject may be called from several goroutines.
func NewFaultFS(inner FS, inject func(op string, path string) error) FS {
	return &faultFS{inner: inner, inject: inject}
}

type faultFS struct {
	inner  FS
	inject func(op, path string) error
}

func (f *faultFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	if err := f.inject(OpOpen, name); err != nil {
		return nil, err
	}
	file, err := f.inner.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, inject: f.inject}, nil
}

func (f *faultFS) Remove(name string) error {
	if err := f.inject(OpRemove, name); err != nil {
		return err
	}
	return f.inner.Remove(name)
}

func (f *faultFS) RemoveAll(name string) error {
	if err := f.inject(OpRemoveAll, name); err != nil {
		return err
	}
	return f.inner.RemoveAll(name)
}

func (f *faultFS) Rename(oldpath, newpath string) error {
	if err := f.inject(OpRename, oldpath); err != nil {
		return err
	}
	return f.inner.Rename(oldpath, newpath)
}

func (f *faultFS) MkdirAll(dir string, perm os.FileMode) error {
	if err := f.inject(OpMkdirAll, dir); err != nil {
		return err
	}
	return f.inner.MkdirAll(dir, perm)
}

func (f *faultFS) ReadDir(dir string) ([]string, error) {
	if err := f.inject(OpReadDir, dir); err != nil {
		return nil, err
	}
	return f.inner.ReadDir(dir)
}

func (f *faultFS) Stat(name string) (os.FileInfo, error) {
	if err := f.inject(OpStat, name); err != nil {
		return nil, err
	}
	return f.inner.Stat(name)
}

func (f *faultFS) SyncDir(dir string) error {
	if err := f.inject(OpSyncDir, dir); err != nil {
		return err
	}
	return f.inner.SyncDir(dir)
}

type faultFile struct {
	File
	inject func(op, path string) error
}

func (f *faultFile) ReadAt(b []byte, off int64) (int, error) {
	if err := f.inject(OpRead, f.Name()); err != nil {
		return 0, err
	}
	return f.File.ReadAt(b, off)
}

func (f *faultFile) Write(b []byte) (int, error) {
	if err := f.inject(OpWrite, f.Name()); err != nil {
		return 0, err
	}
	return f.File.Write(b)
}

func (f *faultFile) WriteAt(b []byte, off int64) (int, error) {
	if err := f.inject(OpWrite, f.Name()); err != nil {
		return 0, err
	}
	return f.File.WriteAt(b, off)
}

// Datasync is injected as OpSync: to callers it is an fsync.
func (f *faultFile) Datasync() error {
	if err := f.inject(OpSync, f.Name()); err != nil {
		return err
	}
	return f.File.Datasync()
}

// WriteBack is injected as OpWrite: it reports the errors of writes.
func (f *faultFile) WriteBack(off, n int64) error {
	if err := f.inject(OpWrite, f.Name()); err != nil {
		return err
	}
	return f.File.WriteBack(off, n)
}

func (f *faultFile) Sync() error {
	if err := f.inject(OpSync, f.Name()); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *faultFile) Truncate(size int64) error {
	if err := f.inject(OpTruncate, f.Name()); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

func (f *faultFile) Stat() (os.FileInfo, error) {
	if err := f.inject(OpStat, f.Name()); err != nil {
		return nil, err
	}
	return f.File.Stat()
}

// Close always closes the inner file (so tests do not leak it) but returns
// an injected error if there is one.
func (f *faultFile) Close() error {
	err := f.inject(OpClose, f.Name())
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	return err
}
