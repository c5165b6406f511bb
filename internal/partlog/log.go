// Package partlog is one partition's log on disk, segmented as Kafka does it.
//
// # Files
//
// A partition directory holds, per segment, <20-digit base offset>.log (the
// record batches exactly as appended: already stamped, concatenated), a
// sparse offset index <base>.index (relative base offset uint32, position
// uint32; one entry per IndexIntervalBytes of log) and a sparse time index
// <base>.timeindex (max timestamp so far int64, relative offset uint32). A
// checksummed "log-start-offset" checkpoint holds the log start offset
// raised by DeleteRecords or retention; it is replaced atomically.
//
// # Durability and recovery
//
// Append only writes to the OS; Sync makes everything appended durable.
// A segment is synced in full before the next one is created (roll), so at
// most the last segment can ever hold unsynced data. Recovery (Open) reads
// every segment and verifies every batch (length chain, magic, CRC-32C,
// contiguous offsets). Bad bytes at the tail of the last non-empty segment are
// a torn write: the log is truncated to the last valid batch and empty
// segments after it are removed. Bad bytes anywhere else are corruption and
// Open refuses to start, naming the file, position and offset. The indexes
// are never trusted: Open rebuilds them from the verified log in memory and
// rewrites the files if they differ.
//
// # Pre-zeroed extents
//
// Every acks=all produce and transaction commit waits for a Sync, so Sync
// must be cheap. On ext4 (data=ordered) an fsync after an append that grew
// the file waits for a journal commit (new size, new blocks): about 0.2 ms
// at the median and up to 0.75 ms at p99 on a virtio disk, and it queues
// behind every other writer's metadata. An fdatasync after overwriting
// blocks that are already allocated, zeroed and synced needs no journal
// commit. So the active segment's file grows ahead of its data by extents
// of zeros (minExtentBytes doubling up to maxExtentBytes, 4 MiB: one
// journal commit per extent, while the zeros a segment carries are at most
// the larger of 64 KiB and its data, and at most 4 MiB), and the first Sync
// after an extension is a full fsync; batches are written at the logical
// end with WriteAt, and every other Sync is an fdatasync. The file is then
// longer than its data: segment.size, never the file's size, is where the
// data ends, and the bytes between it and the file's end are zero
// (segment.zeroEnd). Recovery takes a header's worth of zeros where a batch
// should start, with only zeros after it, as the clean end of the segment;
// a torn batch (possibly followed by zeros) is a torn tail as before. Roll
// trims the closed segment's file to its data (ftruncate and fsync) before
// the next segment exists, so only the active segment carries zeros; a
// closed segment found with a zero tail (a crash between the two, or an
// older trim that was not durable) is trimmed by Open. Close keeps the
// zeros for the next run. All of this is Config.Preallocate; without it
// the file grows by each append, every Sync is an fsync, and Open trims
// the active segment's zeros too (a log written with it).
//
// Extents are written ahead of need: once the zeros past the data run low,
// a goroutine writes and syncs the next extent off the owner's path, and
// the owner takes it over when it is done (extend.go). Only the first
// extent of a segment, and one the extender could not finish in time, is
// written inside Append.
//
// Zeros pay only while Syncs are small: a log whose Syncs have lately
// carried more than bulkSyncBytes on average writes none (its appends grow
// the file, each Sync an fsync), until they are small again.
//
// # Errors
//
// An error from a write or fsync is sticky (vfs contract): every later
// Append and Sync returns it, wrapped with ErrStorage, until the Log is
// reopened. The data's state on disk is unknown, so nothing is retried.
//
// # Concurrency
//
// Append, Sync, SetStartOffset, EnforceRetention, Truncate, SetConfig, Close
// and Delete are meant for the partition's owner goroutine; they are
// serialized by wmu, so concurrent calls are safe but wait for each other.
// The extender (extend.go) shares no state with them but its extension,
// which the owner reads only once the extender is done.
// Read, FindTimestamp, MaxTimestamp, Scan, NextOffset, StartOffset and Size
// may be called from any goroutine, concurrently with the owner. Readers hold
// mu only to look up positions, never across file I/O; the owner holds mu
// (write) only to publish what it has already written.
//
// Lock order: wmu, then mu.
package partlog

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oncelog/oncelog/internal/recordbatch"
	"github.com/oncelog/oncelog/internal/vfs"
)

var (
	// ErrOffsetOutOfRange is returned by Read and friends for an offset below
	// the log start offset or above the log end offset (Kafka's
	// OFFSET_OUT_OF_RANGE).
	ErrOffsetOutOfRange = errors.New("partlog: offset out of range")
	// ErrCorrupt means Open found invalid data that is not a torn tail; the
	// message names the file and position. The broker must not start the
	// partition.
	ErrCorrupt = errors.New("partlog: corrupt log")
	// ErrStorage wraps a failed write or fsync (Kafka's KAFKA_STORAGE_ERROR).
	// It is sticky: the Log refuses appends until it is reopened.
	ErrStorage = errors.New("partlog: storage error")
	// ErrInvalidAppend means Append was given something other than one whole,
	// valid batch at NextOffset. Nothing was written; it is not sticky.
	ErrInvalidAppend = errors.New("partlog: invalid append")
	// ErrClosed is returned after Close or Delete.
	ErrClosed = errors.New("partlog: log closed")
)

// Config is the per-topic log configuration, named after Kafka's keys.
type Config struct {
	SegmentBytes       int64         // segment.bytes / log.segment.bytes
	SegmentMs          time.Duration // segment.ms / log.roll.ms
	IndexIntervalBytes int           // index.interval.bytes
	RetentionMs        time.Duration // retention.ms; negative = unlimited
	RetentionBytes     int64         // retention.bytes; negative = unlimited
	// Preallocate (preallocate / log.preallocate) grows the active
	// segment by pre-zeroed extents while its Syncs are small: see the
	// package comment and bulkSyncBytes. NB: unlike Kafka it allocates an
	// extent at a time, not the whole segment. Off in DefaultConfig (Kafka's
	// default); the broker's embedded defaults turn it on
	// (internal/config).
	Preallocate bool
	// Zeros, if not nil, bounds the zeros written for Preallocate across
	// every log that shares it (see ZeroBudget); nil: no bound.
	Zeros *ZeroBudget
}

// DefaultConfig returns Kafka's defaults.
func DefaultConfig() Config {
	return Config{
		SegmentBytes:       1 << 30,
		SegmentMs:          7 * 24 * time.Hour,
		IndexIntervalBytes: 4096,
		RetentionMs:        7 * 24 * time.Hour,
		RetentionBytes:     -1,
	}
}

