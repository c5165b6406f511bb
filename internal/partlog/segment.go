package partlog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/oncelog/oncelog/internal/recordbatch"
	"github.com/oncelog/oncelog/internal/vfs"
)

// File name suffixes inside a partition directory.
const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
)

// Sizes of one on-disk index entry.
const (
	indexEntrySize     = 8  // relative offset uint32, position uint32
	timeIndexEntrySize = 12 // max timestamp int64, relative offset uint32
)

// maxSegmentBytes bounds a segment so that every position fits the uint32 of
// an index entry even after the first, oversized batch of a segment (a batch
// is at most math.MaxInt32 bytes).
const maxSegmentBytes = math.MaxInt32

// Pre-zeroed extents (see the package comment): the active segment's file
// grows by an extent of zeros whenever an append would pass the zeroed end,
// and the next Sync fsyncs it. An extent is the file's size so far, at
// least minExtentBytes and at most maxExtentBytes (and never past
// segment.bytes unless a batch needs it), so the zeros a segment carries
// are bounded by both its data and maxExtentBytes: an idle partition costs
// little disk, a busy one pays one journal commit per 4 MiB instead of one
// per Sync. NB: the Sync after an extension also writes the extent's zeros
// back, about 4 ms for 4 MiB on the virtio disk measured (8 MiB took 7-8
// ms, for no gain at the median), so maxExtentBytes is a tail-latency
// bound: see docs/BENCHMARKS.md, "Pre-zeroed segment extents". The
// extender (extend.go) takes that cost off the owner's path whenever it
// finishes in time.
const (
	minExtentBytes = 64 << 10
	maxExtentBytes = 4 << 20
)

// bulkSyncBytes is where zeros stop paying for themselves. An extent saves
// each Sync inside it its journal commit (about 0.1-0.2 ms at the median on
// the virtio disk measured, more in the tail) and costs one more write of
// every byte the data will take. At 5,000 records/s of 1 KiB (linger 0) a
// partition's Syncs carry 1-16 KiB; a producer at full speed makes them
// 0.5-1 MiB, where the zeros double the disk's write-back (produce
// throughput 15 % lower with them) for a commit amortized over a megabyte.
// So a log whose Syncs have lately averaged more than bulkSyncBytes writes no
// zeros (Log.bulk) until the average falls below half of it: 64 KiB at
// 320 MB/s of write-back is 0.2 ms of disk time, about what a commit costs.
const bulkSyncBytes = 64 << 10

// zeroChunk is what extensions write and what recovery compares with.
// Never written to.
var zeroChunk [1 << 20]byte

// maxRelativeOffset bounds the offsets a segment may hold relative to its
// base, so that they fit the index's uint32 (Kafka rolls at Int.MaxValue).
const maxRelativeOffset = math.MaxInt32

func segmentName(base int64) string { return fmt.Sprintf("%020d", base) }

// indexEntry says: the batch whose base offset is base+rel starts at pos.
// NB: Kafka's index stores a batch's last offset; we store its base offset,
// which makes a lookup land exactly on the batch that starts the scan.
type indexEntry struct {
	rel uint32
	pos uint32
}

// timeEntry says: no batch before the batch at pos (base offset base+rel)
// has a max timestamp above ts, and that batch's max timestamp is ts. pos is
// kept in memory only; on disk an entry is ts and rel as in Kafka.
type timeEntry struct {
	ts  int64
	rel uint32
	pos uint32
}

