package partlog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oncelog/oncelog/internal/recordbatch"
	"github.com/oncelog/oncelog/internal/vfs"
)

func constTs(int) int64 { return t0.UnixMilli() }

func TestAppendReadRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "t-0")
	l := mustOpen(t, vfs.OS, dir, DefaultConfig())
	defer l.Close()
	if l.NextOffset() != 0 || l.StartOffset() != 0 {
		t.Fatalf("new log: next %d start %d", l.NextOffset(), l.StartOffset())
	}
	want := appendN(t, l, 50, 3, 20, constTs, t0)
	if l.NextOffset() != 150 {
		t.Fatalf("next = %d, want 150", l.NextOffset())
	}
	got := allBatches(t, l)
	if len(got) != len(want) {
		t.Fatalf("got %d batches, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("batch %d differs", i)
		}
	}
	b, err := l.Read(150, 1<<20, 1<<62)
	if err != nil || len(b) != 0 {
		t.Fatalf("read at end: %d bytes, %v", len(b), err)
	}
	for _, off := range []int64{-1, 151} {
		if _, err := l.Read(off, 100, 1<<62); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("read %d: err %v, want out of range", off, err)
		}
	}
}

func TestReadMidBatchAndBounds(t *testing.T) {
	l := mustOpen(t, vfs.OS, t.TempDir(), DefaultConfig())
	defer l.Close()
	batches := appendN(t, l, 10, 5, 10, constTs, t0) // offsets 0..49, 5 per batch
	size := len(batches[0])

	// Starting inside batch 3 (offsets 15..19) returns batch 3 first.
	b, err := l.Read(17, 1<<20, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	got := splitBatches(t, b)
	if len(got) != 7 || baseOf(got[0]) != 15 {
		t.Fatalf("read 17: %d batches from %d", len(got), baseOf(got[0]))
	}
	// maxBytes fits two whole batches and a bit.
	b, _ = l.Read(17, 2*size+size/2, 1<<62)
	if got := splitBatches(t, b); len(got) != 2 {
		t.Fatalf("maxBytes 2.5 batches: got %d", len(got))
	}
	// maxBytes smaller than one batch still returns the first (KIP-74).
	b, _ = l.Read(17, 1, 1<<62)
	if got := splitBatches(t, b); len(got) != 1 || baseOf(got[0]) != 15 {
		t.Fatalf("maxBytes 1: got %d", len(got))
	}
	b, _ = l.Read(17, 0, 1<<62)
	if got := splitBatches(t, b); len(got) != 1 {
		t.Fatalf("maxBytes 0: got %d", len(got))
	}
	// maxOffset excludes batches whose base is at or past it.
	b, _ = l.Read(17, 1<<20, 30)
	if got := splitBatches(t, b); len(got) != 3 || baseOf(got[2]) != 25 {
		t.Fatalf("maxOffset 30: got %d", len(got))
	}
	b, _ = l.Read(17, 1<<20, 26)
	if got := splitBatches(t, b); len(got) != 3 {
		t.Fatalf("maxOffset 26: got %d", len(got))
	}
	b, _ = l.Read(17, 1<<20, 17)
	if len(b) != 0 {
		t.Fatalf("maxOffset == offset: got %d bytes", len(b))
	}
}

func TestRollBySizeAndReadAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.SegmentBytes = 1000
	cfg.IndexIntervalBytes = 200
	l := mustOpen(t, vfs.OS, dir, cfg)
	want := appendN(t, l, 100, 2, 50, constTs, t0) // ~161 bytes each
	l.mu.RLock()
	nseg := len(l.mu.segs)
	for _, s := range l.mu.segs {
		if s.size > cfg.SegmentBytes {
			t.Errorf("segment %d has %d bytes", s.base, s.size)
		}
	}
	l.mu.RUnlock()
	if nseg < 10 {
		t.Fatalf("only %d segments", nseg)
	}
	// One read spanning all segments.
	b, err := l.Read(0, 1<<30, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	if got := splitBatches(t, b); len(got) != len(want) {
		t.Fatalf("read all: %d batches, want %d", len(got), len(want))
	}
	// Every offset finds its batch, through the index.
	for off := int64(0); off < l.NextOffset(); off++ {
		b, err := l.Read(off, 1, 1<<62)
		if err != nil {
			t.Fatal(err)
		}
		if got := baseOf(b); got != off&^1 {
			t.Fatalf("read %d: batch at %d", off, got)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	names, _ := os.ReadDir(dir)
	var logs int
	for _, n := range names {
		if strings.HasSuffix(n.Name(), ".log") {
			logs++
			if len(n.Name()) != 24 {
				t.Errorf("bad name %s", n.Name())
			}
		}
	}
	if logs != nseg {
		t.Fatalf("%d log files, %d segments", logs, nseg)
	}
	// Reopen after a clean close: same content, same indexes, nothing rebuilt.
	idx := readFileT(t, filepath.Join(dir, "00000000000000000000.index"))
	if len(idx) == 0 {
		t.Fatalf("empty index for a 1000-byte segment with interval 200")
	}
	l = mustOpen(t, vfs.OS, dir, cfg)
	defer l.Close()
	got := allBatches(t, l)
	if len(got) != len(want) {
		t.Fatalf("after reopen %d batches, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("batch %d differs after reopen", i)
		}
	}
	if !bytes.Equal(idx, readFileT(t, filepath.Join(dir, "00000000000000000000.index"))) {
		t.Fatalf("index rewritten on clean reopen")
	}
	appendN(t, l, 1, 1, 1, constTs, t0)
}

func readFileT(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRollByTime(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SegmentMs = time.Hour
	l := mustOpen(t, vfs.OS, t.TempDir(), cfg)
	defer l.Close()
	appendN(t, l, 3, 1, 10, constTs, t0)
	appendN(t, l, 3, 1, 10, constTs, t0.Add(59*time.Minute))
	if n := len(l.mu.segs); n != 1 {
		t.Fatalf("%d segments before an hour", n)
	}
	appendN(t, l, 1, 1, 10, constTs, t0.Add(time.Hour))
	if n := len(l.mu.segs); n != 2 {
		t.Fatalf("%d segments after an hour, want 2", n)
	}
	if l.mu.segs[1].base != 6 {
		t.Fatalf("second segment at %d", l.mu.segs[1].base)
	}
}

func TestIndexRebuiltWhenMissingOrWrong(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.IndexIntervalBytes = 100
	l := mustOpen(t, vfs.OS, dir, cfg)
	appendN(t, l, 40, 1, 30, func(i int) int64 { return t0.UnixMilli() + int64(i) }, t0)
	l.Close()
	ip := filepath.Join(dir, "00000000000000000000.index")
	tp := filepath.Join(dir, "00000000000000000000.timeindex")
	good, goodT := readFileT(t, ip), readFileT(t, tp)
	if len(good) == 0 || len(goodT) == 0 {
		t.Fatal("no index entries")
	}
	os.Remove(ip)
	os.WriteFile(tp, []byte("garbage"), 0o644)
	l = mustOpen(t, vfs.OS, dir, cfg)
	if !bytes.Equal(readFileT(t, ip), good) || !bytes.Equal(readFileT(t, tp), goodT) {
		t.Fatal("indexes not rebuilt to the same bytes")
	}
	// The lookup for a late offset starts near it, not at position 0.
	l.mu.RLock()
	s := l.mu.segs[0]
	pos, lastPos := s.lookupLocked(39), s.index[len(s.index)-1].pos
	l.mu.RUnlock()
	if pos == 0 || pos != int64(lastPos) {
		t.Fatalf("lookup(39) = %d, last index entry at %d", pos, lastPos)
	}
	for off := int64(0); off < 40; off++ {
		b, err := l.Read(off, 1, 1<<62)
		if err != nil || baseOf(b) != off {
			t.Fatalf("read %d: %v", off, err)
		}
	}
	l.Close()
}

func TestAppendRejectsBadInput(t *testing.T) {
	l := mustOpen(t, vfs.OS, t.TempDir(), DefaultConfig())
	defer l.Close()
	appendN(t, l, 1, 2, 1, constTs, t0)
	if err := l.Append(makeBatch(5, 1, 1, 0), t0); !errors.Is(err, ErrInvalidAppend) {
		t.Fatalf("wrong base: %v", err)
	}
	b := makeBatch(2, 1, 1, 0)
	b[len(b)-1] ^= 1
	if err := l.Append(b, t0); !errors.Is(err, ErrInvalidAppend) {
		t.Fatalf("bad crc: %v", err)
	}
	// Not sticky.
	if err := l.Append(makeBatch(2, 1, 1, 0), t0); err != nil {
		t.Fatal(err)
	}
	if _, err := recordbatch.Check(makeBatch(0, 1, 1, 0)); err != nil {
		t.Fatal(err)
	}
}

// TestIndexFilesWrittenInBatches: a Sync writes the index entries to the
// index files only once indexFlushEntries of them wait, Close writes the
// rest, and a crash that loses entries never written costs a rebuild at
// Open, nothing else.
func TestIndexFilesWrittenInBatches(t *testing.T) {
	m, dir := newMemDir(t)
	cfg := DefaultConfig()
	cfg.IndexIntervalBytes = 0 // an entry per batch but the first
	l := mustOpen(t, m, dir, cfg)
	ip := dir + "/" + segmentName(0) + indexSuffix
	indexBytes := func(fsys vfs.FS) int64 { return fileSize(t, fsys, ip) }
	for i := 0; i < indexFlushEntries; i++ {
		appendN(t, l, 1, 1, 10, constTs, t0)
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		if n := indexBytes(m); n != 0 {
			t.Fatalf("after %d syncs the index file has %d bytes", i+1, n)
		}
	}
	// The crash loses the unwritten entries; Open rebuilds them.
	c := mustOpen(t, m.CrashClone(nil), dir, cfg)
	if rec := c.Recovery(); len(rec.RebuiltIndexes) == 0 || rec.TornFile != "" {
		t.Fatalf("recovery %+v", rec)
	}
	if got := allBatches(t, c); len(got) != indexFlushEntries {
		t.Fatalf("%d batches after the crash", len(got))
	}
	c.Close()
	appendN(t, l, 1, 1, 10, constTs, t0) // the 128th entry
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if n := indexBytes(m); n != indexFlushEntries*indexEntrySize {
		t.Fatalf("index file %d bytes, want %d", n, indexFlushEntries*indexEntrySize)
	}
	appendN(t, l, 3, 1, 10, constTs, t0)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := indexBytes(m); n != (indexFlushEntries+3)*indexEntrySize {
		t.Fatalf("index file %d bytes after Close, want %d", n, (indexFlushEntries+3)*indexEntrySize)
	}
	l = mustOpen(t, m, dir, cfg)
	defer l.Close()
	if rec := l.Recovery(); len(rec.RebuiltIndexes) != 0 {
		t.Fatalf("clean reopen rebuilt %v", rec.RebuiltIndexes)
	}
}
