package partlog

import (
	"testing"
	"time"
)

// TestZeroBudgetRefills: the bucket starts full, refuses what it does not
// hold without spending it, refills with the clock up to its burst, and
// ignores a clock that goes back.
func TestZeroBudgetRefills(t *testing.T) {
	z := NewZeroBudget(1000, 3000)
	steps := []struct {
		at   time.Duration
		n    int64
		want bool
	}{
		{0, 2000, true},
		{0, 2000, false}, // 1000 left
		{0, 1000, true},
		{500 * time.Millisecond, 600, false}, // 500 back
		{500 * time.Millisecond, 500, true},
		{-time.Second, 1, false}, // the clock went back: nothing refilled
		{time.Hour, 3000, true},  // refilled to the burst, not past it
		{time.Hour, 1, false},
	}
	for i, s := range steps {
		if got := z.take(s.n, t0.Add(s.at)); got != s.want {
			t.Fatalf("step %d: take(%d) at %v = %v, want %v", i, s.n, s.at, got, s.want)
		}
	}
	var unbounded *ZeroBudget
	if !unbounded.take(1<<40, t0) {
		t.Fatal("a nil budget refused")
	}
}

// TestEmptyZeroBudgetWritesNoZeros: a log whose budget is spent grows by its
// appends alone, every Sync an fsync, like one without Preallocate; once the
// budget refills, its extents come back.
func TestEmptyZeroBudgetWritesNoZeros(t *testing.T) {
	cfg := preallocConfig()
	cfg.Zeros = NewZeroBudget(1<<20, 1<<20)
	if !cfg.Zeros.take(1<<20, t0) {
		t.Fatal("a full budget refused its burst")
	}
	m, c, l, name := countedLog(t, cfg)
	for range 20 {
		appendN(t, l, 1, 1, 100, constTs, t0)
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		checkZeroTail(t, l)
		if fileSize(t, m, name) != l.Size() {
			t.Fatalf("spent budget: file %d bytes for %d of data", fileSize(t, m, name), l.Size())
		}
	}
	if c.syncs.Load() != 20 || c.datasyncs.Load() != 0 {
		t.Fatalf("%d fsyncs and %d fdatasyncs for 20 syncs of a growing file", c.syncs.Load(), c.datasyncs.Load())
	}
	// A second later the budget holds 1 MiB again.
	appendN(t, l, 1, 1, 100, constTs, t0.Add(time.Second))
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	checkZeroTail(t, l)
	if fileSize(t, m, name) <= l.Size() {
		t.Fatalf("refilled budget: file %d bytes for %d of data, want zeros ahead", fileSize(t, m, name), l.Size())
	}
}
