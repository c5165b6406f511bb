package group

// The driver of the group state machines.
//
// Persistence. Group metadata (after each completed SyncGroup and when a
// group empties) and committed offsets are records in the
// __consumer_offsets partition of the group (Java hashCode of the group id
// modulo the partition count, as Kafka places them). A commit is answered
// only after its batch is durable, and only then becomes visible to
// OffsetFetch. Commits are applied in log order: each cache entry remembers
// the log offset of its record, so two commits racing for one partition end
// with the later one in the log, as a restart would.
//
// Locking. mu guards groups and offsets and every call into a Group. It is
// never held while waiting for a write; Partition.Append only enqueues.
// Every append to an offsets partition is enqueued under mu (so the log
// order is the order of the state changes; compaction relies on it, see
// compact.go), and the outcome of an offset write is applied to memory by
// a goroutine of its own, never by the caller's wait.

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/oncelog/oncelog/internal/broker"
	"github.com/oncelog/oncelog/internal/clock"
	"github.com/oncelog/oncelog/internal/compaction"
	"github.com/oncelog/oncelog/internal/partition"
	"github.com/oncelog/oncelog/internal/recordbatch"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetsTopic is the internal topic holding groups and offsets.
const OffsetsTopic = "__consumer_offsets"

// tickInterval is the resolution of session and rebalance timers.
const tickInterval = 50 * time.Millisecond

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Offset is one committed offset.
type Offset struct {
	Offset      int64  `json:"offset"`
	LeaderEpoch int32  `json:"leader_epoch"`
	Metadata    string `json:"metadata"`
	CommitTime  int64  `json:"commit_time"`
	// logOffset is where the commit's record sits in the offsets
	// partition; a later record wins.
	logOffset int64
}

// Coordinator serves every group of this node.
type Coordinator struct {
	b          *broker.Broker
	clk        clock.Clock
	lg         *slog.Logger
	settings   Settings
	partitions int32
	// settingsConsumer configures KIP-848 groups (consumer.go).
	settingsConsumer ConsumerSettings
	compactSettings  CompactSettings

	topicOnce sync.Mutex

	mu struct {
		sync.Mutex
		groups  map[string]*Group
		offsets map[string]map[TopicPartition]Offset
		// consumers are the KIP-848 groups (consumer.go); a group id is
		// in at most one of groups and consumers.
		consumers map[string]*ConsumerGroup
		txn       txnState
		compact   compactState
	}
	stop chan struct{}
	done chan struct{}
	// compactWG waits for the compaction goroutine.
	compactWG sync.WaitGroup
}

// Options configure a Coordinator.
type Options struct {
	Broker   *broker.Broker
	Clock    clock.Clock
	Logger   *slog.Logger
	Settings Settings
	// ConsumerSettings configure KIP-848 groups; zero fields take
	// Kafka's defaults.
	ConsumerSettings ConsumerSettings
	// Compaction configures the compaction of the offsets topic.
	Compaction CompactSettings
	// Partitions is offsets.topic.num.partitions.
	Partitions int32
}