// normalized replaces values the log cannot work with: non-positive segment
// size or age by the default, a segment size above what the uint32 index
// positions can address by that bound, a negative index interval by the
// default (0 means an index entry per batch).
func (c Config) normalized() Config {
	d := DefaultConfig()
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = d.SegmentBytes
	}
	c.SegmentBytes = min(c.SegmentBytes, maxSegmentBytes)
	if c.SegmentMs <= 0 {
		c.SegmentMs = d.SegmentMs
	}
	if c.IndexIntervalBytes < 0 {
		c.IndexIntervalBytes = d.IndexIntervalBytes
	}
	return c
}

// Recovery says what Open repaired, for the broker to log.
type Recovery struct {
	// TornFile is the segment whose invalid tail was cut ("" if none), at
	// TornPosition, dropping TornBytes bytes, because of TornReason.
	TornFile     string
	TornPosition int64
	TornBytes    int64
	TornReason   string
	// RemovedFiles are leftovers deleted: segments below the start offset,
	// empty segments after a torn tail, orphan index and temp files.
	RemovedFiles []string
	// TrimmedFiles are segments whose pre-zeroed tail was cut: closed ones
	// (a crash between roll and its trim), and the active one when Open
	// is called without Preallocate.
	TrimmedFiles []string
	// RebuiltIndexes are index files rewritten to match the log.
	RebuiltIndexes []string
}

// Log is one partition's log.
type Log struct {
	fs       vfs.FS
	dir      string
	recovery Recovery // set by Open, then read-only

	// wmu serializes the owner's operations; it is held across their I/O.
	wmu sync.Mutex
	// The fields below are guarded by wmu.
	err      error // sticky storage error; once set never cleared
	dirDirty bool  // directory entries changed since the last SyncDir
	// minExtent and maxExtent bound a zero extension of the active
	// segment: minExtentBytes and maxExtentBytes, smaller in tests.
	minExtent, maxExtent int64
	// ahead lets Append extend the active segment ahead of need in the
	// background (extend.go), aheadChunk bytes at a time; off in tests of
	// the extension in place.
	ahead      bool
	aheadChunk int64
	// ext is the extender's run, while it runs or until the owner has
	// adopted what it did; nil otherwise.
	ext *extension
	// unsynced is what was appended since the last Sync, syncAvg the moving
	// average (weight 1/8) of that at each Sync that had any, and bulk says
	// it is past bulkAt: no zeros are written while it is (bulkSyncBytes).
	unsynced, syncAvg, bulkAt int64
	bulk                      bool

	// mu guards the log's shape as readers see it. Writers hold wmu and mu;
	// readers hold mu (read), or wmu alone for the owner.
	mu struct {
		sync.RWMutex
		// segs is sorted by base offset; segs[i].next == segs[i+1].base;
		// never empty while open. The last one is the active segment.
		segs   []*segment
		start  int64 // log start offset; segs[0].base <= start <= next
		next   int64 // log end offset == last segment's next
		cfg    Config
		closed bool
	}
}

// Open opens (creating if needed) the log in dir and recovers it: see the
// package comment. now is the wall clock, used only to age the active
// segment for SegmentMs.
func Open(fsys vfs.FS, dir string, cfg Config, now time.Time) (*Log, error) {
	dir = path.Clean(dir)
	l := &Log{fs: fsys, dir: dir, minExtent: minExtentBytes, maxExtent: maxExtentBytes, ahead: true, aheadChunk: aheadChunkBytes, bulkAt: bulkSyncBytes}
	l.mu.cfg = cfg.normalized()
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("partlog: create %s: %w", dir, err)
	}
	// The partition directory's own entry must be durable before anything
	// in it can be.
	if err := fsys.SyncDir(path.Dir(dir)); err != nil {
		return nil, fmt.Errorf("partlog: sync parent of %s: %w", dir, err)
	}
	if err := l.recover(now); err != nil {
		for _, s := range l.mu.segs {
			s.closeIndexes(false)
			s.release()
		}
		return nil, err
	}
	return l, nil
}

func (l *Log) path(name string) string { return path.Join(l.dir, name) }

