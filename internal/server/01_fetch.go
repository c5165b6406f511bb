package server

// Fetch (key 1), versions 4-13.
//
// Behaviour:
//   - Returns whole stored batches from the batch that holds FetchOffset (a
//     fetch may start inside a batch; clients skip the earlier records), up
//     to the high watermark, or to the last stable offset for
//     read_committed (IsolationLevel 1), which also gets the aborted
//     transactions overlapping the returned data (only read_committed gets
//     them).
//   - Byte limits: PartitionMaxBytes per partition and MaxBytes per
//     response, except that the first batch found is always returned whole
//     even if larger (KIP-74), so a consumer can always make progress.
//   - Long polling: with fewer than MinBytes available the answer waits
//     until a partition's high watermark or LSO moves, or MaxWaitMillis
//     passes. Waits run on the connection's writer, so later requests on the
//     connection are still read and started meanwhile. At most
//     max fetch waiters wait broker-wide; past that the answer is immediate.
//   - FetchOffset outside [log start, high watermark]: OFFSET_OUT_OF_RANGE.
//   - Zero-copy sends (zerocopy.go): on a TCP connection, with the log on
//     the OS filesystem (Linux), a partition's records of minSendfileBytes
//     (64 KiB) or more are not read: the response is encoded by kmsg with
//     a placeholder in their place, and the writer sends the frame in
//     parts, the records by sendfile(2) from the segment files, which stay
//     open until the send is done. Smaller record sets, other connections
//     and other filesystems take the copying path: the records are read
//     from the page cache into a pooled arena and copied once more into
//     the frame.
//
// Version notes: v7 adds fetch sessions (KIP-227): we answer SessionID 0,
// which tells clients that no session was created, so every request is a
// full one. v11 adds the preferred read replica (-1: none). v13 names topics
// by id (KIP-516).
//
// Not done: follower fetches (ReplicaID >= 0) until replication exists;
// fetch sessions; zero-copy over TLS (there is no TLS listener).

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/oncelog/oncelog/internal/partition"
	"github.com/oncelog/oncelog/internal/partlog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(1, 4, 13, handleFetch) }

// maxFetchWait bounds MaxWaitMillis so a client cannot park a request for
// long.
const maxFetchWait = 30 * time.Second

type fetchSlot struct {
	sp        *kmsg.FetchResponseTopicPartition
	p         *partition.Partition
	offset    int64
	partBytes int32
}

func handleFetch(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.FetchRequest)
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	b := c.s.b
	if req.SessionID != 0 {
		resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
		return now(resp)
	}
	committed := req.IsolationLevel == 1
	var slots []fetchSlot
	resp.Topics = make([]kmsg.FetchResponseTopic, len(req.Topics))
	for ti := range req.Topics {
		rt := &req.Topics[ti]
		st := &resp.Topics[ti]
		*st = kmsg.NewFetchResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		st.Partitions = make([]kmsg.FetchResponseTopicPartition, len(rt.Partitions))
		t := b.Topic(rt.Topic)
		unknown := kerr.UnknownTopicOrPartition
		if req.Version >= 13 {
			t = b.TopicByID(rt.TopicID)
			unknown = kerr.UnknownTopicID
		}
		for pi := range rt.Partitions {
			rp := &rt.Partitions[pi]
			sp := &st.Partitions[pi]
			*sp = kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
			sp.PreferredReadReplica = -1
			if t == nil {
				sp.ErrorCode = unknown.Code
				continue
			}
			if rp.Partition < 0 || int(rp.Partition) >= len(t.Partitions) {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				continue
			}
			slots = append(slots, fetchSlot{sp: sp, p: t.Partitions[rp.Partition], offset: rp.FetchOffset, partBytes: rp.PartitionMaxBytes})
		}
	}
	maxBytes := req.MaxBytes
	if maxBytes <= 0 {
		maxBytes = 1 << 30
	}
	// The records of every partition are read into one arena, which goes
	// back to its pool once the response is encoded (reply.release).
	ar := &arena{hint: arenaHint(slots, maxBytes), zeroCopy: c.out != nil, lg: c.s.lg}
	total := fetchOnce(slots, maxBytes, committed, ar)
	wait := time.Duration(req.MaxWaitMillis) * time.Millisecond
	if wait > maxFetchWait {
		wait = maxFetchWait
	}
	if total >= int(req.MinBytes) || wait <= 0 || len(slots) == 0 || anyError(slots) {
		c.s.Metrics.AddFetched(total)
		r := now(resp)
		r.release, r.fetch = ar.release, ar
		return r
	}
	select {
	case c.s.fetchSlots <- struct{}{}:
	default:
		// Too many parked fetches: answer what we have.
		c.s.Metrics.AddFetched(total)
		r := now(resp)
		r.release, r.fetch = ar.release, ar
		return r
	}
	r := later(func() kmsg.Response {
		defer func() { <-c.s.fetchSlots }()
		defer func() { c.s.Metrics.AddFetched(total) }()
		deadline := time.NewTimer(wait)
		defer deadline.Stop()
		for {
			wake := make(chan struct{}, 1)
			stop := make(chan struct{})
			for _, s := range slots {
				go func(w <-chan struct{}) {
					select {
					case <-w:
						select {
						case wake <- struct{}{}:
						default:
						}
					case <-stop:
					}
				}(s.p.Watch())
			}
			// Re-read after arming the watches, so a change between the
			// first read and the arming is not missed.
			total = fetchOnce(slots, maxBytes, committed, ar)
			if total >= int(req.MinBytes) || anyError(slots) {
				close(stop)
				return resp
			}
			select {
			case <-wake:
				close(stop)
			case <-deadline.C:
				close(stop)
				return resp
			case <-c.ctx.Done():
				close(stop)
				return resp
			}
		}
	})
	r.release, r.fetch = ar.release, ar
	return r
}

