package partlog

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/oncelog/oncelog/internal/vfs"
)

// Tests of the extender (extend.go): extents written ahead of need.

// aheadFS hands out the extender's handles (.log files opened write-only)
// wrapped: each zero write first takes a token from tokens (when tokens is
// not nil), and fail, when set, makes the operation it names fail.
type aheadFS struct {
	vfs.FS
	tokens chan struct{}
	// waiting, when not nil, gets a value each time a zero write starts
	// waiting for its token.
	waiting chan struct{}
	// fail is "open", vfs.OpWrite, "writeback" or vfs.OpSync, or "".
	fail string
}

type aheadFile struct {
	vfs.File
	fs *aheadFS
}

func (a *aheadFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	ahead := strings.HasSuffix(name, logSuffix) && flag&(os.O_RDWR|os.O_WRONLY) == os.O_WRONLY
	if ahead && a.fail == "open" {
		return nil, vfs.ErrInjected
	}
	f, err := a.FS.OpenFile(name, flag, perm)
	if err != nil || !ahead {
		return f, err
	}
	return aheadFile{f, a}, nil
}

func (f aheadFile) WriteAt(b []byte, off int64) (int, error) {
	if f.fs.tokens != nil {
		select {
		case f.fs.waiting <- struct{}{}:
		default: // nobody counts these any more
		}
		<-f.fs.tokens
	}
	if f.fs.fail == vfs.OpWrite {
		return 0, vfs.ErrInjected
	}
	return f.File.WriteAt(b, off)
}

func (f aheadFile) WriteBack(off, n int64) error {
	if f.fs.fail == "writeback" {
		return vfs.ErrInjected
	}
	return f.File.WriteBack(off, n)
}

func (f aheadFile) Sync() error {
	if f.fs.fail == vfs.OpSync {
		return vfs.ErrInjected
	}
	return f.File.Sync()
}

func setAheadChunk(l *Log, n int64) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.aheadChunk = n
}

// running returns l's extension, or nil.
func running(l *Log) *extension {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	return l.ext
}

// appendUntilExtending appends 40-byte batches until the extender starts,
// returning the batches.
func appendUntilExtending(t *testing.T, l *Log) [][]byte {
	t.Helper()
	var out [][]byte
	for running(l) == nil {
		if len(out) > 1000 {
			t.Fatal("the extender never started")
		}
		out = append(out, appendN(t, l, 1, 1, 40, constTs, t0)...)
	}
	return out
}

// TestExtendAheadKeepsEverySyncDatasync: with the extender, extents grow as
// in place (doubling from the minimum up to the maximum), but the journal
// commit of each is the extender's fsync: every Sync of the owner is an
// fdatasync but the first, after the segment's first extent, which Append
// wrote itself.
func TestExtendAheadKeepsEverySyncDatasync(t *testing.T) {
	fsKinds(t, func(t *testing.T, fsys vfs.FS, dir string) {
		c := &countFS{FS: fsys}
		l := mustOpen(t, c, dir, preallocConfig())
		defer l.Close()
		setExtents(l, 1000, 4000)
		setAheadChunk(l, 300)
		name := dir + "/" + segmentName(0) + logSuffix
		var ends []int64
		for i := 0; i < 200; i++ {
			appendN(t, l, 1, 1, 40, constTs, t0)
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			checkZeroTail(t, l) // finishes the extension
			if n := fileSize(t, fsys, name); len(ends) == 0 || ends[len(ends)-1] != n {
				ends = append(ends, n)
			}
		}
		want := []int64{1000, 2000, 4000, 8000, 12000, 16000, 20000}
		if len(ends) < len(want) || !equalInts(ends[:len(want)], want) {
			t.Fatalf("file sizes %v, want %v...", ends, want)
		}
		if got := c.syncs.Load(); got != 1 {
			t.Fatalf("the owner fsynced %d times, want once", got)
		}
		if got := c.datasyncs.Load(); got != 199 {
			t.Fatalf("%d fdatasyncs, want 199", got)
		}
		if got := c.aheadSyncs.Load(); got != int64(len(ends)-1) {
			t.Fatalf("the extender fsynced %d times for %d extents", got, len(ends)-1)
		}
	})
}

