package recordbatch

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// FuzzValidate mutates valid batches of every codec. Properties:
//   - Validate, Records and ParseControl never panic;
//   - a batch that validates validates again to the same header;
//   - its records, read with Records and written again with AppendRecord
//     into an uncompressed batch, validate and read back the same.
//
// With fixCRC the CRC is recomputed after mutation, so the fuzzer gets past
// the checksum into the records.
func FuzzValidate(f *testing.F) {
	for codec := CodecNone; codec <= CodecZstd; codec++ {
		f.Add(batchOf(f, codec, sampleHeader(), sampleRecords(4), nil), true)
	}
	f.Add(batchOf(f, CodecNone, sampleHeader(), sampleRecords(1), nil), false)
	f.Add(BuildControlBatch(3, 4, true, 5, testNow.UnixMilli()), true)
	f.Fuzz(func(t *testing.T, b []byte, fixCRC bool) {
		if fixCRC && len(b) >= HeaderSize {
			refreshCRC(b)
		}
		opts := ValidateOptions{
			TimestampType:        CreateTime,
			Now:                  testNow,
			MaxTimestampDiff:     -1,
			MaxUncompressedBytes: 1 << 20,
		}
		_, _, _ = ParseControl(b)
		_ = Records(b, func(Record) error { return nil })
		strict := testOpts()
		strict.MaxUncompressedBytes = 1 << 20
		_, _ = Validate(b, strict)

		h, err := Validate(b, opts)
		if err != nil {
			return
		}
		h2, err := Validate(b, opts)
		if err != nil || h2 != h {
			t.Fatalf("revalidate: %+v, %v; first %+v", h2, err, h)
		}
		var recs []Record
		var raw []byte
		if err := Records(b, func(r Record) error {
			recs = append(recs, cloneRecord(r))
			raw = AppendRecord(raw, r)
			return nil
		}); err != nil {
			t.Fatalf("Records on a valid batch: %v", err)
		}
		if len(recs) != int(h.RecordCount) {
			t.Fatalf("Records gave %d records, header says %d", len(recs), h.RecordCount)
		}
		h.Attributes &^= AttrCompressionMask
		again := Build(h, [][]byte{raw})
		again[57], again[58], again[59], again[60] = b[57], b[58], b[59], b[60] // the count
		refreshCRC(again)
		if _, err := Validate(again, opts); err != nil {
			t.Fatalf("re-encoded batch: %v", err)
		}
		var back []Record
		if err := Records(again, func(r Record) error { back = append(back, cloneRecord(r)); return nil }); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, recs) {
			t.Fatalf("re-encoded records differ:\n%+v\n%+v", back, recs)
		}
	})
}

func refreshCRC(b []byte) { fixCRC(b) }

func cloneRecord(r Record) Record {
	c := r
	c.Key, c.Value = bytes.Clone(r.Key), bytes.Clone(r.Value)
	c.Headers = nil
	for _, h := range r.Headers {
		c.Headers = append(c.Headers, RecordHeader{Key: h.Key, Value: bytes.Clone(h.Value)})
	}
	return c
}

// benchRecords are 16 records of 1 KiB values, a 16 KiB batch, of text
// that compresses about as well as JSON logs do.
func benchRecords() []Record {
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"partition", "offset", "producer", "epoch", "commit", "abort", "fetch", "12345", "{\"id\":", "\"ok\"}"}
	recs := make([]Record, 16)
	for i := range recs {
		var v []byte
		for len(v) < 1024 {
			v = append(v, words[rng.IntN(len(words))]...)
			v = append(v, ' ')
		}
		recs[i] = Record{OffsetDelta: int32(i), TimestampDelta: int64(i), Key: []byte("user-42"), Value: v[:1024]}
	}
	return recs
}

func benchmarkValidate(b *testing.B, codec int) {
	recs := benchRecords()
	batch := batchOf(b, codec, sampleHeader(), recs, nil)
	opts := ValidateOptions{TimestampType: CreateTime, Now: testNow, MaxTimestampDiff: 24 * time.Hour}
	_, st, err := ValidateStats(batch, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(HeaderSize + st.UncompressedBytes))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Validate(batch, opts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(batch)), "wire-bytes")
}

func BenchmarkValidate(b *testing.B) {
	b.Run("none", func(b *testing.B) { benchmarkValidate(b, CodecNone) })
	b.Run("snappy", func(b *testing.B) { benchmarkValidate(b, CodecSnappy) })
	b.Run("lz4", func(b *testing.B) { benchmarkValidate(b, CodecLZ4) })
	b.Run("zstd", func(b *testing.B) { benchmarkValidate(b, CodecZstd) })
	b.Run("gzip", func(b *testing.B) { benchmarkValidate(b, CodecGzip) })
}
