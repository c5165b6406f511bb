package partlog

import (
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/oncelog/oncelog/internal/recordbatch"
	"github.com/oncelog/oncelog/internal/vfs"
)

func segBases(l *Log) []int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var out []int64
	for _, s := range l.mu.segs {
		out = append(out, s.base)
	}
	return out
}

func TestRetentionByTime(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 500
	cfg.RetentionMs = time.Hour
	l := mustOpen(t, vfs.OS, t.TempDir(), cfg)
	defer l.Close()
	// Batch i has timestamp t0 + i minutes.
	appendN(t, l, 60, 1, 50, func(i int) int64 { return t0.Add(time.Duration(i) * time.Minute).UnixMilli() }, t0)
	bases := segBases(l)
	if len(bases) < 5 {
		t.Fatalf("only %d segments", len(bases))
	}
	// At t0+1h+10m, batches older than t0+10m are past retention; a segment
	// goes when its newest batch is.
	now := t0.Add(70 * time.Minute)
	start, err := l.EnforceRetention(now, l.NextOffset())
	if err != nil {
		t.Fatal(err)
	}
	after := segBases(l)
	if start != after[0] || start == 0 {
		t.Fatalf("start %d, segments %v", start, after)
	}
	// The first kept segment has a batch at or after t0+10m; the last
	// deleted one had none.
	if start > 11 {
		t.Fatalf("deleted too much: start %d", start)
	}
	if _, err := l.Read(start-1, 100, 1<<62); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below start: %v", err)
	}
	// limit protects segments holding offsets >= limit.
	now = t0.Add(1000 * time.Hour)
	start2, err := l.EnforceRetention(now, start+1)
	if err != nil || start2 != start {
		t.Fatalf("limit ignored: %d %v", start2, err)
	}
	// Everything is old, but the active segment stays.
	start3, _ := l.EnforceRetention(now, l.NextOffset())
	if b := segBases(l); len(b) != 1 || start3 != b[0] {
		t.Fatalf("after all old: %v start %d", b, start3)
	}
	appendN(t, l, 1, 1, 1, constTs, now)
}

func TestRetentionByBytes(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 1000
	cfg.RetentionMs = -1
	cfg.RetentionBytes = 2500
	l := mustOpen(t, vfs.OS, t.TempDir(), cfg)
	defer l.Close()
	appendN(t, l, 100, 1, 100, constTs, t0)
	if _, err := l.EnforceRetention(t0, l.NextOffset()); err != nil {
		t.Fatal(err)
	}
	if l.Size() < cfg.RetentionBytes || l.Size() > cfg.RetentionBytes+cfg.SegmentBytes {
		t.Fatalf("size %d after retention to %d", l.Size(), cfg.RetentionBytes)
	}
	// Unlimited keeps everything.
	cfg.RetentionBytes = -1
	l.SetConfig(cfg)
	before := l.Size()
	l.EnforceRetention(t0, l.NextOffset())
	if l.Size() != before {
		t.Fatal("deleted with unlimited retention")
	}
}

func TestSetStartOffsetSurvivesReopen(t *testing.T) {
	for _, fsys := range []struct {
		name string
		fs   vfs.FS
		dir  string
	}{{"os", vfs.OS, t.TempDir()}, {"mem", vfs.NewMemFS(), "/d"}} {
		t.Run(fsys.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.SegmentBytes = 400
			l := mustOpen(t, fsys.fs, fsys.dir, cfg)
			appendN(t, l, 40, 2, 20, constTs, t0) // offsets 0..79
			nseg := len(segBases(l))
			if err := l.SetStartOffset(33); err != nil {
				t.Fatal(err)
			}
			if l.StartOffset() != 33 || len(segBases(l)) >= nseg {
				t.Fatalf("start %d, segments %v", l.StartOffset(), segBases(l))
			}
			// Lowering is ignored, beyond the end is out of range.
			if err := l.SetStartOffset(10); err != nil || l.StartOffset() != 33 {
				t.Fatalf("lowering: %v %d", err, l.StartOffset())
			}
			if err := l.SetStartOffset(81); !errors.Is(err, ErrOffsetOutOfRange) {
				t.Fatalf("beyond end: %v", err)
			}
			// Reading at the start offset gives the batch holding it.
			b, err := l.Read(33, 1, 1<<62)
			if err != nil || baseOf(b) != 32 {
				t.Fatalf("read at start: %v", err)
			}
			if _, err := l.Read(32, 1, 1<<62); !errors.Is(err, ErrOffsetOutOfRange) {
				t.Fatalf("read below start: %v", err)
			}
			l.Close()
			l = mustOpen(t, fsys.fs, fsys.dir, cfg)
			if l.StartOffset() != 33 || l.NextOffset() != 80 {
				t.Fatalf("after reopen: start %d next %d", l.StartOffset(), l.NextOffset())
			}
			// Up to the end: the log is empty but keeps its offsets.
			if err := l.SetStartOffset(80); err != nil {
				t.Fatal(err)
			}
			l.Close()
			l = mustOpen(t, fsys.fs, fsys.dir, cfg)
			defer l.Close()
			if l.StartOffset() != 80 || l.NextOffset() != 80 {
				t.Fatalf("after delete all: start %d next %d", l.StartOffset(), l.NextOffset())
			}
			if b, err := l.Read(80, 100, 1<<62); err != nil || len(b) != 0 {
				t.Fatalf("read empty: %v", err)
			}
			appendN(t, l, 1, 1, 1, constTs, t0)
		})
	}
}

