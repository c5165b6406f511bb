package vfs

import (
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MemFS is an in-memory FS for tests that can simulate a machine crash.
//
// It keeps, per file, the content as of the last Sync and the writes and
// truncations made since, in order; per directory, the entries as of the
// last SyncDir and the current ones. CrashClone returns what a machine crash
// would leave: synced directory entries pointing at synced file content,
// optionally plus a random prefix of each file's unsynced operations (a torn
// write). This is stricter than most real filesystems, which is the point:
// code that survives MemFS does not depend on luck.
//
// All state is guarded by one mutex; files opened on a MemFS keep working on
// it, never on its clones.
type MemFS struct {
	mu   sync.Mutex
	root *memNode
}

// NewMemFS returns an empty MemFS holding only the root directory "/".
func NewMemFS() *MemFS { return &MemFS{root: newDir()} }

// memNode is a file or a directory. Fields are guarded by MemFS.mu.
type memNode struct {
	dir bool

	// Directory: the current entries and those made durable by SyncDir.
	children map[string]*memNode
	synced   map[string]*memNode

	// File: the current content, the content as of the last Sync, and the
	// operations since then; applying pending to durable gives data.
	data    []byte
	durable []byte
	pending []memOp
	modTime time.Time
}

// memOp is one unsynced change to a file: a write of data at off, or (when
// truncate is set) a truncation to size.
type memOp struct {
	truncate bool
	off      int64
	data     []byte
}

func newDir() *memNode {
	return &memNode{dir: true, children: map[string]*memNode{}, synced: map[string]*memNode{}}
}

// apply performs op on content b and returns the result.
func (op memOp) apply(b []byte) []byte {
	if op.truncate {
		if op.off <= int64(len(b)) {
			return b[:op.off]
		}
		return append(b, make([]byte, op.off-int64(len(b)))...)
	}
	end := op.off + int64(len(op.data))
	if end > int64(len(b)) {
		b = append(b, make([]byte, end-int64(len(b)))...)
	}
	copy(b[op.off:], op.data)
	return b
}

func (n *memNode) do(op memOp) {
	n.data = op.apply(n.data)
	n.pending = append(n.pending, op)
}

func (n *memNode) sync() {
	for _, op := range n.pending {
		n.durable = op.apply(n.durable)
	}
	n.pending = nil
}

// split turns a path into its components.
func split(name string) []string {
	name = path.Clean("/" + name)
	if name == "/" {
		return nil
	}
	return strings.Split(name[1:], "/")
}

// lookup returns the node at name, or nil. Caller holds mu.
func (m *MemFS) lookup(name string) *memNode {
	n := m.root
	for _, part := range split(name) {
		if !n.dir {
			return nil
		}
		if n = n.children[part]; n == nil {
			return nil
		}
	}
	return n
}

// parent returns the directory holding name and name's last component.
// Caller holds mu.
func (m *MemFS) parent(op, name string) (*memNode, string, error) {
	parts := split(name)
	if len(parts) == 0 {
		return nil, "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	dir := m.lookup("/" + strings.Join(parts[:len(parts)-1], "/"))
	if dir == nil {
		return nil, "", &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	if !dir.dir {
		return nil, "", &fs.PathError{Op: op, Path: name, Err: syscall.ENOTDIR}
	}
	return dir, parts[len(parts)-1], nil
}

// OpenFile implements FS.
func (m *MemFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.parent("open", name)
	if err != nil {
		return nil, err
	}
	n := dir.children[base]
	switch {
	case n == nil && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	case n != nil && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrExist}
	case n != nil && n.dir:
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EISDIR}
	case n == nil:
		n = &memNode{modTime: time.Now()}
		dir.children[base] = n
	}
	writable := flag&(os.O_WRONLY|os.O_RDWR) != 0
	if flag&os.O_TRUNC != 0 && writable && len(n.data) > 0 {
		n.do(memOp{truncate: true, off: 0})
	}
	return &memFile{fs: m, n: n, name: name, flag: flag}, nil
}

// Remove implements FS.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.parent("remove", name)
	if err != nil {
		return err
	}
	n := dir.children[base]
	if n == nil {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	if n.dir && len(n.children) > 0 {
		return &fs.PathError{Op: "remove", Path: name, Err: syscall.ENOTEMPTY}
	}
	delete(dir.children, base)
	return nil
}

// RemoveAll implements FS.
func (m *MemFS) RemoveAll(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.parent("removeall", name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	delete(dir.children, base)
	return nil
}

// Rename implements FS. As with rename(2) each directory's change is
// durable only after SyncDir on that directory.
func (m *MemFS) Rename(oldpath, newpath string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	od, ob, err := m.parent("rename", oldpath)
	if err != nil {
		return err
	}
	nd, nb, err := m.parent("rename", newpath)
	if err != nil {
		return err
	}
	n := od.children[ob]
	if n == nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: fs.ErrNotExist}
	}
	if t := nd.children[nb]; t != nil && t.dir {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: syscall.EISDIR}
	}
	delete(od.children, ob)
	nd.children[nb] = n
	return nil
}