// segment is one <base>.log file and its two sparse indexes.
//
// Ownership: fields marked (mu) are written by the owner with both Log.wmu
// and Log.mu held and may be read under either; fields marked (owner) are
// touched only with Log.wmu held. f is safe for concurrent ReadAt and
// immutable after creation.
type segment struct {
	base int64
	path string // the .log file's path
	f    vfs.File

	// refs counts holders of f: one for the Log while the segment is in its
	// list, one per in-flight reader. f is closed when it drops to zero, so a
	// reader never sees a file closed under it by retention.
	refs      atomic.Int32
	closeOnce sync.Once
	closeErr  error

	// Invariant: bytes of f below size are whole, verified batches with
	// contiguous offsets from base to next-1, and they change only by
	// Truncate, which bumps gen. size is the segment's logical size: the
	// file may be longer (zeroEnd), so nothing may use the file's size as
	// the end of its data.
	size int64 // (mu)
	// zeroEnd is the file's size (or, while the extender runs, where the
	// zeros it is adding start: extend.go): the active segment's file grows by
	// extents of zeros (minExtentBytes to maxExtentBytes, 4 MiB:
	// one journal commit per extent instead of one per Sync; see the
	// package comment). Invariant: size <= zeroEnd and every byte in
	// [size, zeroEnd) is zero. The owner writes batches at size with
	// WriteAt, so what a crash can leave after the last synced batch is
	// the batches written since, possibly torn or missing, then zeros;
	// recovery keeps the valid batches up to the first invalid or zero
	// header (a header of zeros is no batch). Only the active segment has
	// zeroEnd > size: roll trims the file to size, and recovery trims a
	// closed segment that a crash left untrimmed. A failed write may break
	// the invariant; the storage error is sticky, and recovery treats
	// non-zero bytes after zeros as a torn tail.
	//
	// NB: that the zeros are durable (the fsync after an extension, see
	// grown) is what makes a later Datasync cheap, not what makes it correct: fdatasync also
	// commits any size or allocation change the data needs. So zeros that
	// recovery finds, perhaps only in the page cache after a process
	// crash, are used as they are.
	zeroEnd int64        // (owner)
	next    int64        // (mu) offset after the last batch; base when empty
	gen     uint64       // (mu) bumped whenever bytes below size may change
	index   []indexEntry // (mu) sorted by rel and pos
	times   []timeEntry  // (mu) sorted by ts (strictly) and rel
	// maxTs is the largest MaxTimestamp of the segment's batches and maxTsOff
	// the base offset of the first batch holding it; valid when size > 0.
	maxTs    int64 // (mu)
	maxTsOff int64 // (mu)
	maxTsPos int64 // (mu)
	// rollTs is the time the segment's age is counted from, in Unix millis:
	// see Log.shouldRollLocked.
	rollTs int64 // (mu)

	bytesSince int64 // (owner) batch bytes since the last index entry
	// indexFS is set while the segment is active: its index files are
	// written through it (in batches: indexFlushEntries). NB: they are opened for each write
	// rather than kept open, so a partition costs one file descriptor per
	// segment, not three (10,000 partitions must fit the process's limit).
	indexFS     vfs.FS // (owner)
	idxWritten  int    // (owner) entries of index already in the index file
	timeWritten int    // (owner)
	dirty       bool   // (owner) the log file has writes not yet synced
	// grown means the file was extended since its last fsync, so the next
	// sync must be a full fsync (Sync), not Datasync.
	grown bool // (owner)
}

func (s *segment) indexPath() string { return s.path[:len(s.path)-len(logSuffix)] + indexSuffix }
func (s *segment) timeIndexPath() string {
	return s.path[:len(s.path)-len(logSuffix)] + timeIndexSuffix
}

// acquire takes a reference for a reader; the caller holds Log.mu (read) and
// the segment is in the Log's list, so refs is at least one.
func (s *segment) acquire() { s.refs.Add(1) }

// release drops a reference and closes f with the last one.
func (s *segment) release() {
	n := s.refs.Add(-1)
	if n < 0 {
		panic("partlog: segment reference count below zero")
	}
	if n == 0 {
		s.closeOnce.Do(func() { s.closeErr = s.f.Close() })
	}
}

// reset forgets everything the segment knows about its batches.
func (s *segment) reset() {
	s.size = 0
	s.next = s.base
	s.index = s.index[:0]
	s.times = s.times[:0]
	s.maxTs, s.maxTsOff, s.maxTsPos = math.MinInt64, -1, -1
	s.bytesSince = 0
}

// track accounts for batch h of n bytes written at pos. It is the one place
// that decides index entries, so an index rebuilt at Open is byte-for-byte
// the one written while appending (given the same interval).
func (s *segment) track(h *recordbatch.Header, pos int64, interval int) {
	indexHere := s.size > 0 && s.bytesSince >= int64(interval)
	if s.size == 0 || h.MaxTimestamp > s.maxTs {
		s.maxTs, s.maxTsOff, s.maxTsPos = h.MaxTimestamp, h.BaseOffset, pos
	}
	if indexHere {
		s.index = append(s.index, indexEntry{rel: uint32(h.BaseOffset - s.base), pos: uint32(pos)})
		if len(s.times) == 0 || s.maxTs > s.times[len(s.times)-1].ts {
			s.times = append(s.times, timeEntry{ts: s.maxTs, rel: uint32(s.maxTsOff - s.base), pos: uint32(s.maxTsPos)})
		}
		s.bytesSince = 0
	}
	if s.size == 0 {
		s.rollTs = h.MaxTimestamp
	}
	s.bytesSince += int64(h.Size())
	s.size = pos + int64(h.Size())
	s.next = h.LastOffset() + 1
}

// lookupLocked returns the position of a batch at or before the one holding
// offset, from the sparse index. Caller holds Log.mu.
func (s *segment) lookupLocked(offset int64) int64 {
	rel := offset - s.base
	i := sort.Search(len(s.index), func(i int) bool { return int64(s.index[i].rel) > rel })
	if i == 0 {
		return 0
	}
	return int64(s.index[i-1].pos)
}

