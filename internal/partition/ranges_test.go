package partition

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/oncelog/oncelog/internal/clock"
	"github.com/oncelog/oncelog/internal/partlog"
	"github.com/oncelog/oncelog/internal/recordbatch"
	"github.com/oncelog/oncelog/internal/vfs"
)

func rangeBytes(t *testing.T, rs partlog.FileRanges) []byte {
	t.Helper()
	var out []byte
	for _, r := range rs.Ranges {
		b := make([]byte, r.Len)
		if _, err := r.File.ReadAt(b, r.Pos); err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

// TestFetchRangesMatchesFetch: for every offset, budget and isolation level,
// FetchRanges locates exactly the records Fetch returns, with the same
// bounds, error and aborted transactions (an aborted, a committed and an
// open transaction among plain batches).
func TestFetchRangesMatchesFetch(t *testing.T) {
	p := openTest(t, t.TempDir(), clock.NewManual(t0))
	defer p.Close()
	txnBatch := func(pid int64, n int) {
		b, h := batch(pid, 0, 0, n, t0.UnixMilli())
		b[22] |= recordbatch.AttrTransactional
		h.Attributes |= recordbatch.AttrTransactional
		fixCRC(b)
		if r := <-p.Append(b, h); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	marker := func(pid int64, commit bool) {
		ctl := recordbatch.BuildControlBatch(pid, 0, commit, 0, t0.UnixMilli())
		h, _ := recordbatch.Check(ctl)
		if r := <-p.Append(ctl, h); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	for i := 0; i < 3; i++ {
		appendWait(p, -1, -1, -1, 4)
	}
	txnBatch(100, 3)
	appendWait(p, -1, -1, -1, 2)
	txnBatch(101, 2)
	marker(100, false) // aborted
	txnBatch(102, 5)
	marker(101, true)
	appendWait(p, -1, -1, -1, 3)
	marker(102, false) // aborted
	txnBatch(103, 2)   // open: holds the LSO
	appendWait(p, -1, -1, -1, 1)
	end := p.Offsets().HighWatermark
	if lso := p.Offsets().LastStableOffset; lso == end {
		t.Fatalf("LSO %d is the high watermark: no open transaction", lso)
	}
	sawAborted := false
	for _, committed := range []bool{false, true} {
		for off := int64(0); off <= end+1; off++ {
			for _, maxBytes := range []int{0, 1, 200, 1000, 1 << 20} {
				want := p.Fetch(off, maxBytes, committed)
				got, rs, release, ok := p.FetchRanges(off, maxBytes, committed)
				if !ok || release == nil {
					t.Fatal("no ranges from an OS filesystem")
				}
				recs := rangeBytes(t, rs)
				release()
				if !bytes.Equal(recs, want.Records) || got.Records != nil {
					t.Fatalf("committed %v offset %d max %d: %d bytes, want %d", committed, off, maxBytes, len(recs), len(want.Records))
				}
				want.Records = nil
				sawAborted = sawAborted || len(got.Aborted) > 0
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("committed %v offset %d max %d:\n got %+v\nwant %+v", committed, off, maxBytes, got, want)
				}
			}
		}
	}
	if !sawAborted {
		t.Fatal("no fetch saw an aborted transaction")
	}
}

// TestFetchRangesNotOSFiles: a partition on a MemFS gives no ranges and
// holds nothing.
func TestFetchRangesNotOSFiles(t *testing.T) {
	p := openFS(t, vfs.NewMemFS())
	defer p.Close()
	appendWait(p, -1, -1, -1, 4)
	if _, _, release, ok := p.FetchRanges(0, 1<<20, false); ok || release != nil {
		t.Fatal("ranges from a MemFS")
	}
}