// TestStartOffsetAheadOfRecoveredEnd: DeleteRecords up to an unsynced end,
// then a crash loses the tail. The log restarts empty at the start offset.
func TestStartOffsetAheadOfRecoveredEnd(t *testing.T) {
	m, dir := newMemDir(t)
	l := mustOpen(t, m, dir, DefaultConfig())
	appendN(t, l, 5, 1, 10, constTs, t0)
	l.Sync()
	appendN(t, l, 5, 1, 10, constTs, t0)
	if err := l.SetStartOffset(10); err != nil {
		t.Fatal(err)
	}
	m = m.CrashClone(nil)
	l = mustOpen(t, m, dir, DefaultConfig())
	defer l.Close()
	if l.StartOffset() != 10 || l.NextOffset() != 10 {
		t.Fatalf("start %d next %d", l.StartOffset(), l.NextOffset())
	}
	appendN(t, l, 1, 1, 1, constTs, t0)
}

func TestFindTimestampAndMax(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 700
	cfg.IndexIntervalBytes = 150
	l := mustOpen(t, vfs.OS, t.TempDir(), cfg)
	defer l.Close()
	if ts, off := l.MaxTimestamp(); ts != -1 || off != -1 {
		t.Fatalf("empty log max %d %d", ts, off)
	}
	if _, ok, err := l.FindTimestamp(0); ok || err != nil {
		t.Fatalf("empty log find: %v %v", ok, err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	var tss []int64
	batches := appendN(t, l, 200, 1, 40, func(i int) int64 {
		// Mostly rising timestamps with some going back, as producers do.
		ts := int64(1000 + i*10 - rng.IntN(50))
		tss = append(tss, ts)
		return ts
	}, t0)
	check := func() {
		t.Helper()
		start := l.StartOffset()
		for target := int64(900); target < 3100; target += 3 {
			want := -1
			for i, ts := range tss {
				if int64(i) >= start && ts >= target {
					want = i
					break
				}
			}
			b, ok, err := l.FindTimestamp(target)
			if err != nil {
				t.Fatal(err)
			}
			if ok != (want >= 0) || (ok && string(b) != string(batches[want])) {
				got := int64(-1)
				if ok {
					got = baseOf(b)
				}
				t.Fatalf("FindTimestamp(%d) = %d %v, want %d", target, got, ok, want)
			}
		}
		var max int64 = -1
		var maxOff int64 = -1
		for i, ts := range tss {
			if int64(i) >= segBases(l)[0] && ts > max {
				max, maxOff = ts, int64(i)
			}
		}
		if ts, off := l.MaxTimestamp(); ts != max || off != maxOff {
			t.Fatalf("MaxTimestamp = %d@%d, want %d@%d", ts, off, max, maxOff)
		}
	}
	check()
	l.SetStartOffset(57)
	check()
}

func TestTruncate(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.SegmentBytes = 500
	cfg.IndexIntervalBytes = 100
	l := mustOpen(t, vfs.OS, dir, cfg)
	want := appendN(t, l, 50, 2, 30, func(i int) int64 { return int64(i) }, t0) // offsets 0..99
	// Truncating inside a batch drops the whole batch.
	if err := l.Truncate(61); err != nil {
		t.Fatal(err)
	}
	if l.NextOffset() != 60 {
		t.Fatalf("next %d after truncate 61", l.NextOffset())
	}
	got := allBatches(t, l)
	if len(got) != 30 || string(got[29]) != string(want[29]) {
		t.Fatalf("%d batches after truncate", len(got))
	}
	if ts, off := l.MaxTimestamp(); ts != 29 || off != 58 {
		t.Fatalf("max after truncate %d@%d", ts, off)
	}
	// Appending continues from there, and reopening agrees.
	more := appendN(t, l, 10, 2, 30, func(i int) int64 { return 100 + int64(i) }, t0)
	l.Close()
	l = mustOpen(t, vfs.OS, dir, cfg)
	defer l.Close()
	got = allBatches(t, l)
	if len(got) != 40 || string(got[39]) != string(more[9]) {
		t.Fatalf("after reopen %d batches", len(got))
	}
	for off := int64(0); off < l.NextOffset(); off++ {
		b, err := l.Read(off, 1, 1<<62)
		if err != nil || baseOf(b) != off&^1 {
			t.Fatalf("read %d after truncate: %v", off, err)
		}
	}
	// Truncating to a segment base, and to zero.
	bases := segBases(l)
	if err := l.Truncate(bases[1]); err != nil || l.NextOffset() != bases[1] {
		t.Fatalf("truncate to %d: %v next %d", bases[1], err, l.NextOffset())
	}
	if err := l.Truncate(0); err != nil || l.NextOffset() != 0 || l.Size() != 0 {
		t.Fatalf("truncate to 0: %v next %d", err, l.NextOffset())
	}
	appendN(t, l, 3, 1, 1, constTs, t0)
}

// TestConcurrentReadersDuringAppend reads from several goroutines while the
// owner appends, rolls, enforces retention and truncates; run with -race.
// Every read must be whole, valid batches starting with the one holding the
// requested offset, or an out-of-range error after retention.
func TestConcurrentReadersDuringAppend(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 6000
	cfg.IndexIntervalBytes = 100
	cfg.RetentionMs = -1
	cfg.RetentionBytes = 30000
	for _, fsys := range []vfs.FS{vfs.OS, vfs.NewMemFS()} {
		dir := t.TempDir()
		l := mustOpen(t, fsys, dir, cfg)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for r := 0; r < 4; r++ {
			wg.Add(1)
			go func(seed uint64) {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(seed, 0))
				for {
					select {
					case <-stop:
						return
					default:
					}
					start, next := l.StartOffset(), l.NextOffset()
					if next == start {
						continue
					}
					off := start + rng.Int64N(next-start)
					b, err := l.Read(off, rng.IntN(3000), 1<<62)
					if errors.Is(err, ErrOffsetOutOfRange) {
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					if len(b) == 0 {
						continue // truncated meanwhile
					}
					first := true
					err = recordbatch.Split(b, func(x []byte) error {
						h, err := recordbatch.Check(x)
						if err != nil {
							return err
						}
						if first && (h.BaseOffset > off || h.LastOffset() < off) {
							t.Errorf("read %d got batch [%d,%d]", off, h.BaseOffset, h.LastOffset())
						}
						first = false
						return nil
					})
					if err != nil {
						errs <- err
						return
					}
				}
			}(uint64(r))
		}
		rng := rand.New(rand.NewPCG(99, 0))
		for i := 0; i < 2000; i++ {
			if err := l.Append(makeBatch(l.NextOffset(), 1+rng.IntN(3), rng.IntN(100), int64(i)), t0); err != nil {
				t.Fatal(err)
			}
			switch {
			case i%200 == 0:
				l.Sync()
			case i%301 == 0:
				l.EnforceRetention(t0, l.NextOffset())
			case i%457 == 0:
				l.Truncate(l.NextOffset() - 5)
			}
		}
		close(stop)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Read(0, 1, 1); !errors.Is(err, ErrClosed) {
			t.Fatalf("read after close: %v", err)
		}
	}
}

func TestDelete(t *testing.T) {
	m, dir := newMemDir(t)
	l := mustOpen(t, m, dir, DefaultConfig())
	appendN(t, l, 3, 1, 1, constTs, t0)
	if err := l.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Stat(dir); err == nil {
		t.Fatal("directory still there")
	}
	if _, err := m.CrashClone(nil).Stat(dir); err == nil {
		t.Fatal("deletion not durable")
	}
}
