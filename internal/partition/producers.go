package partition

// Producer state: what the partition knows of each idempotent or
// transactional producer that wrote to it.
//
// States. Per producer id the partition keeps one entry: the current epoch,
// the metadata (first/last sequence, first/last offset) of the last
// maxCachedBatches batches appended in that epoch, the max timestamp of the
// last batch (for expiry), and, for transactional producers, the first
// offset of the transaction that is open on this partition (-1 if none).
//
// Derivation. The entries are a pure function of the log: apply and
// applyControl are called for every appended batch, in offset order, both
// on the live append path and when the state is rebuilt after a restart; they
// never read the clock. check is the validation done before an append: it
// only reads the state.
//
// Locking. None: only the partition's owner goroutine touches producers.
//
// Eviction. An entry is removed when it has no open transaction and its last
// write is older than producer.id.expiration.ms (decided by the owner with
// its clock, outside apply), or when the table is full and it is the oldest
// such entry. A snapshot of the table is written before segments are deleted
// so that the state outlives the data it describes (KAFKA-7190).

import (
	"sort"

	"github.com/oncelog/oncelog/internal/recordbatch"
	"github.com/twmb/franz-go/pkg/kerr"
)

// maxCachedBatches is how many batches per producer the broker remembers to
// answer retried duplicates; Kafka clients keep at most 5 requests in flight
// per partition for idempotence, and Kafka caches the same number.
const maxCachedBatches = 5

// BatchMeta is what the partition remembers of one appended batch.
type BatchMeta struct {
	FirstSeq    int32 `json:"first_seq"`
	LastSeq     int32 `json:"last_seq"`
	FirstOffset int64 `json:"first_offset"`
	LastOffset  int64 `json:"last_offset"`
	// Timestamp is the batch's max timestamp as stored (LogAppendTime
	// batches carry the broker's time here).
	Timestamp int64 `json:"timestamp"`
}

// ProducerEntry is the state of one producer id on this partition.
type ProducerEntry struct {
	ProducerID    int64 `json:"producer_id"`
	ProducerEpoch int16 `json:"producer_epoch"`
	// Batches are the last appended batches of ProducerEpoch, oldest first;
	// at most maxCachedBatches. Empty after an epoch bump by a marker.
	Batches []BatchMeta `json:"batches"`
	// LastTimestamp is the max timestamp of the producer's last batch.
	LastTimestamp int64 `json:"last_timestamp"`
	// CurrentTxnFirstOffset is the offset of the first batch of the
	// producer's open transaction on this partition, or -1.
	CurrentTxnFirstOffset int64 `json:"current_txn_first_offset"`
	// CoordinatorEpoch is the epoch of the coordinator that wrote the last
	// marker for this producer.
	CoordinatorEpoch int32 `json:"coordinator_epoch"`
}

func (e *ProducerEntry) lastSeq() (int32, bool) {
	if len(e.Batches) == 0 {
		return 0, false
	}
	return e.Batches[len(e.Batches)-1].LastSeq, true
}

// AbortedTxn is one entry of the aborted-transaction index: the producer
// and the offsets from its first batch to its abort marker.
type AbortedTxn struct {
	ProducerID  int64 `json:"producer_id"`
	FirstOffset int64 `json:"first_offset"`
	LastOffset  int64 `json:"last_offset"`
}

type producerTable struct {
	entries map[int64]*ProducerEntry
}

func newProducerTable() *producerTable {
	return &producerTable{entries: make(map[int64]*ProducerEntry)}
}

// checkResult is the outcome of validating a batch against producer state.
type checkResult struct {
	// duplicate is set when the batch is a retry of one already appended;
	// the caller answers with its offsets and appends nothing.
	duplicate *BatchMeta
	err       *kerr.Error
	msg       string
	// skip is set for a marker older than the producer's epoch: the
	// transaction it ends is already over here, so nothing is written.
	skip bool
}

// inSequence reports whether next directly follows last, with Kafka's
// wraparound at MaxInt32.
func inSequence(last, next int32) bool {
	return next == last+1 || (last == 1<<31-1 && next == 0)
}

// check validates an idempotent or transactional batch before it is
// appended. Non-idempotent batches (producer id -1) always pass.
func (t *producerTable) check(h *recordbatch.Header) checkResult {
	if h.ProducerID < 0 {
		return checkResult{}
	}
	e := t.entries[h.ProducerID]
	if e == nil {
		// An unknown producer: new, or its state expired or was removed
		// with the data. As Kafka does since KIP-360, accept any sequence
		// rather than fail a healthy producer.
		return checkResult{}
	}
	if h.IsControl() {
		// Markers come from the transaction coordinator and carry no
		// sequence. One older than the producer's epoch is a re-driven
		// marker of a transaction a newer epoch already ended.
		if h.ProducerEpoch < e.ProducerEpoch {
			return checkResult{skip: true}
		}
		return checkResult{}
	}
	if h.ProducerEpoch < e.ProducerEpoch {
		return checkResult{err: kerr.InvalidProducerEpoch, msg: "producer epoch is older than the current one: fenced"}
	}
	if !h.IsTransactional() && e.CurrentTxnFirstOffset >= 0 {
		return checkResult{err: kerr.InvalidTxnState, msg: "a non-transactional batch from a producer with an open transaction"}
	}
	if h.BaseSequence < 0 {
		// Transactional offset commits are written by the group
		// coordinator without sequence numbers.
		return checkResult{}
	}
	if h.ProducerEpoch > e.ProducerEpoch {
		// A new epoch restarts sequences at 0.
		if h.BaseSequence != 0 {
			return checkResult{err: kerr.OutOfOrderSequenceNumber, msg: "a new producer epoch must start at sequence 0"}
		}
		return checkResult{}
	}
	lastSeq := h.LastSequence()
	for i := range e.Batches {
		b := &e.Batches[i]
		if b.FirstSeq == h.BaseSequence && b.LastSeq == lastSeq {
			return checkResult{duplicate: b}
		}
	}
	last, ok := e.lastSeq()
	if !ok {
		// The epoch is known but no batch of it is cached (for example
		// after a transaction marker): any sequence starts it.
		return checkResult{}
	}
	if !inSequence(last, h.BaseSequence) {
		return checkResult{err: kerr.OutOfOrderSequenceNumber, msg: "sequence gap or reordering"}
	}
	return checkResult{}
}