// New makes a coordinator, loads the state of every group from the
// __consumer_offsets logs, and starts its timers.
func New(opts Options) (*Coordinator, error) {
	if opts.Clock == nil {
		opts.Clock = clock.Real
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Partitions <= 0 {
		opts.Partitions = 50
	}
	c := &Coordinator{b: opts.Broker, clk: opts.Clock, lg: opts.Logger, settings: opts.Settings, partitions: opts.Partitions,
		stop: make(chan struct{}), done: make(chan struct{})}
	c.settingsConsumer = opts.ConsumerSettings
	c.compactSettings = opts.Compaction
	c.mu.compact = newCompactState()
	c.mu.groups = map[string]*Group{}
	c.mu.consumers = map[string]*ConsumerGroup{}
	c.mu.offsets = map[string]map[TopicPartition]Offset{}
	c.mu.txn = newTxnState()
	if t := c.b.Topic(OffsetsTopic); t != nil {
		c.partitions = int32(len(t.Partitions))
		if err := c.load(t); err != nil {
			return nil, err
		}
	}
	go c.run()
	return c, nil
}

// Close stops the timers and a compaction in progress.
func (c *Coordinator) Close() {
	close(c.stop)
	<-c.done
	c.compactWG.Wait()
}

func (c *Coordinator) run() {
	defer close(c.done)
	lastRetention := c.clk.Now()
	lastCompact := lastRetention
	for {
		select {
		case <-c.stop:
			return
		case <-c.clk.After(tickInterval):
		}
		now := c.clk.Now()
		c.Tick(now)
		if now.Sub(lastRetention) > time.Minute {
			c.expireOffsets(now)
			lastRetention = now
		}
		if now.Sub(lastCompact) >= compaction.CheckInterval {
			c.maybeCompact()
			lastCompact = now
		}
	}
}

// Tick fires the due timers of every group.
func (c *Coordinator) Tick(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, g := range c.mu.groups {
		if d := g.NextDeadline(); !d.IsZero() && !now.Before(d) {
			g.Tick(now)
		}
	}
	c.tickConsumersLocked(now)
}

// PartitionFor is the offsets partition of a group.
func (c *Coordinator) PartitionFor(groupID string) int32 {
	return partition.CoordinatorPartition(groupID, c.partitions)
}

// EnsureTopic creates __consumer_offsets on first use.
func (c *Coordinator) EnsureTopic() *kerr.Error {
	if c.b.Topic(OffsetsTopic) != nil {
		return nil
	}
	c.topicOnce.Lock()
	defer c.topicOnce.Unlock()
	if c.b.Topic(OffsetsTopic) != nil {
		return nil
	}
	// NB: retention stays disabled: time or size retention would delete
	// live records. Compaction (compact.go) raises the log start instead,
	// and segments of Kafka's offsets.topic.segment.bytes (100 MiB) let
	// the ones below it go.
	_, perr := c.b.CreateInternalTopic(OffsetsTopic, c.partitions, map[string]string{"retention.ms": "-1", "retention.bytes": "-1", "segment.bytes": "104857600"})
	if perr != nil && perr.Code != kerr.TopicAlreadyExists {
		c.lg.Error("creating the offsets topic failed", "err", perr)
		return kerr.CoordinatorNotAvailable
	}
	return nil
}

func (c *Coordinator) offsetsPartition(groupID string) *partition.Partition {
	return c.b.Partition(OffsetsTopic, c.PartitionFor(groupID))
}

// record keys and values in the offsets log.
type recordKey struct {
	Type      string `json:"t"` // "g" group metadata, "o" offset
	Group     string `json:"g"`
	Topic     string `json:"tp,omitempty"`
	Partition int32  `json:"p,omitempty"`
}

type groupValue struct {
	ProtocolType string    `json:"protocol_type"`
	Protocol     string    `json:"protocol"`
	Generation   int32     `json:"generation"`
	Leader       string    `json:"leader"`
	Members      []*Member `json:"members"`
}

func encodeBatch(kvs [][2][]byte, ts int64) ([]byte, recordbatch.Header) {
	recs := make([][]byte, len(kvs))
	for i, kv := range kvs {
		recs[i] = recordbatch.AppendRecord(nil, recordbatch.Record{OffsetDelta: int32(i), Key: kv[0], Value: kv[1]})
	}
	h := recordbatch.Header{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, LastOffsetDelta: int32(len(kvs) - 1), BaseTimestamp: ts, MaxTimestamp: ts}
	b := recordbatch.Build(h, recs)
	hh, _ := recordbatch.Check(b)
	return b, hh
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func groupRecord(g *Group) [2][]byte {
	key := mustJSON(recordKey{Type: "g", Group: g.ID})
	if g.IsEmpty() && g.Generation == 0 {
		return [2][]byte{key, nil}
	}
	return [2][]byte{key, mustJSON(groupValue{ProtocolType: g.ProtocolType, Protocol: g.Protocol, Generation: g.Generation, Leader: g.Leader, Members: g.Members()})}
}

// persistGroup writes g's metadata and calls then under mu once it is
// durable (or failed). Called with mu held.
func (c *Coordinator) persistGroup(g *Group, then func(*kerr.Error)) {
	p := c.offsetsPartition(g.ID)
	if p == nil {
		then(kerr.CoordinatorNotAvailable)
		return
	}
	wait, _ := c.enqueueLocked(p, [][2][]byte{groupRecord(g)}, nil, c.clk.Now())
	go func() {
		res := <-wait
		c.mu.Lock()
		defer c.mu.Unlock()
		if res.Err != nil {
			c.lg.Warn("writing group metadata failed", "group", g.ID, "err", res.Err)
			then(kerr.CoordinatorNotAvailable)
			return
		}
		then(nil)
	}()
}

func (c *Coordinator) groupLocked(id string, create bool) *Group {
	g := c.mu.groups[id]
	if g == nil && create {
		g = newGroup(id, c.settings, c.clk.Now())
		g.persist = c.persistGroup
		c.mu.groups[id] = g
	}
	return g
}

// load replays every offsets partition.
func (c *Coordinator) load(t *broker.Topic) error {
	now := c.clk.Now()
	for _, p := range t.Partitions {
		err := p.Replay(func(b []byte, h recordbatch.Header) error {
			if h.IsControl() {
				commit, _, err := recordbatch.ParseControl(b)
				if err != nil {
					return err
				}
				c.completeLocked(p.Index, h.ProducerID, commit, h.BaseOffset)
				return nil
			}
			return recordbatch.Records(b, func(r recordbatch.Record) error {
				if h.IsTransactional() {
					c.stagePending(h.ProducerID, r.Key, r.Value, r.Offset)
					return nil
				}
				c.applyRecord(r.Key, r.Value, r.Offset, now)
				if key, ok := parseKey(r.Key); ok {
					c.viewApplyLocked(key, r.Value)
				}
				return nil
			})
		})
		if err != nil {
			return fmt.Errorf("loading groups: %w", err)
		}
	}
	c.lg.Info("loaded consumer groups", "groups", len(c.mu.groups))
	return nil
}

func (c *Coordinator) applyRecord(k, v []byte, logOffset int64, now time.Time) {
	var key recordKey
	if err := json.Unmarshal(k, &key); err != nil {
		c.lg.Warn("skipping unreadable offsets record", "offset", logOffset, "err", err)
		return
	}
	switch key.Type {
	case "o":
		tp := TopicPartition{key.Topic, key.Partition}
		if v == nil {
			if m := c.mu.offsets[key.Group]; m != nil {
				delete(m, tp)
			}
			return
		}
		var o Offset
		if err := json.Unmarshal(v, &o); err != nil {
			return
		}
		o.logOffset = logOffset
		c.setOffsetLocked(key.Group, tp, o)
	case "cg", "cm":
		c.applyConsumerRecordLocked(k, v, logOffset, now)
	case "g":
		if v == nil {
			delete(c.mu.groups, key.Group)
			return
		}
		delete(c.mu.consumers, key.Group) // the later record decides the type
		var gv groupValue
		if err := json.Unmarshal(v, &gv); err != nil {
			return
		}
		g := c.groupLocked(key.Group, true)
		g.ProtocolType, g.Protocol, g.Generation, g.Leader = gv.ProtocolType, gv.Protocol, gv.Generation, gv.Leader
		g.members = map[string]*Member{}
		g.static = map[string]string{}
		for _, m := range gv.Members {
			// Members get a full session to find the restarted
			// coordinator and heartbeat.
			m.deadline = now.Add(m.SessionTimeout)
			g.members[m.ID] = m
			if m.InstanceID != nil {
				g.static[*m.InstanceID] = m.ID
			}
		}
		if len(g.members) > 0 {
			g.State = Stable
		} else {
			g.State = Empty
			g.emptySince = now
		}
	}
}

// stagePending replays a transactional offset commit record.
func (c *Coordinator) stagePending(pid int64, k, v []byte, logOffset int64) {
	var key recordKey
	if err := json.Unmarshal(k, &key); err != nil || key.Type != "o" || v == nil {
		return
	}
	var o Offset
	if err := json.Unmarshal(v, &o); err != nil {
		return
	}
	o.logOffset = logOffset
	c.addPendingLocked(pid, key.Group, TopicPartition{key.Topic, key.Partition}, o)
}

func (c *Coordinator) setOffsetLocked(group string, tp TopicPartition, o Offset) {
	m := c.mu.offsets[group]
	if m == nil {
		m = map[TopicPartition]Offset{}
		c.mu.offsets[group] = m
	}
	if cur, ok := m[tp]; ok && cur.logOffset > o.logOffset {
		return
	}
	m[tp] = o
}

// Join, Sync, Heartbeat and Leave pass requests to the group's machine.

// Join handles JoinGroup; reply is called exactly once, possibly later.
func (c *Coordinator) Join(req *kmsg.JoinGroupRequest, clientID, clientHost string, reply func(*kmsg.JoinGroupResponse)) {
	if req.Group == "" {
		reply(joinError(req, kerr.InvalidGroupID, req.MemberID))
		return
	}
	if err := c.EnsureTopic(); err != nil {
		reply(joinError(req, err, req.MemberID))
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.joinConsumerGroupLocked(req.Group); err != nil {
		reply(joinError(req, err, req.MemberID))
		return
	}
	g := c.groupLocked(req.Group, req.MemberID == "" || true)
	g.Join(JoinRequest{Req: req, ClientID: clientID, ClientHost: clientHost, Reply: reply}, c.clk.Now())
}

// Sync handles SyncGroup.
func (c *Coordinator) Sync(req *kmsg.SyncGroupRequest, reply func(*kmsg.SyncGroupResponse)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groupLocked(req.Group, false)
	if g == nil {
		reply(&kmsg.SyncGroupResponse{ErrorCode: kerr.UnknownMemberID.Code})
		return
	}
	g.Sync(SyncRequest{Req: req, Reply: reply}, c.clk.Now())
}

// Heartbeat handles Heartbeat.
func (c *Coordinator) Heartbeat(req *kmsg.HeartbeatRequest) *kerr.Error {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groupLocked(req.Group, false)
	if g == nil {
		return kerr.UnknownMemberID
	}
	return g.Heartbeat(req, c.clk.Now())
}

// Leave handles LeaveGroup.
func (c *Coordinator) Leave(group string, members []kmsg.LeaveGroupRequestMember) (*kerr.Error, []*kerr.Error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groupLocked(group, false)
	if g == nil {
		errs := make([]*kerr.Error, len(members))
		for i := range errs {
			errs[i] = kerr.UnknownMemberID
		}
		return kerr.UnknownMemberID, errs
	}
	return nil, g.Leave(members, c.clk.Now())
}

// CommitResult is the outcome per partition of an offset commit.
type CommitResult map[TopicPartition]*kerr.Error

// Commit validates and writes an OffsetCommit; the returned function waits
// for durability and gives the result per partition.
func (c *Coordinator) Commit(req *kmsg.OffsetCommitRequest) (*kerr.Error, func() CommitResult) {
	if req.Group == "" {
		return kerr.InvalidGroupID, nil
	}
	if err := c.EnsureTopic(); err != nil {
		return err, nil
	}
	now := c.clk.Now()
	c.mu.Lock()
	// KIP-848 groups check member epochs and ownership (consumer.go).
	isConsumer, cerr, rejected := c.validateConsumerCommitLocked(req)
	if !isConsumer {
		cerr = c.validateClassicCommitLocked(req, now)
	}
	if cerr != nil {
		c.mu.Unlock()
		return cerr, nil
	}

	var commits []commitEntry
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			commits = append(commits, commitEntry{TopicPartition{t.Topic, p.Partition}, p.Offset, p.LeaderEpoch, p.Metadata})
		}
	}
	result, kvs, tps, vals := c.offsetRecords(req.Group, commits, rejected, now)
	if len(kvs) == 0 {
		c.mu.Unlock()
		return nil, func() CommitResult { return result }
	}
	part := c.offsetsPartition(req.Group)
	if part == nil {
		c.mu.Unlock()
		return kerr.CoordinatorNotAvailable, nil
	}
	wait, pa := c.enqueueLocked(part, kvs, nil, now)
	c.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		res := <-wait
		c.mu.Lock()
		defer c.mu.Unlock()
		defer c.finishAppendLocked(pa)
		if res.Err != nil {
			for _, tp := range tps {
				result[tp] = kerr.CoordinatorNotAvailable
			}
			return
		}
		for i, tp := range tps {
			o := vals[i]
			o.logOffset = res.BaseOffset + int64(i)
			c.setOffsetLocked(req.Group, tp, o)
			result[tp] = nil
		}
	}()
	return nil, func() CommitResult {
		<-done
		return result
	}
}

