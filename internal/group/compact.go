package group

// Compaction of __consumer_offsets by re-append.
//
// Kafka compacts its offsets topic with the log cleaner. partlog has no
// compaction (and its file format is not to change for it), so the
// coordinator does the equivalent with ordinary appends: once a partition
// holds many more records from its log start than it has live keys, the
// coordinator appends the latest value of every live key of that partition
// again, at the end of the log, and then raises the partition's log start
// offset (DeleteRecordsBefore) to the first re-appended record. Replay
// starts at the log start, so start-up reads the live state and what came
// after it; partlog deletes the segments wholly below the start (never the
// active one), so the log stays within a bound of about one segment plus
// the compaction threshold.
//
// What is live. For each group id of the partition, as a replay of the log
// would decide it (the later record wins, a tombstone deletes):
//   - a classic group: its last persisted metadata record ("g");
//   - a KIP-848 group: its "cg" record and the "cm" record of every member;
//   - every committed offset ("o"), from memory, which equals the replay
//     once no write of the key is in flight (see below).
//
// The "g", "cg" and "cm" values are copied from view, the log's own latest
// value per key, kept at the moment each record is enqueued (and rebuilt
// at load). Memory may be ahead of the log for those (a classic group mid
// rebalance, a consumer group change not yet written), and re-appending
// memory would persist a state no write ever persisted.
//
// Ordering. Every append of this coordinator to an offsets partition is
// enqueued under mu (the transaction coordinator's commit markers are the
// one exception). A compaction batch is built and enqueued in one critical
// section, so for every key it copies, every earlier record of the key is
// before it in the log and every later one after it: a copy never overrides
// a newer record. The ids to copy are listed in the critical section that
// enqueues the first batch, so a group created later writes after that
// batch. Offsets are copied from memory, which learns a commit only once it
// is durable; a key with an append in flight (commit, tombstone,
// transactional commit) or with pending transactional offsets is therefore
// not copied: its defining record stays where it is, and bounds the new log
// start instead (below).
//
// The new log start S is the smallest of
//   - the first offset of the first re-appended batch;
//   - the partition's last stable offset, so that the records of every open
//     transaction stay (a later commit marker must find its pending offsets
//     on the next replay; pending offsets are never copied);
//   - the log offset of every committed offset and every pending offset of
//     the partition's groups (copied keys now point at their copies), so a
//     key not copied keeps its defining record.
//
// S is computed after every append enqueued before the first batch has had
// its outcome applied to memory (they are all durable by then), so memory
// knows where their records are. Appends enqueued later land after the
// first batch and cannot be below S.
//
// Crashes. A crash during compaction leaves the old records and some newer
// copies of the same values: the replay gives the same state. The start
// moves (durably, through partlog's checkpoint) only after every copy is
// durable. Tombstoned and expired keys are not copied and disappear with
// the segments below S.
//
// Bounds. Copies go in batches of at most compaction.MaxBatchBytes (one key's
// records may make several); one partition is compacted at a time, from
// the coordinator's timer loop, in its own goroutine.
//
// The topic keeps retention.ms and retention.bytes at -1: time or size
// retention would delete the live records of a quiet partition, which
// compaction only rewrites when the partition grows. segment.bytes is
// Kafka's offsets.topic.segment.bytes default (100 MiB), so that segments
// below the log start can be deleted at all.

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/oncelog/oncelog/internal/compaction"
	"github.com/oncelog/oncelog/internal/partition"
)

// Compaction limits; the shared ones are in internal/compaction.
const (
	// DefaultCompactMinRecords is compaction.DefaultMinRecords, named
	// here for the settings' users.
	DefaultCompactMinRecords = compaction.DefaultMinRecords
	// compactDrainWait bounds the wait for earlier appends' outcomes
	// before the log start moves; past it the compaction gives up (its
	// copies are harmless) and is tried again later.
	compactDrainWait = 10 * time.Second
)

// compactTestHook, when set (tests only), is called after each durable
// batch of copies ("copied") and before the log start moves ("raise").
var compactTestHook func(stage string)

