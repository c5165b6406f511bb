package txn

// Compaction of __transaction_state by re-append.
//
// partlog has no log compaction, so the coordinator does what Kafka's log
// cleaner does for this topic with ordinary appends: once a partition holds
// many more records from its log start than it has transactional ids, the
// current Metadata of every id of the partition is appended again, at the
// end of the log, and then the log start is raised (DeleteRecordsBefore)
// to the first of these copies. Replay (load) starts at the log start;
// partlog deletes the segments wholly below it (never the active one).
//
// Why a copy never overrides a newer record. Every write of an id's record
// is enqueued while the id is busy (InitProducerId, AddPartitionsToTxn,
// the implicit add, the Prepare and Complete records of EndTxn and of a
// timeout abort, the expiry tombstone), and an id that is not busy has in
// memory exactly the value of its last record. A batch of copies is built
// and enqueued in one critical section of mu, from ids that are not busy:
// none of them has a write in flight, so every earlier record of theirs is
// before the copy and every later one after it. Busy ids are put off and
// copied once they are free (bounded wait; past it the compaction gives up
// and its copies stay as harmless duplicates). The ids are listed in the
// critical section that enqueues the first batch, and a new id is busy
// from the moment it exists, so an id created later writes after the first
// copy. Hence every live id's newest record is at or after the new log
// start; expired ids (tombstoned) are not copied and vanish with the old
// segments.
//
// Crashes. Until the log start moves, the old records are all there and the
// copies are newer records of the same values: a replay gives the same
// state. The start moves (durably: partlog's checkpoint) only after every
// copy is durable.
//
// Bounds. Batches of at most compaction.MaxBatchBytes; one partition at a time;
// started at most every compaction.CheckInterval from the coordinator's timer
// loop, running in its own goroutine (counted in c.wg, so Close waits).
//

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/oncelog/oncelog/internal/compaction"
	"github.com/oncelog/oncelog/internal/partition"
	"github.com/oncelog/oncelog/internal/recordbatch"
)

// compactBusyWait bounds the total wait for busy ids in one compaction;
// the shared limits are in internal/compaction.
const compactBusyWait = 10 * time.Second

// compactTestHook, when set (tests only), is called after each durable
// batch of copies ("copied") and before the log start moves ("raise").
var compactTestHook func(stage string)

// compactor is the state of one coordinator's compaction.
type compactor struct {
	mu struct {
		sync.Mutex
		last    time.Time
		running bool
		// stuckAt is a partition's log end offset at its last
		// compaction that could not move the log start; it is not tried
		// again before it grew by the floor.
		stuckAt map[int32]int64
	}
}

func (c *Coordinator) compactor() *compactor {
	cs := &c.compact
	cs.mu.Lock()
	if cs.mu.stuckAt == nil {
		cs.mu.stuckAt = map[int32]int64{}
	}
	cs.mu.Unlock()
	return cs
}

// Compact is called by the coordinator's timer loop with the loop's time:
// at most every compaction.CheckInterval it starts the compaction of the
// __transaction_state partition furthest past its threshold (more than
// max(compaction.DefaultMinRecords, 4 * live ids) records from the log start),
// unless one is running. It does not block.
func (c *Coordinator) Compact(now time.Time) {
	cs := c.compactor()
	cs.mu.Lock()
	if cs.mu.running || now.Sub(cs.mu.last) < compaction.CheckInterval {
		cs.mu.Unlock()
		return
	}
	cs.mu.last = now
	cs.mu.Unlock()
	p := c.compactCandidate(compaction.DefaultMinRecords)
	if p == nil {
		return
	}
	cs.mu.Lock()
	if cs.mu.running {
		cs.mu.Unlock()
		return
	}
	cs.mu.running = true
	cs.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if _, err := c.compactPartition(p); err != nil {
			c.lg.Warn("compacting transaction state partition failed", "partition", p.Index, "err", err)
		}
		cs.mu.Lock()
		cs.mu.running = false
		cs.mu.Unlock()
	}()
}

// compactCandidate is the partition furthest past its threshold, or nil.
func (c *Coordinator) compactCandidate(minRecords int64) *partition.Partition {
	cs := c.compactor()
	return compaction.Candidate(c.b.Topic(StateTopic), minRecords, func(i int32) (int64, bool) {
		cs.mu.Lock()
		defer cs.mu.Unlock()
		at, stuck := cs.mu.stuckAt[i]
		return at, stuck
	}, func() map[int32]int64 {
		live := map[int32]int64{}
		c.mu.Lock()
		defer c.mu.Unlock()
		for id := range c.mu.txns {
			live[c.partitionFor(id)]++
		}
		return live
	})
}

// CompactResult says what one compaction did.
type CompactResult struct {
	Partition           int32
	Records, Batches    int   // copies
	OldStart, NewStart  int64 // log start offsets
	SizeBefore, SizeNow int64 // segment bytes
}