// recover is Open's work: find segments, verify them, repair a torn tail.
func (l *Log) recover(now time.Time) error {
	names, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("partlog: list %s: %w", l.dir, err)
	}
	var bases []int64
	indexFiles := map[string]bool{}
	for _, name := range names {
		stem, suffix, found := strings.Cut(name, ".")
		base, perr := strconv.ParseInt(stem, 10, 64)
		isSeg := found && len(stem) == 20 && perr == nil && base >= 0
		switch {
		case name == checkpointTmpName:
			// A checkpoint write that did not reach its rename.
			if err := l.fs.Remove(l.path(name)); err != nil {
				return fmt.Errorf("partlog: remove %s: %w", l.path(name), err)
			}
			l.recovery.RemovedFiles = append(l.recovery.RemovedFiles, l.path(name))
			l.dirDirty = true
		case isSeg && "."+suffix == logSuffix:
			bases = append(bases, base)
		case isSeg && ("."+suffix == indexSuffix || "."+suffix == timeIndexSuffix):
			indexFiles[name] = true
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })

	start, hasStart, err := readCheckpoint(l.fs, l.dir)
	if err != nil {
		return err
	}

	// Segments wholly below the checkpointed start offset are left over
	// from a retention or DeleteRecords interrupted by a crash (or whose
	// removal was not yet durable): delete them without reading them. The
	// next segment's base bounds a segment's offsets; the last is kept.
	for len(bases) > 1 && hasStart && bases[1] <= start {
		if err := l.removeSegmentFiles(bases[0]); err != nil {
			return err
		}
		l.recovery.RemovedFiles = append(l.recovery.RemovedFiles, l.path(segmentName(bases[0])+logSuffix))
		bases = bases[1:]
	}

	bufp := recoveryBuffers.Get().(*[]byte)
	defer recoveryBuffers.Put(bufp)
	r := &seqReader{buf: *bufp}
	interval := l.mu.cfg.IndexIntervalBytes
	for i := 0; i < len(bases); i++ {
		s, err := l.openSegment(bases[i], false)
		if err != nil {
			return err
		}
		l.mu.segs = append(l.mu.segs, s)
		bad, err := scanSegment(s, r, interval)
		if err != nil {
			return fmt.Errorf("partlog: read %s: %w", s.path, err)
		}
		if bad != nil {
			// A torn tail is only possible in the last segment holding
			// data: every segment is synced before its successor is
			// created, and later empty segments carry nothing acknowledged.
			rest, err := l.allEmpty(bases[i+1:])
			if err != nil {
				return err
			}
			if !rest {
				return corruptError(s.path, bad)
			}
			if err := l.truncateTorn(s, bad); err != nil {
				return err
			}
			for _, b := range bases[i+1:] {
				if err := l.removeSegmentFiles(b); err != nil {
					return err
				}
				l.recovery.RemovedFiles = append(l.recovery.RemovedFiles, l.path(segmentName(b)+logSuffix))
			}
			bases = bases[:i+1]
		}
		if s.zeroEnd > s.size && (i < len(bases)-1 || !l.mu.cfg.Preallocate) {
			// A closed segment still carrying its zeros: roll trims before
			// creating the next segment, so the trim was not durable. Or
			// the active one, written with Preallocate and opened without.
			if err := trimSegment(s); err != nil {
				return err
			}
			l.recovery.TrimmedFiles = append(l.recovery.TrimmedFiles, s.path)
		}
		// Segments must chain: a gap or overlap between files means a
		// lost or foreign segment, which truncation cannot repair.
		if i > 0 {
			prev := l.mu.segs[i-1]
			if s.base != prev.next {
				return fmt.Errorf("%w: segment %s starts at offset %d but %s ends before offset %d; refusing to start",
					ErrCorrupt, s.path, s.base, prev.path, prev.next)
			}
		}
	}

	if len(l.mu.segs) == 0 {
		// A new log, or one whose every segment was deleted.
		s, err := l.createSegment(start, now.UnixMilli())
		if err != nil {
			return err
		}
		l.mu.segs = append(l.mu.segs, s)
	}
	last := l.mu.segs[len(l.mu.segs)-1]
	if hasStart && start > last.next {
		// The checkpoint is ahead of the recovered log end: records up to
		// it were deleted (DeleteRecords up to the end) and later appends
		// were lost with a torn tail. As Kafka does, restart the log empty
		// at the start offset so that offsets never go backwards.
		s, err := l.createSegment(start, now.UnixMilli())
		if err != nil {
			return err
		}
		old := l.mu.segs
		l.mu.segs = []*segment{s}
		for _, o := range old {
			o.closeIndexes(false)
			o.release()
			if err := l.removeSegmentFiles(o.base); err != nil {
				return err
			}
			l.recovery.RemovedFiles = append(l.recovery.RemovedFiles, l.path(segmentName(o.base)+logSuffix))
		}
		last = s
	}
	if !hasStart || start < l.mu.segs[0].base {
		start = l.mu.segs[0].base
	}
	l.mu.start = start
	l.mu.next = last.next
	if last.size > 0 {
		// The active segment's age: its first batch's timestamp is the best
		// surviving record of when it was started.
		last.rollTs = min(last.rollTs, now.UnixMilli())
	} else {
		last.rollTs = now.UnixMilli()
	}

	// Rebuild index files that are missing or differ from the verified log.
	for i, s := range l.mu.segs {
		delete(indexFiles, segmentName(s.base)+indexSuffix)
		delete(indexFiles, segmentName(s.base)+timeIndexSuffix)
		if err := l.syncIndexFiles(s, i == len(l.mu.segs)-1); err != nil {
			return err
		}
	}
	// Index files without a log (a segment deletion interrupted between
	// its files) are removed.
	for name := range indexFiles {
		if err := l.fs.Remove(l.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("partlog: remove %s: %w", l.path(name), err)
		}
		l.recovery.RemovedFiles = append(l.recovery.RemovedFiles, l.path(name))
		l.dirDirty = true
	}
	if l.dirDirty {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return fmt.Errorf("partlog: sync %s: %w", l.dir, err)
		}
		l.dirDirty = false
	}
	return nil
}

func corruptError(file string, bad *invalidBatch) error {
	return fmt.Errorf("%w: corrupt batch in %s at position %d (offset %d): %s; refusing to start",
		ErrCorrupt, file, bad.pos, bad.offset, bad.reason)
}

// allEmpty reports whether no segment with the given bases holds a byte of
// data: each log file is empty or all zeros (an extent whose first batch
// was lost).
func (l *Log) allEmpty(bases []int64) (bool, error) {
	r := &seqReader{buf: make([]byte, len(zeroChunk))}
	for _, b := range bases {
		p := l.path(segmentName(b) + logSuffix)
		f, err := l.fs.OpenFile(p, os.O_RDONLY, 0)
		if err != nil {
			return false, fmt.Errorf("partlog: open %s: %w", p, err)
		}
		st, err := f.Stat()
		if err == nil {
			r.f, r.size, r.off, r.n = f, st.Size(), 0, 0
			var at int64
			at, err = r.firstNonZero(0)
			if err == nil && at < st.Size() {
				f.Close()
				return false, nil
			}
		}
		f.Close()
		if err != nil {
			return false, fmt.Errorf("partlog: read %s: %w", p, err)
		}
	}
	return true, nil
}