// CompactSettings configure compaction of the offsets topic.
type CompactSettings struct {
	// MinRecords: a partition is compacted once it holds more than
	// max(MinRecords, 4 * live keys) records from its log start. 0 means
	// DefaultCompactMinRecords; negative disables compaction.
	MinRecords int64
}

// logKey is any record key of the offsets log ("g", "o", "cg", "cm").
type logKey struct {
	Type      string `json:"t"`
	Group     string `json:"g"`
	Member    string `json:"m,omitempty"`
	Topic     string `json:"tp,omitempty"`
	Partition int32  `json:"p,omitempty"`
}

// groupView is the log's latest value of one group's metadata keys, as a
// replay applies them.
type groupView struct {
	g  []byte            // classic group metadata; nil if none
	cg []byte            // consumer group record; nil if none
	cm map[string][]byte // consumer members by id
}

type offsetKey struct {
	group string
	tp    TopicPartition
}

// pendingAppend is an append of offset records whose outcome is not yet
// applied to memory.
type pendingAppend struct {
	partition int32
	keys      []offsetKey
	done      chan struct{}
}

// compactState is part of Coordinator.mu.
type compactState struct {
	// views by group id; see the header.
	views map[string]*groupView
	// busy counts the appends in flight per offset key.
	busy map[offsetKey]int
	// appends in flight per offsets partition.
	appends map[int32]map[*pendingAppend]struct{}
	// running is set while a compaction goroutine runs.
	running bool
	// stuckAt is a partition's log end offset at its last compaction that
	// could not move the log start; it is not tried again before it grew.
	stuckAt map[int32]int64
}

func newCompactState() compactState {
	return compactState{views: map[string]*groupView{}, busy: map[offsetKey]int{},
		appends: map[int32]map[*pendingAppend]struct{}{}, stuckAt: map[int32]int64{}}
}

func (c *Coordinator) compactMinRecords() int64 {
	n := c.compactSettings.MinRecords
	if n == 0 {
		n = DefaultCompactMinRecords
	}
	return n
}

// viewApplyLocked mirrors what a replay does with a non-transactional
// record of a group metadata key; "o" keys are not in the view.
func (c *Coordinator) viewApplyLocked(k logKey, v []byte) {
	if k.Type != "g" && k.Type != "cg" && k.Type != "cm" {
		return
	}
	gv := c.mu.compact.views[k.Group]
	if gv == nil {
		gv = &groupView{cm: map[string][]byte{}}
		c.mu.compact.views[k.Group] = gv
	}
	switch k.Type {
	case "g":
		gv.g = v
		if v != nil {
			// A classic group's record ends the consumer group.
			gv.cg, gv.cm = nil, map[string][]byte{}
		}
	case "cg":
		if v == nil {
			gv.cg, gv.cm = nil, map[string][]byte{}
		} else {
			gv.cg, gv.g = v, nil
		}
	case "cm":
		gv.g = nil
		if v == nil {
			delete(gv.cm, k.Member)
		} else {
			gv.cm[k.Member] = v
		}
	}
	if gv.g == nil && gv.cg == nil && len(gv.cm) == 0 {
		delete(c.mu.compact.views, k.Group)
	}
}

func parseKey(k []byte) (logKey, bool) {
	var key logKey
	if err := json.Unmarshal(k, &key); err != nil {
		return key, false
	}
	return key, true
}

// txnProducer marks a batch as a transactional offset commit.
type txnProducer struct {
	pid   int64
	epoch int16
}

