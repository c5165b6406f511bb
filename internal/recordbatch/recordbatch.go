// Package recordbatch reads, validates and stamps Kafka record batches
// (magic 2) in their wire form, the form in which they are also stored.
//
// Layout (offsets in bytes):
//
//	 0 baseOffset int64        ┐ outside the CRC: stamped by the broker
//	 8 batchLength int32       │ (bytes after this field)
//	12 partitionLeaderEpoch    ┘
//	16 magic int8
//	17 crc uint32              CRC-32C of bytes [21:]
//	21 attributes int16        compression(0-2) tstype(3) txn(4) control(5)
//	23 lastOffsetDelta int32
//	27 baseTimestamp int64
//	35 maxTimestamp int64
//	43 producerId int64
//	51 producerEpoch int16
//	53 baseSequence int32
//	57 recordCount int32
//	61 records
package recordbatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// HeaderSize is the size of a v2 batch header; the smallest valid batch.
const HeaderSize = 61

// LengthPrefixSize is the number of bytes before batchLength's count starts.
const LengthPrefixSize = 12

// Attribute bits.
const (
	AttrCompressionMask = 0x07
	AttrLogAppendTime   = 0x08
	AttrTransactional   = 0x10
	AttrControl         = 0x20
)

// Compression codecs as stored in the attributes.
const (
	CodecNone   = 0
	CodecGzip   = 1
	CodecSnappy = 2
	CodecLZ4    = 3
	CodecZstd   = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt means the bytes are not a well-formed batch (Kafka's
// CORRUPT_MESSAGE): wrong length, wrong CRC, wrong magic.
var ErrCorrupt = errors.New("corrupt record batch")

// ErrInvalidRecord means the batch is well formed but its content breaks a
// rule (Kafka's INVALID_RECORD): bad record count, bad offsets, bad records.
var ErrInvalidRecord = errors.New("invalid record batch")

// ErrInvalidTimestamp means a timestamp is outside the allowed window
// (Kafka's INVALID_TIMESTAMP).
var ErrInvalidTimestamp = errors.New("invalid timestamp")

// Header is the decoded fixed part of a batch.
type Header struct {
	BaseOffset           int64
	BatchLength          int32
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	BaseTimestamp        int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	RecordCount          int32
}

// Size is the total size of the batch in bytes.
func (h *Header) Size() int { return LengthPrefixSize + int(h.BatchLength) }

// LastOffset is the offset of the batch's last record.
func (h *Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// Compression is the codec of the records.
func (h *Header) Compression() int { return int(h.Attributes & AttrCompressionMask) }

// IsTransactional reports whether the batch belongs to a transaction.
func (h *Header) IsTransactional() bool { return h.Attributes&AttrTransactional != 0 }

// IsControl reports whether the batch holds a control record (a marker).
func (h *Header) IsControl() bool { return h.Attributes&AttrControl != 0 }

// IsLogAppendTime reports whether the timestamps are broker-assigned.
func (h *Header) IsLogAppendTime() bool { return h.Attributes&AttrLogAppendTime != 0 }

// LastSequence is the sequence number of the batch's last record; sequences
// wrap from MaxInt32 to 0 as in Kafka.
func (h *Header) LastSequence() int32 { return IncrementSequence(h.BaseSequence, h.LastOffsetDelta) }

// IncrementSequence adds n to seq with Kafka's wraparound.
func IncrementSequence(seq int32, n int32) int32 {
	if seq > int32((1<<31-1))-n {
		return n - (int32(1<<31-1) - seq) - 1
	}
	return seq + n
}

// ParseHeader decodes the header at the start of b, which must hold at least
// HeaderSize bytes. It checks only that the length fits the header; it does
// not require the whole batch to be present.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderSize {
		return h, fmt.Errorf("%w: %d bytes is shorter than a batch header", ErrCorrupt, len(b))
	}
	h.BaseOffset = int64(binary.BigEndian.Uint64(b[0:]))
	h.BatchLength = int32(binary.BigEndian.Uint32(b[8:]))
	h.PartitionLeaderEpoch = int32(binary.BigEndian.Uint32(b[12:]))
	h.Magic = int8(b[16])
	h.CRC = binary.BigEndian.Uint32(b[17:])
	h.Attributes = int16(binary.BigEndian.Uint16(b[21:]))
	h.LastOffsetDelta = int32(binary.BigEndian.Uint32(b[23:]))
	h.BaseTimestamp = int64(binary.BigEndian.Uint64(b[27:]))
	h.MaxTimestamp = int64(binary.BigEndian.Uint64(b[35:]))
	h.ProducerID = int64(binary.BigEndian.Uint64(b[43:]))
	h.ProducerEpoch = int16(binary.BigEndian.Uint16(b[51:]))
	h.BaseSequence = int32(binary.BigEndian.Uint32(b[53:]))
	h.RecordCount = int32(binary.BigEndian.Uint32(b[57:]))
	if h.BatchLength < HeaderSize-LengthPrefixSize {
		return h, fmt.Errorf("%w: batch length %d is shorter than a header", ErrCorrupt, h.BatchLength)
	}
	if h.Magic != 2 {
		return h, fmt.Errorf("%w: magic %d, only magic 2 is supported", ErrCorrupt, h.Magic)
	}
	return h, nil
}

// CRCValid reports whether the CRC of the whole batch b matches.
func CRCValid(b []byte) bool {
	if len(b) < HeaderSize {
		return false
	}
	return crc32.Checksum(b[21:], castagnoli) == binary.BigEndian.Uint32(b[17:])
}

// Check parses the batch at the start of b, which must be exactly one whole
// batch, and verifies its length and CRC. It does not look at the records.
func Check(b []byte) (Header, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	if h.Size() != len(b) {
		return h, fmt.Errorf("%w: batch length says %d bytes, have %d", ErrCorrupt, h.Size(), len(b))
	}
	if !CRCValid(b) {
		return h, fmt.Errorf("%w: CRC mismatch", ErrCorrupt)
	}
	return h, nil
}

// Split cuts b, a concatenation of batches as sent in a produce request, into
// whole batches without copying. A trailing partial batch is an error.
func Split(b []byte, each func(batch []byte) error) error {
	for len(b) > 0 {
		if len(b) < HeaderSize {
			return fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(b))
		}
		n := LengthPrefixSize + int64(int32(binary.BigEndian.Uint32(b[8:])))
		if n < HeaderSize || n > int64(len(b)) {
			return fmt.Errorf("%w: batch length %d with %d bytes left", ErrCorrupt, n, len(b))
		}
		if err := each(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// SetBaseOffset stamps the base offset; it is outside the CRC.
func SetBaseOffset(b []byte, off int64) { binary.BigEndian.PutUint64(b[0:], uint64(off)) }

// SetPartitionLeaderEpoch stamps the leader epoch; it is outside the CRC.
func SetPartitionLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[12:], uint32(epoch))
}

// SetLogAppendTime marks the batch's timestamps as broker-assigned with the
// given max timestamp, as Kafka does for message.timestamp.type=LogAppendTime,
// and recomputes the CRC.
func SetLogAppendTime(b []byte, ts int64) {
	attrs := binary.BigEndian.Uint16(b[21:]) | AttrLogAppendTime
	binary.BigEndian.PutUint16(b[21:], attrs)
	binary.BigEndian.PutUint64(b[35:], uint64(ts))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
}

// Build makes an uncompressed batch of the given records with a fresh CRC. It
// is used for control batches (transaction markers) and tests.
func Build(h Header, records [][]byte) []byte {
	size := HeaderSize
	for _, r := range records {
		size += len(r)
	}
	b := make([]byte, size)
	h.BatchLength = int32(size - LengthPrefixSize)
	h.Magic = 2
	h.RecordCount = int32(len(records))
	binary.BigEndian.PutUint64(b[0:], uint64(h.BaseOffset))
	binary.BigEndian.PutUint32(b[8:], uint32(h.BatchLength))
	binary.BigEndian.PutUint32(b[12:], uint32(h.PartitionLeaderEpoch))
	b[16] = 2
	binary.BigEndian.PutUint16(b[21:], uint16(h.Attributes))
	binary.BigEndian.PutUint32(b[23:], uint32(h.LastOffsetDelta))
	binary.BigEndian.PutUint64(b[27:], uint64(h.BaseTimestamp))
	binary.BigEndian.PutUint64(b[35:], uint64(h.MaxTimestamp))
	binary.BigEndian.PutUint64(b[43:], uint64(h.ProducerID))
	binary.BigEndian.PutUint16(b[51:], uint16(h.ProducerEpoch))
	binary.BigEndian.PutUint32(b[53:], uint32(h.BaseSequence))
	binary.BigEndian.PutUint32(b[57:], uint32(h.RecordCount))
	p := HeaderSize
	for _, r := range records {
		p += copy(b[p:], r)
	}
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
	return b
}