// validateClassicCommitLocked applies a classic group's rules to a commit.
func (c *Coordinator) validateClassicCommitLocked(req *kmsg.OffsetCommitRequest, now time.Time) *kerr.Error {
	g := c.groupLocked(req.Group, false)
	if g == nil {
		if req.Generation >= 0 {
			return kerr.IllegalGeneration
		}
		g = c.groupLocked(req.Group, true)
	}
	return g.ValidateCommit(req.MemberID, req.InstanceID, req.Generation, now)
}

// commitEntry is one partition's offset in an OffsetCommit or
// TxnOffsetCommit request.
type commitEntry struct {
	tp          TopicPartition
	offset      int64
	leaderEpoch int32
	metadata    *string
}

// offsetRecords validates the offsets of a commit and encodes the records
// to write: result holds the partitions refused (rejected ones included),
// and kvs, tps and vals the accepted ones, in order.
func (c *Coordinator) offsetRecords(group string, commits []commitEntry, rejected map[TopicPartition]*kerr.Error, now time.Time) (result CommitResult, kvs [][2][]byte, tps []TopicPartition, vals []Offset) {
	result = CommitResult{}
	for _, e := range commits {
		if err := rejected[e.tp]; err != nil {
			result[e.tp] = err
			continue
		}
		if c.b.Partition(e.tp.Topic, e.tp.Partition) == nil {
			result[e.tp] = kerr.UnknownTopicOrPartition
			continue
		}
		md := ""
		if e.metadata != nil {
			md = *e.metadata
		}
		if len(md) > c.settings.MaxMetadataBytes {
			result[e.tp] = kerr.OffsetMetadataTooLarge
			continue
		}
		o := Offset{Offset: e.offset, LeaderEpoch: e.leaderEpoch, Metadata: md, CommitTime: now.UnixMilli()}
		kvs = append(kvs, [2][]byte{mustJSON(recordKey{Type: "o", Group: group, Topic: e.tp.Topic, Partition: e.tp.Partition}), mustJSON(o)})
		tps = append(tps, e.tp)
		vals = append(vals, o)
	}
	return result, kvs, tps, vals
}

