package test

// Restarts of the group coordinator: committed offsets and group metadata
// are rebuilt from __consumer_offsets, after a clean stop (embed Close) and
// after SIGKILL of the real `oncelog serve` process.

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/oncelog/oncelog/embed"
	"github.com/oncelog/oncelog/internal/testbroker"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestMain removes the oncelog binary testbroker builds for the SIGKILL
// tests.
func TestMain(m *testing.M) { testbroker.Main(m) }

var groupRestartSettings = map[string]string{"group.initial.rebalance.delay.ms": "0"}

func startEmbedAt(t *testing.T, dir, addr string) *embed.Broker {
	t.Helper()
	b, err := embed.Start(embed.Options{DataDir: dir, Listen: addr, Settings: groupRestartSettings})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func restartClient(t *testing.T, addr string, opts ...kgo.Opt) (*kgo.Client, *kadm.Client) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl, kadm.NewClient(cl)
}

func createTopic(t *testing.T, ctx context.Context, adm *kadm.Client, topic string, partitions int32) {
	t.Helper()
	resp, err := adm.CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
}

// committer commits offsets of its partitions one request at a time and
// records what was sent and what was acknowledged.
type committer struct {
	mu    sync.Mutex
	acked map[int32]int64 // last acknowledged offset per partition
	sent  map[int32]int64 // last offset sent per partition
}

func newCommitter() *committer {
	return &committer{acked: map[int32]int64{}, sent: map[int32]int64{}}
}

// commit sends one commit of offset for partition p and records it if acknowledged.
func (c *committer) commit(ctx context.Context, adm *kadm.Client, group, topic string, p int32, offset int64) error {
	c.mu.Lock()
	c.sent[p] = offset
	c.mu.Unlock()
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: topic, Partition: p, At: offset, LeaderEpoch: -1, Metadata: fmt.Sprintf("m%d", offset)})
	resp, err := adm.CommitOffsets(ctx, group, os)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.acked[p] = offset
	c.mu.Unlock()
	return nil
}

// fetchCommitted asks OffsetFetch for every partition of topic.
func fetchCommitted(t *testing.T, ctx context.Context, adm *kadm.Client, group, topic string, partitions int32) map[int32]kadm.OffsetResponse {
	t.Helper()
	resps, err := adm.FetchOffsetsForTopics(ctx, group, topic)
	if err != nil {
		t.Fatalf("fetch offsets of %s: %v", group, err)
	}
	out := map[int32]kadm.OffsetResponse{}
	for p := range partitions {
		o, ok := resps.Lookup(topic, p)
		if !ok {
			t.Fatalf("fetch offsets of %s: no answer for %s/%d", group, topic, p)
		}
		if o.Err != nil {
			t.Fatalf("fetch offsets of %s %s/%d: %v", group, topic, p, o.Err)
		}
		out[p] = o
	}
	return out
}

