package group

// Transactional offset commits (KIP-98, KIP-447).
//
// A TxnOffsetCommit is written to the group's offsets partition as a
// transactional batch of the producer. Its offsets are pending: invisible
// to OffsetFetch (which answers UNSTABLE_OFFSET_COMMIT for them when asked
// with RequireStable) until the transaction's marker reaches that
// partition; a commit marker makes them committed offsets, an abort marker
// drops them. Replaying the log after a restart does the same in log order.
//
// Race: the transaction coordinator may write the marker (an abort by
// timeout, or a fencing InitProducerId) while the commit's append result is
// still on its way back. The append is counted in inflight before it is
// queued, and CompleteTxn remembers the last marker of a producer with
// commits in flight, so a late registration applies that marker's outcome
// instead of waiting forever.

import (
	"github.com/oncelog/oncelog/internal/partition"
	"github.com/oncelog/oncelog/internal/recordbatch"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type pidPartition struct {
	pid       int64
	partition int32
}

type markerSeen struct {
	offset int64
	commit bool
}

// txnState is part of Coordinator.mu.
type txnState struct {
	// pending offsets by producer id, then group.
	pending map[int64]map[string]map[TopicPartition]Offset
	// inflight counts appends of a producer not yet registered.
	inflight map[int64]int
	// markers seen for producers with appends in flight.
	markers map[pidPartition]markerSeen
}

func newTxnState() txnState {
	return txnState{
		pending:  map[int64]map[string]map[TopicPartition]Offset{},
		inflight: map[int64]int{},
		markers:  map[pidPartition]markerSeen{},
	}
}

// OffsetsTopic names the offsets topic (for the transaction coordinator).
func (c *Coordinator) OffsetsTopic() string { return OffsetsTopic }

// addPendingLocked stages one transactional offset.
func (c *Coordinator) addPendingLocked(pid int64, group string, tp TopicPartition, o Offset) {
	byGroup := c.mu.txn.pending[pid]
	if byGroup == nil {
		byGroup = map[string]map[TopicPartition]Offset{}
		c.mu.txn.pending[pid] = byGroup
	}
	m := byGroup[group]
	if m == nil {
		m = map[TopicPartition]Offset{}
		byGroup[group] = m
	}
	m[tp] = o
}

// completeLocked applies the marker of pid at an offsets partition to the
// pending offsets written before it (all of them, on the live path).
func (c *Coordinator) completeLocked(partitionIdx int32, pid int64, commit bool, before int64) {
	byGroup := c.mu.txn.pending[pid]
	for g, m := range byGroup {
		if c.PartitionFor(g) != partitionIdx {
			continue
		}
		for tp, o := range m {
			if o.logOffset >= before {
				continue
			}
			if commit {
				// The later record in the log wins, as a replay would
				// decide.
				c.setOffsetLocked(g, tp, o)
			}
			delete(m, tp)
		}
		if len(m) == 0 {
			delete(byGroup, g)
		}
	}
	if len(byGroup) == 0 {
		delete(c.mu.txn.pending, pid)
	}
}

// CompleteTxn is called by the transaction coordinator once the marker of
// producer pid at markerOffset is durable in an offsets partition.
func (c *Coordinator) CompleteTxn(partitionIdx int32, pid int64, commit bool, markerOffset int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.txn.inflight[pid] > 0 {
		c.mu.txn.markers[pidPartition{pid, partitionIdx}] = markerSeen{markerOffset, commit}
	}
	c.completeLocked(partitionIdx, pid, commit, markerOffset)
}

// HasPending reports whether the group has transactional offsets pending
// for tp (RequireStable).
func (c *Coordinator) HasPending(group string, tp TopicPartition) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, byGroup := range c.mu.txn.pending {
		if _, ok := byGroup[group][tp]; ok {
			return true
		}
	}
	return false
}

func (c *Coordinator) hasAnyPendingLocked(group string) bool {
	for _, byGroup := range c.mu.txn.pending {
		if len(byGroup[group]) > 0 {
			return true
		}
	}
	return false
}

// Verifier is what the transaction coordinator offers the group
// coordinator: verify the producer's transaction holds the offsets
// partition (adding it when implicitAdd), and enqueue under its lock.
type Verifier func(offsetsPartition int32, enqueue func()) *kerr.Error

