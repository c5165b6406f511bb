package recordbatch

// Records inside a batch (magic 2), each framed as:
//
//	length         varint   bytes after this field
//	attributes     int8     unused, 0
//	timestampDelta varlong  from the batch's baseTimestamp
//	offsetDelta    varint   from the batch's baseOffset; equals the record's index
//	keyLength      varint   -1 for a null key
//	key            bytes
//	valueLength    varint   -1 for a null value
//	value          bytes
//	headerCount    varint
//	headers        per header: keyLength varint (>= 0), key, valueLength varint (-1 null), value
//
// Varints are zigzag encoded, as encoding/binary's Varint does. The records
// section (everything after the 61-byte header) is compressed as a whole with
// the codec in the attributes.
//
// Error classes follow the batch-level ones in recordbatch.go:
//   - ErrCorrupt: the bytes cannot be decoded at all (bad CRC, a length that
//     runs past the end, a varint that overflows, a codec that fails).
//   - ErrInvalidRecord: the bytes decode but break a rule (count, offset
//     deltas, sequence, a missing key on a compacted topic).
//   - ErrInvalidTimestamp: a CreateTime timestamp outside the allowed window.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultMaxUncompressedBytes bounds what one batch may decompress to when
// ValidateOptions.MaxUncompressedBytes is zero, and always bounds Records and
// ParseControl. Kafka has no such setting: it streams records out of the
// codec. We decompress a batch whole, so we need the bound to keep a small
// compressed batch (a "zip bomb") from exhausting memory.
const DefaultMaxUncompressedBytes = 64 << 20

// TimestampType is a topic's message.timestamp.type.
type TimestampType int8

const (
	// CreateTime: the producer's timestamps are kept, and checked against
	// the broker clock.
	CreateTime TimestampType = 0
	// LogAppendTime: the broker overwrites the timestamps when it appends,
	// so the producer's are not checked.
	LogAppendTime TimestampType = 1
)

// ValidateOptions are the topic settings and broker inputs Validate needs.
// The zero value checks CreateTime timestamps with a window of zero, which
// rejects nearly everything: set MaxTimestampDiff (negative disables).
type ValidateOptions struct {
	// TimestampType is the topic's message.timestamp.type.
	TimestampType TimestampType
	// Now is the broker's clock, read by the caller (Validate never
	// reads the clock).
	Now time.Time
	// MaxTimestampDiff is message.timestamp.difference.max.ms: a
	// CreateTime record whose timestamp is further than this from Now,
	// in either direction, is rejected. Negative disables the check.
	MaxTimestampDiff time.Duration
	// MaxUncompressedBytes bounds the decompressed records section; zero
	// means DefaultMaxUncompressedBytes.
	MaxUncompressedBytes int
	// FromClient rejects control batches, as Kafka does for batches
	// that arrive in a Produce request (AppendOrigin.CLIENT): only the
	// broker writes transaction markers.
	FromClient bool
	// RequireKey rejects records without a key, as Kafka does for
	// topics with cleanup.policy=compact.
	RequireKey bool
}

// Stats are facts Validate learns while decoding the records.
type Stats struct {
	// MaxTimestamp is the largest record timestamp (-1 if none is set).
	// NB: Kafka does not reject a batch whose header MaxTimestamp
	// disagrees with its records; for CreateTime it rewrites the header
	// with this value (LogValidator.assignOffsetsNonCompressed). Callers
	// that want the same use SetMaxTimestamp.
	MaxTimestamp int64
	// OffsetDeltaOfMaxTimestamp is the first record carrying MaxTimestamp.
	OffsetDeltaOfMaxTimestamp int32
	// UncompressedBytes is the size of the records section after
	// decompression.
	UncompressedBytes int
}

// RecordHeader is one header of a record. A header key is never null.
type RecordHeader struct {
	Key   string
	Value []byte // nil is a null value
}