// trimSegment cuts s's file to its data, durably.
func trimSegment(s *segment) error {
	if err := s.f.Truncate(s.size); err != nil {
		return fmt.Errorf("partlog: trim %s to %d: %w", s.path, s.size, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("partlog: sync %s: %w", s.path, err)
	}
	s.zeroEnd = s.size
	return nil
}

// truncateTorn cuts s at the end of its last valid batch, durably.
func (l *Log) truncateTorn(s *segment, bad *invalidBatch) error {
	if st, err := s.f.Stat(); err == nil {
		l.recovery.TornBytes = st.Size() - bad.pos
	}
	l.recovery.TornFile, l.recovery.TornPosition, l.recovery.TornReason = s.path, bad.pos, bad.reason
	if err := s.f.Truncate(bad.pos); err != nil {
		return fmt.Errorf("partlog: truncate torn tail of %s at %d: %w", s.path, bad.pos, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("partlog: sync %s: %w", s.path, err)
	}
	s.zeroEnd = bad.pos
	return nil
}

// recoveryBuffers holds the read-ahead buffers of recovery scans: one
// per Open running at a time rather than one per partition, which with
// thousands of partitions turned start-up into clearing and collecting
// gigabytes of buffers.
var recoveryBuffers = sync.Pool{New: func() any {
	b := make([]byte, 4<<20)
	return &b
}}

// openSegment opens an existing segment's log file. NB: not O_APPEND:
// batches are written with WriteAt at the logical end, inside the zeros.
func (l *Log) openSegment(base int64, create bool) (*segment, error) {
	s := &segment{base: base, path: l.path(segmentName(base) + logSuffix)}
	flag := os.O_RDWR
	if create {
		flag |= os.O_CREATE | os.O_TRUNC
	}
	f, err := l.fs.OpenFile(s.path, flag, 0o644)
	if err != nil {
		return nil, fmt.Errorf("partlog: open %s: %w", s.path, err)
	}
	s.f = f
	s.refs.Store(1)
	s.reset()
	return s, nil
}

// createSegment creates an empty active segment at base with its index
// files, and makes the new entries durable. rollTs is the segment's birth
// time in Unix millis.
func (l *Log) createSegment(base int64, rollTs int64) (*segment, error) {
	s, err := l.openSegment(base, true)
	if err != nil {
		return nil, err
	}
	s.rollTs = rollTs
	if err := l.openIndexFiles(s, true); err != nil {
		s.release()
		return nil, err
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		s.closeIndexes(false)
		s.release()
		return nil, fmt.Errorf("partlog: sync %s: %w", l.dir, err)
	}
	return s, nil
}

func (l *Log) openIndexFiles(s *segment, truncate bool) error {
	if truncate {
		for _, p := range []string{s.indexPath(), s.timeIndexPath()} {
			if err := vfs.WriteFile(l.fs, p, nil); err != nil {
				return fmt.Errorf("partlog: create %s: %w", p, err)
			}
		}
	}
	s.indexFS = l.fs
	return nil
}

// syncIndexFiles makes s's index files hold exactly its in-memory indexes,
// rewriting them if not; for the active segment it leaves them open.
func (l *Log) syncIndexFiles(s *segment, active bool) error {
	for _, ix := range []struct {
		path string
		want []byte
	}{
		{s.indexPath(), encodeIndex(s.index)},
		{s.timeIndexPath(), encodeTimeIndex(s.times)},
	} {
		same, err := fileEquals(l.fs, ix.path, ix.want)
		if err != nil {
			return err
		}
		if same {
			continue
		}
		if err := writeFile(l.fs, ix.path, ix.want); err != nil {
			return err
		}
		l.recovery.RebuiltIndexes = append(l.recovery.RebuiltIndexes, ix.path)
		l.dirDirty = true
	}
	if !active {
		return nil
	}
	if err := l.openIndexFiles(s, false); err != nil {
		return err
	}
	s.idxWritten, s.timeWritten = len(s.index), len(s.times)
	return nil
}

func fileEquals(fsys vfs.FS, p string, want []byte) (bool, error) {
	f, err := fsys.OpenFile(p, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("partlog: open %s: %w", p, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("partlog: stat %s: %w", p, err)
	}
	if st.Size() != int64(len(want)) {
		return false, nil
	}
	got := make([]byte, len(want))
	if _, err := f.ReadAt(got, 0); err != nil && !(err == io.EOF && len(want) == 0) {
		return false, fmt.Errorf("partlog: read %s: %w", p, err)
	}
	return string(got) == string(want), nil
}

func writeFile(fsys vfs.FS, p string, b []byte) error {
	if err := vfs.WriteFile(fsys, p, b); err != nil {
		return fmt.Errorf("partlog: write %s: %w", p, err)
	}
	return nil
}

// removeSegmentFiles deletes a segment's files, the log first so that a
// crash in between leaves only index files, which Open removes.
func (l *Log) removeSegmentFiles(base int64) error {
	for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		p := l.path(segmentName(base) + suffix)
		err := l.fs.Remove(p)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("partlog: remove %s: %w", p, err)
		}
	}
	l.dirDirty = true
	return nil
}

// fail records err as the sticky storage error and returns it. Caller holds
// wmu.
func (l *Log) fail(err error) error {
	l.err = fmt.Errorf("%w: %w", ErrStorage, err)
	return l.err
}

// checkWritable returns the error that stops the owner. Caller holds wmu.
func (l *Log) checkWritable() error {
	if l.err != nil {
		return l.err
	}
	if l.mu.closed {
		return ErrClosed
	}
	return nil
}

func (l *Log) active() *segment { return l.mu.segs[len(l.mu.segs)-1] }

// Append writes batch, one whole batch already stamped with base offset
// NextOffset(), to the OS (not durably: see Sync). It rolls to a new segment
// first when the active one is full (SegmentBytes), old (SegmentMs) or its
// relative offsets would overflow. A storage error is sticky.
func (l *Log) Append(batch []byte, now time.Time) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.checkWritable(); err != nil {
		return err
	}
	// Cheap pair assertion with recovery: what we write must be what Open
	// accepts, or a later restart would refuse this log.
	h, err := recordbatch.Check(batch)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidAppend, err)
	}
	if h.LastOffsetDelta < 0 {
		return fmt.Errorf("%w: negative last offset delta %d", ErrInvalidAppend, h.LastOffsetDelta)
	}
	if h.BaseOffset != l.mu.next {
		return fmt.Errorf("%w: base offset %d, log end offset is %d", ErrInvalidAppend, h.BaseOffset, l.mu.next)
	}
	s := l.active()
	if l.shouldRoll(s, &h, now) {
		if s, err = l.roll(now); err != nil {
			return err
		}
	}
	pos := s.size
	end := pos + int64(len(batch))
	if err := l.adoptExtension(false); err != nil {
		return err
	}
	if end > s.zeroEnd && l.ext != nil {
		// The extender is behind: take what it has written.
		if err := l.adoptExtension(true); err != nil {
			return err
		}
	}
	if end > s.zeroEnd && l.zeroing() && l.mu.cfg.Zeros.take(l.extentEnd(s, end)-s.zeroEnd, now) {
		if err := l.extendLocked(s, end); err != nil {
			return err
		}
	}
	if _, err := s.f.WriteAt(batch, pos); err != nil {
		return l.fail(fmt.Errorf("append to %s at position %d: %w", s.path, pos, err))
	}
	s.dirty = true
	l.unsynced += int64(len(batch))
	if end > s.zeroEnd {
		// Without zeros ahead the write itself grows the file.
		s.zeroEnd, s.grown = end, true
	}
	first := s.size == 0
	l.mu.Lock()
	s.track(&h, pos, l.mu.cfg.IndexIntervalBytes)
	if first {
		s.rollTs = now.UnixMilli()
	}
	l.mu.next = s.next
	l.mu.Unlock()
	l.maybeExtendAhead(s, now)
	return nil
}

// extendLocked grows the active segment's file with zeros to at least need
// bytes, by an extent (see minExtentBytes). The next sync is then a full
// fsync: the one journal commit that the syncs of the extent's appends
// share. NB: Append itself never waits for an fsync (acks=1 answers before
// the sync; internal/partition's TestAckWrittenAnswersBeforeSyncAndHidesData).
// Caller holds wmu.
func (l *Log) extendLocked(s *segment, need int64) error {
	if s.zeroEnd < s.size || need <= s.zeroEnd {
		panic(fmt.Sprintf("partlog: extend %s to %d: size %d, zeroed end %d", s.path, need, s.size, s.zeroEnd))
	}
	if l.ext != nil {
		panic(fmt.Sprintf("partlog: extend %s in place while the extender runs", s.path))
	}
	end := l.extentEnd(s, need)
	for at := s.zeroEnd; at < end; {
		n := int(min(int64(len(zeroChunk)), end-at))
		if _, err := s.f.WriteAt(zeroChunk[:n], at); err != nil {
			return l.fail(fmt.Errorf("extend %s at position %d: %w", s.path, at, err))
		}
		at += int64(n)
	}
	s.zeroEnd = end
	s.dirty, s.grown = true, true
	return nil
}