// TxnCommit serves TxnOffsetCommit. verify checks the transaction and runs
// the enqueue under the transaction coordinator's lock. The returned
// function waits for the write and gives the result per partition.
func (c *Coordinator) TxnCommit(req *kmsg.TxnOffsetCommitRequest, verify Verifier) (*kerr.Error, func() CommitResult) {
	if req.Group == "" {
		return kerr.InvalidGroupID, nil
	}
	if err := c.EnsureTopic(); err != nil {
		return err, nil
	}
	now := c.clk.Now()
	var rejected map[TopicPartition]*kerr.Error
	c.mu.Lock()
	if cg := c.mu.consumers[req.Group]; cg != nil {
		// A KIP-848 group: Generation carries the member epoch.
		var tps []TopicPartition
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				tps = append(tps, TopicPartition{t.Topic, p.Partition})
			}
		}
		var top *kerr.Error
		top, rejected = cg.ValidateCommit(req.MemberID, req.Generation, req.Version, true, tps)
		if top != nil {
			c.mu.Unlock()
			return top, nil
		}
	} else if g := c.mu.groups[req.Group]; g != nil && (req.Generation >= 0 || req.MemberID != "" || req.InstanceID != nil) {
		// KIP-447: a member of an older generation (a zombie whose
		// partitions were reassigned) must not commit. Generation -1
		// with no member id skips this, as Kafka allows.
		m, err := g.validateMember(req.MemberID, req.InstanceID, req.Generation)
		if m != nil {
			m.deadline = now.Add(m.SessionTimeout)
		}
		if err != nil {
			c.mu.Unlock()
			return err, nil
		}
	} else if g == nil && req.Generation >= 0 {
		c.mu.Unlock()
		return kerr.IllegalGeneration, nil
	}
	c.mu.Unlock()

	var commits []commitEntry
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			commits = append(commits, commitEntry{TopicPartition{t.Topic, p.Partition}, p.Offset, p.LeaderEpoch, p.Metadata})
		}
	}
	result, kvs, tps, vals := c.offsetRecords(req.Group, commits, rejected, now)
	if len(kvs) == 0 {
		return nil, func() CommitResult { return result }
	}
	partIdx := c.PartitionFor(req.Group)
	part := c.offsetsPartition(req.Group)
	if part == nil {
		return kerr.CoordinatorNotAvailable, nil
	}
	var wait <-chan partition.AppendResult
	var pa *pendingAppend
	if err := verify(partIdx, func() {
		c.mu.Lock()
		c.mu.txn.inflight[req.ProducerID]++
		wait, pa = c.enqueueLocked(part, kvs, &txnProducer{req.ProducerID, req.ProducerEpoch}, now)
		c.mu.Unlock()
	}); err != nil {
		return err, nil
	}
	pid := req.ProducerID
	done := make(chan struct{})
	go func() {
		defer close(done)
		res := <-wait
		c.mu.Lock()
		defer c.mu.Unlock()
		defer c.finishAppendLocked(pa)
		key := pidPartition{pid, partIdx}
		seen, sawMarker := c.mu.txn.markers[key]
		if c.mu.txn.inflight[pid]--; c.mu.txn.inflight[pid] <= 0 {
			delete(c.mu.txn.inflight, pid)
			delete(c.mu.txn.markers, key)
		}
		if res.Err != nil {
			for _, tp := range tps {
				result[tp] = res.Err
			}
			return
		}
		for i, tp := range tps {
			o := vals[i]
			o.logOffset = res.BaseOffset + int64(i)
			result[tp] = nil
			if sawMarker && seen.offset > o.logOffset {
				if seen.commit {
					c.setOffsetLocked(req.Group, tp, o)
				}
				continue
			}
			c.addPendingLocked(pid, req.Group, tp, o)
		}
	}()
	return nil, func() CommitResult {
		<-done
		return result
	}
}

func encodeTxnBatch(kvs [][2][]byte, pid int64, epoch int16, ts int64) ([]byte, recordbatch.Header) {
	recs := make([][]byte, len(kvs))
	for i, kv := range kvs {
		recs[i] = recordbatch.AppendRecord(nil, recordbatch.Record{OffsetDelta: int32(i), Key: kv[0], Value: kv[1]})
	}
	h := recordbatch.Header{
		Attributes: recordbatch.AttrTransactional,
		ProducerID: pid, ProducerEpoch: epoch, BaseSequence: -1,
		LastOffsetDelta: int32(len(kvs) - 1), BaseTimestamp: ts, MaxTimestamp: ts,
	}
	b := recordbatch.Build(h, recs)
	hh, _ := recordbatch.Check(b)
	return b, hh
}