// arena holds the record bytes of one fetch response, read straight from
// the log into one pooled buffer: no allocation per partition or per
// request once the pool is warm, and at most one buffer the size of the
// response per fetch in flight. With zeroCopy, a partition with
// minSendfileBytes of records or more is not read at all: its records stay
// in the log's files (ranged), sent from there by the writer (zerocopy.go).
type arena struct {
	buf  []byte
	hint int
	// zeroCopy: the connection can take records from files (conn.out).
	zeroCopy bool
	// ranged are the partitions whose records are sent from their files,
	// in slot order, which is the order kmsg encodes them in; ranged[i]'s
	// RecordBatches is placeholder i meanwhile. Each holds its segments
	// until release.
	ranged []rangedRecords
	// ph holds the placeholders.
	ph []byte
	lg *slog.Logger
}

// reset empties the arena for a new read of every partition.
func (a *arena) reset() {
	a.releaseRanged()
	if a.buf == nil && !a.zeroCopy {
		a.buf = getBuf(a.hint)
	}
	a.buf = a.buf[:0]
}

// grow makes room in buf for n more bytes.
func (a *arena) grow(n int) {
	if a.buf == nil {
		a.buf = getBuf(max(a.hint, n))
	}
	a.buf = slices.Grow(a.buf, n)
}

func (a *arena) releaseRanged() {
	for i := range a.ranged {
		a.ranged[i].release()
		a.ranged[i] = rangedRecords{}
	}
	a.ranged = a.ranged[:0]
}

// release gives the buffer and the segments back; nothing may use the
// records after it.
func (a *arena) release() {
	a.releaseRanged()
	if a.buf != nil {
		putBuf(a.buf)
		a.buf = nil
	}
}

// fetch reads slot s's records at most limit bytes: from its files when
// that is possible and they are large enough (ranged is then true and the
// records are a.ranged's last), else into a.buf. n is the records' size.
func (a *arena) fetch(s fetchSlot, limit int, committed bool) (res partition.FetchResult, n int, ranged bool) {
	if a.zeroCopy {
		res, rs, release, ok := s.p.FetchRanges(s.offset, limit, committed)
		if ok {
			if rs.Bytes >= minSendfileBytes {
				a.ranged = append(a.ranged, rangedRecords{rs: rs, release: release})
				return res, int(rs.Bytes), true
			}
			// Small: copied into the frame as before, from the ranges
			// just found.
			err := a.readRanges(rs)
			release()
			if err != nil {
				a.lg.Error("fetch read failed", "offset", s.offset, "err", err)
				res.Err, res.Aborted = kerr.KafkaStorageError, nil
				return res, 0, false
			}
			return res, int(rs.Bytes), false
		}
	}
	if a.buf == nil {
		a.buf = getBuf(a.hint)
	}
	start := len(a.buf)
	res, a.buf = s.p.FetchAppend(a.buf, s.offset, limit, committed)
	return res, len(a.buf) - start, false
}

