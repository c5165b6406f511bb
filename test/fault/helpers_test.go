package fault

// Helpers shared by the fault tests: franz-go clients and reads of whole
// topics. The broker processes are testbroker's.

import (
	"context"
	"testing"
	"time"

	"github.com/oncelog/oncelog/internal/testbroker"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestMain(m *testing.M) { testbroker.Main(m) }

// newBrokerProc prepares a broker on dataDir, with extra arguments to
// serve, that the test starts.
func newBrokerProc(t testing.TB, dataDir string, args ...string) *testbroker.Broker {
	t.Helper()
	return testbroker.New(t, testbroker.Options{DataDir: dataDir, Args: args})
}

// newClient makes a franz-go client that the test closes at cleanup.
func newClient(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// createTopic creates a topic with n partitions.
func createTopic(t testing.TB, addr, topic string, n int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := newClient(t, addr)
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, n, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	cl.Close()
}

// endOffsets returns the high watermark of each partition of topic.
func endOffsets(t testing.TB, addr, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := newClient(t, addr)
	defer cl.Close()
	lo, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list end offsets of %s: %v", topic, err)
	}
	out := map[int32]int64{}
	lo.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset of %s/%d: %v", topic, o.Partition, o.Err)
		}
		out[o.Partition] = o.Offset
	})
	return out
}

// readAll reads every partition of topic from offset 0 up to its high
// watermark, directly (no proxy), and returns the records per partition in
// log order.
func readAll(t testing.TB, addr, topic string, timeout time.Duration) map[int32][]*kgo.Record {
	t.Helper()
	ends := endOffsets(t, addr, topic)
	parts := map[int32]kgo.Offset{}
	want := 0
	for p, e := range ends {
		parts[p] = kgo.NewOffset().At(0)
		want += int(e)
	}
	out := map[int32][]*kgo.Record{}
	if want == 0 {
		return out
	}
	cl := newClient(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}), kgo.FetchMaxWait(200*time.Millisecond))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	got := 0
	done := func() bool {
		for p, e := range ends {
			rs := out[p]
			if e > 0 && (len(rs) == 0 || rs[len(rs)-1].Offset < e-1) {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: got %d of %d records before timeout", topic, got, want)
		}
		fs.EachError(func(tp string, p int32, err error) {
			t.Fatalf("fetch %s/%d: %v", tp, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < ends[r.Partition] {
				out[r.Partition] = append(out[r.Partition], r)
				got++
			}
		})
	}
	return out
}

// checkGapFree fails unless each partition's records carry offsets 0, 1, 2...
func checkGapFree(t testing.TB, recs map[int32][]*kgo.Record) {
	t.Helper()
	for p, rs := range recs {
		for i, r := range rs {
			if r.Offset != int64(i) {
				t.Fatalf("partition %d: record %d has offset %d (gap or duplicate in the offsets)", p, i, r.Offset)
			}
		}
	}
}