// enqueueLocked appends kvs to p, the offsets partition of their group(s),
// with mu held, so that records enter the log in the order of the state
// changes (see the header). The view follows non-transactional records at
// once. If kvs hold offset records, the returned pendingAppend marks their
// keys busy until the caller, having applied the outcome to memory, calls
// finishAppendLocked.
func (c *Coordinator) enqueueLocked(p *partition.Partition, kvs [][2][]byte, tx *txnProducer, now time.Time) (<-chan partition.AppendResult, *pendingAppend) {
	var pa *pendingAppend
	for _, kv := range kvs {
		key, ok := parseKey(kv[0])
		if !ok {
			continue
		}
		if key.Type == "o" {
			if pa == nil {
				pa = &pendingAppend{partition: p.Index, done: make(chan struct{})}
			}
			ok := offsetKey{key.Group, TopicPartition{key.Topic, key.Partition}}
			pa.keys = append(pa.keys, ok)
			c.mu.compact.busy[ok]++
			continue
		}
		if tx == nil {
			c.viewApplyLocked(key, kv[1])
		}
	}
	if pa != nil {
		m := c.mu.compact.appends[p.Index]
		if m == nil {
			m = map[*pendingAppend]struct{}{}
			c.mu.compact.appends[p.Index] = m
		}
		m[pa] = struct{}{}
	}
	if tx != nil {
		batch, h := encodeTxnBatch(kvs, tx.pid, tx.epoch, now.UnixMilli())
		return p.Append(batch, h), pa
	}
	batch, h := encodeBatch(kvs, now.UnixMilli())
	return p.Append(batch, h), pa
}

// finishAppendLocked ends pa (nil is allowed) once its outcome is in memory.
func (c *Coordinator) finishAppendLocked(pa *pendingAppend) {
	if pa == nil {
		return
	}
	for _, k := range pa.keys {
		if c.mu.compact.busy[k]--; c.mu.compact.busy[k] <= 0 {
			delete(c.mu.compact.busy, k)
		}
	}
	delete(c.mu.compact.appends[pa.partition], pa)
	close(pa.done)
}

// maybeCompact starts the compaction of the partition furthest past its
// threshold, unless one runs. Called by the timer loop.
func (c *Coordinator) maybeCompact() {
	if c.compactMinRecords() < 0 {
		return
	}
	t := c.b.Topic(OffsetsTopic)
	if t == nil {
		return
	}
	c.mu.Lock()
	if c.mu.compact.running {
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	best := compaction.Candidate(t, c.compactMinRecords(), func(i int32) (int64, bool) {
		c.mu.Lock()
		defer c.mu.Unlock()
		at, stuck := c.mu.compact.stuckAt[i]
		return at, stuck
	}, c.liveCounts)
	if best == nil {
		return
	}
	c.mu.Lock()
	if c.mu.compact.running {
		c.mu.Unlock()
		return
	}
	c.mu.compact.running = true
	c.mu.Unlock()
	c.compactWG.Add(1)
	go func() {
		defer c.compactWG.Done()
		if _, err := c.compactPartition(best); err != nil {
			c.lg.Warn("compacting offsets partition failed", "partition", best.Index, "err", err)
		}
		c.mu.Lock()
		c.mu.compact.running = false
		c.mu.Unlock()
	}()
}

// liveCounts are the live keys per offsets partition: metadata records in
// the view and committed offsets.
func (c *Coordinator) liveCounts() map[int32]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	live := map[int32]int64{}
	for id, gv := range c.mu.compact.views {
		live[c.PartitionFor(id)] += 1 + int64(len(gv.cm))
	}
	for id, m := range c.mu.offsets {
		live[c.PartitionFor(id)] += int64(len(m))
	}
	return live
}

// CompactResult says what one compaction did.
type CompactResult struct {
	Partition           int32
	Records             int   // re-appended
	Batches             int   // re-appended
	OldStart, NewStart  int64 // log start offsets
	SizeBefore, SizeNow int64 // segment bytes
}

// offsetCopy is a committed offset being re-appended, and where.
type offsetCopy struct {
	key       offsetKey
	logOffset int64 // of the value copied
	batch     int
	index     int32
}