// TestExtendAheadStoppedWhenBehind: an append that needs room the extender
// has not written yet stops it after the chunk in hand, takes what it wrote,
// extends in place for the rest, and the next Sync is a full fsync, since
// the extender's fsync never ran. Nothing the extender wrote lands on data.
func TestExtendAheadStoppedWhenBehind(t *testing.T) {
	m, dir := newMemDir(t)
	a := &aheadFS{FS: m, tokens: make(chan struct{}, 1), waiting: make(chan struct{}, 2)}
	c := &countFS{FS: a}
	l := mustOpen(t, c, dir, preallocConfig())
	setExtents(l, 1000, 4000)
	setAheadChunk(l, 100)
	a.tokens <- struct{}{} // the first chunk may go
	want := appendUntilExtending(t, l)
	e := running(l)
	if e.from != 1000 || e.to != 2000 {
		t.Fatalf("extending [%d, %d), want [1000, 2000)", e.from, e.to)
	}
	<-a.waiting
	<-a.waiting // it wrote the first chunk and waits to write the second
	// A batch that overflows the two chunks the extender will have
	// written: Append must stop it, then extend in place.
	big := makeBatch(l.NextOffset(), 1, 1300-int(l.Size()), 0)
	appended := make(chan error, 1)
	go func() { appended <- l.Append(big, t0) }()
	for !e.stop.Load() {
		runtime.Gosched()
	}
	a.tokens <- struct{}{} // the chunk in hand, after which it stops
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	want = append(want, big)
	if e.written != 1200 || e.synced {
		t.Fatalf("extender wrote to %d (synced %v), want 1200, not synced", e.written, e.synced)
	}
	syncs := c.syncs.Load()
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if c.syncs.Load() != syncs+1 || c.aheadSyncs.Load() != 0 {
		t.Fatalf("owner fsyncs %d -> %d, extender fsyncs %d; want one more, none", syncs, c.syncs.Load(), c.aheadSyncs.Load())
	}
	close(a.tokens) // no more gating
	checkZeroTail(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, m.CrashClone(nil), dir, preallocConfig())
	defer l.Close()
	if got := allBatches(t, l); !bytes.Equal(bytes.Join(got, nil), bytes.Join(want, nil)) {
		t.Fatalf("%d batches after reopen, want %d", len(got), len(want))
	}
}

