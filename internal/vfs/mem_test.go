package vfs

import (
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"reflect"
	"testing"
)

func readAll(t *testing.T, fsys FS, name string) []byte {
	t.Helper()
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return b
}

func write(t *testing.T, f File, s string) {
	t.Helper()
	if _, err := f.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

// fsSuite runs the same basic checks on MemFS and the real FS, so that
// MemFS behaves like os where the code relies on it.
func fsSuite(t *testing.T, fsys FS, dir string) {
	if err := fsys.MkdirAll(dir+"/a/b", 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := fsys.OpenFile(dir+"/a/b/f", os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	write(t, f, "hello ")
	write(t, f, "world")
	if err := f.Truncate(5); err != nil {
		t.Fatal(err)
	}
	write(t, f, "!") // O_APPEND: goes to the new end
	buf := make([]byte, 10)
	n, err := f.ReadAt(buf, 0)
	if n != 6 || err != io.EOF || string(buf[:n]) != "hello!" {
		t.Fatalf("ReadAt = %d %v %q", n, err, buf[:n])
	}
	if n, err := f.ReadAt(buf[:3], 1); n != 3 || err != nil || string(buf[:3]) != "ell" {
		t.Fatalf("ReadAt inside = %d %v", n, err)
	}
	if st, _ := f.Stat(); st.Size() != 6 || st.Name() != "f" || st.IsDir() {
		t.Fatalf("stat %v", st)
	}
	if f.Name() != dir+"/a/b/f" {
		t.Fatalf("name %q", f.Name())
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("x")); err == nil {
		t.Fatal("write after close succeeded")
	}
	if _, err := fsys.OpenFile(dir+"/a/b/f", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("O_EXCL: %v", err)
	}
	if _, err := fsys.OpenFile(dir+"/a/b/missing", os.O_RDONLY, 0); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
	if _, err := fsys.Stat(dir + "/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat missing: %v", err)
	}
	// Non-append writes go at the file position.
	g, err := fsys.OpenFile(dir+"/a/g", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	write(t, g, "abc")
	write(t, g, "def")
	g.Close()
	if got := string(readAll(t, fsys, dir+"/a/g")); got != "abcdef" {
		t.Fatalf("g = %q", got)
	}
	g, _ = fsys.OpenFile(dir+"/a/g", os.O_WRONLY|os.O_TRUNC, 0o644)
	write(t, g, "z")
	g.Close()
	if got := string(readAll(t, fsys, dir+"/a/g")); got != "z" {
		t.Fatalf("g after O_TRUNC = %q", got)
	}
	// WriteAt overwrites in place and extends; Datasync makes it durable.
	g, _ = fsys.OpenFile(dir+"/a/g", os.O_RDWR, 0)
	if _, err := g.WriteAt([]byte("xy"), 3); err != nil {
		t.Fatal(err)
	}
	if _, err := g.WriteAt([]byte("Z"), 0); err != nil {
		t.Fatal(err)
	}
	// WriteBack changes nothing anyone can read, on any range.
	if err := g.WriteBack(0, 5); err != nil {
		t.Fatal(err)
	}
	if err := g.WriteBack(2, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := g.Datasync(); err != nil {
		t.Fatal(err)
	}
	g.Close()
	if err := g.WriteBack(0, 5); err == nil {
		t.Fatal("WriteBack on a closed file succeeded")
	}
	if got := string(readAll(t, fsys, dir+"/a/g")); got != "Z\x00\x00xy" {
		t.Fatalf("g after WriteAt = %q", got)
	}
	// As for os.File, WriteAt refuses a file opened with O_APPEND.
	if _, err := f.WriteAt([]byte("x"), 0); err == nil {
		t.Fatal("WriteAt on a closed file succeeded")
	}
	ap, _ := fsys.OpenFile(dir+"/a/g", os.O_RDWR|os.O_APPEND, 0)
	if _, err := ap.WriteAt([]byte("x"), 0); err == nil {
		t.Fatal("WriteAt with O_APPEND succeeded")
	}
	ap.Close()
	if err := fsys.Rename(dir+"/a/g", dir+"/a/b/h"); err != nil {
		t.Fatal(err)
	}
	names, err := fsys.ReadDir(dir + "/a/b")
	if err != nil || !reflect.DeepEqual(names, []string{"f", "h"}) {
		t.Fatalf("ReadDir = %v %v", names, err)
	}
	if err := fsys.SyncDir(dir + "/a/b"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Remove(dir + "/a"); err == nil {
		t.Fatal("removed a non-empty directory")
	}
	if err := fsys.Remove(dir + "/a/b/h"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.RemoveAll(dir + "/a"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.RemoveAll(dir + "/a"); err != nil {
		t.Fatalf("RemoveAll of nothing: %v", err)
	}
	if _, err := fsys.Stat(dir + "/a"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after RemoveAll: %v", err)
	}
}

func TestMemFSBehavesLikeOS(t *testing.T) {
	t.Run("os", func(t *testing.T) { fsSuite(t, OS, t.TempDir()) })
	t.Run("mem", func(t *testing.T) { fsSuite(t, NewMemFS(), "/data") })
}

func TestCrashCloneKeepsOnlyDurable(t *testing.T) {
	m := NewMemFS()
	m.MkdirAll("/d", 0o755)
	m.SyncDir("/")
	f, _ := m.OpenFile("/d/f", os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	write(t, f, "synced")
	f.Sync()

	// The entry of f is not durable yet: a crash loses the file.
	if _, err := m.CrashClone(nil).Stat("/d/f"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("unsynced entry survived: %v", err)
	}
	m.SyncDir("/d")
	write(t, f, "-lost")
	c := m.CrashClone(nil)
	if got := string(readAll(t, c, "/d/f")); got != "synced" {
		t.Fatalf("after crash %q", got)
	}
	// The original is unchanged and the clone independent.
	if got := string(readAll(t, m, "/d/f")); got != "synced-lost" {
		t.Fatalf("original %q", got)
	}
	cf, _ := c.OpenFile("/d/f", os.O_RDWR|os.O_APPEND, 0)
	write(t, cf, "X")
	if got := string(readAll(t, m, "/d/f")); got != "synced-lost" {
		t.Fatalf("clone write leaked: %q", got)
	}
	// Clones of clones keep what the clone synced.
	cf.Sync()
	if got := string(readAll(t, c.CrashClone(nil), "/d/f")); got != "syncedX" {
		t.Fatalf("clone of clone %q", got)
	}

	// An unsynced truncate is lost; a synced one stays.
	f.Sync()
	f.Truncate(2)
	if got := string(readAll(t, m.CrashClone(nil), "/d/f")); got != "synced-lost" {
		t.Fatalf("unsynced truncate kept: %q", got)
	}
	f.Sync()
	if got := string(readAll(t, m.CrashClone(nil), "/d/f")); got != "sy" {
		t.Fatalf("synced truncate lost: %q", got)
	}

	// Remove and rename are undone unless the directory is synced.
	m.Remove("/d/f")
	if got := string(readAll(t, m.CrashClone(nil), "/d/f")); got != "sy" {
		t.Fatalf("unsynced remove kept: %q", got)
	}
	m.SyncDir("/d")
	if _, err := m.CrashClone(nil).Stat("/d/f"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("synced remove undone: %v", err)
	}
	g, _ := m.OpenFile("/d/g.tmp", os.O_WRONLY|os.O_CREATE, 0o644)
	write(t, g, "new")
	g.Sync()
	g.Close()
	m.SyncDir("/d")
	m.Rename("/d/g.tmp", "/d/g")
	c = m.CrashClone(nil)
	if names, _ := c.ReadDir("/d"); !reflect.DeepEqual(names, []string{"g.tmp"}) {
		t.Fatalf("unsynced rename: %v", names)
	}
	m.SyncDir("/d")
	if names, _ := m.CrashClone(nil).ReadDir("/d"); !reflect.DeepEqual(names, []string{"g"}) {
		t.Fatalf("synced rename: %v", names)
	}
}

func TestCrashCloneTornPrefix(t *testing.T) {
	m := NewMemFS()
	m.SyncDir("/")
	f, _ := m.OpenFile("/f", os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	m.SyncDir("/")
	write(t, f, "base.")
	f.Sync()
	for i := 0; i < 5; i++ {
		write(t, f, "0123456789")
	}
	full := string(readAll(t, m, "/f"))
	seen := map[int]bool{}
	for seed := uint64(0); seed < 200; seed++ {
		got := string(readAll(t, m.CrashClone(rand.New(rand.NewPCG(seed, 0))), "/f"))
		if len(got) < 5 || full[:len(got)] != got {
			t.Fatalf("seed %d: %q is not a prefix of %q keeping the synced part", seed, got, full)
		}
		seen[len(got)] = true
		// Same seed, same clone.
		if again := string(readAll(t, m.CrashClone(rand.New(rand.NewPCG(seed, 0))), "/f")); again != got {
			t.Fatalf("seed %d not deterministic", seed)
		}
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct torn lengths", len(seen))
	}
}

func TestFaultFS(t *testing.T) {
	m := NewMemFS()
	var failWrites bool
	fsys := NewFaultFS(m, func(op, path string) error {
		if op == OpWrite && failWrites {
			return ErrInjected
		}
		if op == OpSync && path == "/bad" {
			return ErrInjected
		}
		return nil
	})
	f, err := fsys.OpenFile("/f", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	write(t, f, "ok")
	failWrites = true
	if _, err := f.Write([]byte("no")); !errors.Is(err, ErrInjected) {
		t.Fatalf("write: %v", err)
	}
	if got := string(readAll(t, m, "/f")); got != "ok" {
		t.Fatalf("failed write wrote: %q", got)
	}
	if err := f.WriteBack(0, 2); !errors.Is(err, ErrInjected) {
		t.Fatalf("write-back fails as writes do: %v", err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	b, _ := fsys.OpenFile("/bad", os.O_RDWR|os.O_CREATE, 0o644)
	if err := b.Sync(); !errors.Is(err, ErrInjected) {
		t.Fatalf("sync: %v", err)
	}
}