// Record is one decoded record. Key, Value and header values alias the
// batch's (or its decompressed copy's) bytes: copy them to keep them past the
// callback.
type Record struct {
	Attributes     int8
	TimestampDelta int64
	OffsetDelta    int32
	Key            []byte // nil is a null key
	Value          []byte // nil is a null value
	Headers        []RecordHeader

	// Offset and Timestamp are filled in by Records from the batch header
	// and ignored by AppendRecord. For a LogAppendTime batch Timestamp is
	// the batch's MaxTimestamp, as Kafka reports it.
	Offset    int64
	Timestamp int64
}

// AppendRecord appends r in wire form, length prefix included, to dst.
func AppendRecord(dst []byte, r Record) []byte {
	size := 1 + varintLen(r.TimestampDelta) + varintLen(int64(r.OffsetDelta)) +
		bytesLen(r.Key) + bytesLen(r.Value) + varintLen(int64(len(r.Headers)))
	for _, h := range r.Headers {
		size += varintLen(int64(len(h.Key))) + len(h.Key) + bytesLen(h.Value)
	}
	dst = binary.AppendVarint(dst, int64(size))
	dst = append(dst, byte(r.Attributes))
	dst = binary.AppendVarint(dst, r.TimestampDelta)
	dst = binary.AppendVarint(dst, int64(r.OffsetDelta))
	dst = appendBytes(dst, r.Key)
	dst = appendBytes(dst, r.Value)
	dst = binary.AppendVarint(dst, int64(len(r.Headers)))
	for _, h := range r.Headers {
		dst = binary.AppendVarint(dst, int64(len(h.Key)))
		dst = append(dst, h.Key...)
		dst = appendBytes(dst, h.Value)
	}
	return dst
}

func varintLen(v int64) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutVarint(buf[:], v)
}

func bytesLen(b []byte) int {
	if b == nil {
		return varintLen(-1)
	}
	return varintLen(int64(len(b))) + len(b)
}

func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}

// Validate checks that b, exactly one batch, is fit to append: Check (length
// and CRC), then the header's count and offset range, then every record,
// decompressed, against opts. It returns the header as parsed.
func Validate(b []byte, opts ValidateOptions) (Header, error) {
	h, _, err := ValidateStats(b, opts)
	return h, err
}

// ValidateStats is Validate that also reports what it learned from the
// records.
func ValidateStats(b []byte, opts ValidateOptions) (Header, Stats, error) {
	st := Stats{MaxTimestamp: -1, OffsetDeltaOfMaxTimestamp: -1}
	h, err := Check(b)
	if err != nil {
		return h, st, err
	}
	if opts.FromClient && h.IsControl() {
		return h, st, fmt.Errorf("%w: clients may not write control batches", ErrInvalidRecord)
	}
	// Kafka (LogValidator.validateBatch) requires a positive count for
	// every batch; a control batch carries exactly one record.
	if h.RecordCount <= 0 {
		return h, st, fmt.Errorf("%w: record count %d, want at least 1", ErrInvalidRecord, h.RecordCount)
	}
	if h.LastOffsetDelta != h.RecordCount-1 {
		return h, st, fmt.Errorf("%w: lastOffsetDelta %d does not fit record count %d",
			ErrInvalidRecord, h.LastOffsetDelta, h.RecordCount)
	}
	if h.IsControl() && h.RecordCount != 1 {
		return h, st, fmt.Errorf("%w: control batch with %d records, want 1", ErrInvalidRecord, h.RecordCount)
	}
	if !h.IsControl() && h.ProducerID >= 0 && h.BaseSequence < 0 {
		return h, st, fmt.Errorf("%w: producer id %d with base sequence %d", ErrInvalidRecord, h.ProducerID, h.BaseSequence)
	}
	if h.IsTransactional() && h.ProducerID < 0 {
		return h, st, fmt.Errorf("%w: transactional batch without a producer id", ErrInvalidRecord)
	}
	limit := opts.MaxUncompressedBytes
	if limit <= 0 {
		limit = DefaultMaxUncompressedBytes
	}
	data, err := decompress(b[HeaderSize:], h.Compression(), limit)
	if err != nil {
		return h, st, err
	}
	st.UncompressedBytes = len(data)
	checkTime := opts.TimestampType == CreateTime && opts.MaxTimestampDiff >= 0 && !h.IsControl()
	nowMillis := opts.Now.UnixMilli()
	maxDiff := opts.MaxTimestampDiff.Milliseconds()
	err = eachRecord(&h, data, false, func(i int32, r *Record) error {
		if r.OffsetDelta != i {
			return fmt.Errorf("%w: record %d has offset delta %d", ErrInvalidRecord, i, r.OffsetDelta)
		}
		ts := h.BaseTimestamp + r.TimestampDelta
		if ts > st.MaxTimestamp {
			st.MaxTimestamp, st.OffsetDeltaOfMaxTimestamp = ts, i
		}
		// -1 is Kafka's NO_TIMESTAMP; LogValidator does not check it.
		if checkTime && ts != -1 {
			if d := nowMillis - ts; d > maxDiff || -d > maxDiff {
				return fmt.Errorf("%w: record %d timestamp %d is %dms from broker time %d, more than message.timestamp.difference.max.ms=%d",
					ErrInvalidTimestamp, i, ts, d, nowMillis, maxDiff)
			}
		}
		if opts.RequireKey && r.Key == nil {
			return fmt.Errorf("%w: record %d has no key, which a compacted topic requires", ErrInvalidRecord, i)
		}
		return nil
	})
	return h, st, err
}

