package partlog

import (
	"errors"
	"os"
	"testing"

	"github.com/oncelog/oncelog/internal/recordbatch"
	"github.com/oncelog/oncelog/internal/vfs"
)

// FuzzRecover damages one segment file of a three-segment log (appending
// bytes to it or writing them over it; with Preallocate, which < 128, the
// last segment's file ends in its extent's zeros) and reopens it. Open must not panic;
// it either refuses with ErrCorrupt or yields a gap-free log whose batches
// all verify, that still holds everything before the damage, and that
// accepts appends and reopens to the same state.
func FuzzRecover(f *testing.F) {
	good := makeBatch(0, 2, 10, 5)
	f.Add([]byte{}, uint8(2), uint16(0), false)
	f.Add([]byte{1, 2, 3}, uint8(2), uint16(0), false)
	f.Add(good, uint8(2), uint16(0), false)
	f.Add(good, uint8(0), uint16(0), false)
	f.Add([]byte{0xff}, uint8(2), uint16(30), true)
	f.Add([]byte{0xff}, uint8(1), uint16(30), true)
	f.Add(good[:40], uint8(2), uint16(200), true)
	// Zeros after a closed segment's data (a crash between roll and trim),
	// zeros and then data, and a torn batch inside the last segment's
	// zeros.
	f.Add(make([]byte, 100), uint8(0), uint16(0), false)
	f.Add(append(make([]byte, 100), 1), uint8(0), uint16(0), false)
	f.Add(append(make([]byte, 100), 1), uint8(2), uint16(0), false)
	f.Add(good[:30], uint8(2), uint16(300), true)
	f.Add(make([]byte, 100), uint8(130), uint16(0), false)
	f.Fuzz(func(t *testing.T, data []byte, which uint8, at uint16, overwrite bool) {
		m, dir := newMemDir(t)
		cfg := DefaultConfig()
		cfg.SegmentBytes = 600
		cfg.IndexIntervalBytes = 100
		cfg.Preallocate = which < 128
		l := mustOpen(t, m, dir, cfg)
		for len(segBases(l)) < 3 {
			appendN(t, l, 1, 2, 40, constTs, t0)
		}
		bases := segBases(l)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		seg := int(which) % len(bases)
		name := dir + "/" + segmentName(bases[seg]) + logSuffix
		content := readMem(t, m, name)
		var before int64 // bytes of all segments before the damaged one
		for _, b := range bases[:seg] {
			before += int64(len(readMem(t, m, dir+"/"+segmentName(b)+logSuffix)))
		}
		orig := append([]byte(nil), content...)
		pos := len(content)
		if overwrite {
			pos = int(at) % (len(content) + 1)
			end := pos + len(data)
			if end > len(content) {
				content = append(content, make([]byte, end-len(content))...)
			}
			copy(content[pos:], data)
		} else {
			content = append(content, data...)
		}
		wf, err := m.OpenFile(name, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		wf.Write(content)
		wf.Sync()
		wf.Close()

		l, err = Open(m, dir, cfg, t0)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("open failed without ErrCorrupt: %v", err)
			}
			if seg == len(bases)-1 {
				t.Fatalf("refused over damage to the last segment: %v", err)
			}
			return
		}
		batches := allBatches(t, l) // verifies CRCs and contiguity
		checkZeroTail(t, l)
		// Damage at pos cannot lose batches of earlier segments, nor the
		// batches that end at or before pos in the damaged one.
		var intact int64
		recordbatch.Split(orig, func(b []byte) error {
			if intact+int64(len(b)) <= int64(pos) {
				intact += int64(len(b))
			}
			return nil
		})
		if l.Size() < before+intact {
			t.Fatalf("lost undamaged data: size %d < %d", l.Size(), before+intact)
		}
		if seg < len(bases)-1 && l.NextOffset() < bases[len(bases)-1] {
			t.Fatalf("damage to a middle segment was repaired by losing data: next %d", l.NextOffset())
		}
		next := l.NextOffset()
		if err := l.Append(makeBatch(next, 1, 1, 0), t0); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l, err = Open(m, dir, cfg, t0)
		if err != nil {
			t.Fatalf("reopen after repair: %v", err)
		}
		if l.NextOffset() != next+1 || len(allBatches(t, l)) != len(batches)+1 {
			t.Fatalf("reopen after repair: next %d, want %d", l.NextOffset(), next+1)
		}
		l.Close()
	})
}

func readMem(t *testing.T, fsys vfs.FS, name string) []byte {
	t.Helper()
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	b := make([]byte, st.Size())
	f.ReadAt(b, 0)
	return b
}
