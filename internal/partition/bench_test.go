package partition

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/oncelog/oncelog/internal/recordbatch"
	"github.com/oncelog/oncelog/internal/vfs"
)

// BenchmarkGroupCommit appends small 16-record batches to one
// partition on a real file from many producers at once and reports how
// many appends one fsync covers ("appends/fsync"): with group commit it
// grows with the number of waiting producers, without it it would stay 1.
// Every append is acks=all: answered only after an fsync that covers it.
func BenchmarkGroupCommit(b *testing.B) {
	for _, producers := range []int{1, 4, 16, 64} {
		b.Run("producers="+strconv.Itoa(producers), func(b *testing.B) {
			var syncs atomic.Int64
			fs := vfs.NewFaultFS(vfs.OS, func(op, path string) error {
				if op == vfs.OpSync && strings.HasSuffix(path, ".log") {
					syncs.Add(1)
				}
				return nil
			})
			p := openFS(b, fs)
			defer p.Close()
			// Each producer owns its slice of b.N appends; batches are
			// built up front so the loop measures the partition only.
			var next atomic.Int64
			batches := make([][]byte, producers)
			for i := range batches {
				batches[i], _ = batch(-1, -1, -1, 16, t0.UnixMilli())
			}
			syncs.Store(0)
			b.SetBytes(int64(len(batches[0])))
			b.ResetTimer()
			var wg sync.WaitGroup
			for i := 0; i < producers; i++ {
				wg.Add(1)
				go func(proto []byte) {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						// The owner stamps offsets into the batch, so
						// every append needs its own copy.
						bb := append([]byte(nil), proto...)
						r := <-p.Append(bb, mustCheck(bb))
						if r.Err != nil {
							b.Error(r.Err)
							return
						}
					}
				}(batches[i])
			}
			wg.Wait()
			b.StopTimer()
			if n := syncs.Load(); n > 0 {
				b.ReportMetric(float64(b.N)/float64(n), "appends/fsync")
			}
		})
	}
}

func mustCheck(b []byte) recordbatch.Header {
	h, err := recordbatch.Check(b)
	if err != nil {
		panic(err)
	}
	return h
}
