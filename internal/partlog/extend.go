package partlog

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/oncelog/oncelog/internal/vfs"
)

// Extending ahead (Config.Preallocate; see "Pre-zeroed extents" in the
// package comment).
//
// An extension made inside Append puts its whole cost into one round of
// appends: up to maxExtentBytes of zeros copied into the page cache, then a
// Sync that writes them back and commits the journal, 2-4 ms for 4 MiB on
// the virtio disk measured, against 0.2-0.3 ms for an fdatasync inside an
// extent. Every producer whose batch is in or behind that round waits for it
// (docs/BENCHMARKS.md, "Produce latency at linger 0": at 5,000 records/s of
// 1 KiB, 274 of the 958 records over 2 ms in 10 s).
//
// So once the zeros left past the data fall below half of the next extent,
// Append starts an extender: a goroutine that writes the next extent's zeros
// past the file's end through a handle of its own, aheadChunkBytes at a
// time, writes each chunk back (vfs.File.WriteBack) before the next, and
// fsyncs once at the end: the journal commit of the new size and blocks,
// paid off the owner's path. The owner adopts the extent (zeroEnd moves) at
// its next Append or Sync after the extender is done, and its Syncs stay
// fdatasyncs. NB: while the extender runs, the owner's fdatasync still
// writes back every dirty page of the file and commits any size change, so
// the extender keeps at most one chunk dirty and the extent's commit is paid
// once, by whichever sync comes first.
//
// Why a handle of its own: a failed write-back is reported once per open
// file (errseq). On a shared handle the extender's fsync could take the
// report of a failed write-back of the owner's batches, and the owner's next
// Datasync would succeed for data that is lost; on two handles each sees
// every error.
//
// The extender writes zeros only at and past the zeroEnd it started from,
// where the owner writes nothing until it has adopted them, so the two never
// write the same bytes. Before anything else changes the file (an append
// that needs room the extender has not finished, roll, Truncate, reset,
// Close), the owner stops the extender, waits for the chunk in hand, and
// adopts what it wrote; if its fsync has not run, the owner's next Sync is a
// full fsync (segment.grown), as after an extension of its own. A failed
// zero write, write-back or fsync is sticky, as the owner's own are.
//
// A crash while the extender runs leaves zeros, possibly torn or missing,
// past the data: what recovery already takes as the clean end of a segment.

// aheadChunkBytes is how many zeros the extender writes back at a time: what
// an owner's fdatasync may find dirty of them (0.4 ms of write-back at
// 320 MB/s), and about how long a stop waits.
const aheadChunkBytes = 128 << 10

// extension is one run of the extender. seg, f, from and to are set before
// it starts; written, synced and err are the extender's until done is
// closed, the owner's after.
type extension struct {
	seg *segment
	f   vfs.File // the extender's own handle on seg's file
	// Zeros go to [from, to); from is seg.zeroEnd when it started.
	from, to int64
	chunk    int64
	stop     atomic.Bool
	done     chan struct{}

	// written is where the zeros written so far end: [from, written).
	written int64
	// synced means written == to, and the extender's fsync after it
	// returned nil: the extent is allocated, zeroed and durable.
	synced bool
	err    error
}

func (e *extension) run() {
	defer close(e.done)
	e.written = e.from
	for e.written < e.to && !e.stop.Load() {
		n := min(e.chunk, e.to-e.written, int64(len(zeroChunk)))
		if _, err := e.f.WriteAt(zeroChunk[:n], e.written); err != nil {
			e.err = err
			break
		}
		e.written += n
		if err := e.f.WriteBack(e.written-n, n); err != nil {
			e.err = err
			break
		}
	}
	if e.err == nil && e.written == e.to && !e.stop.Load() {
		if err := e.f.Sync(); err != nil {
			e.err = err
		} else {
			e.synced = true
		}
	}
	if err := e.f.Close(); err != nil && e.err == nil {
		e.err = err
	}
}

// extentAfter is how much an extension grows a segment whose file ends at
// zeroEnd: the file's size so far, within [minExtent, maxExtent].
func (l *Log) extentAfter(zeroEnd int64) int64 {
	return min(max(zeroEnd, l.minExtent), l.maxExtent)
}

// maybeExtendAhead starts the extender for the active segment s when its
// zeros past the data run low and the budget (Config.Zeros) allows the
// extent at now. Caller holds wmu.
func (l *Log) maybeExtendAhead(s *segment, now time.Time) {
	if !l.ahead || !l.zeroing() || l.ext != nil || l.err != nil || s.zeroEnd < s.size {
		return
	}
	grow := l.extentAfter(s.zeroEnd)
	to := min(s.zeroEnd+grow, l.mu.cfg.SegmentBytes)
	if s.zeroEnd-s.size >= grow/2 || to <= s.zeroEnd || !l.mu.cfg.Zeros.take(to-s.zeroEnd, now) {
		return
	}
	// NB: a handle that cannot be opened (out of descriptors, say) is
	// no storage error: Append extends in place as without the extender.
	f, err := l.fs.OpenFile(s.path, os.O_WRONLY, 0)
	if err != nil {
		return
	}
	e := &extension{seg: s, f: f, from: s.zeroEnd, to: to, chunk: l.aheadChunk, done: make(chan struct{})}
	l.ext = e
	go e.run()
}

// adoptExtension takes over what the extender wrote once it is done: with
// wait it asks it to stop and waits for it, without it returns at once
// while it runs. A failure of the extender becomes the log's sticky storage
// error, returned. Caller holds wmu.
func (l *Log) adoptExtension(wait bool) error {
	e := l.ext
	if e == nil {
		return nil
	}
	if wait {
		e.stop.Store(true)
		<-e.done
	} else {
		select {
		case <-e.done:
		default:
			return nil
		}
	}
	l.ext = nil
	s := e.seg
	if s.zeroEnd != e.from {
		panic(fmt.Sprintf("partlog: %s: zeroed end moved to %d while extending from %d", s.path, s.zeroEnd, e.from))
	}
	if e.written > e.from {
		s.zeroEnd = e.written
		if !e.synced {
			s.dirty, s.grown = true, true
		}
	}
	if e.err != nil && l.err == nil {
		l.fail(fmt.Errorf("extend %s ahead at position %d: %w", s.path, e.written, e.err))
	}
	return l.err
}