// Records calls fn for each record of b, which must be exactly one batch. It
// checks the framing but not the CRC: it is meant for batches already
// validated on append. It stops at fn's first error and returns it as is.
func Records(b []byte, fn func(r Record) error) error {
	h, err := ParseHeader(b)
	if err != nil {
		return err
	}
	if h.Size() != len(b) {
		return fmt.Errorf("%w: batch length says %d bytes, have %d", ErrCorrupt, h.Size(), len(b))
	}
	if h.RecordCount < 0 {
		return fmt.Errorf("%w: record count %d", ErrCorrupt, h.RecordCount)
	}
	data, err := decompress(b[HeaderSize:], h.Compression(), DefaultMaxUncompressedBytes)
	if err != nil {
		return err
	}
	return eachRecord(&h, data, true, func(_ int32, r *Record) error {
		r.Offset = h.BaseOffset + int64(r.OffsetDelta)
		if h.IsLogAppendTime() {
			r.Timestamp = h.MaxTimestamp
		} else {
			r.Timestamp = h.BaseTimestamp + r.TimestampDelta
		}
		return fn(*r)
	})
}

// SetMaxTimestamp rewrites the batch's MaxTimestamp, keeping its timestamp
// type, and recomputes the CRC.
func SetMaxTimestamp(b []byte, ts int64) {
	binary.BigEndian.PutUint64(b[35:], uint64(ts))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
}

// eachRecord decodes exactly h.RecordCount records from data, the
// decompressed records section, and calls fn with each record's index. The
// Record passed is reused between calls. Header values are decoded only if
// withHeaders; otherwise they are checked and skipped.
func eachRecord(h *Header, data []byte, withHeaders bool, fn func(i int32, r *Record) error) error {
	var r Record
	for i := int32(0); i < h.RecordCount; i++ {
		if len(data) == 0 {
			return fmt.Errorf("%w: record count %d, found only %d records", ErrInvalidRecord, h.RecordCount, i)
		}
		n, err := parseRecord(data, &r, withHeaders)
		if err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
		data = data[n:]
		if err := fn(i, &r); err != nil {
			return err
		}
	}
	if len(data) != 0 {
		return fmt.Errorf("%w: %d bytes after the last of %d records", ErrInvalidRecord, len(data), h.RecordCount)
	}
	return nil
}

