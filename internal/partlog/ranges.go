package partlog

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"

	"github.com/oncelog/oncelog/internal/recordbatch"
	"github.com/oncelog/oncelog/internal/vfs"
)

// ErrNoFileRanges is returned by ReadRanges when a segment it would read is
// not an OS file (vfs.OSFiler): the caller reads the bytes (ReadAppend)
// instead. Nothing was held.
var ErrNoFileRanges = errors.New("partlog: segment files are not OS files")

// FileRange is Len bytes of File at Pos: whole, verified batches of one
// segment, below its logical size (never its pre-zeroed tail).
type FileRange struct {
	File *os.File
	Pos  int64
	Len  int64
}

// FileRanges is what ReadRanges found.
type FileRanges struct {
	// Ranges are in offset order; consecutive batches of a segment are one
	// range, so there is one range per segment read.
	Ranges []FileRange
	// Bytes is the sum of the ranges' lengths.
	Bytes int64
	// LastOffset is the last offset of the last batch, -1 with no batch.
	LastOffset int64
}

// ReadRanges is Read that returns where the batches are instead of their
// bytes: the same batches, by the same rules (whole batches from the one
// holding offset, stopping before maxOffset and before maxBytes, the first
// batch whole however large, KIP-74), as ranges of the segments' files. Only
// the batch headers are read. release, never nil when err is nil, must be
// called exactly once when the caller is done with the ranges: until then
// the segments' files stay open, so retention may delete a segment under a
// send but not close its file (its bytes stay readable). On error nothing
// is held; ErrNoFileRanges means the files are not OS files (use
// ReadAppend).
//
// NB: the bytes are read after ReadRanges returns, so the check that no
// Truncate rewrote them (segment.gen) covers only the headers read here. A
// Truncate (replication; nothing calls it outside tests today) during a
// send would make the sender see a short file or different bytes.
func (l *Log) ReadRanges(offset int64, maxBytes int, maxOffset int64) (FileRanges, func(), error) {
	for attempt := 0; ; attempt++ {
		rs, release, err := l.readRangesOnce(offset, maxBytes, maxOffset)
		if errors.Is(err, errRetry) && attempt < 10 {
			continue
		}
		return rs, release, err
	}
}

func noRelease() {}

func (l *Log) readRangesOnce(offset int64, maxBytes int, maxOffset int64) (rs FileRanges, release func(), err error) {
	rs.LastOffset = -1
	l.mu.RLock()
	if l.mu.closed {
		l.mu.RUnlock()
		return rs, nil, ErrClosed
	}
	if offset < l.mu.start || offset > l.mu.next {
		err := fmt.Errorf("%w: offset %d, log holds [%d, %d)", ErrOffsetOutOfRange, offset, l.mu.start, l.mu.next)
		l.mu.RUnlock()
		return rs, nil, err
	}
	if offset == l.mu.next || offset >= maxOffset {
		l.mu.RUnlock()
		return rs, noRelease, nil
	}
	i := l.segmentIndexLocked(offset)
	pos := l.mu.segs[i].lookupLocked(offset)
	vs := snapshotLocked(l.mu.segs[i:])
	// The index entries and end offset of each view, as of the snapshot:
	// entries below a view's size are immutable until a Truncate (gen).
	marks := make([]viewMarks, len(vs))
	for j, v := range vs {
		marks[j] = viewMarks{index: v.s.index, next: v.s.next}
	}
	l.mu.RUnlock()
	// used is how many views (from the first) the ranges need; the others
	// are released now, those once the caller is done.
	used := 0
	defer func() {
		if err != nil {
			used = 0
		}
		l.releaseViews(vs[used:])
		if err == nil {
			held := vs[:used]
			release = func() { l.releaseViews(held) }
		}
	}()
	pos, first, found, err := walk(vs[0], pos, func(h *recordbatch.Header) bool { return h.LastOffset() >= offset })
	if err != nil {
		return rs, nil, err
	}
	if !found {
		return rs, nil, errRetry // as in readOnce
	}
	budget := int64(max(maxBytes, 0))
	hr := headerReaders.Get().(*headerReader)
	defer func() { hr.reset(view{}); headerReaders.Put(hr) }()
	for vi, v := range vs {
		osf, ok := v.s.f.(vfs.OSFiler)
		if !ok {
			return rs, nil, ErrNoFileRanges
		}
		start, done := pos, false
		// Jump over whole batches by the sparse index: its entries are
		// batch boundaries with their base offsets, so every batch below
		// an entry within the budget whose base offset is at most
		// maxOffset is returned without reading its header. Only the
		// batches after the last such entry are walked.
		lastBase := int64(-1)
		if rs.Bytes > 0 {
			// After the first view the first batch is counted already.
			pos, lastBase = marks[vi].jump(v, pos, rs.Bytes, budget, maxOffset)
		} else if pos < v.size {
			// The first batch is returned however large (KIP-74):
			// jump from after it.
			h := first // the batch holding offset, from walk
			if vi > 0 {
				// Not reached: the first view has the first batch.
				if h, err = hr.headerOf(v, pos); err != nil {
					return rs, nil, err
				}
			}
			if h.BaseOffset < maxOffset {
				n := int64(h.Size())
				pos += n
				rs.LastOffset = h.LastOffset()
				if p, b := marks[vi].jump(v, pos, n, budget, maxOffset); p > pos {
					pos, lastBase = p, b
				}
			} else {
				done = true
			}
		}
		if lastBase >= 0 {
			// The batch before the entry the jump stopped at ends at the
			// offset before it.
			rs.LastOffset = lastBase - 1
		}
		hr.reset(v)
		for !done && pos < v.size {
			h, err := hr.header(pos)
			if err != nil {
				return rs, nil, err
			}
			if h.BaseOffset >= maxOffset {
				done = true
				break
			}
			n := int64(h.Size())
			if rs.Bytes+(pos-start)+n > budget && (rs.Bytes > 0 || pos > start) {
				done = true
				break
			}
			// Either within the budget, or the first batch (KIP-74).
			pos += n
			rs.LastOffset = h.LastOffset()
		}
		if pos > start {
			// The pair of readView's checks: whole batches inside the
			// view.
			if start < 0 || pos > v.size {
				panic(fmt.Sprintf("partlog: range [%d, %d) of %s outside its %d bytes", start, pos, v.s.path, v.size))
			}
			rs.Ranges = append(rs.Ranges, FileRange{File: osf.OSFile(), Pos: start, Len: pos - start})
			rs.Bytes += pos - start
			used = vi + 1
		}
		if done || rs.Bytes >= budget {
			break
		}
		pos = 0
	}
	if !l.validViews(vs) {
		return rs, nil, errRetry
	}
	return rs, nil, nil
}

