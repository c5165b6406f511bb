package partlog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/oncelog/oncelog/internal/recordbatch"
	"github.com/oncelog/oncelog/internal/vfs"
)

// readRanges reads the bytes rs points at.
func readRanges(t testing.TB, rs FileRanges) []byte {
	t.Helper()
	var out []byte
	for _, r := range rs.Ranges {
		b := make([]byte, r.Len)
		if n, err := r.File.ReadAt(b, r.Pos); n != len(b) {
			t.Fatalf("read range %d+%d of %s: %d bytes, %v", r.Pos, r.Len, r.File.Name(), n, err)
		}
		out = append(out, b...)
	}
	if int64(len(out)) != rs.Bytes {
		t.Fatalf("ranges hold %d bytes, Bytes says %d", len(out), rs.Bytes)
	}
	return out
}

// segSizes maps each segment's file name to its logical size.
func segSizes(l *Log) map[string]int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	m := make(map[string]int64)
	for _, s := range l.mu.segs {
		m[s.f.Name()] = s.size
	}
	return m
}

// TestReadRangesMatchesRead: the ranges hold exactly the bytes Read returns,
// for every start offset, budget and maxOffset, including a first batch
// larger than the budget (KIP-74), reads across segments and reads ending
// at maxOffset; no range reaches into the active segment's pre-zeroed
// tail, and LastOffset is the last offset read. The index intervals range
// from an entry per batch (every boundary known without reading) to none
// in a segment (every header walked).
func TestReadRangesMatchesRead(t *testing.T) {
	for _, c := range []struct {
		segmentBytes int64
		interval     int
		prealloc     bool
	}{{4 << 10, 4096, true}, {4 << 10, 0, true}, {4 << 10, 300, true}, {64 << 10, 0, true}, {64 << 10, 1000, true}, {64 << 10, 1 << 20, true}, {4 << 10, 4096, false}} {
		t.Run(fmt.Sprintf("segment=%d,interval=%d,preallocate=%v", c.segmentBytes, c.interval, c.prealloc), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.SegmentBytes = c.segmentBytes
			cfg.IndexIntervalBytes = c.interval
			cfg.Preallocate = c.prealloc
			testReadRangesMatchesRead(t, cfg)
		})
	}
}

func testReadRangesMatchesRead(t *testing.T, cfg Config) {
	l := mustOpen(t, vfs.OS, t.TempDir(), cfg)
	defer l.Close()
	for i := 0; i < 40; i++ {
		appendN(t, l, 1, 1+i%4, 50+i*17, func(int) int64 { return t0.UnixMilli() }, t0)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	end := l.NextOffset()
	active := l.Dir() + "/" + segmentName(l.active().base) + logSuffix
	if cfg.Preallocate && fileSize(t, vfs.OS, active) <= segSizes(l)[active] {
		t.Fatal("the active segment has no zero tail to test")
	}
	if len(segBases(l)) < 4 && cfg.SegmentBytes < 10<<10 {
		t.Fatalf("only %d segments", len(segBases(l)))
	}
	sizes := segSizes(l)
	for off := int64(0); off <= end; off += 3 {
		for _, maxBytes := range []int{0, 1, 500, 1500, 5000, 9000, 30000, 1 << 20} {
			for _, maxOffset := range []int64{off, off + 1, off + 10, off + 30, end - 5, end, 1 << 62} {
				want, err := l.Read(off, maxBytes, maxOffset)
				if err != nil {
					t.Fatal(err)
				}
				rs, release, err := l.ReadRanges(off, maxBytes, maxOffset)
				if err != nil {
					t.Fatal(err)
				}
				got := readRanges(t, rs)
				release()
				if !bytes.Equal(got, want) {
					t.Fatalf("offset %d max %d maxOffset %d: ranges hold %d bytes, Read gave %d", off, maxBytes, maxOffset, len(got), len(want))
				}
				wantLast := int64(-1)
				if len(want) > 0 {
					bs := splitBatches(t, want)
					wantLast = baseOf(bs[len(bs)-1]) + int64(lastDelta(bs[len(bs)-1]))
				}
				if rs.LastOffset != wantLast {
					t.Fatalf("offset %d max %d maxOffset %d: LastOffset %d, want %d", off, maxBytes, maxOffset, rs.LastOffset, wantLast)
				}
				for _, r := range rs.Ranges {
					if r.Pos+r.Len > sizes[r.File.Name()] {
						t.Fatalf("range %d+%d of %s past the data's end %d", r.Pos, r.Len, r.File.Name(), sizes[r.File.Name()])
					}
				}
				if len(rs.Ranges) > 0 && len(rs.Ranges) != len(distinctFiles(rs)) {
					t.Fatalf("%d ranges over %d files: batches of a segment not merged", len(rs.Ranges), len(distinctFiles(rs)))
				}
			}
		}
	}
	if _, _, err := l.ReadRanges(end+1, 100, 1<<62); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("past the end: %v", err)
	}
}

