package test

// End-to-end tests of KIP-848 consumer groups with franz-go's
// ServerSideBalancer: the broker assigns, members reconcile through
// ConsumerGroupHeartbeat, and commits are checked by member epoch.

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// group848Member is groupMember (group_test.go) on the new protocol: it
// commits after every poll and before every revocation.
func group848Member(t *testing.T, addr, groupID, topic string, balancer kgo.GroupBalancer, l *groupLedger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.ConsumerGroup(groupID),
		kgo.ConsumeTopics(topic),
		kgo.Balancers(balancer),
		kgo.ServerSideBalancer(),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(func(ctx context.Context, c *kgo.Client, _ map[string][]int32) {
			if err := c.CommitUncommittedOffsets(ctx); err != nil {
				t.Errorf("commit on revoke: %v", err)
			}
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) { l.add(r.Partition, r.Offset) })
			if err := cl.CommitUncommittedOffsets(context.Background()); err != nil && ctx.Err() == nil {
				t.Errorf("commit: %v", err)
			}
			cl.AllowRebalance()
		}
	}()
	return func() {
		cancel()
		<-done
		cl.Close() // leaves with member epoch -1
	}
}

func describe848(t *testing.T, adm *kgo.Client, group string) kmsg.ConsumerGroupDescribeResponseGroup {
	t.Helper()
	req := kmsg.NewPtrConsumerGroupDescribeRequest()
	req.Groups = []string{group}
	resp, err := req.RequestWith(context.Background(), adm)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Groups[0]
}

func testGroup848Rebalances(t *testing.T, balancer kgo.GroupBalancer, assignor string) {
	b := startBroker(t, nil)
	adm, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ctx := context.Background()
	const topic, parts, per = "group848-topic", 12, 3000
	if _, err := kadm.NewClient(adm).CreateTopic(ctx, parts, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	l := &groupLedger{seen: map[int32][]int64{}}
	stop1 := group848Member(t, b.Addr(), "g", topic, balancer, l)
	stop2 := group848Member(t, b.Addr(), "g", topic, balancer, l)
	stop3 := group848Member(t, b.Addr(), "g", topic, balancer, l)
	produceN(t, b.Addr(), topic, 0, per)
	waitTotal(t, l, per)

	d := describe848(t, adm, "g")
	if d.ErrorCode != 0 || d.AssignorName != assignor || len(d.Members) != 3 {
		t.Fatalf("ConsumerGroupDescribe: error %d, assignor %q, %d members; want 0, %q, 3", d.ErrorCode, d.AssignorName, len(d.Members), assignor)
	}

	stop3() // one leaves
	produceN(t, b.Addr(), topic, per, per)
	waitTotal(t, l, 2*per)

	stop4 := group848Member(t, b.Addr(), "g", topic, balancer, l) // one joins
	time.Sleep(500 * time.Millisecond)
	produceN(t, b.Addr(), topic, 2*per, per)
	waitTotal(t, l, 3*per)

	// ListGroups shows the group as a consumer group.
	listed, err := kadm.NewClient(adm).ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if lg, ok := listed["g"]; !ok || lg.ProtocolType != "consumer" || lg.GroupType != "consumer" {
		t.Errorf("ListGroups: %+v", listed)
	}
	stop1()
	stop2()
	stop4()

	checkExactlyOnceAndCommitted(t, adm, l, "g", topic, parts, 3*per)
	if d := describe848(t, adm, "g"); d.State != "Empty" {
		t.Errorf("after every member left: state %q, want Empty", d.State)
	}
}

func TestGroup848Uniform(t *testing.T) {
	testGroup848Rebalances(t, kgo.CooperativeStickyBalancer(), "uniform")
}

func TestGroup848Range(t *testing.T) { testGroup848Rebalances(t, kgo.RangeBalancer(), "range") }

// TestGroup848ClassicIDsApart: a group id held by a live classic group
// cannot be joined with ConsumerGroupHeartbeat, and vice versa.
func TestGroup848ClassicIDsApart(t *testing.T) {
	b := startBroker(t, map[string]string{"group.initial.rebalance.delay.ms": "0"})
	adm, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ctx := context.Background()
	if _, err := kadm.NewClient(adm).CreateTopic(ctx, 2, 1, nil, "apart"); err != nil {
		t.Fatal(err)
	}
	l := &groupLedger{seen: map[int32][]int64{}}
	stop := group848Member(t, b.Addr(), "next", "apart", kgo.RangeBalancer(), l)
	defer stop()
	deadline := time.Now().Add(20 * time.Second)
	for describe848(t, adm, "next").ErrorCode != 0 || len(describe848(t, adm, "next").Members) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the consumer group never formed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.MemberID, join.ProtocolType = "next", "", "consumer"
	join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = 10000, 10000
	jp := kmsg.NewJoinGroupRequestProtocol()
	jp.Name = "range"
	join.Protocols = append(join.Protocols, jp)
	jr, err := join.RequestWith(ctx, adm)
	if err != nil {
		t.Fatal(err)
	}
	if jr.ErrorCode != 23 { // INCONSISTENT_GROUP_PROTOCOL
		t.Errorf("JoinGroup on a consumer group: error %d, want INCONSISTENT_GROUP_PROTOCOL", jr.ErrorCode)
	}
}

// TestGroup848OffsetDeleteSubscribed: OffsetDelete refuses the offsets of a
// topic a member of a KIP-848 group subscribes to (GROUP_SUBSCRIBED_TO_TOPIC)
// while the group has members, and deletes them once it is empty.
func TestGroup848OffsetDeleteSubscribed(t *testing.T) {
	b := startBroker(t, nil)
	_, ka := adminClients(t, b.Addr())
	ctx := testCtx(t)
	const topic, parts, n = "group848-delete", 3, 300
	if _, err := ka.CreateTopic(ctx, parts, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	l := &groupLedger{seen: map[int32][]int64{}}
	stop := group848Member(t, b.Addr(), "gdel", topic, kgo.CooperativeStickyBalancer(), l)
	produceN(t, b.Addr(), topic, 0, n)
	waitTotal(t, l, n)

	deleteOffsets := func() map[int32]error {
		t.Helper()
		resps, err := ka.DeleteOffsets(ctx, "gdel", kadm.TopicsSet{topic: {0: {}, 1: {}, 2: {}}})
		if err != nil {
			t.Fatal(err)
		}
		out := map[int32]error{}
		for p, err := range resps[topic] {
			out[p] = err
		}
		return out
	}
	for p, err := range deleteOffsets() {
		if !errors.Is(err, kerr.GroupSubscribedToTopic) {
			t.Errorf("partition %d while a member subscribes: %v, want GROUP_SUBSCRIBED_TO_TOPIC", p, err)
		}
	}
	offs, err := ka.FetchOffsets(ctx, "gdel")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(offs[topic]); got != parts {
		t.Fatalf("%d committed partitions after the refused delete, want %d", got, parts)
	}

	stop() // the group is empty now
	for p, err := range deleteOffsets() {
		if err != nil {
			t.Errorf("partition %d of the empty group: %v", p, err)
		}
	}
	offs, err = ka.FetchOffsets(ctx, "gdel")
	if err != nil {
		t.Fatal(err)
	}
	for p, o := range offs[topic] {
		if o.At >= 0 {
			t.Errorf("partition %d still has offset %d after the delete", p, o.At)
		}
	}
}
