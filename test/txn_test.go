package test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kversion"
)

func createTopics(t *testing.T, addr string, parts int32, names ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopics(context.Background(), parts, 1, nil, names...)
	if err != nil {
		t.Fatal(err)
	}
	if err := resp.Error(); err != nil {
		t.Fatal(err)
	}
}

// readAll reads every record of the topics from the start for a few
// seconds (until nothing more arrives).
func readAll(t *testing.T, addr string, committed bool, topics ...string) []string {
	t.Helper()
	opts := []kgo.Opt{kgo.SeedBrokers(addr), kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200 * time.Millisecond)}
	if committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []string
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r.Topic+":"+string(r.Value)) })
	}
	sort.Strings(out)
	return out
}

// txnProtocols runs a test under transaction protocol v1 (the client capped
// at Kafka 3.9's versions: AddPartitionsToTxn, no epoch bumps) and v2
// (KIP-890 part 2: Produce v12 adds partitions, EndTxn v5 bumps the epoch).
func txnProtocols(t *testing.T, f func(t *testing.T, tv2 bool, opts ...kgo.Opt)) {
	t.Run("tv1", func(t *testing.T) { f(t, false, kgo.MaxVersions(kversion.V3_9_0())) })
	t.Run("tv2", func(t *testing.T) { f(t, true) })
}

func TestTxnCommitAbortVisibility(t *testing.T) { txnProtocols(t, testTxnCommitAbortVisibility) }

func testTxnCommitAbortVisibility(t *testing.T, tv2 bool, extra ...kgo.Opt) {
	b := startBroker(t, nil)
	createTopics(t, b.Addr(), 3, "ta", "tb")
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.Addr()), kgo.TransactionalID("txn-vis")}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	run := func(prefix string, commit bool) {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 30; i++ {
			topic := "ta"
			if i%2 == 1 {
				topic = "tb"
			}
			cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: int32(i % 3), Value: []byte(fmt.Sprintf("%s%02d", prefix, i))}, func(_ *kgo.Record, err error) {
				if err != nil {
					t.Error(err)
				}
			})
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	run("c", true)
	run("a", false)
	run("d", true)
	// Under v2 every end bumped the epoch (3 ends); under v1 it stays.
	_, epoch, err := cl.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[bool]int16{false: 0, true: 3}[tv2]; epoch != want {
		t.Fatalf("producer epoch after three transactions: %d, want %d", epoch, want)
	}
	committed := readAll(t, b.Addr(), true, "ta", "tb")
	uncommitted := readAll(t, b.Addr(), false, "ta", "tb")
	if len(committed) != 60 {
		t.Fatalf("read_committed saw %d records, want 60: %v", len(committed), committed)
	}
	for _, r := range committed {
		if r[3] == 'a' {
			t.Fatalf("read_committed saw aborted record %s", r)
		}
	}
	if len(uncommitted) != 90 {
		t.Fatalf("read_uncommitted saw %d records, want 90", len(uncommitted))
	}
}

func TestTxnOpenBlocksReadCommitted(t *testing.T) { txnProtocols(t, testTxnOpenBlocksReadCommitted) }

func testTxnOpenBlocksReadCommitted(t *testing.T, _ bool, extra ...kgo.Opt) {
	b := startBroker(t, nil)
	createTopics(t, b.Addr(), 1, "open")
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.Addr()), kgo.TransactionalID("txn-open")}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "open", Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, b.Addr(), true, "open"); len(got) != 0 {
		t.Fatalf("read_committed saw an open transaction: %v", got)
	}
	if got := readAll(t, b.Addr(), false, "open"); len(got) != 1 {
		t.Fatalf("read_uncommitted saw %v", got)
	}
	adm := kadm.NewClient(cl)
	lso, err := adm.ListCommittedOffsets(ctx, "open")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := lso.Lookup("open", 0); o.Offset != 0 {
		t.Fatalf("LSO %d while the transaction is open, want 0", o.Offset)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, b.Addr(), true, "open"); len(got) != 1 {
		t.Fatalf("read_committed after commit saw %v", got)
	}
}