// parseRecord decodes the record at the start of b into r and returns its
// size with the length prefix. Every length is bounded by the bytes left in
// the record before anything is sliced or allocated.
func parseRecord(b []byte, r *Record, withHeaders bool) (int, error) {
	length, n, err := readVarint32(b)
	if err != nil {
		return 0, fmt.Errorf("length: %w", err)
	}
	if length < 0 || int(length) > len(b)-n {
		return 0, fmt.Errorf("%w: record length %d with %d bytes left", ErrCorrupt, length, len(b)-n)
	}
	total := n + int(length)
	d := decoder{b: b[n:total]}
	r.Attributes = int8(d.byte())
	r.TimestampDelta = d.varint64()
	r.OffsetDelta = d.varint32()
	r.Key = d.bytes()
	r.Value = d.bytes()
	count := d.varint32()
	if d.err == nil && (count < 0 || int(count) > len(d.b)/2) {
		// Every header takes at least two bytes (two lengths).
		return 0, fmt.Errorf("%w: header count %d with %d bytes left", ErrCorrupt, count, len(d.b))
	}
	r.Headers = r.Headers[:0]
	if withHeaders && count > 0 {
		r.Headers = make([]RecordHeader, 0, count)
	}
	for j := int32(0); j < count && d.err == nil; j++ {
		k := d.bytes()
		if d.err == nil && k == nil {
			return 0, fmt.Errorf("%w: header %d has a null key", ErrCorrupt, j)
		}
		v := d.bytes()
		if withHeaders {
			r.Headers = append(r.Headers, RecordHeader{Key: string(k), Value: v})
		}
	}
	if d.err != nil {
		return 0, d.err
	}
	if len(d.b) != 0 {
		return 0, fmt.Errorf("%w: record length %d leaves %d bytes unread", ErrCorrupt, length, len(d.b))
	}
	if !withHeaders {
		r.Headers = nil
	}
	return total, nil
}

