package test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// groupLedger records every consumed (partition, offset) across members.
type groupLedger struct {
	mu   sync.Mutex
	seen map[int32][]int64
}

func (l *groupLedger) add(p int32, off int64) {
	l.mu.Lock()
	l.seen[p] = append(l.seen[p], off)
	l.mu.Unlock()
}

func (l *groupLedger) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.seen {
		n += len(s)
	}
	return n
}

// groupMember consumes with manual, synchronous commits after every poll
// and before every revocation, so that a rebalance never loses or repeats
// a record: the next owner resumes exactly at the committed offset.
func groupMember(t *testing.T, addr, groupID, topic string, balancer kgo.GroupBalancer, l *groupLedger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var cl *kgo.Client
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.ConsumerGroup(groupID),
		kgo.ConsumeTopics(topic),
		kgo.Balancers(balancer),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(6*time.Second),
		kgo.HeartbeatInterval(500*time.Millisecond),
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
		// Close leaves the group (LeaveGroup) so the others rebalance now.
		cl.Close()
	}
}

func produceN(t *testing.T, addr, topic string, from, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := from; i < from+n; i++ {
		cl.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Error(err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func waitTotal(t *testing.T, l *groupLedger, want int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for l.total() < want {
		if time.Now().After(deadline) {
			t.Fatalf("consumed %d of %d records", l.total(), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testGroupRebalances(t *testing.T, balancer kgo.GroupBalancer) {
	b := startBroker(t, map[string]string{"group.initial.rebalance.delay.ms": "0"})
	adm, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ctx := context.Background()
	const topic, parts, per = "group-topic", 12, 3000
	if _, err := kadm.NewClient(adm).CreateTopic(ctx, parts, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	l := &groupLedger{seen: map[int32][]int64{}}
	stop1 := groupMember(t, b.Addr(), "g", topic, balancer, l)
	stop2 := groupMember(t, b.Addr(), "g", topic, balancer, l)
	stop3 := groupMember(t, b.Addr(), "g", topic, balancer, l)
	produceN(t, b.Addr(), topic, 0, per)
	waitTotal(t, l, per)

	stop3() // one leaves
	produceN(t, b.Addr(), topic, per, per)
	waitTotal(t, l, 2*per)

	stop4 := groupMember(t, b.Addr(), "g", topic, balancer, l) // one joins
	time.Sleep(500 * time.Millisecond)
	produceN(t, b.Addr(), topic, 2*per, per)
	waitTotal(t, l, 3*per)
	stop1()
	stop2()
	stop4()

	// Every partition was consumed as 0, 1, 2, ... exactly once: no record
	// lost, none repeated across the rebalances.
	checkExactlyOnceAndCommitted(t, adm, l, "g", topic, parts, 3*per)
}

// checkExactlyOnceAndCommitted asserts that every partition of topic was
// consumed as 0, 1, 2, ... exactly once (no record lost, none repeated
// across rebalances), want records in all, and that the group's committed
// offsets are the ends of the partitions.
func checkExactlyOnceAndCommitted(t *testing.T, adm *kgo.Client, l *groupLedger, group, topic string, parts int32, want int) {
	t.Helper()
	total := 0
	for p := int32(0); p < parts; p++ {
		offs := append([]int64(nil), l.seen[p]...)
		sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
		for i, o := range offs {
			if o != int64(i) {
				t.Fatalf("partition %d: consumed offsets %v...; want each of 0..%d once", p, offs[:min(len(offs), 20)], len(offs)-1)
			}
		}
		total += len(offs)
	}
	if total != want {
		t.Fatalf("consumed %d records, want %d", total, want)
	}
	ctx := context.Background()
	committed, err := kadm.NewClient(adm).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		c, ok := committed.Lookup(topic, o.Partition)
		if !ok || c.At != o.Offset {
			t.Errorf("partition %d: committed %+v, end %d", o.Partition, c, o.Offset)
		}
	})
}

func TestGroupEagerRange(t *testing.T) { testGroupRebalances(t, kgo.RangeBalancer()) }

func TestGroupCooperativeSticky(t *testing.T) {
	testGroupRebalances(t, kgo.CooperativeStickyBalancer())
}