var errCompactStopped = errors.New("transaction coordinator stopped")

// compactPartition compacts one __transaction_state partition now (see the
// header).
func (c *Coordinator) compactPartition(p *partition.Partition) (CompactResult, error) {
	res := CompactResult{Partition: p.Index, OldStart: p.Offsets().LogStartOffset, SizeBefore: p.Log().Size()}
	res.NewStart = res.OldStart
	cs := c.compactor()
	stuck := func() {
		cs.mu.Lock()
		cs.mu.stuckAt[p.Index] = p.Log().NextOffset()
		cs.mu.Unlock()
	}
	timeout := time.NewTimer(compactBusyWait)
	defer timeout.Stop()
	first := int64(-1)
	var ids, deferred []string
	next := 0
	for {
		c.mu.Lock()
		if first < 0 {
			// Until the first batch is enqueued, list afresh: an id
			// created since the last look may have written already.
			ids, deferred, next = c.compactIDsLocked(p.Index), nil, 0
		}
		var kvs [][2][]byte
		size := 0
		add := func(id string, e *entry) {
			v, err := json.Marshal(&e.meta)
			if err != nil {
				panic(err)
			}
			kvs = append(kvs, [2][]byte{[]byte(id), v})
			size += len(id) + len(v) + 32
		}
		for next < len(ids) && size < compaction.MaxBatchBytes {
			id := ids[next]
			next++
			switch e := c.mu.txns[id]; {
			case e == nil:
			case e.busy:
				deferred = append(deferred, id)
			default:
				add(id, e)
			}
		}
		if next >= len(ids) {
			still := deferred[:0]
			for _, id := range deferred {
				switch e := c.mu.txns[id]; {
				case e == nil:
				case e.busy || size >= compaction.MaxBatchBytes:
					still = append(still, id)
				default:
					add(id, e)
				}
			}
			deferred = still
		}
		if len(kvs) == 0 {
			if next < len(ids) {
				panic("txn: compaction batch empty with ids left")
			}
			if len(deferred) == 0 {
				c.mu.Unlock()
				break
			}
			// Only busy ids are left: wait for the first to be free.
			done := c.mu.txns[deferred[0]].done
			c.mu.Unlock()
			select {
			case <-done:
			case <-c.stop:
				return res, errCompactStopped
			case <-timeout.C:
				stuck()
				return res, fmt.Errorf("transactional id %q still busy after %v", deferred[0], compactBusyWait)
			}
			continue
		}
		wait := p.Append(copyBatch(kvs, c.clk.Now().UnixMilli()))
		c.mu.Unlock()
		r := <-wait
		if r.Err != nil {
			return res, fmt.Errorf("re-appending to %s-%d: %v", StateTopic, p.Index, r.Err)
		}
		if first < 0 {
			first = r.BaseOffset
		}
		res.Records += len(kvs)
		res.Batches++
		if compactTestHook != nil {
			compactTestHook("copied")
		}
	}
	if first < 0 {
		// No live id: nothing to gain until there is one.
		stuck()
		return res, nil
	}
	if first <= res.OldStart {
		return res, nil
	}
	if compactTestHook != nil {
		compactTestHook("raise")
	}
	got, kerrv := p.DeleteRecordsBefore(first)
	if kerrv != nil {
		return res, fmt.Errorf("raising the log start of %s-%d to %d: %v", StateTopic, p.Index, first, kerrv)
	}
	res.NewStart = got
	res.SizeNow = p.Log().Size()
	cs.mu.Lock()
	delete(cs.mu.stuckAt, p.Index)
	cs.mu.Unlock()
	c.lg.Info("compacted transaction state partition", "partition", p.Index, "records", res.Records, "batches", res.Batches,
		"log_start", got, "bytes_before", res.SizeBefore, "bytes_now", res.SizeNow)
	return res, nil
}

// compactIDsLocked lists the transactional ids of partition idx, sorted.
func (c *Coordinator) compactIDsLocked(idx int32) []string {
	var out []string
	for id := range c.mu.txns {
		if c.partitionFor(id) == idx {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// copyBatch is one batch of records (transactional id, Metadata JSON), as
// enqueueWrite writes them one at a time.
func copyBatch(kvs [][2][]byte, ts int64) ([]byte, recordbatch.Header) {
	recs := make([][]byte, len(kvs))
	for i, kv := range kvs {
		recs[i] = recordbatch.AppendRecord(nil, recordbatch.Record{OffsetDelta: int32(i), Key: kv[0], Value: kv[1]})
	}
	b := recordbatch.Build(recordbatch.Header{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1,
		LastOffsetDelta: int32(len(kvs) - 1), BaseTimestamp: ts, MaxTimestamp: ts}, recs)
	h, err := recordbatch.Check(b)
	if err != nil {
		panic(fmt.Sprintf("txn: built an invalid batch: %v", err))
	}
	return b, h
}
