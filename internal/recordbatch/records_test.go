package recordbatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var testNow = time.UnixMilli(1_700_000_000_000)

// testOpts accepts timestamps within an hour of testNow.
func testOpts() ValidateOptions {
	return ValidateOptions{
		TimestampType:    CreateTime,
		Now:              testNow,
		MaxTimestampDiff: time.Hour,
		FromClient:       true,
	}
}

var codecNames = map[int]string{CodecNone: "none", CodecGzip: "gzip", CodecSnappy: "snappy", CodecLZ4: "lz4", CodecZstd: "zstd"}

// compress compresses raw with franz-go's own producer compressor, so the
// tests read what a franz-go producer writes.
func compress(t testing.TB, codec int, raw []byte) []byte {
	t.Helper()
	var c kgo.CompressionCodec
	switch codec {
	case CodecNone:
		return raw
	case CodecGzip:
		c = kgo.GzipCompression()
	case CodecSnappy:
		c = kgo.SnappyCompression()
	case CodecLZ4:
		c = kgo.Lz4Compression()
	case CodecZstd:
		c = kgo.ZstdCompression()
	}
	comp, err := kgo.DefaultCompressor(c)
	if err != nil {
		t.Fatal(err)
	}
	out, used := comp.Compress(new(bytes.Buffer), raw)
	if int(used) != codec {
		t.Fatalf("compressor used codec %d, want %d", used, codec)
	}
	return bytes.Clone(out)
}

// batchOf builds a batch of recs, the records section compressed with codec.
// The header starts from h; count, lastOffsetDelta and CRC are filled in
// unless fix changes them afterwards (it is called before the CRC).
func batchOf(t testing.TB, codec int, h Header, recs []Record, fix func(*kmsg.RecordBatch)) []byte {
	t.Helper()
	var raw []byte
	for _, r := range recs {
		raw = AppendRecord(raw, r)
	}
	kb := kmsg.RecordBatch{
		FirstOffset:          h.BaseOffset,
		PartitionLeaderEpoch: h.PartitionLeaderEpoch,
		Magic:                2,
		Attributes:           h.Attributes | int16(codec),
		LastOffsetDelta:      int32(len(recs) - 1),
		FirstTimestamp:       h.BaseTimestamp,
		MaxTimestamp:         h.MaxTimestamp,
		ProducerID:           h.ProducerID,
		ProducerEpoch:        h.ProducerEpoch,
		FirstSequence:        h.BaseSequence,
		NumRecords:           int32(len(recs)),
		Records:              compress(t, codec, raw),
	}
	if fix != nil {
		fix(&kb)
	}
	kb.Length = int32(HeaderSize - LengthPrefixSize + len(kb.Records))
	b := kb.AppendTo(nil)
	fixCRC(b)
	return b
}

func fixCRC(b []byte) {
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
}

func sampleHeader() Header {
	return Header{
		BaseTimestamp: testNow.UnixMilli() - 1000,
		MaxTimestamp:  testNow.UnixMilli() - 1000 + 9,
		ProducerID:    7,
		ProducerEpoch: 1,
		BaseSequence:  42,
	}
}

func sampleRecords(n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{
			TimestampDelta: int64(i),
			OffsetDelta:    int32(i),
			Key:            []byte(fmt.Sprintf("key-%d", i)),
			Value:          bytes.Repeat([]byte{byte('a' + i%26)}, 100+i),
		}
		switch i % 3 {
		case 1:
			recs[i].Key = nil
			recs[i].Headers = []RecordHeader{{Key: "h1", Value: []byte("v1")}, {Key: "h2", Value: nil}}
		case 2:
			recs[i].Value = nil
			recs[i].Headers = []RecordHeader{{Key: "", Value: []byte{}}}
		}
	}
	return recs
}

func readAll(t testing.TB, b []byte) []Record {
	t.Helper()
	var got []Record
	err := Records(b, func(r Record) error {
		r.Key, r.Value = bytes.Clone(r.Key), bytes.Clone(r.Value)
		got = append(got, r)
		return nil
	})
	if err != nil {
		t.Fatalf("Records: %v", err)
	}
	return got
}