// decoder reads fields from one record's bytes; the first error sticks and
// later reads return zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string, err error) {
	if d.err == nil {
		d.err = fmt.Errorf("%s: %w", what, err)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("attributes", errShort)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) varint64() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("varlong", errBadVarint)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint32() int32 {
	if d.err != nil {
		return 0
	}
	v, n, err := readVarint32(d.b)
	if err != nil {
		d.fail("varint", err)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes reads a length-prefixed byte string; -1 is null (nil).
func (d *decoder) bytes() []byte {
	l := d.varint32()
	if d.err != nil {
		return nil
	}
	switch {
	case l == -1:
		return nil
	case l < -1 || int(l) > len(d.b):
		d.fail("bytes", fmt.Errorf("%w: length %d with %d bytes left", ErrCorrupt, l, len(d.b)))
		return nil
	}
	v := d.b[:l:l]
	d.b = d.b[l:]
	return v
}

var (
	errShort     = fmt.Errorf("%w: record ends early", ErrCorrupt)
	errBadVarint = fmt.Errorf("%w: truncated or overlong varint", ErrCorrupt)
)

// readVarint32 reads a zigzag varint of at most five bytes that fits an
// int32, as Kafka's ByteUtils.readVarint requires.
func readVarint32(b []byte) (int32, int, error) {
	if len(b) > 5 {
		b = b[:5]
	}
	v, n := binary.Varint(b)
	if n <= 0 || v < -1<<31 || v > 1<<31-1 {
		return 0, 0, errBadVarint
	}
	return int32(v), n, nil
}

// decompress returns the records section decoded with codec, rejecting
// output beyond limit bytes.
//
// NB: kgo.DefaultDecompressor bounds output only at math.MaxInt32 and offers
// no way to lower it, so only snappy goes through it, after checking the
// lengths its blocks declare (snappy allocates exactly what they claim).
// Gzip and lz4 are streamed through a limited reader, zstd decodes with a
// memory bound.
func decompress(src []byte, codec int, limit int) ([]byte, error) {
	var (
		out []byte
		err error
	)
	switch codec {
	case CodecNone:
		if len(src) > limit {
			return nil, fmt.Errorf("%w: %d bytes of records exceed the %d byte bound", ErrCorrupt, len(src), limit)
		}
		return src, nil
	case CodecGzip:
		out, err = decompressGzip(src, limit)
	case CodecSnappy:
		if err = checkSnappyLen(src, limit); err == nil {
			out, err = snappyDecompressor.Decompress(src, kgo.CodecSnappy)
		}
	case CodecLZ4:
		out, err = decompressLZ4(src, limit)
	case CodecZstd:
		out, err = decompressZstd(src, limit)
	default:
		return nil, fmt.Errorf("%w: unknown compression codec %d", ErrCorrupt, codec)
	}
	if errors.Is(err, errTooLarge) {
		return nil, fmt.Errorf("%w: records decompress to more than %d bytes", ErrCorrupt, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: codec %d: %v", ErrCorrupt, codec, err)
	}
	if len(out) > limit {
		return nil, fmt.Errorf("%w: records decompress to %d bytes, more than %d", ErrCorrupt, len(out), limit)
	}
	return out, nil
}

var errTooLarge = errors.New("decompressed size over the bound")

var snappyDecompressor = kgo.DefaultDecompressor()

// xerialMagic starts snappy data framed by the Java snappy stream (xerial):
// the magic, two int32 versions, then blocks of an int32 length and a raw
// snappy block.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

func checkSnappyLen(src []byte, limit int) error {
	if len(src) <= 16 || !bytes.HasPrefix(src, xerialMagic) {
		l, err := s2.DecodedLen(src)
		if err != nil {
			return err
		}
		if l > limit {
			return errTooLarge
		}
		return nil
	}
	total := 0
	for rem := src[16:]; len(rem) > 0; {
		if len(rem) < 4 {
			return errors.New("truncated xerial block length")
		}
		n := int(binary.BigEndian.Uint32(rem))
		rem = rem[4:]
		if n < 0 || n > len(rem) {
			return errors.New("xerial block runs past the end")
		}
		l, err := s2.DecodedLen(rem[:n])
		if err != nil {
			return err
		}
		if total += l; total > limit {
			return errTooLarge
		}
		rem = rem[n:]
	}
	return nil
}

var gzipReaders sync.Pool // *gzip.Reader

func decompressGzip(src []byte, limit int) ([]byte, error) {
	var zr *gzip.Reader
	if v := gzipReaders.Get(); v != nil {
		zr = v.(*gzip.Reader)
		if err := zr.Reset(bytes.NewReader(src)); err != nil {
			return nil, err
		}
	} else {
		var err error
		if zr, err = gzip.NewReader(bytes.NewReader(src)); err != nil {
			return nil, err
		}
	}
	defer gzipReaders.Put(zr)
	return readLimited(zr, limit, 4*len(src))
}

var lz4Readers = sync.Pool{New: func() any { return lz4.NewReader(nil) }}

func decompressLZ4(src []byte, limit int) ([]byte, error) {
	zr := lz4Readers.Get().(*lz4.Reader)
	defer lz4Readers.Put(zr)
	zr.Reset(bytes.NewReader(src))
	return readLimited(zr, limit, 4*len(src))
}

// readLimited reads r to the end, failing with errTooLarge past limit bytes.
func readLimited(r io.Reader, limit, hint int) ([]byte, error) {
	buf := bytes.NewBuffer(make([]byte, 0, min(hint, limit)+1))
	n, err := buf.ReadFrom(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if n > int64(limit) {
		return nil, errTooLarge
	}
	return buf.Bytes(), nil
}

// zstd decoders carry their memory bound from construction, so they are
// pooled per bound; in practice there is one bound per broker.
var zstdPools struct {
	sync.Mutex
	byLimit map[int]*sync.Pool
}

func decompressZstd(src []byte, limit int) ([]byte, error) {
	zstdPools.Lock()
	p := zstdPools.byLimit[limit]
	if p == nil {
		if zstdPools.byLimit == nil {
			zstdPools.byLimit = make(map[int]*sync.Pool)
		}
		p = &sync.Pool{New: func() any {
			d, err := zstd.NewReader(nil,
				zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxMemory(uint64(limit)),
			)
			if err != nil {
				panic(fmt.Sprintf("recordbatch: zstd decoder options: %v", err))
			}
			return d
		}}
		zstdPools.byLimit[limit] = p
	}
	zstdPools.Unlock()
	d := p.Get().(*zstd.Decoder)
	defer p.Put(d)
	out, err := d.DecodeAll(src, nil)
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
		return nil, errTooLarge
	}
	return out, err
}

// Transaction markers (control records), as Kafka's EndTransactionMarker
// writes them: the key is version int16 (0) and type int16 (0 abort, 1
// commit); the value is version int16 (0) and coordinatorEpoch int32.
const (
	controlTypeAbort  = 0
	controlTypeCommit = 1
)

// BuildControlBatch makes the marker batch that ends a transaction of
// (producerID, epoch) in one partition. The base offset and leader epoch are
// left for the partition to stamp; the base sequence is -1 (none), as Kafka
// writes it.
func BuildControlBatch(producerID int64, epoch int16, commit bool, coordinatorEpoch int32, ts int64) []byte {
	typ := int16(controlTypeAbort)
	if commit {
		typ = controlTypeCommit
	}
	key := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 0), uint16(typ))
	value := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint16(nil, 0), uint32(coordinatorEpoch))
	rec := AppendRecord(nil, Record{Key: key, Value: value})
	return Build(Header{
		PartitionLeaderEpoch: -1,
		Attributes:           AttrTransactional | AttrControl,
		BaseTimestamp:        ts,
		MaxTimestamp:         ts,
		ProducerID:           producerID,
		ProducerEpoch:        epoch,
		BaseSequence:         -1,
	}, [][]byte{rec})
}