// FetchOffsets returns the committed offsets of a group; nil tps means
// all of them. A group that never committed has none (not an error).
func (c *Coordinator) FetchOffsets(group string, tps []TopicPartition) map[TopicPartition]Offset {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.mu.offsets[group]
	out := map[TopicPartition]Offset{}
	if tps == nil {
		for tp, o := range m {
			out[tp] = o
		}
		return out
	}
	for _, tp := range tps {
		if o, ok := m[tp]; ok {
			out[tp] = o
		}
	}
	return out
}

// GroupInfo is a snapshot of a group for DescribeGroups/ListGroups.
type GroupInfo struct {
	ID, State, ProtocolType, Protocol string
	Members                           []Member
	// Type is "consumer" for a KIP-848 group, "" for a classic one.
	Type string
	// SubscribedTopics are the topics the members of a KIP-848 group
	// subscribe to (by name, or by regex as resolved), sorted; a classic
	// group's are in its members' protocol metadata.
	SubscribedTopics []string
}

// Describe returns a snapshot of the group, or ok=false if it does not exist.
func (c *Coordinator) Describe(group string) (GroupInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if info, ok := c.describeConsumerLocked(group); ok {
		return info, true
	}
	g := c.mu.groups[group]
	if g == nil {
		if _, ok := c.mu.offsets[group]; ok {
			return GroupInfo{ID: group, State: "Empty"}, true
		}
		return GroupInfo{}, false
	}
	info := GroupInfo{ID: g.ID, State: g.State.String(), ProtocolType: g.ProtocolType, Protocol: g.Protocol}
	for _, m := range g.Members() {
		info.Members = append(info.Members, *m)
	}
	return info, true
}