// readRanges appends the bytes of rs to buf.
func (a *arena) readRanges(rs partlog.FileRanges) error {
	start := len(a.buf)
	a.grow(int(rs.Bytes))
	for _, r := range rs.Ranges {
		at := len(a.buf)
		a.buf = a.buf[:at+int(r.Len)]
		if m, err := r.File.ReadAt(a.buf[at:], r.Pos); m < int(r.Len) {
			a.buf = a.buf[:start]
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read %s at %d: %w", r.File.Name(), r.Pos, err)
		}
	}
	return nil
}

// maxArenaHint caps the arena taken up front; a fetch that finds more
// grows it (and the pool then keeps the larger buffer).
const maxArenaHint = 8 << 20

// arenaHint guesses the record bytes a fetch returns: the smaller of its
// partitions' limits and its response limit, capped at maxArenaHint.
func arenaHint(slots []fetchSlot, maxBytes int32) int {
	n := 0
	for _, s := range slots {
		n += int(max(s.partBytes, 0))
	}
	return min(n, int(maxBytes), maxArenaHint)
}

func anyError(slots []fetchSlot) bool {
	for _, s := range slots {
		if s.sp.ErrorCode != 0 {
			return true
		}
	}
	return false
}

// noRecords is an empty record set that is not null.
var noRecords = []byte{}

// fetchOnce fills every slot from its partition, reading the records into
// ar (or locating them, for the ranged ones), and returns the bytes found.
func fetchOnce(slots []fetchSlot, maxBytes int32, committed bool, ar *arena) int {
	remaining := int(maxBytes)
	total := 0
	ar.reset()
	// ends[i] is where slot i's records end in ar.buf, or -1-k for slot
	// i's records in ar.ranged[k]; the slices are taken once every read
	// is done, since a read may move the buffer.
	ends := make([]int, len(slots))
	for i, s := range slots {
		limit := int(s.partBytes)
		if limit > remaining {
			limit = remaining
		}
		var res partition.FetchResult
		n, ranged := 0, false
		if limit <= 0 && total > 0 {
			// Out of response budget: report the bounds only.
			o := s.p.Offsets()
			res = partition.FetchResult{Offsets: o}
		} else {
			if limit <= 0 {
				limit = 1
			}
			res, n, ranged = ar.fetch(s, limit, committed)
		}
		ends[i] = len(ar.buf)
		if ranged {
			ends[i] = -len(ar.ranged)
		}
		sp := s.sp
		sp.HighWatermark = res.HighWatermark
		sp.LastStableOffset = res.LastStableOffset
		sp.LogStartOffset = res.LogStartOffset
		sp.ErrorCode = 0
		if res.Err != nil {
			sp.ErrorCode = res.Err.Code
		}
		sp.AbortedTransactions = nil
		if committed {
			sp.AbortedTransactions = make([]kmsg.FetchResponseTopicPartitionAbortedTransaction, 0, len(res.Aborted))
			for _, a := range res.Aborted {
				at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
				at.ProducerID, at.FirstOffset = a.ProducerID, a.FirstOffset
				sp.AbortedTransactions = append(sp.AbortedTransactions, at)
			}
		}
		total += n
		remaining -= n
	}
	ar.ph = ar.ph[:0]
	for k := range ar.ranged {
		ar.ph = appendPlaceholder(ar.ph, k)
	}
	start := 0
	for i, s := range slots {
		if e := ends[i]; e < 0 {
			k := -1 - e
			s.sp.RecordBatches = ar.ph[k*placeholderBytes : (k+1)*placeholderBytes : (k+1)*placeholderBytes]
			continue
		}
		// NB: never nil: nil would go out as a null record set (size
		// -1), which librdkafka reports as a protocol error.
		s.sp.RecordBatches = noRecords
		if ar.buf != nil {
			s.sp.RecordBatches = ar.buf[start:ends[i]:ends[i]]
		}
		start = ends[i]
	}
	if total == 0 {
		// Nothing to hold: a parked long poll keeps no buffer.
		ar.release()
	}
	return total
}
