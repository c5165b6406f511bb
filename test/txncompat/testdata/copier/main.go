// Command copier is a franz-go GroupTransactSession copier for
// test/txncompat: as a member of a consumer group it reads an input topic
// read_committed and copies every record, in transactions, to the same
// partition of an output topic, committing the input offsets in the same
// transaction (KIP-447). The tests run several of them as one group, kill
// them and restart them with the same transactional id.
//
// Every event is one JSON line on stdout:
//
//	{"ev": "ready"}                      the session exists
//	{"ev": "committed", "n": 17}         a transaction of n records committed
//	{"ev": "aborted", "n": 17}           a transaction was aborted (rebalance)
//	{"ev": "error", "err": "..."}        End failed; the copier exits
//
// SIGTERM makes it close the session (leaving the group) and exit.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func emit(kv map[string]any) {
	b, _ := json.Marshal(kv)
	fmt.Println(string(b))
}

func main() {
	brokers := flag.String("brokers", "", "seed broker")
	group := flag.String("group", "", "consumer group")
	in := flag.String("in", "", "input topic")
	out := flag.String("out", "", "output topic")
	txnID := flag.String("txn-id", "", "transactional id")
	maxRecords := flag.Int("max-records", 50, "records per transaction at most")
	pause := flag.Duration("pause", 20*time.Millisecond, "pause inside each transaction, before it ends")
	flag.Parse()

	s, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(*brokers),
		kgo.TransactionalID(*txnID),
		kgo.TransactionTimeout(10*time.Second),
		kgo.ConsumerGroup(*group),
		kgo.ConsumeTopics(*in),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.SessionTimeout(3*time.Second),
		kgo.HeartbeatInterval(300*time.Millisecond),
		kgo.RebalanceTimeout(10*time.Second),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	if err != nil {
		emit(map[string]any{"ev": "error", "err": err.Error()})
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	emit(map[string]any{"ev": "ready"})
	for ctx.Err() == nil {
		fs := s.PollRecords(ctx, *maxRecords)
		if ctx.Err() != nil {
			break
		}
		fs.EachError(func(t string, p int32, err error) {
			emit(map[string]any{"ev": "fetch_error", "err": fmt.Sprintf("%s/%d: %v", t, p, err)})
		})
		if fs.NumRecords() == 0 {
			continue
		}
		if err := s.Begin(); err != nil {
			emit(map[string]any{"ev": "error", "err": "begin: " + err.Error()})
			os.Exit(1)
		}
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			s.Produce(ctx, &kgo.Record{Topic: *out, Partition: r.Partition, Key: r.Key, Value: r.Value}, nil)
		})
		time.Sleep(*pause)
		committed, err := s.End(context.Background(), kgo.TryCommit)
		switch {
		case err != nil:
			emit(map[string]any{"ev": "error", "err": "end: " + err.Error()})
			os.Exit(1)
		case committed:
			emit(map[string]any{"ev": "committed", "n": n})
		default:
			emit(map[string]any{"ev": "aborted", "n": n})
		}
	}
	s.Close()
	emit(map[string]any{"ev": "closed"})
}