// ParseControl decodes the transaction marker in b, one whole control batch.
// A control record of another type (Kafka's KRaft records use the same
// framing) is an ErrInvalidRecord.
func ParseControl(b []byte) (commit bool, coordinatorEpoch int32, err error) {
	h, err := Check(b)
	if err != nil {
		return false, 0, err
	}
	if !h.IsControl() {
		return false, 0, fmt.Errorf("%w: not a control batch", ErrInvalidRecord)
	}
	if h.RecordCount != 1 {
		return false, 0, fmt.Errorf("%w: control batch with %d records, want 1", ErrInvalidRecord, h.RecordCount)
	}
	data, err := decompress(b[HeaderSize:], h.Compression(), DefaultMaxUncompressedBytes)
	if err != nil {
		return false, 0, err
	}
	err = eachRecord(&h, data, false, func(_ int32, r *Record) error {
		if len(r.Key) < 4 || int16(binary.BigEndian.Uint16(r.Key)) < 0 {
			return fmt.Errorf("%w: control record key %x", ErrInvalidRecord, r.Key)
		}
		switch typ := int16(binary.BigEndian.Uint16(r.Key[2:])); typ {
		case controlTypeAbort, controlTypeCommit:
			commit = typ == controlTypeCommit
		default:
			return fmt.Errorf("%w: control record type %d is not a transaction marker", ErrInvalidRecord, typ)
		}
		// Kafka reads a newer value version by its known prefix.
		if len(r.Value) < 6 || int16(binary.BigEndian.Uint16(r.Value)) < 0 {
			return fmt.Errorf("%w: transaction marker value %x", ErrInvalidRecord, r.Value)
		}
		coordinatorEpoch = int32(binary.BigEndian.Uint32(r.Value[2:]))
		return nil
	})
	if err != nil {
		return false, 0, err
	}
	return commit, coordinatorEpoch, nil
}
