package partlog

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/oncelog/oncelog/internal/recordbatch"
	"github.com/oncelog/oncelog/internal/vfs"
)

// newMemDir returns a MemFS whose /data directory is durable.
func newMemDir(t testing.TB) (*vfs.MemFS, string) {
	m := vfs.NewMemFS()
	if err := m.MkdirAll("/data", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	return m, "/data/t-0"
}

// TestCrashRecovery runs seeded random histories of appends, syncs,
// retention and DeleteRecords on a MemFS, crashes it at a random point
// (keeping a random prefix of every file's unsynced writes), reopens the
// clone and checks: every batch synced before the crash is there, byte for
// byte; offsets are gap-free; the start offset is the last one set. Then it
// continues on the recovered log, several crashes per history.
func TestCrashRecovery(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 50
	}
	for seed := uint64(0); seed < uint64(seeds); seed++ {
		crashHistory(t, seed)
	}
}

func crashHistory(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	m, dir := newMemDir(t)
	cfg := DefaultConfig()
	cfg.SegmentBytes = int64(300 + rng.IntN(1500))
	cfg.IndexIntervalBytes = rng.IntN(400)
	cfg.RetentionMs = -1
	cfg.Preallocate = rng.IntN(3) > 0
	if rng.IntN(2) == 0 {
		// A budget small enough to refuse some extents and refill within
		// a few steps (each step is a second).
		cfg.Zeros = NewZeroBudget(int64(50+rng.IntN(500)), int64(100+rng.IntN(800)))
	}
	now := t0
	l, err := Open(m, dir, cfg, now)
	if err != nil {
		t.Fatal(err)
	}
	// Small extents, so that segments grow by several and crashes tear
	// batches written inside them.
	// A bulk threshold that batches between Syncs cross now and then, so
	// that segments switch between growing by zeros and by appends.
	extents := func(l *Log) {
		setExtents(l, int64(16+rng.IntN(200)), int64(100+rng.IntN(600)))
		l.wmu.Lock()
		l.bulkAt = int64(40 + rng.IntN(400))
		l.wmu.Unlock()
	}
	extents(l)
	model := map[int64][]byte{} // base offset -> batch, the current history
	var acked int64             // everything below was synced
	start := int64(0)           // the start offset last set
	for crash := 0; crash < 4; crash++ {
		steps := rng.IntN(60)
		for i := 0; i < steps; i++ {
			now = now.Add(time.Second)
			switch r := rng.IntN(20); {
			case r < 12:
				b := makeBatch(l.NextOffset(), 1+rng.IntN(4), rng.IntN(80), now.UnixMilli())
				if err := l.Append(b, now); err != nil {
					t.Fatalf("seed %d: append: %v", seed, err)
				}
				model[baseOf(b)] = b
			case r < 17:
				if err := l.Sync(); err != nil {
					t.Fatalf("seed %d: sync: %v", seed, err)
				}
				acked = l.NextOffset()
			case r < 18:
				off := start + rng.Int64N(l.NextOffset()-start+1)
				if err := l.SetStartOffset(off); err != nil {
					t.Fatalf("seed %d: set start %d: %v", seed, off, err)
				}
				start = max(start, off)
			case r < 19:
				c := cfg
				c.RetentionBytes = rng.Int64N(3000)
				l.SetConfig(c)
				s, err := l.EnforceRetention(now, l.NextOffset())
				if err != nil {
					t.Fatalf("seed %d: retention: %v", seed, err)
				}
				start = s
				l.SetConfig(cfg)
			default:
				// Truncate is durable when it returns, like a Sync.
				if l.NextOffset() > start {
					off := start + rng.Int64N(l.NextOffset()-start)
					if err := l.Truncate(off); err != nil {
						t.Fatalf("seed %d: truncate %d: %v", seed, off, err)
					}
					for b := range model {
						if b >= l.NextOffset() {
							delete(model, b)
						}
					}
					acked = l.NextOffset()
				}
			}
			if start != l.StartOffset() {
				t.Fatalf("seed %d: start %d, log says %d", seed, start, l.StartOffset())
			}
			checkZeroTail(t, l)
		}

		// Crash: the old Log is abandoned, as the process would be.
		m = m.CrashClone(rng)
		l, err = Open(m, dir, cfg, now)
		if err != nil {
			t.Fatalf("seed %d crash %d: reopen: %v", seed, crash, err)
		}
		ctx := fmt.Sprintf("seed %d crash %d", seed, crash)
		checkZeroTail(t, l)
		extents(l)
		if l.NextOffset() < acked {
			t.Fatalf("%s: next offset %d, but %d was synced", ctx, l.NextOffset(), acked)
		}
		if l.StartOffset() != start {
			t.Fatalf("%s: start offset %d, want %d", ctx, l.StartOffset(), start)
		}
		got := allBatches(t, l)
		for _, b := range got {
			want, ok := model[baseOf(b)]
			if !ok || !bytes.Equal(b, want) {
				t.Fatalf("%s: batch at %d is not the one appended", ctx, baseOf(b))
			}
		}
		if l.NextOffset() > start {
			if len(got) == 0 {
				t.Fatalf("%s: no batches in [%d, %d)", ctx, start, l.NextOffset())
			}
			h, _ := recordbatch.ParseHeader(got[0])
			if h.BaseOffset > start || h.LastOffset() < start {
				t.Fatalf("%s: first batch [%d, %d] does not hold start %d", ctx, h.BaseOffset, h.LastOffset(), start)
			}
		}
		// Forget what the crash took.
		for b := range model {
			if b >= l.NextOffset() {
				delete(model, b)
			}
		}
		acked = l.NextOffset()
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCrashDuringRoll crashes right after every operation of a history that
// rolls often, without torn writes, and checks the synced prefix survives.
func TestCrashAfterEveryStep(t *testing.T) {
	m, dir := newMemDir(t)
	cfg := DefaultConfig()
	cfg.SegmentBytes = 400
	cfg.IndexIntervalBytes = 50
	l := mustOpen(t, m, dir, cfg)
	var acked int64
	for i := 0; i < 60; i++ {
		b := makeBatch(l.NextOffset(), 2, 30, int64(i))
		if err := l.Append(b, t0); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			acked = l.NextOffset()
		}
		c, err := Open(m.CrashClone(nil), dir, cfg, t0)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if c.NextOffset() < acked {
			t.Fatalf("step %d: next %d < acked %d", i, c.NextOffset(), acked)
		}
		allBatches(t, c)
		c.Close()
	}
}

func TestCorruptMiddleSegmentRefuses(t *testing.T) {
	m, dir := newMemDir(t)
	cfg := DefaultConfig()
	cfg.SegmentBytes = 500
	l := mustOpen(t, m, dir, cfg)
	appendN(t, l, 30, 1, 50, constTs, t0)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	name := dir + "/00000000000000000000.log"
	f, _ := m.OpenFile(name, 2, 0) // O_RDWR
	b := make([]byte, 1)
	pos := int64(len(makeBatch(0, 1, 50, 0)) + 70) // inside the second batch
	f.ReadAt(b, pos)
	b[0] ^= 0xff
	// Overwrite in place: O_RDWR without O_APPEND writes at position 0, so
	// rewrite the whole file.
	st, _ := f.Stat()
	all := make([]byte, st.Size())
	f.ReadAt(all, 0)
	all[pos] = b[0]
	f.Close()
	g, _ := m.OpenFile(name, 0x241, 0o644) // O_WRONLY|O_CREATE|O_TRUNC
	g.Write(all)
	g.Sync()
	g.Close()

	_, err := Open(m, dir, cfg, t0)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open: %v, want ErrCorrupt", err)
	}
	msg := err.Error()
	for _, want := range []string{name, "position 111", "offset 1", "CRC mismatch", "refusing to start"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	t.Log(msg)
}

func TestTornTailTruncatedAndRollDropsEmpty(t *testing.T) {
	m, dir := newMemDir(t)
	cfg := DefaultConfig()
	l := mustOpen(t, m, dir, cfg)
	appendN(t, l, 5, 1, 50, constTs, t0)
	l.Sync()
	end := l.Size()
	appendN(t, l, 1, 1, 50, constTs, t0)
	l.Close()
	// Tear the last batch.
	name := dir + "/00000000000000000000.log"
	f, _ := m.OpenFile(name, 2|0x400, 0) // O_RDWR|O_APPEND
	f.Truncate(end + 30)
	f.Sync()
	f.Close()
	// And leave an empty later segment, as a roll that wrote nothing would.
	e, _ := m.OpenFile(dir+"/00000000000000000006.log", 0x42, 0o644) // O_RDWR|O_CREATE
	e.Close()
	m.SyncDir(dir)
	l = mustOpen(t, m, dir, cfg)
	defer l.Close()
	if l.NextOffset() != 5 || l.Size() != end {
		t.Fatalf("next %d size %d, want 5 %d", l.NextOffset(), l.Size(), end)
	}
	if names, _ := m.ReadDir(dir); len(names) != 3 { // log, index, timeindex, and no 6
		t.Fatalf("files %v", names)
	}
	rec := l.Recovery()
	if rec.TornFile != name || rec.TornPosition != end || rec.TornBytes != 30 ||
		len(rec.RemovedFiles) != 1 || rec.RemovedFiles[0] != dir+"/00000000000000000006.log" {
		t.Fatalf("recovery report %+v", rec)
	}
	t.Logf("%+v", rec)
	appendN(t, l, 1, 1, 1, constTs, t0)
	if len(allBatches(t, l)) != 6 {
		t.Fatal("append after repair")
	}
}

func TestStorageErrorsAreSticky(t *testing.T) {
	for _, op := range []string{vfs.OpWrite, vfs.OpSync} {
		t.Run(op, func(t *testing.T) {
			m, dir := newMemDir(t)
			var fail bool
			fsys := vfs.NewFaultFS(m, func(o, p string) error {
				if fail && o == op && strings.HasSuffix(p, ".log") {
					return vfs.ErrInjected
				}
				return nil
			})
			l := mustOpen(t, fsys, dir, DefaultConfig())
			want := appendN(t, l, 3, 1, 10, constTs, t0)
			fail = true
			err := l.Append(makeBatch(3, 1, 10, 0), t0)
			if op == vfs.OpSync {
				if err != nil {
					t.Fatal(err)
				}
				err = l.Sync()
			}
			if !errors.Is(err, ErrStorage) || !errors.Is(err, vfs.ErrInjected) {
				t.Fatalf("first failure: %v", err)
			}
			fail = false // the disk "recovers"; the log must not
			if err2 := l.Append(makeBatch(l.NextOffset(), 1, 10, 0), t0); !errors.Is(err2, ErrStorage) {
				t.Fatalf("append after failure: %v", err2)
			}
			if err2 := l.Sync(); !errors.Is(err2, ErrStorage) {
				t.Fatalf("sync after failure: %v", err2)
			}
			if err2 := l.SetStartOffset(1); !errors.Is(err2, ErrStorage) {
				t.Fatalf("set start after failure: %v", err2)
			}
			// Reads of what was written still work.
			b, err := l.Read(0, 1<<20, 3)
			if err != nil || len(splitBatches(t, b)) != len(want) {
				t.Fatalf("read after failure: %v", err)
			}
			l.Close()
		})
	}
}
