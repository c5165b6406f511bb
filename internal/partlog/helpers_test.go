package partlog

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/oncelog/oncelog/internal/recordbatch"
	"github.com/oncelog/oncelog/internal/vfs"
)

// t0 is the tests' wall clock origin.
var t0 = time.UnixMilli(1_700_000_000_000)

// makeBatch builds a valid batch at base with n records of payload bytes
// each (arbitrary bytes: the log never looks inside records) and max
// timestamp ts.
func makeBatch(base int64, n int, payload int, ts int64) []byte {
	recs := make([][]byte, n)
	for i := range recs {
		r := bytes.Repeat([]byte{byte(base + int64(i))}, payload)
		recs[i] = r
	}
	return recordbatch.Build(recordbatch.Header{
		BaseOffset:      base,
		LastOffsetDelta: int32(n - 1),
		BaseTimestamp:   ts,
		MaxTimestamp:    ts,
		ProducerID:      -1,
		ProducerEpoch:   -1,
		BaseSequence:    -1,
	}, recs)
}

// appendN appends count batches of n records each, returning them.
func appendN(t testing.TB, l *Log, count, n, payload int, ts func(i int) int64, now time.Time) [][]byte {
	t.Helper()
	var out [][]byte
	for i := 0; i < count; i++ {
		b := makeBatch(l.NextOffset(), n, payload, ts(i))
		if err := l.Append(b, now); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		out = append(out, b)
	}
	return out
}

func mustOpen(t testing.TB, fs vfs.FS, dir string, cfg Config) *Log {
	t.Helper()
	l, err := Open(fs, dir, cfg, t0)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return l
}

// allBatches reads the whole log with Scan and checks it is gap-free.
func allBatches(t testing.TB, l *Log) [][]byte {
	t.Helper()
	var out [][]byte
	next := int64(-1)
	err := l.Scan(0, func(b []byte) error {
		h, err := recordbatch.Check(b)
		if err != nil {
			return err
		}
		if next >= 0 && h.BaseOffset != next {
			return fmt.Errorf("gap: batch at %d after end %d", h.BaseOffset, next)
		}
		next = h.LastOffset() + 1
		out = append(out, bytes.Clone(b))
		return nil
	})
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	if len(out) > 0 && next != l.NextOffset() {
		t.Fatalf("scan ended at %d, NextOffset %d", next, l.NextOffset())
	}
	return out
}

func splitBatches(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	if err := recordbatch.Split(b, func(x []byte) error {
		if _, err := recordbatch.Check(x); err != nil {
			return err
		}
		out = append(out, x)
		return nil
	}); err != nil {
		t.Fatalf("split: %v", err)
	}
	return out
}

func baseOf(b []byte) int64 {
	h, err := recordbatch.ParseHeader(b)
	if err != nil {
		panic(err)
	}
	return h.BaseOffset
}