// MkdirAll implements FS.
func (m *MemFS) MkdirAll(dir string, perm os.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.root
	for _, part := range split(dir) {
		c := n.children[part]
		if c == nil {
			c = newDir()
			n.children[part] = c
		} else if !c.dir {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		n = c
	}
	return nil
}

// ReadDir implements FS.
func (m *MemFS) ReadDir(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.lookup(dir)
	if n == nil {
		return nil, &fs.PathError{Op: "readdir", Path: dir, Err: fs.ErrNotExist}
	}
	if !n.dir {
		return nil, &fs.PathError{Op: "readdir", Path: dir, Err: syscall.ENOTDIR}
	}
	names := make([]string, 0, len(n.children))
	for name := range n.children {
		names = append(names, name)
	}
	sort.Strings(names)
	return names, nil
}

// Stat implements FS.
func (m *MemFS) Stat(name string) (os.FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.lookup(name)
	if n == nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	return n.info(path.Base(path.Clean("/" + name))), nil
}

// SyncDir implements FS.
func (m *MemFS) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.lookup(dir)
	if n == nil {
		return &fs.PathError{Op: "syncdir", Path: dir, Err: fs.ErrNotExist}
	}
	if !n.dir {
		return &fs.PathError{Op: "syncdir", Path: dir, Err: syscall.ENOTDIR}
	}
	n.synced = make(map[string]*memNode, len(n.children))
	for k, v := range n.children {
		n.synced[k] = v
	}
	return nil
}

// CrashClone returns a new MemFS holding what a machine crash now would
// leave: directory entries as of their last SyncDir, file content as of the
// last Sync. With a non-nil rng, each file also keeps a random prefix of its
// unsynced operations, the last of them possibly cut short (a torn write).
// The receiver is unchanged.
func (m *MemFS) CrashClone(rng *rand.Rand) *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	memo := map[*memNode]*memNode{}
	var clone func(n *memNode) *memNode
	clone = func(n *memNode) *memNode {
		if c, ok := memo[n]; ok {
			return c
		}
		if n.dir {
			c := newDir()
			memo[n] = c
			// Entries are visited in sorted order so that a seeded rng
			// gives the same clone every time.
			names := make([]string, 0, len(n.synced))
			for name := range n.synced {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				cc := clone(n.synced[name])
				c.children[name] = cc
				c.synced[name] = cc
			}
			return c
		}
		data := append([]byte(nil), n.durable...)
		if rng != nil && len(n.pending) > 0 {
			k := rng.IntN(len(n.pending) + 1)
			for _, op := range n.pending[:k] {
				data = op.apply(data)
			}
			if k < len(n.pending) && !n.pending[k].truncate {
				op := n.pending[k]
				op.data = op.data[:rng.IntN(len(op.data)+1)]
				data = op.apply(data)
			}
		}
		c := &memNode{data: data, durable: append([]byte(nil), data...), modTime: n.modTime}
		memo[n] = c
		return c
	}
	return &MemFS{root: clone(m.root)}
}

func (n *memNode) info(name string) os.FileInfo {
	return memInfo{name: name, size: int64(len(n.data)), dir: n.dir, modTime: n.modTime}
}

type memInfo struct {
	name    string
	size    int64
	dir     bool
	modTime time.Time
}

func (i memInfo) Name() string { return i.name }
func (i memInfo) Size() int64  { return i.size }
func (i memInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}
func (i memInfo) ModTime() time.Time { return i.modTime }
func (i memInfo) IsDir() bool        { return i.dir }
func (i memInfo) Sys() any           { return nil }

// memFile is an open MemFS file; pos is the offset of the next Write on a
// file opened without O_APPEND. Fields are guarded by MemFS.mu.
type memFile struct {
	fs     *MemFS
	n      *memNode
	name   string
	flag   int
	pos    int64
	closed bool
}

func (f *memFile) check(op string, write bool) error {
	if f.closed {
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	}
	if write && f.flag&(os.O_WRONLY|os.O_RDWR) == 0 {
		return &fs.PathError{Op: op, Path: f.name, Err: syscall.EBADF}
	}
	if !write && op == "read" && f.flag&os.O_WRONLY != 0 {
		return &fs.PathError{Op: op, Path: f.name, Err: syscall.EBADF}
	}
	return nil
}

func (f *memFile) ReadAt(b []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrInvalid}
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(b, f.n.data[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) Write(b []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("write", true); err != nil {
		return 0, err
	}
	off := f.pos
	if f.flag&os.O_APPEND != 0 {
		off = int64(len(f.n.data))
	}
	f.n.do(memOp{off: off, data: append([]byte(nil), b...)})
	f.pos = off + int64(len(b))
	return len(b), nil
}

func (f *memFile) WriteAt(b []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("write", true); err != nil {
		return 0, err
	}
	if f.flag&os.O_APPEND != 0 {
		return 0, errors.New("vfs: invalid use of WriteAt on file opened with O_APPEND")
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "writeat", Path: f.name, Err: fs.ErrInvalid}
	}
	f.n.do(memOp{off: off, data: append([]byte(nil), b...)})
	return len(b), nil
}

// Datasync is Sync: MemFS keeps no metadata apart from the content.
func (f *memFile) Datasync() error { return f.Sync() }

// WriteBack implements File: MemFS has no write-back to start, and a
// crash keeps what it keeps of unsynced writes either way.
func (f *memFile) WriteBack(off, n int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return f.check("writeback", true)
}

func (f *memFile) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("sync", false); err != nil {
		return err
	}
	f.n.sync()
	return nil
}

func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("truncate", true); err != nil {
		return err
	}
	if size < 0 {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: fs.ErrInvalid}
	}
	f.n.do(memOp{truncate: true, off: size})
	return nil
}

func (f *memFile) Stat() (os.FileInfo, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("stat", false); err != nil {
		return nil, err
	}
	return f.n.info(path.Base(path.Clean("/" + f.name))), nil
}

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	return nil
}

func (f *memFile) Name() string { return f.name }