// TestExtendAheadErrorsAreSticky: a failed zero write, write-back or fsync
// of the extender stops the log at the owner's next Sync, as the owner's own
// failures do. A handle it cannot open is no error: the owner extends in
// place.
func TestExtendAheadErrorsAreSticky(t *testing.T) {
	for _, op := range []string{vfs.OpWrite, "writeback", vfs.OpSync} {
		t.Run(op, func(t *testing.T) {
			m, dir := newMemDir(t)
			a := &aheadFS{FS: m}
			l := mustOpen(t, a, dir, preallocConfig())
			defer l.Close()
			setExtents(l, 1000, 4000)
			a.fail = op
			appendUntilExtending(t, l)
			<-running(l).done
			if err := l.Sync(); !errors.Is(err, ErrStorage) || !errors.Is(err, vfs.ErrInjected) {
				t.Fatalf("sync after the extender failed: %v", err)
			}
			a.fail = ""
			if err := l.Append(makeBatch(l.NextOffset(), 1, 10, 0), t0); !errors.Is(err, ErrStorage) {
				t.Fatalf("append after failure: %v", err)
			}
			if err := l.Sync(); !errors.Is(err, ErrStorage) {
				t.Fatalf("sync after failure: %v", err)
			}
		})
	}
	t.Run("open", func(t *testing.T) {
		m, dir := newMemDir(t)
		a := &aheadFS{FS: m, fail: "open"}
		l := mustOpen(t, a, dir, preallocConfig())
		defer l.Close()
		setExtents(l, 1000, 4000)
		for i := 0; i < 100; i++ {
			appendN(t, l, 1, 1, 40, constTs, t0)
			if running(l) != nil {
				t.Fatal("an extender without a handle")
			}
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		checkZeroTail(t, l)
		if l.Size() < 4000 {
			t.Fatalf("only %d bytes appended", l.Size())
		}
	})
}

// TestCrashWhileExtendingAhead: a machine crash while the extender is in the
// middle of an extent, its zero writes unsynced among unsynced batches of the
// owner, and any prefix of them kept, loses no synced batch, and recovery
// finds a clean end or a torn tail, never corruption.
func TestCrashWhileExtendingAhead(t *testing.T) {
	for seed := uint64(0); seed < 60; seed++ {
		rng := rand.New(rand.NewPCG(seed, 2))
		m, dir := newMemDir(t)
		a := &aheadFS{FS: m, tokens: make(chan struct{}, 16), waiting: make(chan struct{}, 16)}
		l := mustOpen(t, a, dir, preallocConfig())
		// The extent after the first is [500, 1000), 3 chunks or more,
		// and the extender gets at most 1 of them: it is always mid-way.
		setExtents(l, 500, 2000)
		setAheadChunk(l, int64(50+rng.IntN(200)))
		chunks := rng.IntN(2)
		for range chunks {
			a.tokens <- struct{}{}
		}
		var synced [][]byte
		for running(l) == nil {
			synced = append(synced, appendN(t, l, 1, 1+rng.IntN(3), rng.IntN(60), constTs, t0)...)
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		// Batches after the last Sync, inside the zeros the owner has
		// (past them Append would wait for the gated extender).
		e := running(l)
		for range rng.IntN(3) {
			b := makeBatch(l.NextOffset(), 1, 10, 0)
			if l.Size()+int64(len(b)) > e.from {
				break
			}
			if err := l.Append(b, t0); err != nil {
				t.Fatal(err)
			}
		}
		for range chunks + 1 {
			<-a.waiting // then it is waiting for the chunk it may not write
		}
		crashed := m.CrashClone(rng)
		close(a.tokens)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		r, err := Open(crashed, dir, preallocConfig(), t0)
		if err != nil {
			t.Fatalf("seed %d: reopen: %v", seed, err)
		}
		got := allBatches(t, r)
		if len(got) < len(synced) || !bytes.Equal(bytes.Join(got[:len(synced)], nil), bytes.Join(synced, nil)) {
			t.Fatalf("seed %d: %d batches after the crash, %d synced before", seed, len(got), len(synced))
		}
		checkZeroTail(t, r)
		r.Close()
	}
}

// TestExtendAheadConcurrently: appends and syncs running into extents the
// extender is still writing, with small extents and chunks so that it is
// often behind (run it with -race). The log reads back whole after a clean
// close, and its file ends in zeros only.
func TestExtendAheadConcurrently(t *testing.T) {
	fsKinds(t, func(t *testing.T, fsys vfs.FS, dir string) {
		cfg := preallocConfig()
		cfg.SegmentBytes = 20_000
		l := mustOpen(t, fsys, dir, cfg)
		setExtents(l, 200, 3000)
		setAheadChunk(l, 64)
		var want [][]byte
		var wg sync.WaitGroup
		// Readers alongside, as fetches are.
		stop := make(chan struct{})
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if next := l.NextOffset(); next > l.StartOffset() {
					if _, err := l.Read(l.StartOffset(), 1<<20, next); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
		for i := 0; i < 2000; i++ {
			want = append(want, appendN(t, l, 1, 1+i%3, 20+i%50, constTs, t0)...)
			if i%4 == 0 {
				if err := l.Sync(); err != nil {
					t.Fatal(err)
				}
			}
		}
		close(stop)
		wg.Wait()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = mustOpen(t, fsys, dir, cfg)
		defer l.Close()
		if got := allBatches(t, l); !bytes.Equal(bytes.Join(got, nil), bytes.Join(want, nil)) {
			t.Fatalf("%d batches after reopen, want %d", len(got), len(want))
		}
		if rec := l.Recovery(); rec.TornFile != "" {
			t.Fatalf("clean close left a torn tail: %+v", rec)
		}
		checkZeroTail(t, l)
	})
}