// apply records an appended data batch (not a control batch). It is
// deterministic: state depends only on the batches applied so far.
func (t *producerTable) apply(h *recordbatch.Header) {
	if h.ProducerID < 0 {
		return
	}
	e := t.entries[h.ProducerID]
	if e == nil {
		e = &ProducerEntry{ProducerID: h.ProducerID, ProducerEpoch: h.ProducerEpoch, CurrentTxnFirstOffset: -1}
		t.entries[h.ProducerID] = e
	}
	if h.ProducerEpoch != e.ProducerEpoch {
		e.ProducerEpoch = h.ProducerEpoch
		e.Batches = e.Batches[:0]
	}
	if h.BaseSequence >= 0 {
		if len(e.Batches) == maxCachedBatches {
			copy(e.Batches, e.Batches[1:])
			e.Batches = e.Batches[:maxCachedBatches-1]
		}
		e.Batches = append(e.Batches, BatchMeta{
			FirstSeq:    h.BaseSequence,
			LastSeq:     h.LastSequence(),
			FirstOffset: h.BaseOffset,
			LastOffset:  h.LastOffset(),
			Timestamp:   h.MaxTimestamp,
		})
	}
	e.LastTimestamp = h.MaxTimestamp
	if h.IsTransactional() && e.CurrentTxnFirstOffset < 0 {
		e.CurrentTxnFirstOffset = h.BaseOffset
	}
}

// applyControl records an appended transaction marker at offset. It returns
// the aborted range when the marker aborts an open transaction.
func (t *producerTable) applyControl(h *recordbatch.Header, commit bool, coordinatorEpoch int32) (AbortedTxn, bool) {
	e := t.entries[h.ProducerID]
	if e == nil {
		e = &ProducerEntry{ProducerID: h.ProducerID, ProducerEpoch: h.ProducerEpoch, CurrentTxnFirstOffset: -1}
		t.entries[h.ProducerID] = e
	}
	if h.ProducerEpoch > e.ProducerEpoch {
		e.ProducerEpoch = h.ProducerEpoch
		e.Batches = e.Batches[:0]
	}
	e.CoordinatorEpoch = coordinatorEpoch
	e.LastTimestamp = h.MaxTimestamp
	first := e.CurrentTxnFirstOffset
	e.CurrentTxnFirstOffset = -1
	if first < 0 || commit {
		return AbortedTxn{}, false
	}
	return AbortedTxn{ProducerID: h.ProducerID, FirstOffset: first, LastOffset: h.BaseOffset}, true
}

// firstUnstableOffset is the first offset of the earliest open transaction,
// or -1 when none is open.
func (t *producerTable) firstUnstableOffset() int64 {
	first := int64(-1)
	for _, e := range t.entries {
		if e.CurrentTxnFirstOffset >= 0 && (first < 0 || e.CurrentTxnFirstOffset < first) {
			first = e.CurrentTxnFirstOffset
		}
	}
	return first
}

// expire removes entries without an open transaction whose last write is
// older than cutoffMillis, and then the oldest idle entries while more than
// maxEntries remain. It returns how many were removed.
func (t *producerTable) expire(cutoffMillis int64, maxEntries int) int {
	removed := 0
	for pid, e := range t.entries {
		if e.CurrentTxnFirstOffset < 0 && e.LastTimestamp < cutoffMillis {
			delete(t.entries, pid)
			removed++
		}
	}
	if maxEntries > 0 && len(t.entries) > maxEntries {
		idle := make([]*ProducerEntry, 0, len(t.entries))
		for _, e := range t.entries {
			if e.CurrentTxnFirstOffset < 0 {
				idle = append(idle, e)
			}
		}
		sort.Slice(idle, func(i, j int) bool { return idle[i].LastTimestamp < idle[j].LastTimestamp })
		for _, e := range idle {
			if len(t.entries) <= maxEntries {
				break
			}
			delete(t.entries, e.ProducerID)
			removed++
		}
	}
	return removed
}

// sorted returns the entries ordered by producer id (for snapshots,
// comparisons and DescribeProducers).
func (t *producerTable) sorted() []ProducerEntry {
	out := make([]ProducerEntry, 0, len(t.entries))
	for _, e := range t.entries {
		c := *e
		c.Batches = append([]BatchMeta(nil), e.Batches...)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ProducerID < out[j].ProducerID })
	return out
}