// TestGroupOffsetsSurviveRestart commits through kadm (simple commits) and
// through a live group member, stops the broker cleanly and restarts it on
// the same data directory and address: OffsetFetch returns exactly the last
// acknowledged commit of every partition, and DescribeGroups still shows
// the Stable group with its member, which goes on heartbeating.
func TestGroupOffsetsSurviveRestart(t *testing.T) {
	dir, addr := t.TempDir(), testbroker.FreeAddr(t)
	b := startEmbedAt(t, dir, addr)
	t.Cleanup(func() { b.Close() })
	ctx := testCtx(t)
	_, adm := restartClient(t, addr)
	const topic, partitions = "restart-offsets", int32(8)
	createTopic(t, ctx, adm, topic, partitions)

	// Simple commits: four goroutines, two partitions each, 25 rounds.
	com := newCommitter()
	var wg sync.WaitGroup
	for w := range int32(4) {
		wg.Go(func() {
			for round := range int64(25) {
				for _, p := range []int32{2 * w, 2*w + 1} {
					if err := com.commit(ctx, adm, "simple", topic, p, round*10+int64(p)); err != nil {
						t.Errorf("commit %d: %v", p, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()

	// A group member that consumed and committed, still in the group.
	produceN(t, addr, topic, 0, 200)
	var consumed sync.Map
	member, _ := restartClient(t, addr,
		kgo.ConsumerGroup("members"), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.SessionTimeout(10*time.Second), kgo.HeartbeatInterval(200*time.Millisecond))
	n := 0
	for n < 200 {
		fs := member.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of 200: %v", n, err)
		}
		fs.EachRecord(func(r *kgo.Record) { consumed.Store(fmt.Sprint(r.Partition, r.Offset), true); n++ })
	}
	if err := member.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	memberCommitted := member.CommittedOffsets()
	before := describeOne(t, ctx, adm, "members")
	if before.State != "Stable" || len(before.Members) != 1 {
		t.Fatalf("before restart: group %+v", before)
	}

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = startEmbedAt(t, dir, addr)

	got := fetchCommitted(t, ctx, adm, "simple", topic, partitions)
	for p := range partitions {
		want := com.acked[p]
		if got[p].At != want || got[p].Metadata != fmt.Sprintf("m%d", want) {
			t.Errorf("simple %s/%d after restart: offset %d metadata %q, want %d", topic, p, got[p].At, got[p].Metadata, want)
		}
	}
	got = fetchCommitted(t, ctx, adm, "members", topic, partitions)
	for p := range partitions {
		want := int64(-1)
		if eo, ok := memberCommitted[topic][p]; ok {
			want = eo.Offset
		}
		if got[p].At != want {
			t.Errorf("members %s/%d after restart: offset %d, want %d", topic, p, got[p].At, want)
		}
	}

	after := describeOne(t, ctx, adm, "members")
	if after.State != "Stable" || after.Protocol != before.Protocol || after.ProtocolType != "consumer" ||
		len(after.Members) != 1 || after.Members[0].MemberID != before.Members[0].MemberID {
		t.Fatalf("after restart: group %+v, before %+v", after, before)
	}
	// The member reconnects and is still a member a few sessions later
	// (its heartbeats are accepted by the restarted coordinator).
	time.Sleep(time.Second)
	if again := describeOne(t, ctx, adm, "members"); again.State != "Stable" || len(again.Members) != 1 ||
		again.Members[0].MemberID != before.Members[0].MemberID {
		t.Fatalf("a second after restart: group %+v", again)
	}

	// A group that never committed: offset -1, no error.
	for p, o := range fetchCommitted(t, ctx, adm, "never-committed", topic, partitions) {
		if o.At != -1 {
			t.Errorf("never-committed %s/%d: offset %d, want -1", topic, p, o.At)
		}
	}
}

func describeOne(t *testing.T, ctx context.Context, adm *kadm.Client, group string) kadm.DescribedGroup {
	t.Helper()
	ds, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	d, ok := ds[group]
	if !ok || d.Err != nil {
		t.Fatalf("describe %s: %v (found %v)", group, d.Err, ok)
	}
	return d
}

// TestGroupOffsetFetchNeverCommitted asks with the raw request, v7 (one
// group) and v8 (batched), for partitions of a group that does not exist:
// each gets offset -1 and no error, and so does the group.
func TestGroupOffsetFetchNeverCommitted(t *testing.T) {
	b := startBroker(t, groupRestartSettings)
	ctx := testCtx(t)
	cl, adm := restartClient(t, b.Addr())
	createTopic(t, ctx, adm, "nc", 3)

	v7 := kmsg.NewPtrOffsetFetchRequest()
	v7.Version = 7
	v7.Group = "nobody-here"
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic, rt.Partitions = "nc", []int32{0, 1, 2}
	v7.Topics = append(v7.Topics, rt)
	r7, err := v7.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if r7.ErrorCode != 0 || len(r7.Topics) != 1 || len(r7.Topics[0].Partitions) != 3 {
		t.Fatalf("v7: %+v", r7)
	}
	for _, p := range r7.Topics[0].Partitions {
		if p.ErrorCode != 0 || p.Offset != -1 {
			t.Errorf("v7 partition %d: offset %d error %v", p.Partition, p.Offset, kerr.ErrorForCode(p.ErrorCode))
		}
	}

	v8 := kmsg.NewPtrOffsetFetchRequest()
	v8.Version = 8
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = "nobody-here"
	gt := kmsg.NewOffsetFetchRequestGroupTopic()
	gt.Topic, gt.Partitions = "nc", []int32{0, 1, 2}
	rg.Topics = append(rg.Topics, gt)
	v8.Groups = append(v8.Groups, rg)
	r8, err := v8.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(r8.Groups) != 1 || r8.Groups[0].ErrorCode != 0 || len(r8.Groups[0].Topics) != 1 {
		t.Fatalf("v8: %+v", r8)
	}
	for _, p := range r8.Groups[0].Topics[0].Partitions {
		if p.ErrorCode != 0 || p.Offset != -1 {
			t.Errorf("v8 partition %d: offset %d error %v", p.Partition, p.Offset, kerr.ErrorForCode(p.ErrorCode))
		}
	}
}

// TestGroupStaticReplacementSurvivesRestart is the regression test of a
// bug found by the golden tests (internal/group/testdata/static.txt):
//
//  1. Static members a (instance ia, leader) and b (instance ib) form a
//     Stable group.
//  2. b restarts: a new process joins with no member id and instance ib.
//     The coordinator gives it a new member id b' and, since the group is
//     Stable and b a follower with unchanged metadata, its old assignment
//     without a rebalance.
//  3. The broker restarts. The group is rebuilt from its last metadata
//     record, which named b's old id unless the replacement was written.
//  4. b' heartbeats with instance ib: it was answered FENCED_INSTANCE_ID
//     (the rebuilt group mapped ib to the old id), a fatal error for a
//     static member. Now the replacement is persisted before the answer.
func TestGroupStaticReplacementSurvivesRestart(t *testing.T) {
	dir, addr := t.TempDir(), testbroker.FreeAddr(t)
	b := startEmbedAt(t, dir, addr)
	t.Cleanup(func() { b.Close() })
	ctx := testCtx(t)
	// One client per member: JoinGroup waits, and a connection answers in
	// order.
	ca, _ := restartClient(t, addr)
	cb, _ := restartClient(t, addr)

	join := func(cl *kgo.Client, member, instance string) *kmsg.JoinGroupResponse {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Version = 5
		req.Group, req.MemberID, req.InstanceID = "static", member, &instance
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 30000, 30000
		req.ProtocolType = "consumer"
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", []byte("meta")
		req.Protocols = append(req.Protocols, p)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			t.Fatalf("join %s/%s: %v", member, instance, err)
		}
		return resp
	}
	syncGroup := func(cl *kgo.Client, member, instance string, gen int32, assign map[string]string) []byte {
		req := kmsg.NewPtrSyncGroupRequest()
		req.Version = 3
		req.Group, req.MemberID, req.InstanceID, req.Generation = "static", member, &instance, gen
		for id, a := range assign {
			sa := kmsg.NewSyncGroupRequestGroupAssignment()
			sa.MemberID, sa.MemberAssignment = id, []byte(a)
			req.GroupAssignment = append(req.GroupAssignment, sa)
		}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			t.Fatalf("sync %s: %v", member, err)
		}
		return resp.MemberAssignment
	}
	heartbeat := func(cl *kgo.Client, member, instance string, gen int32) error {
		req := kmsg.NewPtrHeartbeatRequest()
		req.Version = 3
		req.Group, req.MemberID, req.InstanceID, req.Generation = "static", member, &instance, gen
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return kerr.ErrorForCode(resp.ErrorCode)
	}

	a1 := join(ca, "", "ia") // alone: generation 1 at once
	bDone := make(chan *kmsg.JoinGroupResponse, 1)
	go func() { bDone <- join(cb, "", "ib") }()
	// Wait until b's join has started the rebalance, then a rejoins.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if heartbeat(ca, a1.MemberID, "ia", a1.Generation) == kerr.RebalanceInProgress {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b's join did not start a rebalance")
		}
		time.Sleep(20 * time.Millisecond)
	}
	a2 := join(ca, a1.MemberID, "ia")
	b1 := <-bDone
	if a2.LeaderID != a1.MemberID || a2.Generation != b1.Generation {
		t.Fatalf("join answers: a %+v, b %+v", a2, b1)
	}
	gen := a2.Generation
	syncB := make(chan []byte, 1)
	go func() { syncB <- syncGroup(cb, b1.MemberID, "ib", gen, nil) }()
	syncGroup(ca, a1.MemberID, "ia", gen, map[string]string{a1.MemberID: "PA", b1.MemberID: "PB"})
	if got := string(<-syncB); got != "PB" {
		t.Fatalf("b's assignment %q", got)
	}

	// b restarts as b'.
	cb2, _ := restartClient(t, addr)
	b2 := join(cb2, "", "ib")
	if b2.MemberID == b1.MemberID || b2.Generation != gen {
		t.Fatalf("replacement join: %+v", b2)
	}
	if got := string(syncGroup(cb2, b2.MemberID, "ib", gen, nil)); got != "PB" {
		t.Fatalf("b' assignment %q, want b's PB", got)
	}

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = startEmbedAt(t, dir, addr)

	if err := heartbeat(cb2, b2.MemberID, "ib", gen); err != nil {
		t.Fatalf("b' heartbeat after restart: %v", err)
	}
	if err := heartbeat(cb, b1.MemberID, "ib", gen); err != kerr.FencedInstanceID {
		t.Fatalf("old b heartbeat after restart: %v, want FENCED_INSTANCE_ID", err)
	}
	if err := heartbeat(ca, a1.MemberID, "ia", gen); err != nil {
		t.Fatalf("a heartbeat after restart: %v", err)
	}
}

// TestGroupOffsetsSurviveSIGKILL commits offsets with kadm from eight
// goroutines, one partition each, against the real broker process, and
// SIGKILLs it twice:
//
//  1. after the committers stopped: OffsetFetch after the restart returns
//     exactly the last acknowledged commit of every partition;
//  2. while they commit: every partition has its last acknowledged commit
//     or the one in flight at the kill (durable but not yet answered), never
//     anything older.
//
// A group with a live member is described after each restart: its
// metadata survives.
func TestGroupOffsetsSurviveSIGKILL(t *testing.T) {
	bp := testbroker.Start(t, testbroker.Options{Settings: groupRestartSettings})
	addr := bp.Addr
	ctx := testCtx(t)
	_, adm := restartClient(t, addr, kgo.RetryTimeout(20*time.Second))
	const topic, partitions = "kill-offsets", int32(8)
	createTopic(t, ctx, adm, topic, partitions)

	member, _ := restartClient(t, addr,
		kgo.ConsumerGroup("kill-members"), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.SessionTimeout(30*time.Second), kgo.HeartbeatInterval(200*time.Millisecond))
	produceN(t, addr, topic, 0, 80)
	for n := 0; n < 80; {
		fs := member.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of 80: %v", n, err)
		}
		n += fs.NumRecords()
	}
	if err := member.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	memberID := describeOne(t, ctx, adm, "kill-members").Members[0].MemberID

	com := newCommitter()
	run := func(stop <-chan struct{}, rounds int64) *sync.WaitGroup {
		var wg sync.WaitGroup
		for p := range partitions {
			wg.Go(func() {
				for round := int64(1); rounds == 0 || round <= rounds; round++ {
					select {
					case <-stop:
						return
					default:
					}
					if err := com.commit(ctx, adm, "killed", topic, p, round*100+int64(p)); err != nil {
						return // the broker was killed under it
					}
				}
			})
		}
		return &wg
	}
	checkMember := func(when string) {
		d := describeOne(t, ctx, adm, "kill-members")
		if d.State != "Stable" || len(d.Members) != 1 || d.Members[0].MemberID != memberID {
			t.Fatalf("%s: group %+v, want Stable with member %s", when, d, memberID)
		}
	}

	// 1. Quiet kill.
	run(nil, 30).Wait()
	bp.Kill()
	bp.Start()
	got := fetchCommitted(t, ctx, adm, "killed", topic, partitions)
	for p := range partitions {
		if want := com.acked[p]; got[p].At != want {
			t.Errorf("after quiet kill %s/%d: offset %d, want the last acknowledged %d", topic, p, got[p].At, want)
		}
	}
	checkMember("after quiet kill")

	// 2. Kill under load.
	stop := make(chan struct{})
	wg := run(stop, 0)
	time.Sleep(500 * time.Millisecond)
	bp.Kill()
	close(stop)
	wg.Wait()
	com.mu.Lock()
	acked, sent := map[int32]int64{}, map[int32]int64{}
	for p := range partitions {
		acked[p], sent[p] = com.acked[p], com.sent[p]
	}
	com.mu.Unlock()
	bp.Start()
	got = fetchCommitted(t, ctx, adm, "killed", topic, partitions)
	for p := range partitions {
		if o := got[p].At; o != acked[p] && o != sent[p] {
			t.Errorf("after kill under load %s/%d: offset %d, want the last acknowledged %d or the one in flight %d", topic, p, o, acked[p], sent[p])
		}
	}
	checkMember("after kill under load")
}
