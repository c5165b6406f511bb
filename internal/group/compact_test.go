package group

import (
	"encoding/json"
	"fmt"
	"github.com/oncelog/oncelog/internal/clock"
	"github.com/oncelog/oncelog/internal/compaction"
	"math/rand"
	randv2 "math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/oncelog/oncelog/internal/broker"
	"github.com/oncelog/oncelog/internal/config"
	"github.com/oncelog/oncelog/internal/vfs"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// compactEnv is a broker and a group coordinator on a MemFS.
type compactEnv struct {
	t   *testing.T
	fs  *vfs.MemFS
	clk *clock.Still
	b   *broker.Broker
	c   *Coordinator
}

const compactTestPartitions = 3

func openCompactEnv(t *testing.T, fs *vfs.MemFS, clk *clock.Still) *compactEnv {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = "/data"
	// The data directory exists before the broker starts (and survives
	// a crash), as on a real machine.
	if err := fs.MkdirAll(cfg.DataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := fs.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	b, err := broker.Open(broker.Options{Config: cfg, FS: fs, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if b.Topic("in") == nil {
		if _, perr := b.CreateTopic("in", 4, nil, false); perr != nil {
			t.Fatal(perr)
		}
		// Small segments, so that compaction deletes some.
		if _, perr := b.CreateInternalTopic(OffsetsTopic, compactTestPartitions, map[string]string{"retention.ms": "-1", "retention.bytes": "-1", "segment.bytes": "8192"}); perr != nil {
			t.Fatal(perr)
		}
	}
	s := DefaultSettings()
	s.InitialRebalanceDelay = 0
	c, err := New(Options{Broker: b, Clock: clk, Settings: s, Partitions: compactTestPartitions, Compaction: CompactSettings{MinRecords: -1}})
	if err != nil {
		t.Fatal(err)
	}
	return &compactEnv{t: t, fs: fs, clk: clk, b: b, c: c}
}

func (e *compactEnv) close() {
	e.c.Close()
	if err := e.b.Close(); err != nil {
		e.t.Fatal(err)
	}
}

func (e *compactEnv) commit(group string, tps []TopicPartition, offset int64) {
	e.t.Helper()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.Generation = group, -1
	for _, tp := range tps {
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = tp.Topic
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = tp.Partition, offset
		md := fmt.Sprintf("md-%d", offset)
		rp.Metadata = &md
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
	}
	topErr, wait := e.c.Commit(req)
	if topErr != nil {
		e.t.Fatal(topErr)
	}
	for tp, err := range wait() {
		if err != nil {
			e.t.Fatalf("%v: %v", tp, err)
		}
	}
}

// txnCommit writes a transactional offset commit of pid (the transaction
// coordinator's verification is taken as passed).
func (e *compactEnv) txnCommit(group string, pid int64, tp TopicPartition, offset int64) {
	e.t.Helper()
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.Group, req.ProducerID, req.ProducerEpoch, req.Generation = group, pid, 0, -1
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = tp.Topic
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset = tp.Partition, offset
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	topErr, wait := e.c.TxnCommit(req, func(_ int32, enqueue func()) *kerr.Error { enqueue(); return nil })
	if topErr != nil {
		e.t.Fatal(topErr)
	}
	for tp, err := range wait() {
		if err != nil {
			e.t.Fatalf("%v: %v", tp, err)
		}
	}
}

// marker ends pid's transaction on the group's offsets partition, as the
// transaction coordinator does.
func (e *compactEnv) marker(group string, pid int64, commit bool) {
	e.t.Helper()
	idx := e.c.PartitionFor(group)
	res := e.b.Partition(OffsetsTopic, idx).AppendMarker(pid, 0, commit, e.clk.Now().UnixMilli())
	if res.Err != nil {
		e.t.Fatal(res.Err)
	}
	e.c.CompleteTxn(idx, pid, commit, res.BaseOffset)
}

// join makes a classic group of one member that completed a rebalance (its
// metadata record is written at SyncGroup).
func (e *compactEnv) join(group string) {
	e.t.Helper()
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = 3
	req.Group, req.ProtocolType = group, "consumer"
	req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 30000, 30000
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name, p.Metadata = "range", []byte{1}
	req.Protocols = append(req.Protocols, p)
	got := make(chan *kmsg.JoinGroupResponse, 1)
	e.c.Join(req, "client", "host", func(r *kmsg.JoinGroupResponse) { got <- r })
	var jr *kmsg.JoinGroupResponse
	for i := 0; jr == nil; i++ {
		select {
		case jr = <-got:
		default:
			if i == 100 {
				e.t.Fatalf("join %s: no answer", group)
			}
			// Replies come synchronously from Tick: deterministic.
			e.c.Tick(e.clk.Now())
			if len(got) == 0 {
				e.clk.Advance(time.Second)
			}
		}
	}
	if jr.ErrorCode != 0 {
		e.t.Fatalf("join %s: %v", group, kerr.ErrorForCode(jr.ErrorCode))
	}
	sreq := kmsg.NewPtrSyncGroupRequest()
	sreq.Group, sreq.Generation, sreq.MemberID = group, jr.Generation, jr.MemberID
	a := kmsg.NewSyncGroupRequestGroupAssignment()
	a.MemberID, a.MemberAssignment = jr.MemberID, []byte{2}
	sreq.GroupAssignment = append(sreq.GroupAssignment, a)
	sgot := make(chan *kmsg.SyncGroupResponse, 1)
	e.c.Sync(sreq, func(r *kmsg.SyncGroupResponse) { sgot <- r })
	if r := <-sgot; r.ErrorCode != 0 {
		e.t.Fatalf("sync %s: %v", group, kerr.ErrorForCode(r.ErrorCode))
	}
}

// heartbeat joins member to KIP-848 group (epoch 0) or heartbeats; it
// returns the epoch to use next (0 after an error: join again).
func (e *compactEnv) heartbeat(group string, member string, epoch int32) int32 {
	e.t.Helper()
	req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	req.Group, req.MemberID, req.MemberEpoch, req.RebalanceTimeoutMillis = group, member, epoch, 30000
	if epoch == 0 {
		req.SubscribedTopicNames = []string{"in"}
		req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
	}
	resp := e.c.ConsumerHeartbeat(req, "client", "host")()
	if resp.ErrorCode != 0 {
		return 0
	}
	return resp.MemberEpoch
}

// lineDiff shows the lines only in a ("-") or only in b ("+").
func lineDiff(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	var out []string
	for l := range ma {
		if !mb[l] {
			out = append(out, "- "+l)
		}
	}
	for l := range mb {
		if !ma[l] {
			out = append(out, "+ "+l)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// dump is the coordinator's durable state in a canonical form: what a
// restart must load. Classic member ids are random: normalize leaves them
// out, to compare two brokers.
func (c *Coordinator) dump(normalize ...bool) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var lines []string
	for id, g := range c.mu.groups {
		if g.Generation == 0 && g.IsEmpty() {
			continue // never persisted
		}
		var ms []string
		for _, m := range g.Members() {
			ms = append(ms, m.ID)
		}
		leader := g.Leader
		if len(normalize) > 0 {
			ms, leader = []string{fmt.Sprint(len(ms))}, fmt.Sprint(leader != "")
		}
		lines = append(lines, fmt.Sprintf("group %s %s/%s gen=%d leader=%s members=%v", id, g.ProtocolType, g.Protocol, g.Generation, leader, ms))
	}
	for id, g := range c.mu.consumers {
		var ms []string
		for _, m := range g.Members() {
			b, _ := json.Marshal(m)
			ms = append(ms, string(b))
		}
		lines = append(lines, fmt.Sprintf("consumer %s epoch=%d/%d members=%v", id, g.GroupEpoch, g.AssignmentEpoch, ms))
	}
	for id, m := range c.mu.offsets {
		for tp, o := range m {
			lines = append(lines, fmt.Sprintf("offset %s %s/%d %d %q %d", id, tp.Topic, tp.Partition, o.Offset, o.Metadata, o.CommitTime))
		}
	}
	for pid, byGroup := range c.mu.txn.pending {
		for g, m := range byGroup {
			for tp, o := range m {
				lines = append(lines, fmt.Sprintf("pending %d %s %s/%d %d", pid, g, tp.Topic, tp.Partition, o.Offset))
			}
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// workload drives a seeded mix of commits with overwrites, deletions,
// classic and KIP-848 groups and transactional commits, calling between
// each step (compaction, or nothing). It leaves one transaction open.
func (e *compactEnv) workload(seed int64, steps int, between func(step int)) {
	rng := rand.New(rand.NewSource(seed))
	tpsOf := func() []TopicPartition {
		n := 1 + rng.Intn(4)
		var out []TopicPartition
		for p := 0; p < n; p++ {
			out = append(out, TopicPartition{"in", int32(p)})
		}
		return out
	}
	type openTxn struct {
		group string
		pid   int64
	}
	var open []openTxn
	epochs := map[string]int32{}
	joined := map[string]bool{}
	for i := 0; i < steps; i++ {
		e.clk.Advance(time.Second)
		g := fmt.Sprintf("g%02d", rng.Intn(40))
		switch r := rng.Intn(100); {
		case r < 60:
			e.commit(g, tpsOf(), int64(i))
		case r < 64:
			if err := e.c.DeleteGroup(g); err != nil && err != kerr.GroupIDNotFound && err != kerr.NonEmptyGroup {
				e.t.Fatal(err)
			}
		case r < 68:
			e.c.DeleteOffsets(g, []TopicPartition{{"in", 0}}, func(*GroupInfo, string) bool { return false })
		case r < 72:
			if !joined["c"+g] {
				joined["c"+g] = true
				e.join("c" + g)
			}
		case r < 80:
			cg := "k" + g
			m := fmt.Sprintf("m-%s-%d", cg, rng.Intn(2))
			epochs[m] = e.heartbeat(cg, m, epochs[m])
		default:
			// Transactions stay open across steps (and compactions)
			// now and then; a later step ends them.
			if len(open) > 0 && rng.Intn(2) == 0 {
				o := open[0]
				open = open[1:]
				e.marker(o.group, o.pid, rng.Intn(3) > 0)
				break
			}
			pid := int64(1000 + i)
			tg := "t" + g
			e.txnCommit(tg, pid, TopicPartition{"in", int32(rng.Intn(4))}, int64(i))
			if rng.Intn(2) == 0 {
				open = append(open, openTxn{tg, pid})
			} else {
				e.marker(tg, pid, rng.Intn(3) > 0)
			}
		}
		if between != nil {
			between(i)
		}
	}
	for _, o := range open {
		e.marker(o.group, o.pid, true)
	}
	e.txnCommit("tg-open", 99, TopicPartition{"in", 1}, 12345)
}

func (e *compactEnv) compactAll() []CompactResult {
	e.t.Helper()
	var out []CompactResult
	for i := int32(0); i < compactTestPartitions; i++ {
		res, err := e.c.compactPartition(e.b.Partition(OffsetsTopic, i))
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, res)
	}
	return out
}

// TestCompactionKeepsState: the same seeded workload on two brokers, one
// compacting its offsets log every 25 steps and one never; after a restart
// (clean, and from a crash image) both load the same state, which is the
// state before the restart, while the compacted log is much smaller and
// replays far fewer records.
func TestCompactionKeepsState(t *testing.T) {
	const steps = 1500
	fsA, fsB := vfs.NewMemFS(), vfs.NewMemFS()
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	a := openCompactEnv(t, fsA, clock.NewStill(start))
	b := openCompactEnv(t, fsB, clock.NewStill(start))
	moved := 0
	a.workload(7, steps, func(i int) {
		if i%25 == 24 {
			for _, r := range a.compactAll() {
				if r.NewStart > r.OldStart {
					moved++
				}
			}
		}
	})
	// With the transaction open: the log start stays at or below it.
	for _, r := range a.compactAll() {
		if r.Partition == a.c.PartitionFor("tg-open") && r.NewStart > a.b.Partition(OffsetsTopic, r.Partition).Offsets().LastStableOffset {
			t.Fatalf("log start %d passed the open transaction", r.NewStart)
		}
	}
	b.workload(7, steps, nil)
	before := a.c.dump()
	if got, want := a.c.dump(true), b.c.dump(true); got != want {
		t.Fatalf("live states differ:\n%s", lineDiff(got, want))
	}
	if !strings.Contains(before, "pending 99 tg-open") {
		t.Fatalf("the open transaction's offset is not pending:\n%s", before)
	}
	if moved == 0 {
		t.Fatal("no compaction moved a log start")
	}
	sizeA, recsA := compaction.TopicSize(a.b.Topic(OffsetsTopic))
	sizeB, recsB := compaction.TopicSize(b.b.Topic(OffsetsTopic))
	t.Logf("offsets log: compacted %d bytes, %d records from log start; never compacted %d bytes, %d records", sizeA, recsA, sizeB, recsB)
	if sizeA*2 > sizeB || recsA*2 > recsB {
		t.Fatalf("compaction did not shrink the log: %d bytes / %d records vs %d / %d", sizeA, recsA, sizeB, recsB)
	}

	crashA := fsA.CrashClone(nil)
	a.close()
	b.close()
	images := []struct {
		name string
		fs   *vfs.MemFS
	}{{"clean", fsA.CrashClone(nil)}, {"crash", crashA}}
	for _, im := range images {
		name := im.name
		a2 := openCompactEnv(t, im.fs, clock.NewStill(start.Add(steps*time.Second)))
		b2 := openCompactEnv(t, fsB.CrashClone(nil), clock.NewStill(start.Add(steps*time.Second)))
		if got, want := a2.c.dump(true), b2.c.dump(true); got != want {
			t.Fatalf("%s restart: compacted log (-) vs never-compacted log (+):\n%s", name, lineDiff(got, want))
		}
		if got := a2.c.dump(); got != before {
			t.Fatalf("%s restart: loaded (-) vs before the restart (+):\n%s", name, lineDiff(got, before))
		}
		// The open transaction's records survived: its commit marker
		// still finds them.
		a2.marker("tg-open", 99, true)
		b2.marker("tg-open", 99, true)
		if got, want := a2.c.dump(true), b2.c.dump(true); got != want || !strings.Contains(got, "offset tg-open in/1 12345") {
			t.Fatalf("%s restart, after the open transaction committed:\n%s\nwant\n%s", name, got, want)
		}
		a2.close()
		b2.close()
	}
}

// TestCompactionCrashBeforeStartMoves: a crash after the copies are
// durable and before the log start moves loads the same state (the old
// records are there, the copies are newer copies of the same values).
func TestCompactionCrashBeforeStartMoves(t *testing.T) {
	fs := vfs.NewMemFS()
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	e := openCompactEnv(t, fs, clock.NewStill(start))
	e.workload(11, 600, nil)
	want := e.c.dump()
	var crashes []*vfs.MemFS
	rng := randv2.New(randv2.NewPCG(3, 3))
	compactTestHook = func(stage string) {
		// A clean image, and one with a random prefix of the unsynced
		// writes (torn).
		crashes = append(crashes, fs.CrashClone(nil), fs.CrashClone(rng))
	}
	defer func() { compactTestHook = nil }()
	e.compactAll()
	compactTestHook = nil
	if len(crashes) == 0 {
		t.Fatal("the hook never ran")
	}
	e.close()
	for i, cfs := range crashes {
		e2 := openCompactEnv(t, cfs, clock.NewStill(start.Add(time.Hour)))
		if got := e2.c.dump(); got != want {
			t.Fatalf("crash image %d: loaded (-) vs before (+):\n%s", i, lineDiff(got, want))
		}
		e2.close()
	}
}

// TestCompactionSkipsKeysInFlight: an offset whose commit is in flight
// (enqueued, its outcome not yet applied) is not copied, and the log start
// stays at or below its record.
func TestCompactionSkipsKeysInFlight(t *testing.T) {
	fs := vfs.NewMemFS()
	e := openCompactEnv(t, fs, clock.NewStill(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)))
	defer e.close()
	for i := int64(0); i < 200; i++ {
		e.commit("g", []TopicPartition{{"in", 0}, {"in", 1}}, i)
	}
	p := e.c.offsetsPartition("g")
	// A commit in flight for in/0: enqueue by hand, as Commit does, and
	// hold back its outcome.
	e.c.mu.Lock()
	o := Offset{Offset: 999, CommitTime: 1}
	wait, pa := e.c.enqueueLocked(p, [][2][]byte{{mustJSON(recordKey{Type: "o", Group: "g", Topic: "in", Partition: 0}), mustJSON(o)}}, nil, e.clk.Now())
	e.c.mu.Unlock()
	res := <-wait
	go func() {
		time.Sleep(50 * time.Millisecond)
		e.c.mu.Lock()
		o.logOffset = res.BaseOffset
		e.c.setOffsetLocked("g", TopicPartition{"in", 0}, o)
		e.c.finishAppendLocked(pa)
		e.c.mu.Unlock()
	}()
	r, err := e.c.compactPartition(p)
	if err != nil {
		t.Fatal(err)
	}
	if r.Records != 1 {
		t.Fatalf("copied %d records, want 1 (in/1 only)", r.Records)
	}
	if r.NewStart > res.BaseOffset {
		t.Fatalf("log start %d passed the in-flight commit at %d", r.NewStart, res.BaseOffset)
	}
	if got := e.c.FetchOffsets("g", nil)[TopicPartition{"in", 0}].Offset; got != 999 {
		t.Fatalf("in/0 = %d", got)
	}
}

// TestMaybeCompactTrigger: the timer loop's check compacts a partition
// once it holds more than max(MinRecords, 4 * live) records, and leaves it
// alone right after.
func TestMaybeCompactTrigger(t *testing.T) {
	fs := vfs.NewMemFS()
	e := openCompactEnv(t, fs, clock.NewStill(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)))
	defer e.close()
	e.c.compactSettings.MinRecords = 100
	run := func() {
		e.c.maybeCompact()
		e.c.compactWG.Wait()
	}
	p := e.c.offsetsPartition("g")
	for i := int64(0); i < 45; i++ {
		e.commit("g", []TopicPartition{{"in", 0}, {"in", 1}}, i) // 2 live keys, 90 records
	}
	run()
	if s := p.Offsets().LogStartOffset; s != 0 {
		t.Fatalf("compacted below the floor: log start %d", s)
	}
	for i := int64(0); i < 10; i++ {
		e.commit("g", []TopicPartition{{"in", 0}, {"in", 1}}, i)
	}
	run()
	s := p.Offsets().LogStartOffset
	if s != 110 {
		t.Fatalf("log start %d, want 110 (the copies)", s)
	}
	run()
	if got := p.Offsets().LogStartOffset; got != s {
		t.Fatalf("compacted again right away: %d", got)
	}
}