func lastDelta(b []byte) int32 {
	h, err := recordbatch.ParseHeader(b)
	if err != nil {
		panic(err)
	}
	return h.LastOffsetDelta
}

func distinctFiles(rs FileRanges) map[string]bool {
	m := make(map[string]bool)
	for _, r := range rs.Ranges {
		m[r.File.Name()] = true
	}
	return m
}

// TestReadRangesLargeBatches: batches larger than the header reader's
// buffer are walked one header at a time and come back whole.
func TestReadRangesLargeBatches(t *testing.T) {
	l := mustOpen(t, vfs.OS, t.TempDir(), DefaultConfig())
	defer l.Close()
	appendN(t, l, 30, 2, 9000, constTs, t0)
	appendN(t, l, 30, 5, 20, constTs, t0)
	appendN(t, l, 5, 1, 70000, constTs, t0)
	end := l.NextOffset()
	for off := int64(0); off < end; off += 5 {
		for _, maxBytes := range []int{1, 20000, 100000, 1 << 30} {
			want, _ := l.Read(off, maxBytes, end)
			rs, release, err := l.ReadRanges(off, maxBytes, end)
			if err != nil {
				t.Fatal(err)
			}
			if got := readRanges(t, rs); !bytes.Equal(got, want) {
				t.Fatalf("offset %d max %d: %d bytes, want %d", off, maxBytes, len(got), len(want))
			}
			release()
		}
	}
}

// TestReadRangesNotOSFiles: a MemFS (or FaultFS) log gives no ranges, so
// the caller falls back to ReadAppend.
func TestReadRangesNotOSFiles(t *testing.T) {
	m, mdir := newMemDir(t)
	for _, c := range []struct {
		fsys vfs.FS
		dir  string
	}{{m, mdir}, {vfs.NewFaultFS(vfs.OS, func(string, string) error { return nil }), t.TempDir()}} {
		fsys := c.fsys
		l := mustOpen(t, fsys, c.dir, DefaultConfig())
		appendN(t, l, 3, 1, 10, constTs, t0)
		if _, _, err := l.ReadRanges(0, 1<<20, 1<<62); !errors.Is(err, ErrNoFileRanges) {
			t.Fatalf("%T: %v, want ErrNoFileRanges", fsys, err)
		}
		l.Close()
	}
}

// TestReadRangesHeldAcrossRetention: retention deletes the segments of a
// range a sender still holds; the files stay open and readable until
// release, and are closed by it.
func TestReadRangesHeldAcrossRetention(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 1000
	cfg.RetentionMs = time.Hour
	l := mustOpen(t, vfs.OS, t.TempDir(), cfg)
	defer l.Close()
	appendN(t, l, 40, 1, 100, func(i int) int64 { return t0.Add(time.Duration(i) * time.Minute).UnixMilli() }, t0)
	want, err := l.Read(0, 5000, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	rs, release, err := l.ReadRanges(0, 5000, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Ranges) < 2 {
		t.Fatalf("%d ranges, want several segments", len(rs.Ranges))
	}
	start, err := l.EnforceRetention(t0.Add(1000*time.Hour), l.NextOffset())
	if err != nil {
		t.Fatal(err)
	}
	if start <= rs.LastOffset {
		t.Fatalf("retention kept offset %d of the range (start %d)", rs.LastOffset, start)
	}
	for _, r := range rs.Ranges {
		if _, err := os.Stat(r.File.Name()); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s still exists: %v", r.File.Name(), err)
		}
	}
	if got := readRanges(t, rs); !bytes.Equal(got, want) {
		t.Fatal("held ranges changed after retention")
	}
	release()
	var b [1]byte
	if _, err := rs.Ranges[0].File.ReadAt(b[:], 0); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("file after release: %v, want closed", err)
	}
	// Only the held views were kept: the segments not in the range were
	// closed by retention already, and the log's own are untouched.
	appendN(t, l, 1, 1, 10, constTs, t0)
	if got, err := l.Read(start, 1<<20, 1<<62); err != nil || len(got) == 0 {
		t.Fatalf("read after retention: %d bytes, %v", len(got), err)
	}
}
