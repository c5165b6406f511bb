package txncompat

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// crashTopics are the topics of the broker crash tests and their
// partition counts.
var crashTopics = map[string]int32{"crash-a": 3, "crash-b": 2}

// txnRecords are perPartition records "kind/TOPIC/P/I" for every partition
// of crashTopics.
func txnRecords(kind string, perPartition int) []*kgo.Record {
	var recs []*kgo.Record
	for topic, n := range crashTopics {
		for p := range n {
			for i := range perPartition {
				recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "%s/%s/%d/%d", kind, topic, p, i)})
			}
		}
	}
	return recs
}

// visible counts, per transaction kind, the records of crashTopics that a
// read_committed read returns, and fails on duplicates.
func visible(t *testing.T, addr string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for topic := range crashTopics {
		for v, n := range multiset(flatten(values(readTopic(t, addr, topic, true, 30*time.Second)))) {
			if n != 1 {
				t.Errorf("%s: %q read_committed %d times", topic, v, n)
			}
			out[v[:strings.IndexByte(v, '/')]] += n
		}
	}
	return out
}

// TestBrokerKilledInCommitPath: for each failpoint of the commit path the
// broker runs with it armed, a franz-go transactional producer writes to
// every partition of two topics and ends the transaction, and the broker
// SIGKILLs itself at that point. Restarted without the failpoint on the
// same data directory, the broker completes the transaction from its
// durable Prepare state: read_committed sees all of a committed
// transaction's records (none of an aborted one's), never a part. The LSO
// is not stuck: every partition becomes stable, and a new transaction of
// the same transactional id commits and is read. In the retry runs the
// client keeps retrying EndTransaction while the broker restarts, and the
// retried EndTxn succeeds.
func TestBrokerKilledInCommitPath(t *testing.T) {
	const perPartition = 20
	want := perPartition * 5 // partitions over crashTopics
	for _, tc := range []struct {
		failpoint string
		commit    bool
		// retry keeps the client's EndTransaction retrying while the
		// broker restarts: a retried EndTxn for a transaction the
		// restarted coordinator completes must answer success.
		retry bool
	}{
		{"txn.after-prepare", true, false},
		{"txn.after-first-marker", true, false},
		{"txn.after-markers", true, false},
		{"txn.after-first-marker", false, false},
		{"txn.after-prepare", false, false},
		{"txn.after-prepare", true, true},
		{"txn.after-markers", true, true},
		{"txn.after-first-marker", false, true},
	} {
		name := tc.failpoint + map[bool]string{true: "/commit", false: "/abort"}[tc.commit] + map[bool]string{true: "/retry"}[tc.retry]
		t.Run(name, func(t *testing.T) {
			b := newBroker(t)
			b.Start("ONCELOG_FAILPOINTS=" + tc.failpoint)
			for topic, n := range crashTopics {
				createTopic(t, b.Addr, topic, n)
			}
			txnID := "crash-" + strings.ReplaceAll(name, "/", "-")
			cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.TransactionalID(txnID),
				kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RetryTimeout(map[bool]time.Duration{true: 15 * time.Second, false: 3 * time.Second}[tc.retry]))
			if err != nil {
				t.Fatal(err)
			}
			ctx := testCtx(t, 20*time.Second)
			if err := cl.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			if err := cl.ProduceSync(ctx, txnRecords("first", perPartition)...).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
			ended := make(chan error, 1)
			go func() {
				endCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
				defer cancel()
				ended <- cl.EndTransaction(endCtx, kgo.TransactionEndTry(tc.commit))
			}()
			if exited, _ := b.WaitExit(10 * time.Second); !exited {
				t.Fatalf("the broker did not die at %s", tc.failpoint)
			}
			if !strings.Contains(b.Output(), "failpoint "+tc.failpoint+" hit") {
				t.Fatalf("the broker exited, but not at failpoint %s", tc.failpoint)
			}
			if tc.retry {
				b.Start()
				if err := <-ended; err != nil {
					t.Fatalf("EndTransaction retried across the restart: %v; want success, the transaction was prepared", err)
				}
			} else {
				t.Logf("EndTransaction while the broker is down: %v", <-ended)
				b.Start()
			}
			go cl.Close() // it may wait for the dead broker; nothing depends on it

			got := visible(t, b.Addr)
			switch {
			case got["first"] != 0 && got["first"] != want:
				t.Fatalf("torn transaction: %d of its %d records are visible to read_committed", got["first"], want)
			case tc.commit && got["first"] != want:
				t.Fatalf("the committed transaction (Prepare durable before the crash) is not visible after restart: %d of %d records", got["first"], want)
			case !tc.commit && got["first"] != 0:
				t.Fatalf("the aborted transaction is visible after restart: %d records", got["first"])
			}

			// The same transactional id goes on.
			cl2 := newClient(t, b.Addr, kgo.TransactionalID(txnID), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			if err := cl2.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			if err := cl2.ProduceSync(ctx, txnRecords("second", perPartition)...).FirstErr(); err != nil {
				t.Fatalf("produce after restart: %v", err)
			}
			if err := cl2.EndTransaction(ctx, kgo.TryCommit); err != nil {
				t.Fatalf("commit after restart: %v", err)
			}
			after := visible(t, b.Addr)
			if after["second"] != want || after["first"] != got["first"] {
				t.Fatalf("after a new transaction: %v, want second=%d and first=%d as before", after, want, got["first"])
			}
		})
	}
}