// compactPartition compacts one offsets partition now (see the header).
func (c *Coordinator) compactPartition(p *partition.Partition) (CompactResult, error) {
	res := CompactResult{Partition: p.Index, OldStart: p.Offsets().LogStartOffset, SizeBefore: p.Log().Size()}
	res.NewStart = res.OldStart
	stuck := func() {
		c.mu.Lock()
		c.mu.compact.stuckAt[p.Index] = p.Log().NextOffset()
		c.mu.Unlock()
	}
	first := int64(-1)
	var ids []string
	next := 0
	for {
		now := c.clk.Now()
		c.mu.Lock()
		if ids == nil {
			ids = c.idsLocked(p.Index)
		}
		skip := c.uncopyableLocked(p.Index)
		var batches [][][2][]byte
		var copies []offsetCopy
		var cur [][2][]byte
		curBytes, total := 0, 0
		add := func(kv [2][]byte) {
			n := len(kv[0]) + len(kv[1]) + 32
			if len(cur) > 0 && curBytes+n > compaction.MaxBatchBytes {
				batches = append(batches, cur)
				cur, curBytes = nil, 0
			}
			cur = append(cur, kv)
			curBytes += n
			total += n
		}
		for next < len(ids) && total < compaction.MaxBatchBytes {
			id := ids[next]
			next++
			for _, kv := range c.viewRecordsLocked(id) {
				add(kv)
			}
			m := c.mu.offsets[id]
			tps := make([]TopicPartition, 0, len(m))
			for tp := range m {
				tps = append(tps, tp)
			}
			sort.Slice(tps, func(i, j int) bool {
				if tps[i].Topic != tps[j].Topic {
					return tps[i].Topic < tps[j].Topic
				}
				return tps[i].Partition < tps[j].Partition
			})
			for _, tp := range tps {
				k := offsetKey{id, tp}
				if c.mu.compact.busy[k] > 0 || skip[k] {
					continue
				}
				o := m[tp]
				add([2][]byte{mustJSON(recordKey{Type: "o", Group: id, Topic: tp.Topic, Partition: tp.Partition}), mustJSON(o)})
				copies = append(copies, offsetCopy{key: k, logOffset: o.logOffset, batch: len(batches), index: int32(len(cur) - 1)})
			}
		}
		if len(cur) > 0 {
			batches = append(batches, cur)
		}
		if len(batches) == 0 {
			c.mu.Unlock()
			break
		}
		waits := make([]<-chan partition.AppendResult, len(batches))
		for i, kvs := range batches {
			b, h := encodeBatch(kvs, now.UnixMilli())
			waits[i] = p.Append(b, h)
			res.Records += len(kvs)
		}
		c.mu.Unlock()
		res.Batches += len(batches)
		bases := make([]int64, len(batches))
		var failed error
		for i, w := range waits {
			r := <-w
			if r.Err != nil {
				failed = fmt.Errorf("re-appending to %s-%d: %v", OffsetsTopic, p.Index, r.Err)
				continue
			}
			bases[i] = r.BaseOffset
		}
		if failed != nil {
			return res, failed
		}
		if first < 0 {
			first = bases[0]
		}
		if compactTestHook != nil {
			compactTestHook("copied")
		}
		c.mu.Lock()
		for _, cp := range copies {
			at := bases[cp.batch] + int64(cp.index)
			o, ok := c.mu.offsets[cp.key.group][cp.key.tp]
			switch {
			case !ok:
			case o.logOffset == cp.logOffset:
				o.logOffset = at
				c.mu.offsets[cp.key.group][cp.key.tp] = o
			case o.logOffset < at:
				panic(fmt.Sprintf("group: offset %v of %s changed at log offset %d, before its compaction copy at %d", cp.key.tp, cp.key.group, o.logOffset, at))
			}
		}
		c.mu.Unlock()
	}
	if first < 0 {
		// Nothing live to copy: nothing to gain either until there is.
		stuck()
		return res, nil
	}

	// Every append enqueued before the first copy must have its outcome
	// in memory before S is computed from memory (see the header).
	c.mu.Lock()
	var waits []chan struct{}
	for pa := range c.mu.compact.appends[p.Index] {
		waits = append(waits, pa.done)
	}
	c.mu.Unlock()
	deadline := time.NewTimer(compactDrainWait)
	defer deadline.Stop()
	for _, w := range waits {
		select {
		case <-w:
		case <-c.stop:
			return res, fmt.Errorf("coordinator stopped")
		case <-deadline.C:
			stuck()
			return res, fmt.Errorf("appends of %s-%d still in flight after %v", OffsetsTopic, p.Index, compactDrainWait)
		}
	}

	c.mu.Lock()
	start := min(first, p.Offsets().LastStableOffset, c.minLiveOffsetLocked(p.Index))
	c.mu.Unlock()
	if start <= res.OldStart {
		stuck()
		return res, nil
	}
	if compactTestHook != nil {
		compactTestHook("raise")
	}
	got, kerrv := p.DeleteRecordsBefore(start)
	if kerrv != nil {
		return res, fmt.Errorf("raising the log start of %s-%d to %d: %v", OffsetsTopic, p.Index, start, kerrv)
	}
	res.NewStart = got
	res.SizeNow = p.Log().Size()
	c.mu.Lock()
	delete(c.mu.compact.stuckAt, p.Index)
	c.mu.Unlock()
	c.lg.Info("compacted offsets partition", "partition", p.Index, "records", res.Records, "batches", res.Batches,
		"log_start", got, "bytes_before", res.SizeBefore, "bytes_now", res.SizeNow)
	return res, nil
}