// viewMarks are the batch boundaries a view knows without reading: its
// sparse index entries and its end.
type viewMarks struct {
	index []indexEntry
	next  int64 // the offset after the view's last batch
}

// jump returns the furthest batch boundary after pos of v that keeps
// counted+(boundary-pos) within budget and every batch below it at a base
// offset below maxOffset, with the base offset of the batch starting there
// (the view's next offset at its end); pos and -1 if there is none. pos is
// a batch boundary.
func (m viewMarks) jump(v view, pos, counted, budget, maxOffset int64) (int64, int64) {
	limit := pos + (budget - counted) // the furthest end the budget allows
	if v.size <= limit && m.next <= maxOffset {
		return v.size, m.next
	}
	// Entries are sorted by position and by base offset: the last one
	// within both bounds is found by binary search.
	idx := m.index
	j := sort.Search(len(idx), func(j int) bool {
		e := idx[j]
		return int64(e.pos) > limit || v.s.base+int64(e.rel) > maxOffset || int64(e.pos) >= v.size
	})
	if j == 0 || int64(idx[j-1].pos) <= pos {
		return pos, -1
	}
	e := idx[j-1]
	return int64(e.pos), v.s.base + int64(e.rel)
}

// headerReaders reuses headerReaders (their buffer would be an allocation
// per read: it escapes through vfs.File's ReadAt).
var headerReaders = sync.Pool{New: func() any { return new(headerReader) }}

// headerReader reads the batch headers of a view, through a buffer that
// holds the headers of many small batches per read, or only the next
// header when batches are larger than the buffer (so a walk over large
// batches costs one small pread per batch, never the batches' bytes).
type headerReader struct {
	v      view
	buf    [4 << 10]byte
	off    int64 // file position of buf[0]; -1 when empty
	n      int
	larger bool // the last batch was larger than buf
}

func (r *headerReader) reset(v view) { r.v, r.off, r.n, r.larger = v, -1, 0, false }

// headerOf reads the header of the one batch at pos of v.
func (r *headerReader) headerOf(v view, pos int64) (recordbatch.Header, error) {
	r.reset(v)
	r.larger = true
	return r.header(pos)
}

// header returns the header of the batch at pos, which is below the view's
// size.
func (r *headerReader) header(pos int64) (recordbatch.Header, error) {
	if r.off < 0 || pos < r.off || pos+recordbatch.HeaderSize > r.off+int64(r.n) {
		want := int64(len(r.buf))
		if r.larger {
			want = recordbatch.HeaderSize
		}
		n := int(min(want, r.v.size-pos))
		if n < recordbatch.HeaderSize {
			return recordbatch.Header{}, errRetry // verified bytes end inside a header: Truncate
		}
		if err := readFull(r.v.s.f, r.buf[:n], pos); err != nil {
			return recordbatch.Header{}, err
		}
		r.off, r.n = pos, n
	}
	h, err := recordbatch.ParseHeader(r.buf[pos-r.off : r.n])
	if err != nil || pos+int64(h.Size()) > r.v.size {
		return h, errRetry // as in walk: only a Truncate changes verified bytes
	}
	r.larger = h.Size() > len(r.buf)
	return h, nil
}