// lookupTimeLocked returns the position of a batch at or before the first
// batch whose max timestamp is >= ts. Caller holds Log.mu.
func (s *segment) lookupTimeLocked(ts int64) int64 {
	// The last entry with a timestamp below ts: its batch and every one
	// before it are below ts, so the answer is at or after it.
	i := sort.Search(len(s.times), func(i int) bool { return s.times[i].ts >= ts })
	if i == 0 {
		return 0
	}
	return int64(s.times[i-1].pos)
}

func encodeIndex(entries []indexEntry) []byte {
	b := make([]byte, len(entries)*indexEntrySize)
	for i, e := range entries {
		binary.BigEndian.PutUint32(b[i*indexEntrySize:], e.rel)
		binary.BigEndian.PutUint32(b[i*indexEntrySize+4:], e.pos)
	}
	return b
}

func encodeTimeIndex(entries []timeEntry) []byte {
	b := make([]byte, len(entries)*timeIndexEntrySize)
	for i, e := range entries {
		binary.BigEndian.PutUint64(b[i*timeIndexEntrySize:], uint64(e.ts))
		binary.BigEndian.PutUint32(b[i*timeIndexEntrySize+8:], e.rel)
	}
	return b
}

// indexFlushEntries is how many entries of either index a Sync lets wait
// before it writes them to the index files (1 KiB of offset index, 512 KiB
// of log at the default index.interval.bytes).
//
// The index files are never read but by Open, which rebuilds both indexes
// from the verified log anyway and rewrites a file that differs; Close and
// roll write every entry. Writing them from every Sync cost each acks=all
// round an open, a write and a close per index file while the log grows by
// 4 KiB per round or more: a tenth of the broker's CPU at 5,000 records/s of
// 1 KiB, and two more inodes changed in the journal commit the round waits
// for (docs/BENCHMARKS.md, "Produce latency at linger 0").
const indexFlushEntries = 128

// flushIndexesIfDue is flushIndexes once either index has indexFlushEntries
// entries not yet written.
func (s *segment) flushIndexesIfDue() error {
	if len(s.index)-s.idxWritten < indexFlushEntries && len(s.times)-s.timeWritten < indexFlushEntries {
		return nil
	}
	return s.flushIndexes()
}

// flushIndexes writes index entries not yet in the index files. The indexes
// are never trusted at Open (they are rebuilt from the log and compared), so
// they need no fsync of their own for correctness.
func (s *segment) flushIndexes() error {
	if s.indexFS == nil {
		return nil
	}
	if s.idxWritten < len(s.index) {
		if err := appendFile(s.indexFS, s.indexPath(), encodeIndex(s.index[s.idxWritten:])); err != nil {
			return err
		}
		s.idxWritten = len(s.index)
	}
	if s.timeWritten < len(s.times) {
		if err := appendFile(s.indexFS, s.timeIndexPath(), encodeTimeIndex(s.times[s.timeWritten:])); err != nil {
			return err
		}
		s.timeWritten = len(s.times)
	}
	return nil
}