// extentEnd is where an extension in place of the active segment s, which
// needs need bytes, makes its file end. Caller holds wmu.
func (l *Log) extentEnd(s *segment, need int64) int64 {
	return max(need, min(s.zeroEnd+l.extentAfter(s.zeroEnd), l.mu.cfg.SegmentBytes))
}

// shouldRoll reports whether batch h must go to a new segment. A segment
// always takes at least one batch, however large. Caller holds wmu.
func (l *Log) shouldRoll(s *segment, h *recordbatch.Header, now time.Time) bool {
	if s.size == 0 {
		return false
	}
	cfg := l.mu.cfg
	// NB: a segment's age counts from the wall clock of its first append
	// (after a restart: its first batch's timestamp, capped at now), not
	// from producer timestamps, which may lie far in the past and would
	// roll on every batch.
	return s.size+int64(h.Size()) > cfg.SegmentBytes ||
		now.UnixMilli()-s.rollTs >= cfg.SegmentMs.Milliseconds() ||
		h.LastOffset()-s.base > maxRelativeOffset
}

// roll makes the active segment durable and creates a new one at the log end.
// Caller holds wmu.
func (l *Log) roll(now time.Time) (*segment, error) {
	old := l.active()
	if err := l.adoptExtension(true); err != nil {
		return nil, err
	}
	// The old segment is synced in full before its successor exists: this
	// is what lets recovery treat invalid data in any segment but the last
	// as corruption rather than a torn write.
	// Its pre-zeroed tail is trimmed first, and one fsync makes both the
	// data and the trim durable, so closed segments are exact.
	if old.zeroEnd > old.size {
		if err := old.f.Truncate(old.size); err != nil {
			return nil, l.fail(fmt.Errorf("trim %s to %d: %w", old.path, old.size, err))
		}
		old.zeroEnd = old.size
		old.dirty = true
	}
	if old.dirty {
		if err := old.f.Sync(); err != nil {
			return nil, l.fail(fmt.Errorf("sync %s: %w", old.path, err))
		}
		old.dirty, old.grown = false, false
	}
	if err := old.closeIndexes(true); err != nil {
		return nil, l.fail(fmt.Errorf("close indexes of %s: %w", old.path, err))
	}
	s, err := l.createSegment(l.mu.next, now.UnixMilli())
	if err != nil {
		return nil, l.fail(fmt.Errorf("roll: %w", err))
	}
	l.mu.Lock()
	l.mu.segs = append(l.mu.segs, s)
	l.mu.Unlock()
	return s, nil
}

// Sync makes every appended batch durable: the active segment's data and any
// directory entries created since the last Sync. A failure is sticky.
func (l *Log) Sync() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.checkWritable(); err != nil {
		return err
	}
	return l.syncLocked()
}

// syncLocked is Sync with wmu held.
func (l *Log) syncLocked() error {
	s := l.active()
	l.noteSync()
	if err := l.adoptExtension(false); err != nil {
		return err
	}
	if err := s.flushIndexesIfDue(); err != nil {
		return l.fail(fmt.Errorf("write indexes of %s: %w", s.path, err))
	}
	for _, s := range l.mu.segs {
		if !s.dirty {
			continue
		}
		// Writes inside an extent already synced need only fdatasync, and
		// no journal commit; an extension needs a full fsync, once.
		sync := s.f.Datasync
		if s.grown {
			sync = s.f.Sync
		}
		if err := sync(); err != nil {
			return l.fail(fmt.Errorf("sync %s: %w", s.path, err))
		}
		s.dirty, s.grown = false, false
	}
	if l.dirDirty {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return l.fail(fmt.Errorf("sync %s: %w", l.dir, err))
		}
		l.dirDirty = false
	}
	return nil
}

// noteSync folds the bytes appended since the last Sync into the average
// that decides whether zeros are written ahead (bulkSyncBytes). Caller holds
// wmu.
func (l *Log) noteSync() {
	if l.unsynced == 0 {
		return
	}
	l.syncAvg += (l.unsynced - l.syncAvg) / 8
	l.unsynced = 0
	switch {
	case !l.bulk && l.syncAvg > l.bulkAt:
		l.bulk = true
	case l.bulk && l.syncAvg < l.bulkAt/2:
		l.bulk = false
	}
}

// zeroing says whether the active segment grows by extents of zeros:
// Preallocate, and Syncs small enough for them to pay (bulkSyncBytes).
// Caller holds wmu.
func (l *Log) zeroing() bool { return l.mu.cfg.Preallocate && !l.bulk }

// NextOffset is the log end offset: the offset the next batch gets.
func (l *Log) NextOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.mu.next
}

// StartOffset is the log start offset, the first offset Read accepts.
func (l *Log) StartOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.mu.start
}

// Size is the total size of the segment files' batches in bytes.
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n int64
	for _, s := range l.mu.segs {
		n += s.size
	}
	return n
}

// SetConfig changes the configuration; it applies from the next append or
// retention pass. A changed IndexIntervalBytes applies to new entries (the
// index files are rebuilt to match at the next Open).
func (l *Log) SetConfig(cfg Config) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	l.mu.cfg = cfg.normalized()
	l.mu.Unlock()
}

// Config returns the configuration in effect.
func (l *Log) Config() Config {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.mu.cfg
}

// Recovery reports what Open repaired.
func (l *Log) Recovery() Recovery { return l.recovery }

// Dir is the partition directory.
func (l *Log) Dir() string { return l.dir }

// Close syncs (unless a storage error stopped the log) and closes the log.
// In-flight reads finish; later calls fail with ErrClosed.
func (l *Log) Close() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	return l.closeLocked()
}

func (l *Log) closeLocked() error {
	if l.mu.closed {
		return ErrClosed
	}
	var first error
	l.adoptExtension(true) // an error is l.err, checked next
	if l.err == nil {
		first = l.syncLocked()
	}
	l.mu.Lock()
	l.mu.closed = true
	segs := l.mu.segs
	l.mu.segs = nil
	l.mu.Unlock()
	for _, s := range segs {
		if err := s.closeIndexes(first == nil); err != nil && first == nil {
			first = fmt.Errorf("partlog: close indexes of %s: %w", s.path, err)
		}
		s.release()
	}
	return first
}

// Delete closes the log and removes its directory (topic deletion).
func (l *Log) Delete() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.closeLocked(); err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrStorage) {
		return err
	}
	if err := l.fs.RemoveAll(l.dir); err != nil {
		return fmt.Errorf("partlog: remove %s: %w", l.dir, err)
	}
	if err := l.fs.SyncDir(path.Dir(l.dir)); err != nil {
		return fmt.Errorf("partlog: sync parent of %s: %w", l.dir, err)
	}
	return nil
}

