package partlog

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/oncelog/oncelog/internal/recordbatch"
	"github.com/oncelog/oncelog/internal/vfs"
)

// Tests of pre-zeroed segment extents: see the package comment and
// segment.zeroEnd.

// preallocConfig is DefaultConfig with Preallocate.
func preallocConfig() Config {
	c := DefaultConfig()
	c.Preallocate = true
	return c
}

// setExtents makes l extend its active segment by extents of min to max
// bytes instead of minExtentBytes to maxExtentBytes.
func setExtents(l *Log, min, max int64) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.minExtent, l.maxExtent = min, max
}

// setAhead turns l's extender (extend.go) on or off.
func setAhead(l *Log, on bool) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.ahead = on
}

// finishExtension waits until l's extender, if one runs, is done, and adopts
// what it wrote, as the owner's next Append or Sync would.
func finishExtension(t testing.TB, l *Log) {
	t.Helper()
	l.wmu.Lock()
	e := l.ext
	l.wmu.Unlock()
	if e == nil {
		return
	}
	<-e.done
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.adoptExtension(false); err != nil {
		t.Fatalf("extender: %v", err)
	}
}

// checkZeroTail asserts segment.zeroEnd's invariant on every segment of l:
// the file's size is zeroEnd, the bytes past size are zero, and only the
// active segment has any. It first lets the extender finish, so that tests
// that crash after it see every extension whole, in a seeded order.
func checkZeroTail(t *testing.T, l *Log) {
	t.Helper()
	finishExtension(t, l)
	l.wmu.Lock()
	defer l.wmu.Unlock()
	for i, s := range l.mu.segs {
		b := readMem(t, l.fs, s.path)
		if int64(len(b)) != s.zeroEnd || s.size > s.zeroEnd {
			t.Fatalf("%s: file %d bytes, size %d, zeroed end %d", s.path, len(b), s.size, s.zeroEnd)
		}
		if i < len(l.mu.segs)-1 && s.zeroEnd != s.size {
			t.Fatalf("closed segment %s keeps %d zero bytes", s.path, s.zeroEnd-s.size)
		}
		if at := bytes.IndexFunc(b[s.size:], func(r rune) bool { return r != 0 }); at >= 0 {
			t.Fatalf("%s: non-zero byte at %d past the data's end %d", s.path, s.size+int64(at), s.size)
		}
	}
}