// List returns every group, sorted by id.
func (c *Coordinator) List() []GroupInfo {
	c.mu.Lock()
	ids := map[string]bool{}
	for id := range c.mu.groups {
		ids[id] = true
	}
	for id := range c.mu.offsets {
		ids[id] = true
	}
	for id := range c.mu.consumers {
		ids[id] = true
	}
	c.mu.Unlock()
	var out []GroupInfo
	for id := range ids {
		if info, ok := c.Describe(id); ok {
			out = append(out, info)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// DeleteGroup removes an empty group and its offsets (DeleteGroups).
func (c *Coordinator) DeleteGroup(group string) *kerr.Error {
	c.mu.Lock()
	g := c.mu.groups[group]
	_, hasOffsets := c.mu.offsets[group]
	ckvs, isConsumer, consumerBusy := c.consumerDeleteLocked(group)
	if g == nil && !hasOffsets && !isConsumer {
		c.mu.Unlock()
		return kerr.GroupIDNotFound
	}
	if (g != nil && !g.IsEmpty()) || c.hasAnyPendingLocked(group) {
		c.mu.Unlock()
		return kerr.NonEmptyGroup
	}
	if consumerBusy {
		c.mu.Unlock()
		return kerr.NonEmptyGroup
	}
	kvs := [][2][]byte{{mustJSON(recordKey{Type: "g", Group: group}), nil}}
	kvs = append(kvs, ckvs...)
	for tp := range c.mu.offsets[group] {
		kvs = append(kvs, [2][]byte{mustJSON(recordKey{Type: "o", Group: group, Topic: tp.Topic, Partition: tp.Partition}), nil})
	}
	return c.writeTombstonesLocked(group, kvs, func() {
		delete(c.mu.groups, group)
		delete(c.mu.offsets, group)
		delete(c.mu.consumers, group)
	})
}

// DeleteOffsets removes committed offsets of partitions the group is not
// subscribed to (OffsetDelete). A subscribed topic gets
// GROUP_SUBSCRIBED_TO_TOPIC.
func (c *Coordinator) DeleteOffsets(group string, tps []TopicPartition, subscribed func(g *GroupInfo, topic string) bool) (*kerr.Error, map[TopicPartition]*kerr.Error) {
	info, ok := c.Describe(group)
	if !ok {
		return kerr.GroupIDNotFound, nil
	}
	res := map[TopicPartition]*kerr.Error{}
	var kvs [][2][]byte
	var del []TopicPartition
	for _, tp := range tps {
		if info.State != "Empty" && subscribed(&info, tp.Topic) {
			res[tp] = kerr.GroupSubscribedToTopic
			continue
		}
		res[tp] = nil
		kvs = append(kvs, [2][]byte{mustJSON(recordKey{Type: "o", Group: group, Topic: tp.Topic, Partition: tp.Partition}), nil})
		del = append(del, tp)
	}
	if len(kvs) > 0 {
		c.mu.Lock()
		err := c.writeTombstonesLocked(group, kvs, func() {
			for _, tp := range del {
				delete(c.mu.offsets[group], tp)
			}
		})
		if err != nil {
			return err, nil
		}
	}
	return nil, res
}

// writeTombstonesLocked enqueues kvs with mu held, releases mu, waits for
// durability and then runs apply under mu.
func (c *Coordinator) writeTombstonesLocked(group string, kvs [][2][]byte, apply func()) *kerr.Error {
	p := c.offsetsPartition(group)
	if p == nil {
		c.mu.Unlock()
		return kerr.CoordinatorNotAvailable
	}
	wait, pa := c.enqueueLocked(p, kvs, nil, c.clk.Now())
	c.mu.Unlock()
	res := <-wait
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.finishAppendLocked(pa)
	if res.Err != nil {
		return kerr.CoordinatorNotAvailable
	}
	apply()
	return nil
}

// expireOffsets removes the offsets of groups that have been empty longer
// than offsets.retention.minutes (and the groups themselves).
func (c *Coordinator) expireOffsets(now time.Time) {
	c.mu.Lock()
	var expired []string
	for id, m := range c.mu.offsets {
		g := c.mu.groups[id]
		if g != nil && !g.IsEmpty() || c.consumerActiveLocked(id) {
			continue
		}
		since := time.Time{}
		if g != nil {
			since = g.emptySince
		}
		for _, o := range m {
			if t := time.UnixMilli(o.CommitTime); t.After(since) {
				since = t
			}
		}
		if now.Sub(since) > c.settings.OffsetsRetention {
			expired = append(expired, id)
		}
	}
	c.mu.Unlock()
	for _, id := range expired {
		if err := c.DeleteGroup(id); err != nil && err != kerr.GroupIDNotFound {
			c.lg.Warn("expiring offsets failed", "group", id, "err", err)
		} else {
			c.lg.Info("expired offsets of empty group", "group", id)
		}
	}
}

var _ = strconv.Itoa