// view is a reader's snapshot of a segment: the bytes below size, as of gen.
type view struct {
	s    *segment
	size int64
	gen  uint64
}

// errRetry means the segment changed (Truncate) under a reader.
var errRetry = errors.New("partlog: segment changed during read")

// snapshotLocked acquires views of segs. Caller holds mu (read).
func snapshotLocked(segs []*segment) []view {
	vs := make([]view, len(segs))
	for i, s := range segs {
		s.acquire()
		vs[i] = view{s: s, size: s.size, gen: s.gen}
	}
	return vs
}

func (l *Log) releaseViews(vs []view) {
	for _, v := range vs {
		v.s.release()
	}
}

// validViews reports whether no viewed segment was truncated since the
// snapshot, so the bytes read from them are the verified ones.
func (l *Log) validViews(vs []view) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, v := range vs {
		if v.s.gen != v.gen {
			return false
		}
	}
	return true
}

// segmentIndexLocked is the index in segs of the segment holding offset,
// which must be within [start, next]. Caller holds mu.
func (l *Log) segmentIndexLocked(offset int64) int {
	segs := l.mu.segs
	i := sort.Search(len(segs), func(i int) bool { return segs[i].base > offset }) - 1
	if i < 0 {
		panic(fmt.Sprintf("partlog: offset %d below first segment %d", offset, segs[0].base))
	}
	return i
}

// walk reads batch headers of v from pos and returns the position and
// header of the first batch for which stop returns true; found is false at
// the end of the view.
func walk(v view, pos int64, stop func(h *recordbatch.Header) bool) (at int64, h recordbatch.Header, found bool, err error) {
	const chunk = 8 << 10
	var buf [chunk]byte
	var bufOff int64 = -1
	var bufN int
	for pos < v.size {
		if bufOff < 0 || pos < bufOff || pos+recordbatch.HeaderSize > bufOff+int64(bufN) {
			n := int(min(int64(chunk), v.size-pos))
			if n < recordbatch.HeaderSize {
				return 0, h, false, fmt.Errorf("partlog: %s: %d bytes at position %d, short of a batch header", v.s.path, n, pos)
			}
			if err := readFull(v.s.f, buf[:n], pos); err != nil {
				return 0, h, false, err
			}
			bufOff, bufN = pos, n
		}
		h, err = recordbatch.ParseHeader(buf[pos-bufOff:])
		if err != nil || pos+int64(h.Size()) > v.size {
			// Verified bytes below size cannot be invalid, unless
			// Truncate rewrote them: let the caller check.
			return 0, h, false, errRetry
		}
		if stop(&h) {
			return pos, h, true, nil
		}
		pos += int64(h.Size())
	}
	return pos, h, false, nil
}

// Read returns whole batches starting with the one holding offset (which may
// lie inside it), in offset order, possibly from several segments. It stops
// before the first batch whose base offset is >= maxOffset and before the
// total would exceed maxBytes, but returns at least the first batch if its
// base is below maxOffset, however large (KIP-74). An offset equal to
// NextOffset, or at or above maxOffset, gives no bytes; one below
// StartOffset or above NextOffset gives ErrOffsetOutOfRange. The bytes are
// the caller's. Data appended but not yet synced is returned: bounding reads
// by the high watermark is the caller's job (maxOffset).
func (l *Log) Read(offset int64, maxBytes int, maxOffset int64) ([]byte, error) {
	return l.ReadAppend(nil, offset, maxBytes, maxOffset)
}

// ReadAppend is Read that appends the batches to dst, reading them from the
// file straight into it, and returns the extended slice (on error, dst
// unchanged); maxBytes bounds what is appended, not len(dst). A caller that
// reuses dst across reads allocates nothing once it is large enough.
func (l *Log) ReadAppend(dst []byte, offset int64, maxBytes int, maxOffset int64) ([]byte, error) {
	n := len(dst)
	for attempt := 0; ; attempt++ {
		b, err := l.readOnce(dst, offset, maxBytes, maxOffset)
		if errors.Is(err, errRetry) && attempt < 10 {
			// Keep what readOnce grew, drop what it read.
			if cap(b) > cap(dst) {
				dst = b[:n]
			}
			continue
		}
		if err != nil {
			return dst[:n], err
		}
		return b, nil
	}
}

func (l *Log) readOnce(dst []byte, offset int64, maxBytes int, maxOffset int64) ([]byte, error) {
	l.mu.RLock()
	if l.mu.closed {
		l.mu.RUnlock()
		return nil, ErrClosed
	}
	if offset < l.mu.start || offset > l.mu.next {
		err := fmt.Errorf("%w: offset %d, log holds [%d, %d)", ErrOffsetOutOfRange, offset, l.mu.start, l.mu.next)
		l.mu.RUnlock()
		return nil, err
	}
	if offset == l.mu.next || offset >= maxOffset {
		l.mu.RUnlock()
		return dst, nil
	}
	i := l.segmentIndexLocked(offset)
	pos := l.mu.segs[i].lookupLocked(offset)
	vs := snapshotLocked(l.mu.segs[i:])
	l.mu.RUnlock()
	defer l.releaseViews(vs)

	pos, _, found, err := walk(vs[0], pos, func(h *recordbatch.Header) bool { return h.LastOffset() >= offset })
	if err != nil {
		return nil, err
	}
	if !found {
		// offset < next, so some batch holds it; not finding it means the
		// segment changed under us.
		return nil, errRetry
	}
	out := dst
	// Budget and "first batch" are counted from len(dst): what the caller
	// had there is not ours.
	budget := len(dst) + max(maxBytes, 0)
	for _, v := range vs {
		done, err := readView(v, pos, &out, len(dst), budget, maxOffset)
		if err != nil {
			return out, err
		}
		if done {
			break
		}
		pos = 0
	}
	if !l.validViews(vs) {
		return out, errRetry
	}
	return out, nil
}

