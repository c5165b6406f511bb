package partlog

import (
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/oncelog/oncelog/internal/recordbatch"
	"github.com/oncelog/oncelog/internal/vfs"
)

// benchBatch is a 16 KiB batch, a typical producer batch.
func benchBatch(base int64) []byte { return makeBatch(base, 16, 1000, t0.UnixMilli()) }

// BenchmarkAppendSync appends 16 KiB batches to a real file and fsyncs every
// syncEvery appends (1: acks=all with no group commit; 64: a busy
// partition's group commit), with and without Preallocate.
func BenchmarkAppendSync(b *testing.B) {
	for _, c := range benchConfigs() {
		for _, every := range []int{1, 64} {
			b.Run(c.name+"/syncEvery="+strconv.Itoa(every), func(b *testing.B) {
				l := mustOpen(b, vfs.OS, b.TempDir(), c.cfg)
				defer l.Close()
				batch := benchBatch(0)
				b.SetBytes(int64(len(batch)))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					recordbatch.SetBaseOffset(batch, l.NextOffset())
					if err := l.Append(batch, t0); err != nil {
						b.Fatal(err)
					}
					if (i+1)%every == 0 {
						if err := l.Sync(); err != nil {
							b.Fatal(err)
						}
					}
				}
				if err := l.Sync(); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

// benchConfigs are the default configuration without and with Preallocate.
func benchConfigs() []struct {
	name string
	cfg  Config
} {
	on := DefaultConfig()
	on.Preallocate = true
	return []struct {
		name string
		cfg  Config
	}{{"preallocate=false", DefaultConfig()}, {"preallocate=true", on}}
}

// BenchmarkRead reads 1 MiB fetches at random positions of a 64 MiB log.
func BenchmarkRead(b *testing.B) {
	l := mustOpen(b, vfs.OS, b.TempDir(), DefaultConfig())
	defer l.Close()
	batch := benchBatch(0)
	for l.Size() < 64<<20 {
		recordbatch.SetBaseOffset(batch, l.NextOffset())
		if err := l.Append(batch, t0); err != nil {
			b.Fatal(err)
		}
	}
	end := l.NextOffset()
	b.SetBytes(1 << 20)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		off := int64(i*7919) % end
		if _, err := l.Read(off, 1<<20, end); err != nil {
			b.Fatal(err)
		}
	}
}

// TestOpenLargeLog measures recovery of a big log on the real filesystem:
// ONCELOG_OPEN_BYTES=1073741824 go test -run TestOpenLargeLog -v.
func TestOpenLargeLog(t *testing.T) {
	n, _ := strconv.ParseInt(os.Getenv("ONCELOG_OPEN_BYTES"), 10, 64)
	if n <= 0 {
		t.Skip("set ONCELOG_OPEN_BYTES to run")
	}
	dir := t.TempDir()
	cfg := DefaultConfig()
	l := mustOpen(t, vfs.OS, dir, cfg)
	batch := benchBatch(0)
	begin := time.Now()
	for l.Size() < n {
		recordbatch.SetBaseOffset(batch, l.NextOffset())
		if err := l.Append(batch, t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	w := time.Since(begin)
	t.Logf("wrote %d MiB in %v (%.0f MiB/s, fsync at close only)", n>>20, w, float64(n>>20)/w.Seconds())
	for i := 0; i < 3; i++ {
		begin = time.Now()
		l = mustOpen(t, vfs.OS, dir, cfg)
		d := time.Since(begin)
		t.Logf("open of %d MiB in %d segments: %v (page cache warm)", l.Size()>>20, len(segBases(l)), d)
		next := l.NextOffset()
		l.Close()
		if next == 0 {
			t.Fatal("empty")
		}
	}
}

// BenchmarkAppendSyncLatency is acks=all without group commit: every batch
// is appended and synced on its own, to a real file, with and without
// Preallocate, timing each append+Sync pair. Besides ns/op it reports
// percentiles of those pairs (p50-ns, p99-ns, p99.9-ns, max-ns), which is
// what a producer waits for.
func BenchmarkAppendSyncLatency(b *testing.B) {
	for _, bc := range benchConfigs() {
		for _, c := range []struct {
			name    string
			payload int
		}{
			{"batch=200B", 130},
			{"batch=16KiB", 16 << 10},
		} {
			b.Run(bc.name+"/"+c.name, func(b *testing.B) {
				l := mustOpen(b, vfs.OS, b.TempDir(), bc.cfg)
				defer l.Close()
				batch := makeBatch(0, 1, c.payload, t0.UnixMilli())
				b.SetBytes(int64(len(batch)))
				lat := make([]time.Duration, 0, b.N)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					begin := time.Now()
					recordbatch.SetBaseOffset(batch, l.NextOffset())
					if err := l.Append(batch, t0); err != nil {
						b.Fatal(err)
					}
					if err := l.Sync(); err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(begin))
				}
				b.StopTimer()
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
				b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
				b.ReportMetric(float64(lat[len(lat)*999/1000].Nanoseconds()), "p99.9-ns")
				b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds()), "max-ns")
			})
		}
	}
}
