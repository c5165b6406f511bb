package server_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/oncelog/oncelog/embed"
	"github.com/oncelog/oncelog/internal/server"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// zcValue is record j of transaction i: a header naming it, then bytes
// derived from both, so a record's content is checked, not just its count.
func zcValue(i, j, size int) []byte {
	b := make([]byte, size)
	binary.BigEndian.PutUint32(b, uint32(i))
	binary.BigEndian.PutUint32(b[4:], uint32(j))
	rng := rand.New(rand.NewPCG(uint64(i), uint64(j)))
	for k := 8; k < len(b); k += 8 {
		binary.LittleEndian.PutUint64(b[k:], rng.Uint64())
	}
	return b
}

// TestZeroCopyFetchEndToEnd: a franz-go producer writes a large topic (about
// 50 MiB in 4 partitions, uncompressed, with small segments so fetches span
// segment files) in transactions, every fourth aborted; franz-go consumers
// read it all back through fetches whose large record sets are sent from the
// segment files (sendfile). read_uncommitted sees every record, in order per
// partition; read_committed sees exactly the committed ones; every record's
// bytes are checked. Both with and without pre-zeroed extents
// (log.preallocate), whose zeros past the data must never be sent.
func TestZeroCopyFetchEndToEnd(t *testing.T) {
	for _, prealloc := range []bool{false, true} {
		t.Run(fmt.Sprintf("preallocate=%v", prealloc), func(t *testing.T) { testZeroCopyFetchEndToEnd(t, prealloc) })
	}
}

func testZeroCopyFetchEndToEnd(t *testing.T, prealloc bool) {
	const (
		parts      = 4
		txns       = 40
		perTxn     = 100
		valueBytes = 13 << 10 // 40*100*13 KiB is about 50 MiB
	)
	b, err := embed.Start(embed.Options{DataDir: t.TempDir(), Settings: map[string]string{
		"log.segment.bytes": fmt.Sprint(4 << 20),
		"log.preallocate":   fmt.Sprint(prealloc),
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if _, err := kadm.NewClient(adm).CreateTopic(ctx, parts, 1, nil, "zc"); err != nil {
		t.Fatal(err)
	}

	pr, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.TransactionalID("zc-producer"),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.DefaultProduceTopic("zc"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	// want[p] lists the (txn, record) of partition p in produce order,
	// committed or not.
	type id struct{ txn, rec int }
	var want [parts][]id
	committed := func(txn int) bool { return txn%4 != 3 }
	for i := 0; i < txns; i++ {
		if err := pr.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < perTxn; j++ {
			p := (i + j) % parts
			want[p] = append(want[p], id{i, j})
			pr.Produce(ctx, &kgo.Record{Partition: int32(p), Value: zcValue(i, j, valueBytes)}, func(_ *kgo.Record, err error) {
				if err != nil {
					t.Error(err)
				}
			})
		}
		if err := pr.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := pr.EndTransaction(ctx, kgo.TransactionEndTry(committed(i))); err != nil {
			t.Fatal(err)
		}
	}

	for _, readCommitted := range []bool{false, true} {
		t.Run(fmt.Sprintf("read_committed=%v", readCommitted), func(t *testing.T) {
			var expect [parts][]id
			total := 0
			for p := range want {
				for _, x := range want[p] {
					if !readCommitted || committed(x.txn) {
						expect[p] = append(expect[p], x)
						total++
					}
				}
			}
			iso := kgo.ReadUncommitted()
			if readCommitted {
				iso = kgo.ReadCommitted()
			}
			cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumeTopics("zc"), kgo.FetchIsolationLevel(iso),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			before := server.ZeroCopySets()
			var got [parts]int
			seen := 0
			for seen < total {
				fs := cl.PollFetches(ctx)
				if err := ctx.Err(); err != nil {
					t.Fatalf("after %d of %d records: %v", seen, total, err)
				}
				fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
				fs.EachRecord(func(r *kgo.Record) {
					p := r.Partition
					if got[p] >= len(expect[p]) {
						t.Fatalf("partition %d: record %d past the %d expected", p, got[p], len(expect[p]))
					}
					x := expect[p][got[p]]
					if string(r.Value) != string(zcValue(x.txn, x.rec, valueBytes)) {
						t.Fatalf("partition %d record %d (offset %d): not record %d of transaction %d (got header %d/%d)",
							p, got[p], r.Offset, x.rec, x.txn, binary.BigEndian.Uint32(r.Value), binary.BigEndian.Uint32(r.Value[4:]))
					}
					got[p]++
					seen++
				})
			}
			// Nothing more: a short poll returns no records.
			short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancelShort()
			if n := cl.PollFetches(short).NumRecords(); n != 0 {
				t.Fatalf("%d records past the %d expected", n, total)
			}
			sent := server.ZeroCopySets() - before
			t.Logf("%d records, %d record sets sent from files", total, sent)
			if sent < 40 {
				t.Fatalf("%d record sets sent from files for about 50 MiB: the zero-copy path was not used", sent)
			}
		})
	}
}