func fileSize(t testing.TB, fsys vfs.FS, name string) int64 {
	t.Helper()
	st, err := fsys.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// fsKinds runs f on the real filesystem and on a MemFS.
func fsKinds(t *testing.T, f func(t *testing.T, fsys vfs.FS, dir string)) {
	t.Run("os", func(t *testing.T) { f(t, vfs.OS, t.TempDir()+"/t-0") })
	t.Run("mem", func(t *testing.T) {
		m, dir := newMemDir(t)
		f(t, m, dir)
	})
}

// countFS counts Sync and Datasync calls on .log files: on the owner's
// handles, and in aheadSyncs the Syncs on the extender's (opened write-only).
type countFS struct {
	vfs.FS
	syncs, datasyncs, aheadSyncs atomic.Int64
}

type countFile struct {
	vfs.File
	c     *countFS
	ahead bool
}

func (c *countFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	f, err := c.FS.OpenFile(name, flag, perm)
	if err != nil || !strings.HasSuffix(name, logSuffix) {
		return f, err
	}
	return countFile{f, c, flag&(os.O_RDWR|os.O_WRONLY) == os.O_WRONLY}, nil
}

func (f countFile) Sync() error {
	if f.ahead {
		f.c.aheadSyncs.Add(1)
	} else {
		f.c.syncs.Add(1)
	}
	return f.File.Sync()
}
func (f countFile) Datasync() error { f.c.datasyncs.Add(1); return f.File.Datasync() }

// countedLog opens a log with cfg on a fresh MemFS whose Sync and Datasync
// calls are counted; name is its first segment's file.
func countedLog(t *testing.T, cfg Config) (m *vfs.MemFS, c *countFS, l *Log, name string) {
	t.Helper()
	m, dir := newMemDir(t)
	c = &countFS{FS: m}
	l = mustOpen(t, c, dir, cfg)
	t.Cleanup(func() { l.Close() })
	return m, c, l, dir + "/" + segmentName(0) + logSuffix
}

// TestSyncIsDatasyncInsideAnExtent: the point of the extents, extended in
// place. Every Sync after an append is an fdatasync, except the first one
// after each extension, which is a full fsync (the journal commit the
// extent's appends share); extents double from the minimum up to the
// maximum.
func TestSyncIsDatasyncInsideAnExtent(t *testing.T) {
	m, c, l, name := countedLog(t, preallocConfig())
	setExtents(l, 1000, 4000)
	setAhead(l, false)
	var ends []int64
	for i := 0; i < 200; i++ {
		appendN(t, l, 1, 1, 40, constTs, t0)
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		if n := fileSize(t, m, name); len(ends) == 0 || ends[len(ends)-1] != n {
			ends = append(ends, n)
		}
		checkZeroTail(t, l)
	}
	// 1000, then doubling (+1000, +2000), then +4000 at a time.
	want := []int64{1000, 2000, 4000, 8000, 12000, 16000, 20000}
	if len(ends) < len(want) || !equalInts(ends[:len(want)], want) {
		t.Fatalf("file sizes %v, want %v...", ends, want)
	}
	if got := c.syncs.Load(); got != int64(len(ends)) {
		t.Fatalf("%d fsyncs for %d extensions", got, len(ends))
	}
	if got := c.datasyncs.Load(); got != 200-int64(len(ends)) {
		t.Fatalf("%d fdatasyncs, want %d", got, 200-len(ends))
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRecoverPreZeroedTail: a log whose active segment's file is longer than
// its data (the process died, or the machine crashed after a Sync) opens
// clean, keeps its zeros for the next appends, and reports no repair.
func TestRecoverPreZeroedTail(t *testing.T) {
	fsKinds(t, func(t *testing.T, fsys vfs.FS, dir string) {
		l := mustOpen(t, fsys, dir, preallocConfig())
		want := appendN(t, l, 10, 2, 30, constTs, t0)
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		name := dir + "/" + segmentName(0) + logSuffix
		if fileSize(t, fsys, name) != minExtentBytes || l.Size() >= minExtentBytes {
			t.Fatalf("file %d bytes for %d of data", fileSize(t, fsys, name), l.Size())
		}
		size := l.Size()
		if m, ok := fsys.(*vfs.MemFS); ok {
			fsys = m.CrashClone(nil)
		} // else the Log is abandoned as by a killed process
		defer l.Close()

		r := mustOpen(t, fsys, dir, preallocConfig())
		if r.NextOffset() != 20 || r.Size() != size {
			t.Fatalf("next %d size %d, want 20 %d", r.NextOffset(), r.Size(), size)
		}
		if rec := r.Recovery(); rec.TornFile != "" || len(rec.TrimmedFiles) != 0 || len(rec.RemovedFiles) != 0 {
			t.Fatalf("recovery repaired a clean log: %+v", rec)
		}
		if fileSize(t, fsys, name) != minExtentBytes {
			t.Fatalf("zeros not kept: file %d bytes", fileSize(t, fsys, name))
		}
		checkZeroTail(t, r)
		want = append(want, appendN(t, r, 3, 1, 30, constTs, t0)...)
		checkZeroTail(t, r)
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		r = mustOpen(t, fsys, dir, preallocConfig())
		defer r.Close()
		if got := allBatches(t, r); len(got) != len(want) || !bytes.Equal(bytes.Join(got, nil), bytes.Join(want, nil)) {
			t.Fatalf("%d batches after reopen, want %d", len(got), len(want))
		}
	})
}

// TestRecoverTornBatchBeforeZeros: a batch torn inside the zeroed extent (a
// partial header, or a whole header and part of the body, followed by the
// extent's zeros) is a torn tail exactly as before extents: cut at the end
// of the last valid batch, durably.
func TestRecoverTornBatchBeforeZeros(t *testing.T) {
	// NB: a tear that wrote only leading zero bytes (the first bytes of a
	// small base offset) is no tear: the batch was just not written.
	for _, tear := range []int{8, 20, recordbatch.HeaderSize, -10} {
		fsKinds(t, func(t *testing.T, fsys vfs.FS, dir string) {
			l := mustOpen(t, fsys, dir, preallocConfig())
			appendN(t, l, 5, 1, 50, constTs, t0)
			end := l.Size()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			name := dir + "/" + segmentName(0) + logSuffix
			b := makeBatch(5, 1, 50, constTs(0))
			n := tear
			if n < 0 {
				n += len(b)
			}
			f, err := fsys.OpenFile(name, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(b[:n], end); err != nil {
				t.Fatal(err)
			}
			f.Sync()
			f.Close()

			l = mustOpen(t, fsys, dir, preallocConfig())
			defer l.Close()
			rec := l.Recovery()
			if l.NextOffset() != 5 || l.Size() != end || rec.TornFile != name || rec.TornPosition != end {
				t.Fatalf("tear %d: next %d size %d, recovery %+v", n, l.NextOffset(), l.Size(), rec)
			}
			if fileSize(t, fsys, name) != end {
				t.Fatalf("tear %d: file %d bytes after truncation to %d", n, fileSize(t, fsys, name), end)
			}
			checkZeroTail(t, l)
			appendN(t, l, 1, 1, 50, constTs, t0)
			if len(allBatches(t, l)) != 6 {
				t.Fatal("append after repair")
			}
		})
	}
}

// TestZerosThenDataIsTornOrCorrupt: zeros where a batch should start but
// non-zero bytes after them are not a clean end. In the last segment they
// are a torn tail (writes past a hole are unsynced); in a closed segment,
// corruption.
func TestZerosThenDataIsTornOrCorrupt(t *testing.T) {
	m, dir := newMemDir(t)
	cfg := preallocConfig()
	cfg.SegmentBytes = 500
	l := mustOpen(t, m, dir, cfg)
	appendN(t, l, 20, 1, 50, constTs, t0)
	bases := segBases(l)
	end := l.Size()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	damage := func(fsys vfs.FS, base int64, zeros int) string {
		name := dir + "/" + segmentName(base) + logSuffix
		f, _ := fsys.OpenFile(name, os.O_RDWR, 0)
		st, _ := f.Stat()
		if _, err := f.WriteAt(append(make([]byte, zeros), 0xff), st.Size()); err != nil {
			t.Fatal(err)
		}
		f.Sync()
		f.Close()
		return name
	}

	last := m.CrashClone(nil)
	name := damage(last, bases[len(bases)-1], 100)
	r := mustOpen(t, last, dir, cfg)
	rec := r.Recovery()
	if r.Size() != end || rec.TornFile != name || !strings.Contains(rec.TornReason, "followed by non-zero bytes") {
		t.Fatalf("size %d want %d, recovery %+v", r.Size(), end, rec)
	}
	checkZeroTail(t, r)
	r.Close()

	mid := m.CrashClone(nil)
	name = damage(mid, bases[0], 100)
	if _, err := Open(mid, dir, cfg, t0); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), name) {
		t.Fatalf("open: %v, want ErrCorrupt naming %s", err, name)
	}
}

// TestCrashBetweenRollAndTrim: a closed segment whose file still carries
// zeros after its data (roll's trim was not durable) is trimmed by Open, and
// the log is otherwise intact. Roll trims before the next segment exists,
// so the test makes the state by hand.
func TestCrashBetweenRollAndTrim(t *testing.T) {
	fsKinds(t, func(t *testing.T, fsys vfs.FS, dir string) {
		cfg := preallocConfig()
		cfg.SegmentBytes = 500
		l := mustOpen(t, fsys, dir, cfg)
		want := appendN(t, l, 20, 1, 50, constTs, t0)
		bases := segBases(l)
		if len(bases) < 3 {
			t.Fatalf("segments %v", bases)
		}
		checkZeroTail(t, l)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		var trimmed []string
		for _, b := range bases[:2] {
			name := dir + "/" + segmentName(b) + logSuffix
			f, _ := fsys.OpenFile(name, os.O_RDWR, 0)
			st, _ := f.Stat()
			f.WriteAt(make([]byte, 300), st.Size())
			f.Sync()
			f.Close()
			trimmed = append(trimmed, name)
		}
		l = mustOpen(t, fsys, dir, cfg)
		defer l.Close()
		rec := l.Recovery()
		if strings.Join(rec.TrimmedFiles, ",") != strings.Join(trimmed, ",") || rec.TornFile != "" {
			t.Fatalf("recovery %+v, want %v trimmed", rec, trimmed)
		}
		checkZeroTail(t, l)
		if got := allBatches(t, l); !bytes.Equal(bytes.Join(got, nil), bytes.Join(want, nil)) {
			t.Fatalf("%d batches, want %d", len(got), len(want))
		}
	})
}

// TestZeroOnlySegmentsHoldNoData: a segment whose file is only zeros (its
// first extension written, its first batch lost) holds nothing. As the last
// segment it opens empty and takes appends; after a torn tail in the
// segment before it, it is removed like an empty one.
func TestZeroOnlySegmentsHoldNoData(t *testing.T) {
	m, dir := newMemDir(t)
	l := mustOpen(t, m, dir, preallocConfig())
	appendN(t, l, 5, 1, 50, constTs, t0)
	end := l.Size()
	appendN(t, l, 1, 1, 50, constTs, t0)
	l.Close()
	name := dir + "/" + segmentName(0) + logSuffix
	f, _ := m.OpenFile(name, os.O_RDWR, 0)
	f.Truncate(end + 30) // tear the last batch
	f.Sync()
	f.Close()
	// Segment 6 holds an extent of zeros and nothing else.
	seg6 := dir + "/" + segmentName(6) + logSuffix
	e, _ := m.OpenFile(seg6, os.O_RDWR|os.O_CREATE, 0o644)
	e.WriteAt(make([]byte, 1000), 0)
	e.Sync()
	e.Close()
	m.SyncDir(dir)

	only := m.CrashClone(nil)
	only.Remove(name)
	only.SyncDir(dir)
	r := mustOpen(t, only, dir, preallocConfig())
	if r.NextOffset() != 6 || r.Size() != 0 || r.Recovery().TornFile != "" {
		t.Fatalf("zero-only last segment: next %d size %d recovery %+v", r.NextOffset(), r.Size(), r.Recovery())
	}
	checkZeroTail(t, r)
	appendN(t, r, 1, 1, 50, constTs, t0)
	if len(allBatches(t, r)) != 1 {
		t.Fatal("append to zero-only segment")
	}
	r.Close()

	l = mustOpen(t, m, dir, preallocConfig())
	defer l.Close()
	rec := l.Recovery()
	if l.NextOffset() != 5 || rec.TornFile != name || len(rec.RemovedFiles) != 1 || rec.RemovedFiles[0] != seg6 {
		t.Fatalf("next %d, recovery %+v", l.NextOffset(), rec)
	}
}

// TestReadsStopAtLogicalEnd: no read returns the zeros past the data,
// whatever its bounds, on real files.
func TestReadsStopAtLogicalEnd(t *testing.T) {
	l := mustOpen(t, vfs.OS, t.TempDir(), preallocConfig())
	defer l.Close()
	var want [][]byte
	for i := 0; i < 40; i++ {
		want = append(want, appendN(t, l, 1, 1+i%3, 10+i*7, func(int) int64 { return t0.UnixMilli() + int64(i) }, t0)...)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if fs := fileSize(t, vfs.OS, l.Dir()+"/"+segmentName(0)+logSuffix); fs <= l.Size() {
		t.Fatalf("file %d bytes, data %d: no zeros to test", fs, l.Size())
	}
	end := l.NextOffset()
	for i, b := range want {
		rest := bytes.Join(want[i:], nil)
		for _, maxBytes := range []int{1, len(rest), len(rest) + 1, 1 << 30} {
			got, err := l.Read(baseOf(b), maxBytes, 1<<62)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) > len(rest) || !bytes.Equal(got, rest[:len(got)]) || len(got) == 0 {
				t.Fatalf("read %d max %d: %d bytes, want a prefix of %d", baseOf(b), maxBytes, len(got), len(rest))
			}
			if maxBytes >= len(rest) && len(got) != len(rest) {
				t.Fatalf("read %d max %d: %d bytes, want %d", baseOf(b), maxBytes, len(got), len(rest))
			}
		}
	}
	if got, err := l.Read(end, 1<<30, 1<<62); err != nil || len(got) != 0 {
		t.Fatalf("read at end: %d bytes, %v", len(got), err)
	}
	if got := allBatches(t, l); len(got) != len(want) {
		t.Fatalf("scan: %d batches, want %d", len(got), len(want))
	}
	if _, ok, err := l.FindTimestamp(t0.UnixMilli() + 1000); ok || err != nil {
		t.Fatalf("find timestamp past the max: %v %v", ok, err)
	}
	if b, ok, err := l.FindTimestamp(t0.UnixMilli() + 39); !ok || err != nil || !bytes.Equal(b, want[39]) {
		t.Fatalf("find last timestamp: %v %v", ok, err)
	}
}

// TestRetentionBytesUsesLogicalSize: retention.bytes counts the data, not
// the active segment's zeros.
func TestRetentionBytesUsesLogicalSize(t *testing.T) {
	m, dir := newMemDir(t)
	cfg := preallocConfig()
	cfg.SegmentBytes = 1000
	cfg.RetentionMs = -1
	l := mustOpen(t, m, dir, cfg)
	defer l.Close()
	batches := appendN(t, l, 21, 1, 100, constTs, t0)
	var data int64
	for _, b := range batches {
		data += int64(len(b))
	}
	if l.Size() != data {
		t.Fatalf("Size %d, batches %d", l.Size(), data)
	}
	bases := segBases(l)
	active := dir + "/" + segmentName(bases[len(bases)-1]) + logSuffix
	if fileSize(t, m, active) != cfg.SegmentBytes {
		t.Fatalf("active file %d bytes, want an extent to %d", fileSize(t, m, active), cfg.SegmentBytes)
	}
	first := fileSize(t, m, dir+"/"+segmentName(bases[0])+logSuffix)
	// Deleting the first segment would leave data-first+1 < retention:
	// nothing goes. Counting the zeros would have deleted it.
	cfg.RetentionBytes = data - first + 1
	l.SetConfig(cfg)
	if start, err := l.EnforceRetention(t0, l.NextOffset()); err != nil || start != 0 {
		t.Fatalf("retention to %d: start %d, %v", cfg.RetentionBytes, start, err)
	}
	cfg.RetentionBytes = data - first
	l.SetConfig(cfg)
	if start, err := l.EnforceRetention(t0, l.NextOffset()); err != nil || start != bases[1] {
		t.Fatalf("retention to %d: start %d, %v, want %d", cfg.RetentionBytes, start, err, bases[1])
	}
}

// TestTruncateDropsZeros: Truncate cuts the file to the data (the zeros go
// too), later appends extend it again, and the log reopens the same.
func TestTruncateDropsZeros(t *testing.T) {
	fsKinds(t, func(t *testing.T, fsys vfs.FS, dir string) {
		l := mustOpen(t, fsys, dir, preallocConfig())
		setExtents(l, 300, 1200)
		appendN(t, l, 30, 1, 60, constTs, t0)
		checkZeroTail(t, l)
		if err := l.Truncate(17); err != nil {
			t.Fatal(err)
		}
		name := dir + "/" + segmentName(0) + logSuffix
		if l.NextOffset() != 17 || fileSize(t, fsys, name) != l.Size() {
			t.Fatalf("next %d, file %d bytes for %d of data", l.NextOffset(), fileSize(t, fsys, name), l.Size())
		}
		checkZeroTail(t, l)
		want := append(allBatches(t, l), appendN(t, l, 5, 1, 60, constTs, t0)...)
		checkZeroTail(t, l)
		if fileSize(t, fsys, name) <= l.Size() {
			t.Fatal("no extent after truncate")
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = mustOpen(t, fsys, dir, preallocConfig())
		defer l.Close()
		if got := allBatches(t, l); !bytes.Equal(bytes.Join(got, nil), bytes.Join(want, nil)) {
			t.Fatalf("%d batches after reopen, want %d", len(got), len(want))
		}
	})
}

// TestExtensionErrorsAreSticky: a failed zero write or the failed fsync
// after an extension stops the log like any storage error.
func TestExtensionErrorsAreSticky(t *testing.T) {
	for _, op := range []string{vfs.OpWrite, vfs.OpSync} {
		t.Run(op, func(t *testing.T) {
			m, dir := newMemDir(t)
			var fail atomic.Bool
			fsys := vfs.NewFaultFS(m, func(o, p string) error {
				if fail.Load() && o == op && strings.HasSuffix(p, logSuffix) {
					return vfs.ErrInjected
				}
				return nil
			})
			l := mustOpen(t, fsys, dir, preallocConfig())
			defer l.Close()
			fail.Store(true)
			err := l.Append(makeBatch(0, 1, 10, 0), t0) // extends first
			if op == vfs.OpSync && err == nil {
				err = l.Sync()
			}
			if !errors.Is(err, ErrStorage) || !errors.Is(err, vfs.ErrInjected) {
				t.Fatalf("first failure: %v", err)
			}
			fail.Store(false)
			if err := l.Append(makeBatch(l.NextOffset(), 1, 10, 0), t0); !errors.Is(err, ErrStorage) {
				t.Fatalf("append after failure: %v", err)
			}
			if err := l.Sync(); !errors.Is(err, ErrStorage) {
				t.Fatalf("sync after failure: %v", err)
			}
		})
	}
}

// TestWithoutPreallocateFilesAreExact: without Preallocate the file is its
// data, every Sync is a full fsync, and Open trims the zeros a log written
// with Preallocate left in its active segment (what test/fault's torn tail
// test expects of a segment file).
func TestWithoutPreallocateFilesAreExact(t *testing.T) {
	m, dir := newMemDir(t)
	c := &countFS{FS: m}
	l := mustOpen(t, c, dir, preallocConfig())
	appendN(t, l, 3, 1, 40, constTs, t0)
	l.Close()
	name := dir + "/" + segmentName(0) + logSuffix
	if fileSize(t, m, name) != minExtentBytes {
		t.Fatalf("file %d bytes", fileSize(t, m, name))
	}
	l = mustOpen(t, c, dir, DefaultConfig())
	defer l.Close()
	if rec := l.Recovery(); len(rec.TrimmedFiles) != 1 || rec.TrimmedFiles[0] != name || rec.TornFile != "" {
		t.Fatalf("recovery %+v", rec)
	}
	c.syncs.Store(0)
	for i := 0; i < 5; i++ {
		appendN(t, l, 1, 1, 40, constTs, t0)
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		if fileSize(t, m, name) != l.Size() {
			t.Fatalf("file %d bytes for %d of data", fileSize(t, m, name), l.Size())
		}
		checkZeroTail(t, l)
	}
	if c.syncs.Load() != 5 || c.datasyncs.Load() != 0 {
		t.Fatalf("%d fsyncs and %d fdatasyncs for 5 syncs", c.syncs.Load(), c.datasyncs.Load())
	}
}

// TestLargeSyncsWriteNoZeros: the zeros follow the size of the Syncs
// (bulkSyncBytes). Small Syncs keep zeros ahead of the data and are
// fdatasyncs; once Syncs average more than the threshold the zeros left are
// used up and the file then grows by its appends alone, every Sync a full
// fsync; when Syncs are small again, extents of zeros come back.
func TestLargeSyncsWriteNoZeros(t *testing.T) {
	m, c, l, name := countedLog(t, preallocConfig())
	setExtents(l, 4096, 16384)
	l.bulkAt = 8192
	small := func(n int) {
		t.Helper()
		for range n {
			appendN(t, l, 1, 1, 100, constTs, t0)
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			checkZeroTail(t, l)
		}
	}
	small(50)
	if fileSize(t, m, name) <= l.Size() {
		t.Fatalf("small syncs: file %d bytes for %d of data, want zeros ahead", fileSize(t, m, name), l.Size())
	}
	// 32 KiB per Sync, four times the threshold: after the first Syncs the
	// log is bulk; the zeros left then last at most an extent or two.
	for i := range 40 {
		appendN(t, l, 32, 1, 1000, constTs, t0)
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		checkZeroTail(t, l)
		if i >= 10 && fileSize(t, m, name) != l.Size() {
			t.Fatalf("large sync %d: file %d bytes for %d of data: zeros written for large syncs", i, fileSize(t, m, name), l.Size())
		}
	}
	c.syncs.Store(0)
	c.datasyncs.Store(0)
	appendN(t, l, 32, 1, 1000, constTs, t0)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if c.syncs.Load() != 1 || c.datasyncs.Load() != 0 {
		t.Fatalf("a large sync of a growing file: %d fsyncs, %d fdatasyncs; want one fsync", c.syncs.Load(), c.datasyncs.Load())
	}
	// The average falls by 1/8 per small Sync: 32 KiB to below 4 KiB takes
	// 16 of them, and the extents are back.
	small(40)
	if fileSize(t, m, name) <= l.Size() {
		t.Fatalf("small syncs again: file %d bytes for %d of data, want zeros ahead", fileSize(t, m, name), l.Size())
	}
	c.syncs.Store(0)
	c.datasyncs.Store(0)
	small(1)
	if c.datasyncs.Load() != 1 {
		t.Fatalf("a small sync inside an extent: %d fsyncs, %d fdatasyncs; want one fdatasync", c.syncs.Load(), c.datasyncs.Load())
	}
}