func TestValidateAllCodecs(t *testing.T) {
	for codec := CodecNone; codec <= CodecZstd; codec++ {
		t.Run(codecNames[codec], func(t *testing.T) {
			recs := sampleRecords(10)
			b := batchOf(t, codec, sampleHeader(), recs, nil)
			h, st, err := ValidateStats(b, testOpts())
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if h.Compression() != codec || h.RecordCount != 10 {
				t.Fatalf("header %+v", h)
			}
			if st.MaxTimestamp != h.MaxTimestamp || st.OffsetDeltaOfMaxTimestamp != 9 {
				t.Fatalf("stats %+v, header max %d", st, h.MaxTimestamp)
			}
			got := readAll(t, b)
			if len(got) != len(recs) {
				t.Fatalf("%d records, want %d", len(got), len(recs))
			}
			for i, r := range got {
				want := recs[i]
				want.Offset = int64(i)
				want.Timestamp = h.BaseTimestamp + int64(i)
				if len(want.Headers) == 0 {
					want.Headers = nil
				}
				if len(r.Headers) == 0 {
					r.Headers = nil
				}
				if !reflect.DeepEqual(r, want) {
					t.Fatalf("record %d:\n got %+v\nwant %+v", i, r, want)
				}
			}
		})
	}
}

// TestRecordEncodingMatchesKmsg checks AppendRecord and parseRecord against
// franz-go's generated codec, both ways.
func TestRecordEncodingMatchesKmsg(t *testing.T) {
	for i, r := range sampleRecords(6) {
		r.TimestampDelta = int64(i) * 1_000_000_007 // beyond int32: a varlong
		ours := AppendRecord(nil, r)
		var kr kmsg.Record
		if err := kr.ReadFrom(ours); err != nil {
			t.Fatalf("record %d: kmsg cannot read ours: %v", i, err)
		}
		if kr.TimestampDelta64 != r.TimestampDelta || kr.OffsetDelta != r.OffsetDelta ||
			!bytes.Equal(kr.Key, r.Key) || (kr.Key == nil) != (r.Key == nil) ||
			!bytes.Equal(kr.Value, r.Value) || (kr.Value == nil) != (r.Value == nil) ||
			len(kr.Headers) != len(r.Headers) {
			t.Fatalf("record %d: kmsg read %+v from %+v", i, kr, r)
		}
		kr.Length = 0
		body := kr.AppendTo(nil)
		kr.Length = int32(len(body) - 1) // a zero length is one varint byte
		theirs := kr.AppendTo(nil)
		if !bytes.Equal(ours, theirs) {
			t.Fatalf("record %d: ours %x, kmsg %x", i, ours, theirs)
		}
		var back Record
		n, err := parseRecord(theirs, &back, true)
		if err != nil || n != len(theirs) {
			t.Fatalf("record %d: parse kmsg encoding: n=%d err=%v", i, n, err)
		}
	}
}

// TestSnappyXerial reads snappy framed the way the Java producer's
// SnappyOutputStream writes it, split into several blocks.
func TestSnappyXerial(t *testing.T) {
	recs := sampleRecords(50)
	var raw []byte
	for _, r := range recs {
		raw = AppendRecord(raw, r)
	}
	framed := append([]byte(nil), xerialMagic...)
	framed = binary.BigEndian.AppendUint32(framed, 1)
	framed = binary.BigEndian.AppendUint32(framed, 1)
	for rem := raw; len(rem) > 0; {
		n := min(len(rem), 1000)
		block := s2.EncodeSnappy(nil, rem[:n])
		framed = binary.BigEndian.AppendUint32(framed, uint32(len(block)))
		framed = append(framed, block...)
		rem = rem[n:]
	}
	b := batchOf(t, CodecSnappy, sampleHeader(), recs, func(kb *kmsg.RecordBatch) { kb.Records = framed })
	if _, err := Validate(b, testOpts()); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, b); len(got) != 50 || !bytes.Equal(got[49].Key, recs[49].Key) {
		t.Fatalf("read back %d records", len(got))
	}
	opts := testOpts()
	opts.MaxUncompressedBytes = len(raw) - 1
	if _, err := Validate(b, opts); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("over the bound: %v", err)
	}
}