func appendFile(fs vfs.FS, name string, b []byte) error {
	f, err := fs.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// closeIndexes flushes (and, if sync, fsyncs) the index files of a segment
// that stops being active.
func (s *segment) closeIndexes(sync bool) error {
	if s.indexFS == nil {
		return nil
	}
	err := s.flushIndexes()
	if sync && err == nil {
		for _, p := range []string{s.indexPath(), s.timeIndexPath()} {
			f, oerr := s.indexFS.OpenFile(p, os.O_RDONLY, 0)
			if oerr != nil {
				err = oerr
				break
			}
			err = f.Sync()
			f.Close()
			if err != nil {
				break
			}
		}
	}
	s.indexFS = nil
	return err
}

// seqReader reads a file sequentially through a large buffer: recovery reads
// each segment once, front to back, so one big read per buffer keeps start-up
// at disk (or page cache) speed.
type seqReader struct {
	f    vfs.File
	size int64
	buf  []byte
	off  int64 // file position of buf[0]
	n    int   // valid bytes in buf
}

// window returns the n bytes at pos, reading ahead when they are not
// buffered. The slice is valid until the next call.
func (r *seqReader) window(pos int64, n int) ([]byte, error) {
	if pos >= r.off && pos+int64(n) <= r.off+int64(r.n) {
		return r.buf[pos-r.off : pos-r.off+int64(n)], nil
	}
	if n > len(r.buf) {
		r.buf = make([]byte, n)
	}
	want := min(int64(len(r.buf)), r.size-pos)
	if want < int64(n) {
		return nil, io.ErrUnexpectedEOF
	}
	m, err := r.f.ReadAt(r.buf[:want], pos)
	if m < int(want) {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		r.n = 0
		return nil, err
	}
	r.off, r.n = pos, m
	return r.buf[:n], nil
}

// firstNonZero returns the position of the first non-zero byte at or after
// pos, or r.size if there is none.
func (r *seqReader) firstNonZero(pos int64) (int64, error) {
	for pos < r.size {
		b, err := r.window(pos, int(min(int64(len(zeroChunk)), r.size-pos)))
		if err != nil {
			return 0, err
		}
		if !isZero(b) {
			for i, c := range b {
				if c != 0 {
					return pos + int64(i), nil
				}
			}
		}
		pos += int64(len(b))
	}
	return r.size, nil
}

// isZero reports whether b holds only zeros; len(b) <= len(zeroChunk).
func isZero(b []byte) bool { return bytes.Equal(b, zeroChunk[:len(b)]) }

// invalidBatch describes the first bad byte range of a segment.
type invalidBatch struct {
	pos    int64  // position of the first byte not part of a valid batch
	offset int64  // the offset the batch there should have started with
	reason string // why it is not valid
}

// scanSegment verifies every batch of s from position 0 and rebuilds s's
// in-memory state and indexes. It returns nil, nil if the whole file is
// valid: batches, then possibly zeros up to the end of the file (s.size is
// where the batches end, s.zeroEnd the file's size); the first invalid spot
// otherwise (s then describes the valid prefix), or an I/O error.
func scanSegment(s *segment, r *seqReader, interval int) (*invalidBatch, error) {
	st, err := s.f.Stat()
	if err != nil {
		return nil, err
	}
	r.f, r.size, r.off, r.n = s.f, st.Size(), 0, 0
	s.reset()
	s.zeroEnd = r.size
	bad := func(pos int64, format string, args ...any) (*invalidBatch, error) {
		return &invalidBatch{pos: pos, offset: s.next, reason: fmt.Sprintf(format, args...)}, nil
	}
	var pos int64
	for pos < r.size {
		// A header's worth of zeros is no batch (its length and magic are
		// zero): it starts the pre-zeroed rest of an extent, a clean end if
		// every byte up to the end of the file is zero. Zeros followed by
		// anything else are bytes written past a hole (unsynced, or the
		// invariant on segment.zeroEnd was broken by a failed write):
		// invalid here, a torn tail to the caller if in the last segment.
		hb, err := r.window(pos, int(min(int64(recordbatch.HeaderSize), r.size-pos)))
		if err != nil {
			return nil, err
		}
		if isZero(hb) {
			at, err := r.firstNonZero(pos)
			if err != nil {
				return nil, err
			}
			if at == r.size {
				return nil, nil
			}
			return bad(pos, "%d zero bytes followed by non-zero bytes at position %d", at-pos, at)
		}
		// A tail shorter than a header is what a write torn after the
		// previous batch leaves behind.
		if r.size-pos < recordbatch.HeaderSize {
			return bad(pos, "%d bytes at the end of the file are shorter than a batch header", r.size-pos)
		}
		// hb is the whole header now.
		// ParseHeader checks magic 2 and a length covering the header: the
		// length chain is what finds the next batch, so a wrong length
		// would make every later "batch" garbage.
		h, err := recordbatch.ParseHeader(hb)
		if err != nil {
			return bad(pos, "%v", err)
		}
		n := h.Size()
		// A batch running past the end of the file is a torn write (or a
		// corrupt length).
		if int64(n) > r.size-pos {
			return bad(pos, "batch of %d bytes runs past the end of the file (%d bytes left)", n, r.size-pos)
		}
		b, err := r.window(pos, n)
		if err != nil {
			return nil, err
		}
		// The CRC catches torn or rotten content inside the batch.
		if _, err := recordbatch.Check(b); err != nil {
			return bad(pos, "%v", err)
		}
		// Offsets must be gap-free: each batch starts right after the
		// previous one (the first at the segment's base). A gap or overlap
		// means data from another history, not a torn write.
		if h.BaseOffset != s.next {
			return bad(pos, "batch base offset %d, expected %d", h.BaseOffset, s.next)
		}
		// Offsets increase inside a batch, and must fit the index's
		// relative offsets.
		if h.LastOffsetDelta < 0 {
			return bad(pos, "negative last offset delta %d", h.LastOffsetDelta)
		}
		if h.LastOffset()-s.base > maxRelativeOffset {
			return bad(pos, "last offset %d is too far from the segment's base offset %d", h.LastOffset(), s.base)
		}
		s.track(&h, pos, interval)
		pos += int64(n)
	}
	return nil, nil
}
