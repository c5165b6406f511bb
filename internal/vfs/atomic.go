package vfs

import (
	"os"
	"path"
)

// WriteFile creates (or truncates) name, writes data and fsyncs it. The
// directory entry of a new file is not synced.
func WriteFile(fs FS, name string, data []byte) error {
	f, err := fs.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// WriteFileAtomic replaces name with data durably: a reader (or a restart
// after a crash) sees the old content or the new, never a mix. Temp file
// name+".tmp", fsync, rename, fsync of the directory.
func WriteFileAtomic(fs FS, name string, data []byte) error {
	tmp := name + ".tmp"
	if err := WriteFile(fs, tmp, data); err != nil {
		return err
	}
	if err := fs.Rename(tmp, name); err != nil {
		return err
	}
	return fs.SyncDir(path.Dir(name))
}