func TestValidateRejects(t *testing.T) {
	hdr := sampleHeader()
	good := func(fix func(*kmsg.RecordBatch)) func(t *testing.T) []byte {
		return func(t *testing.T) []byte { return batchOf(t, CodecNone, hdr, sampleRecords(3), fix) }
	}
	withRecords := func(recs ...Record) func(t *testing.T) []byte {
		return func(t *testing.T) []byte { return batchOf(t, CodecNone, hdr, recs, nil) }
	}
	rawRecords := func(count int32, raw []byte) func(t *testing.T) []byte {
		return good(func(kb *kmsg.RecordBatch) {
			kb.NumRecords, kb.LastOffsetDelta, kb.Records = count, count-1, raw
		})
	}
	oneRecord := AppendRecord(nil, Record{Key: []byte("k"), Value: []byte("v")})
	at := func(ts int64) Record { return Record{TimestampDelta: ts - hdr.BaseTimestamp, Key: []byte("k")} }
	second := func(r Record) Record { r.OffsetDelta = 1; return r }
	// varints frames a record of the given varint fields after the
	// attributes byte.
	varints := func(fields ...int64) []byte {
		body := []byte{0}
		for _, f := range fields {
			body = binary.AppendVarint(body, f)
		}
		return append(binary.AppendVarint(nil, int64(len(body))), body...)
	}

	tests := []struct {
		name  string
		build func(t *testing.T) []byte
		opts  func(*ValidateOptions)
		want  error
		msg   string
	}{
		{name: "wrong crc", build: func(t *testing.T) []byte {
			b := good(nil)(t)
			b[len(b)-1] ^= 1
			return b
		}, want: ErrCorrupt, msg: "CRC"},
		{name: "truncated", build: func(t *testing.T) []byte { b := good(nil)(t); return b[:len(b)-1] }, want: ErrCorrupt},
		{name: "shorter than header", build: func(t *testing.T) []byte { return good(nil)(t)[:HeaderSize-1] }, want: ErrCorrupt},
		{name: "bad magic", build: good(func(kb *kmsg.RecordBatch) { kb.Magic = 1 }), want: ErrCorrupt, msg: "magic"},
		{name: "zero count", build: rawRecords(0, nil), want: ErrInvalidRecord, msg: "record count 0"},
		{name: "negative count", build: good(func(kb *kmsg.RecordBatch) { kb.NumRecords = -1 }), want: ErrInvalidRecord},
		{name: "count above records", build: rawRecords(2, oneRecord), want: ErrInvalidRecord, msg: "found only 1"},
		{name: "count below records", build: rawRecords(1, append(bytes.Clone(oneRecord), oneRecord...)), want: ErrInvalidRecord, msg: "bytes after"},
		{name: "last offset delta", build: good(func(kb *kmsg.RecordBatch) { kb.LastOffsetDelta = 5 }), want: ErrInvalidRecord, msg: "lastOffsetDelta"},
		{name: "offset deltas skip", build: withRecords(Record{OffsetDelta: 0}, Record{OffsetDelta: 2}), want: ErrInvalidRecord, msg: "offset delta 2"},
		{name: "offset deltas repeat", build: withRecords(Record{OffsetDelta: 0}, Record{OffsetDelta: 0}), want: ErrInvalidRecord},
		{name: "record length past end", build: rawRecords(1, append(binary.AppendVarint(nil, 50), oneRecord[1:]...)), want: ErrCorrupt},
		{name: "record length short", build: rawRecords(1, append(binary.AppendVarint(nil, int64(len(oneRecord)-2)), oneRecord[1:]...)), want: ErrCorrupt},
		{name: "negative record length", build: rawRecords(1, binary.AppendVarint(nil, -3)), want: ErrCorrupt},
		{name: "minimal record", build: rawRecords(1, varints(0, 0, -1, -1, 0))},
		{name: "key length past end", build: rawRecords(1, varints(0, 0, 20, -1, 0)), want: ErrCorrupt, msg: "length 20"},
		{name: "key length -2", build: rawRecords(1, varints(0, 0, -2, -1, 0)), want: ErrCorrupt, msg: "length -2"},
		{name: "record ends early", build: rawRecords(1, varints(0, 0, -1)), want: ErrCorrupt},
		{name: "offset delta over int32", build: rawRecords(1, varints(0, 1<<31, -1, -1, 0)), want: ErrCorrupt, msg: "varint"},
		{name: "overlong varint", build: rawRecords(1, []byte{22, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1}), want: ErrCorrupt, msg: "varint"},
		{name: "header count too big", build: rawRecords(1, varints(0, 0, -1, -1, 100)), want: ErrCorrupt, msg: "header count"},
		{name: "negative header count", build: rawRecords(1, varints(0, 0, -1, -1, -1)), want: ErrCorrupt, msg: "header count"},
		{name: "null header key", build: rawRecords(1, varints(0, 0, -1, -1, 1, -1, -1)), want: ErrCorrupt, msg: "null key"},
		{name: "unknown codec", build: good(func(kb *kmsg.RecordBatch) { kb.Attributes |= 6 }), want: ErrCorrupt, msg: "codec"},
		{name: "garbage gzip", build: good(func(kb *kmsg.RecordBatch) { kb.Attributes |= CodecGzip }), want: ErrCorrupt},
		{name: "garbage zstd", build: good(func(kb *kmsg.RecordBatch) { kb.Attributes |= CodecZstd }), want: ErrCorrupt},
		{name: "garbage lz4", build: good(func(kb *kmsg.RecordBatch) { kb.Attributes |= CodecLZ4 }), want: ErrCorrupt},
		{name: "garbage snappy", build: good(func(kb *kmsg.RecordBatch) { kb.Attributes |= CodecSnappy }), want: ErrCorrupt},
		{name: "too old", build: withRecords(at(testNow.UnixMilli() - time.Hour.Milliseconds() - 1)), want: ErrInvalidTimestamp, msg: "message.timestamp.difference.max.ms"},
		{name: "too new", build: withRecords(at(testNow.UnixMilli() + time.Hour.Milliseconds() + 1)), want: ErrInvalidTimestamp},
		{name: "edge of window", build: withRecords(at(testNow.UnixMilli()-time.Hour.Milliseconds()), second(at(testNow.UnixMilli()+time.Hour.Milliseconds())))},
		{name: "no timestamp is not checked", build: withRecords(at(-1))},
		{name: "check disabled", build: withRecords(at(0)), opts: func(o *ValidateOptions) { o.MaxTimestampDiff = -1 }},
		{name: "log append time", build: withRecords(at(0)), opts: func(o *ValidateOptions) { o.TimestampType = LogAppendTime }},
		{name: "max timestamp mismatch is lenient", build: good(func(kb *kmsg.RecordBatch) { kb.MaxTimestamp = 5 })},
		{name: "control from client", build: func(*testing.T) []byte { return BuildControlBatch(7, 1, true, 3, testNow.UnixMilli()) }, want: ErrInvalidRecord, msg: "control"},
		{name: "control from broker", build: func(*testing.T) []byte { return BuildControlBatch(7, 1, true, 3, 0) }, opts: func(o *ValidateOptions) { o.FromClient = false }},
		{name: "missing key on compacted topic", build: withRecords(Record{Key: []byte("k")}, Record{OffsetDelta: 1}), opts: func(o *ValidateOptions) { o.RequireKey = true }, want: ErrInvalidRecord, msg: "compacted"},
		{name: "producer id without sequence", build: good(func(kb *kmsg.RecordBatch) { kb.FirstSequence = -1 }), want: ErrInvalidRecord, msg: "sequence"},
		{name: "no producer id", build: good(func(kb *kmsg.RecordBatch) { kb.ProducerID, kb.ProducerEpoch, kb.FirstSequence = -1, -1, -1 })},
		{name: "transactional without producer id", build: good(func(kb *kmsg.RecordBatch) {
			kb.Attributes |= AttrTransactional
			kb.ProducerID, kb.FirstSequence = -1, -1
		}), want: ErrInvalidRecord, msg: "producer id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOpts()
			if tc.opts != nil {
				tc.opts(&opts)
			}
			_, err := Validate(tc.build(t), opts)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("want no error, got %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			for _, other := range []error{ErrCorrupt, ErrInvalidRecord, ErrInvalidTimestamp} {
				if other != tc.want && errors.Is(err, other) {
					t.Fatalf("%v is also %v", err, other)
				}
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

// TestDecompressionBomb: a batch of a few KiB that expands past the bound
// is refused with ErrCorrupt for every codec, without decoding it whole.
func TestDecompressionBomb(t *testing.T) {
	big := Record{Key: []byte("k"), Value: make([]byte, 8<<20)}
	for codec := CodecGzip; codec <= CodecZstd; codec++ {
		t.Run(codecNames[codec], func(t *testing.T) {
			b := batchOf(t, codec, sampleHeader(), []Record{big}, nil)
			opts := testOpts()
			if _, err := Validate(b, opts); err != nil {
				t.Fatalf("under the default bound: %v", err)
			}
			opts.MaxUncompressedBytes = 1 << 20
			_, err := Validate(b, opts)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "more than") {
				t.Fatalf("%d compressed bytes: got %v", len(b), err)
			}
		})
	}
}

func TestControlRoundTrip(t *testing.T) {
	for _, commit := range []bool{false, true} {
		b := BuildControlBatch(1234, 5, commit, 77, testNow.UnixMilli())
		h, err := Validate(b, ValidateOptions{MaxTimestampDiff: -1})
		if err != nil {
			t.Fatal(err)
		}
		if !h.IsControl() || !h.IsTransactional() || h.ProducerID != 1234 || h.ProducerEpoch != 5 ||
			h.BaseSequence != -1 || h.RecordCount != 1 || h.LastOffsetDelta != 0 || h.MaxTimestamp != testNow.UnixMilli() {
			t.Fatalf("header %+v", h)
		}
		gotCommit, epoch, err := ParseControl(b)
		if err != nil || gotCommit != commit || epoch != 77 {
			t.Fatalf("ParseControl = %v, %d, %v; want %v, 77", gotCommit, epoch, err, commit)
		}
		recs := readAll(t, b)
		wantType := byte(0)
		if commit {
			wantType = 1
		}
		if len(recs) != 1 || !bytes.Equal(recs[0].Key, []byte{0, 0, 0, wantType}) || !bytes.Equal(recs[0].Value, []byte{0, 0, 0, 0, 0, 77}) {
			t.Fatalf("records %+v", recs)
		}
	}
	if _, _, err := ParseControl(batchOf(t, CodecNone, sampleHeader(), sampleRecords(1), nil)); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("data batch: %v", err)
	}
	leader := batchOf(t, CodecNone, Header{Attributes: AttrControl, ProducerID: -1, BaseSequence: -1},
		[]Record{{Key: []byte{0, 0, 0, 2}, Value: []byte{0, 0, 0, 0, 0, 0}}}, nil)
	if _, _, err := ParseControl(leader); !errors.Is(err, ErrInvalidRecord) || !strings.Contains(err.Error(), "type 2") {
		t.Fatalf("leader change record: %v", err)
	}
	short := batchOf(t, CodecNone, Header{Attributes: AttrControl}, []Record{{Key: []byte{0, 0, 0, 1}, Value: []byte{0, 0}}}, nil)
	if _, _, err := ParseControl(short); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("short value: %v", err)
	}
}

func TestSetMaxTimestamp(t *testing.T) {
	b := batchOf(t, CodecNone, sampleHeader(), sampleRecords(4), func(kb *kmsg.RecordBatch) { kb.MaxTimestamp = 1 })
	_, st, err := ValidateStats(b, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	SetMaxTimestamp(b, st.MaxTimestamp)
	h, err := Check(b)
	if err != nil || h.MaxTimestamp != sampleHeader().BaseTimestamp+3 {
		t.Fatalf("after SetMaxTimestamp: %+v, %v", h, err)
	}
}

func TestRecordsLogAppendTimeAndStop(t *testing.T) {
	b := batchOf(t, CodecNone, Header{BaseOffset: 100, BaseTimestamp: 5, MaxTimestamp: 5}, sampleRecords(5), nil)
	SetLogAppendTime(b, 999)
	stop := errors.New("stop")
	var seen []int64
	err := Records(b, func(r Record) error {
		if r.Timestamp != 999 {
			t.Fatalf("record %d timestamp %d, want the log append time", r.Offset, r.Timestamp)
		}
		seen = append(seen, r.Offset)
		if r.Offset == 102 {
			return stop
		}
		return nil
	})
	if err != stop || !reflect.DeepEqual(seen, []int64{100, 101, 102}) {
		t.Fatalf("err %v, seen %v", err, seen)
	}
}