// readView appends to *out the whole batches of v from pos on, until
// len(*out) would pass budget (but at least one batch when nothing was
// appended past base yet) and with base offsets below maxOffset. done is
// true if it stopped before the end of v.
func readView(v view, pos int64, out *[]byte, base, budget int, maxOffset int64) (done bool, err error) {
	for pos < v.size {
		first := len(*out) == base
		want := min(int64(budget-len(*out)), v.size-pos)
		if first {
			// Read at least a header, to learn the size of the batch that
			// is returned whatever its size.
			want = max(want, min(recordbatch.HeaderSize, v.size-pos))
		}
		if want < recordbatch.HeaderSize {
			return true, nil
		}
		start := len(*out)
		*out = slices.Grow(*out, int(want))[:start+int(want)]
		buf := (*out)[start:]
		if err := readFull(v.s.f, buf, pos); err != nil {
			return true, err
		}
		keep := 0
		for keep+recordbatch.HeaderSize <= len(buf) {
			h, err := recordbatch.ParseHeader(buf[keep:])
			if err != nil {
				return true, errRetry // verified bytes changed: Truncate
			}
			if h.BaseOffset >= maxOffset {
				*out = (*out)[:start+keep]
				return true, nil
			}
			n := h.Size()
			if keep+n <= len(buf) {
				keep += n
				continue
			}
			if first && keep == 0 {
				// KIP-74: the first batch is returned even if it is
				// larger than maxBytes.
				if pos+int64(n) > v.size {
					return true, errRetry
				}
				*out = slices.Grow(*out, n-len(buf))[:start+n]
				if err := readFull(v.s.f, (*out)[start+len(buf):], pos+int64(len(buf))); err != nil {
					return true, err
				}
				return true, nil
			}
			break
		}
		*out = (*out)[:start+keep]
		pos += int64(keep)
		if keep < len(buf) {
			return true, nil // the budget is spent
		}
	}
	return false, nil
}

// readFull reads len(b) bytes at pos; a short read means the file shrank
// under the reader (Truncate), which the caller retries.
func readFull(f vfs.File, b []byte, pos int64) error {
	m, err := f.ReadAt(b, pos)
	if m < len(b) {
		if err == nil || err == io.EOF {
			err = errRetry
		}
		return err
	}
	return nil
}

// FindTimestamp returns the first batch (at or after the log start offset)
// whose MaxTimestamp is >= ts, found through the time index; ok is false if
// there is none. The caller picks the exact record inside it.
func (l *Log) FindTimestamp(ts int64) (batch []byte, ok bool, err error) {
	for attempt := 0; ; attempt++ {
		batch, ok, err = l.findTimestampOnce(ts)
		if errors.Is(err, errRetry) && attempt < 10 {
			continue
		}
		return batch, ok, err
	}
}

func (l *Log) findTimestampOnce(ts int64) ([]byte, bool, error) {
	l.mu.RLock()
	if l.mu.closed {
		l.mu.RUnlock()
		return nil, false, ErrClosed
	}
	start := l.mu.start
	var vs []view
	var firstPos int64
	for i, s := range l.mu.segs {
		// Segments whose max is below ts hold no answer: skip them without
		// reading.
		if s.size == 0 || s.maxTs < ts || s.next <= start {
			continue
		}
		firstPos = s.lookupTimeLocked(ts)
		if s.base <= start {
			firstPos = max(firstPos, s.lookupLocked(start))
		}
		vs = snapshotLocked(l.mu.segs[i:])
		break
	}
	l.mu.RUnlock()
	if vs == nil {
		return nil, false, nil
	}
	defer l.releaseViews(vs)
	pos := firstPos
	for _, v := range vs {
		at, h, found, err := walk(v, pos, func(h *recordbatch.Header) bool {
			return h.MaxTimestamp >= ts && h.LastOffset() >= start
		})
		if err != nil {
			return nil, false, err
		}
		if found {
			b := make([]byte, h.Size())
			if err := readFull(v.s.f, b, at); err != nil {
				return nil, false, err
			}
			if !l.validViews(vs) {
				return nil, false, errRetry
			}
			return b, true, nil
		}
		pos = 0
	}
	return nil, false, nil
}

// MaxTimestamp returns the largest batch MaxTimestamp in the log and the
// base offset of the first batch holding it (for ListOffsets -3, KIP-734),
// or -1, -1 for an empty log.
func (l *Log) MaxTimestamp() (ts int64, offset int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	ts, offset = -1, -1
	found := false
	for _, s := range l.mu.segs {
		// NB: batches below the start offset in the first segment still
		// count; Kafka keeps whole segments for this too.
		if s.size > 0 && (!found || s.maxTs > ts) {
			ts, offset, found = s.maxTs, s.maxTsOff, true
		}
	}
	return ts, offset
}

