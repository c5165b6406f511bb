package partlog

import (
	"bytes"
	"testing"

	"github.com/oncelog/oncelog/internal/vfs"
)

// TestReadAppendMatchesRead: ReadAppend gives the bytes Read gives, after
// whatever dst held, for every start offset and budget, including a first
// batch larger than the budget (KIP-74) and reads that span segments; the
// budget counts only what is appended.
func TestReadAppendMatchesRead(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 4 << 10 // several segments
	l := mustOpen(t, vfs.NewMemFS(), "p", cfg)
	defer l.Close()
	appendN(t, l, 40, 3, 300, func(int) int64 { return t0.UnixMilli() }, t0)
	end := l.NextOffset()
	prefix := []byte("caller's bytes")
	for off := int64(0); off <= end; off += 7 {
		for _, maxBytes := range []int{1, 500, 1500, 5000, 1 << 20} {
			want, err := l.Read(off, maxBytes, end)
			if err != nil {
				t.Fatal(err)
			}
			dst := append(make([]byte, 0, 8), prefix...)
			got, err := l.ReadAppend(dst, off, maxBytes, end)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[:len(prefix)], prefix) {
				t.Fatalf("offset %d max %d: prefix overwritten", off, maxBytes)
			}
			if !bytes.Equal(got[len(prefix):], want) {
				t.Fatalf("offset %d max %d: ReadAppend gave %d bytes, Read %d", off, maxBytes, len(got)-len(prefix), len(want))
			}
			// A reused buffer large enough needs no new allocation.
			again, err := l.ReadAppend(got[:len(prefix)], off, maxBytes, end)
			if err != nil || !bytes.Equal(again, got) || (len(got) > 0 && &again[0] != &got[0]) {
				t.Fatalf("offset %d max %d: reusing the buffer changed the result or reallocated", off, maxBytes)
			}
		}
	}
}