// idsLocked lists the group ids of offsets partition idx known to memory.
func (c *Coordinator) idsLocked(idx int32) []string {
	set := map[string]bool{}
	for id := range c.mu.groups {
		set[id] = true
	}
	for id := range c.mu.consumers {
		set[id] = true
	}
	for id := range c.mu.offsets {
		set[id] = true
	}
	out := make([]string, 0, len(set))
	for id := range set {
		if c.PartitionFor(id) == idx {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// uncopyableLocked are the offset keys of partition idx with pending
// transactional offsets.
func (c *Coordinator) uncopyableLocked(idx int32) map[offsetKey]bool {
	out := map[offsetKey]bool{}
	for _, byGroup := range c.mu.txn.pending {
		for g, m := range byGroup {
			if c.PartitionFor(g) != idx {
				continue
			}
			for tp := range m {
				out[offsetKey{g, tp}] = true
			}
		}
	}
	return out
}

// viewRecordsLocked are the live metadata records of group id: of the
// type memory holds it as (a replay would agree: the later record decides
// the type).
func (c *Coordinator) viewRecordsLocked(id string) [][2][]byte {
	gv := c.mu.compact.views[id]
	if gv == nil {
		return nil
	}
	var out [][2][]byte
	switch {
	case c.mu.consumers[id] != nil:
		if gv.cg != nil {
			out = append(out, [2][]byte{consumerGroupRecordKey(id), gv.cg})
		}
		members := make([]string, 0, len(gv.cm))
		for m := range gv.cm {
			members = append(members, m)
		}
		sort.Strings(members)
		for _, m := range members {
			out = append(out, [2][]byte{mustJSON(consumerRecordKey{Type: "cm", Group: id, Member: m}), gv.cm[m]})
		}
	case c.mu.groups[id] != nil && gv.g != nil:
		out = append(out, [2][]byte{mustJSON(recordKey{Type: "g", Group: id}), gv.g})
	}
	return out
}

// minLiveOffsetLocked is the smallest log offset of a committed or pending
// offset of partition idx's groups (math.MaxInt64 if none).
func (c *Coordinator) minLiveOffsetLocked(idx int32) int64 {
	low := int64(1<<63 - 1)
	for id, m := range c.mu.offsets {
		if c.PartitionFor(id) != idx {
			continue
		}
		for _, o := range m {
			low = min(low, o.logOffset)
		}
	}
	for _, byGroup := range c.mu.txn.pending {
		for g, m := range byGroup {
			if c.PartitionFor(g) != idx {
				continue
			}
			for _, o := range m {
				low = min(low, o.logOffset)
			}
		}
	}
	return low
}