// Scan calls fn with every batch from the one holding offset from (or the
// log start offset, if from is below it) up to the log end as of the call,
// in order. The slice passed to fn is valid only during the call.
func (l *Log) Scan(from int64, fn func(batch []byte) error) error {
	end := l.NextOffset()
	off := max(from, l.StartOffset())
	for off < end {
		b, err := l.Read(off, 4<<20, end)
		if err != nil {
			return err
		}
		if len(b) == 0 {
			return nil
		}
		err = recordbatch.Split(b, func(batch []byte) error {
			h, err := recordbatch.ParseHeader(batch)
			if err != nil {
				return err
			}
			off = h.LastOffset() + 1
			return fn(batch)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// SetStartOffset raises the log start offset to off (DeleteRecords): it
// writes the checkpoint durably, then deletes segments wholly below off.
// Lowering is a no-op; off above NextOffset is ErrOffsetOutOfRange.
func (l *Log) SetStartOffset(off int64) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.checkWritable(); err != nil {
		return err
	}
	if off > l.mu.next {
		return fmt.Errorf("%w: start offset %d above log end offset %d", ErrOffsetOutOfRange, off, l.mu.next)
	}
	if off <= l.mu.start {
		return nil
	}
	return l.raiseStartLocked(off)
}

// raiseStartLocked makes off the durable start offset and drops the segments
// below it, never the active one. Caller holds wmu.
func (l *Log) raiseStartLocked(off int64) error {
	// The checkpoint is durable before any segment goes: after a crash in
	// between, Open deletes the leftovers rather than resurrecting records
	// that DeleteRecords reported deleted.
	if err := writeCheckpoint(l.fs, l.dir, off); err != nil {
		return l.fail(fmt.Errorf("write start offset checkpoint in %s: %w", l.dir, err))
	}
	segs := l.mu.segs
	k := 0
	for k < len(segs)-1 && segs[k].next <= off {
		k++
	}
	l.mu.Lock()
	l.mu.start = off
	l.mu.segs = segs[k:]
	l.mu.Unlock()
	return l.dropSegments(segs[:k])
}

// dropSegments deletes segments already out of the list. Caller holds wmu.
func (l *Log) dropSegments(segs []*segment) error {
	if len(segs) == 0 {
		return nil
	}
	for _, s := range segs {
		s.closeIndexes(false)
		s.release()
		if err := l.removeSegmentFiles(s.base); err != nil {
			return l.fail(err)
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return l.fail(fmt.Errorf("sync %s: %w", l.dir, err))
	}
	l.dirDirty = false
	return nil
}

// EnforceRetention deletes the oldest segments that are past RetentionMs
// (their max timestamp is older than now-RetentionMs) or beyond
// RetentionBytes, as Kafka does: whole segments only, never the active one,
// never one holding offsets >= limit (pass the high watermark, or the
// smallest offset something still needs). It returns the start offset.
func (l *Log) EnforceRetention(now time.Time, limit int64) (int64, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.checkWritable(); err != nil {
		return 0, err
	}
	k := l.expiredSegmentsLocked(now, limit)
	if k == 0 {
		return l.mu.start, nil
	}
	if err := l.raiseStartLocked(max(l.mu.segs[k].base, l.mu.start)); err != nil {
		return 0, err
	}
	return l.mu.start, nil
}

// RetentionDue reports whether EnforceRetention(now, limit) would delete a
// segment, without deleting it (the partition snapshots its producer state
// first, and only then).
func (l *Log) RetentionDue(now time.Time, limit int64) bool {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	return l.expiredSegmentsLocked(now, limit) > 0
}

// expiredSegmentsLocked counts the oldest segments retention removes.
// Caller holds wmu.
func (l *Log) expiredSegmentsLocked(now time.Time, limit int64) int {
	cfg := l.mu.cfg
	segs := l.mu.segs
	var total int64
	for _, s := range segs {
		total += s.size
	}
	k := 0
	for ; k < len(segs)-1; k++ {
		s := segs[k]
		if s.next > limit {
			break
		}
		byTime := cfg.RetentionMs >= 0 && s.size > 0 && s.maxTs < now.UnixMilli()-cfg.RetentionMs.Milliseconds()
		bySize := cfg.RetentionBytes >= 0 && total-s.size >= cfg.RetentionBytes
		if !byTime && !bySize {
			break
		}
		total -= s.size
	}
	return k
}

// Truncate removes every batch holding an offset >= offset; a batch holding
// offset itself goes too, so NextOffset may end up below offset (batches are
// never split). offset >= NextOffset is a no-op; below StartOffset is
// ErrOffsetOutOfRange. The result is durable when Truncate returns.
func (l *Log) Truncate(offset int64) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.checkWritable(); err != nil {
		return err
	}
	if offset >= l.mu.next {
		return nil
	}
	if offset < l.mu.start {
		return fmt.Errorf("%w: truncate to %d below start offset %d", ErrOffsetOutOfRange, offset, l.mu.start)
	}
	if err := l.adoptExtension(true); err != nil {
		return err
	}
	// Make what stays durable first, so no crash can leave a shorter log
	// file with stale data after it.
	if err := l.syncLocked(); err != nil {
		return err
	}
	i := l.segmentIndexLocked(offset)
	s := l.mu.segs[i]
	v := view{s: s, size: s.size, gen: s.gen}
	pos, h, found, err := walk(v, s.lookupLocked(offset), func(h *recordbatch.Header) bool { return h.LastOffset() >= offset })
	if err != nil {
		return l.fail(fmt.Errorf("truncate: find offset %d in %s: %w", offset, s.path, err))
	}
	if !found {
		panic(fmt.Sprintf("partlog: truncate: offset %d below log end %d not found in %s", offset, l.mu.next, s.path))
	}
	if h.BaseOffset < l.mu.start {
		// The batch holding offset also holds the start offset: nothing
		// readable is left. Restart empty at the start offset rather than
		// lower it, so the start offset only ever rises.
		return l.resetAtLocked(l.mu.start, l.active().rollTs)
	}
	later := l.mu.segs[i+1:]
	// Publish the new end before touching the file, so readers stop at it;
	// gen makes a reader that raced with this retry.
	l.mu.Lock()
	l.mu.segs = l.mu.segs[:i+1]
	s.gen++
	s.size, s.next = pos, h.BaseOffset
	l.mu.next = h.BaseOffset
	l.mu.Unlock()
	if err := l.dropSegments(later); err != nil {
		return err
	}
	// NB: this also drops the segment's zeros; the next append extends
	// the file again.
	if err := s.f.Truncate(pos); err != nil {
		return l.fail(fmt.Errorf("truncate %s at %d: %w", s.path, pos, err))
	}
	if err := s.f.Sync(); err != nil {
		return l.fail(fmt.Errorf("sync %s: %w", s.path, err))
	}
	s.zeroEnd, s.grown = pos, false
	// Rebuild the segment's state from what is left (rare: recovery and
	// replication), reusing recovery's scan, which also re-verifies it.
	ns := &segment{base: s.base, path: s.path, f: s.f}
	bad, err := scanSegment(ns, &seqReader{buf: make([]byte, 1<<20)}, l.mu.cfg.IndexIntervalBytes)
	if err != nil {
		return l.fail(fmt.Errorf("truncate: rescan %s: %w", s.path, err))
	}
	if bad != nil {
		return l.fail(fmt.Errorf("truncate: %w", corruptError(s.path, bad)))
	}
	if ns.size != pos || ns.next != h.BaseOffset || ns.zeroEnd != pos {
		panic(fmt.Sprintf("partlog: truncate: rescan of %s gives size %d next %d file %d, want %d %d %d",
			s.path, ns.size, ns.next, ns.zeroEnd, pos, h.BaseOffset, pos))
	}
	if err := s.closeIndexes(false); err != nil {
		return l.fail(fmt.Errorf("close indexes of %s: %w", s.path, err))
	}
	l.mu.Lock()
	s.gen++
	s.index, s.times = ns.index, ns.times
	s.maxTs, s.maxTsOff, s.maxTsPos, s.bytesSince = ns.maxTs, ns.maxTsOff, ns.maxTsPos, ns.bytesSince
	l.mu.Unlock()
	if err := writeFile(l.fs, s.indexPath(), encodeIndex(s.index)); err != nil {
		return l.fail(err)
	}
	if err := writeFile(l.fs, s.timeIndexPath(), encodeTimeIndex(s.times)); err != nil {
		return l.fail(err)
	}
	if err := l.openIndexFiles(s, false); err != nil {
		return l.fail(err)
	}
	s.idxWritten, s.timeWritten = len(s.index), len(s.times)
	s.dirty = false
	return nil
}

// resetAtLocked replaces every segment by one empty segment at off. The new
// segment is created before the old ones are deleted: a crash in between
// leaves old segments below a checkpointed start, which Open deletes.
// Caller holds wmu; off must be the durable start offset.
func (l *Log) resetAtLocked(off int64, rollTs int64) error {
	if err := l.adoptExtension(true); err != nil {
		return err
	}
	if err := l.syncLocked(); err != nil {
		return err
	}
	if err := l.active().closeIndexes(true); err != nil {
		return l.fail(fmt.Errorf("close indexes of %s: %w", l.active().path, err))
	}
	s, err := l.createSegment(off, rollTs)
	if err != nil {
		return l.fail(err)
	}
	l.mu.Lock()
	old := l.mu.segs
	l.mu.segs = []*segment{s}
	l.mu.next = off
	for _, o := range old {
		o.gen++
	}
	l.mu.Unlock()
	return l.dropSegments(old)
}
