package test

// KIP-664 end to end: DescribeProducers, DescribeTransactions,
// ListTransactions and the admin abort (WriteTxnMarkers), through kadm and
// raw kmsg requests and through the oncelog txn commands.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oncelog/oncelog/embed"
	"github.com/oncelog/oncelog/internal/cli"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI runs one oncelog command against addr.
func runCLI(t *testing.T, addr string, args ...string) cliResult {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := cli.Run(ctx, append(args, "--brokers", addr), strings.NewReader(""), &out, &errb)
	return cliResult{code, out.String(), errb.String()}
}

func (r cliResult) mustCode(t *testing.T, want int, args string) cliResult {
	t.Helper()
	if r.code != want {
		t.Fatalf("oncelog %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, r.code, want, r.stdout, r.stderr)
	}
	return r
}

// openTxn starts a transaction for id, produces values to the partitions of
// topic, and leaves it open: the producer "vanishes" (it is only closed at
// the end of the test, without ending the transaction).
func openTxn(t *testing.T, addr, id, topic string, values map[int32][]string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.TransactionalID(id), kgo.TransactionTimeout(10*time.Minute),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx := testCtx(t)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for p, vs := range values {
		for _, v := range vs {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	return cl
}

// producePlain writes values to one partition with an idempotent,
// non-transactional producer.
func producePlain(t *testing.T, addr, topic string, p int32, values ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, v := range values {
		if err := cl.ProduceSync(testCtx(t), &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// lso is the partition's last stable offset (ListOffsets, read_committed).
func lso(t *testing.T, adm *kadm.Client, topic string, p int32) int64 {
	t.Helper()
	offs, err := adm.ListCommittedOffsets(testCtx(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := offs.Lookup(topic, p)
	if !ok || o.Err != nil {
		t.Fatalf("LSO of %s/%d: %v %v", topic, p, ok, o.Err)
	}
	return o.Offset
}

func hwm(t *testing.T, adm *kadm.Client, topic string, p int32) int64 {
	t.Helper()
	return endOffset(t, testCtx(t), adm, topic, p)
}

// directBroker is the one broker, for requests kgo would otherwise route by
// partition (and refuse for a partition it does not find in metadata).
func directBroker(t *testing.T, cl *kgo.Client) *kgo.Broker {
	t.Helper()
	if _, err := kmsg.NewPtrMetadataRequest().RequestWith(testCtx(t), cl); err != nil {
		t.Fatal(err)
	}
	bs := cl.DiscoveredBrokers()
	if len(bs) != 1 {
		t.Fatalf("%d brokers discovered, want 1", len(bs))
	}
	return bs[0]
}

func listRaw(t *testing.T, cl *kgo.Client, mod func(*kmsg.ListTransactionsRequest)) *kmsg.ListTransactionsResponse {
	t.Helper()
	req := kmsg.NewPtrListTransactionsRequest()
	mod(req)
	resp, err := req.RequestWith(testCtx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func listedIDs(resp *kmsg.ListTransactionsResponse) []string {
	var ids []string
	for _, s := range resp.TransactionStates {
		ids = append(ids, s.TransactionalID)
	}
	return ids
}

func TestKIP664DescribeAndList(t *testing.T) {
	b := startBroker(t, nil)
	addr := b.Addr()
	cl, adm := adminClients(t, addr)
	createTopics(t, addr, 2, "k664")
	producePlain(t, addr, "k664", 0, "plain-0", "plain-1")
	openTxn(t, addr, "hang-1", "k664", map[int32][]string{0: {"t-0"}, 1: {"t-1"}})
	ctx := testCtx(t)

	// DescribeProducers: the idempotent producer and the transactional one.
	dps, err := adm.DescribeProducers(ctx, kadm.TopicsSet{"k664": {0: {}, 1: {}}})
	if err != nil {
		t.Fatal(err)
	}
	p0 := dps["k664"].Partitions[0]
	if p0.Err != nil || len(p0.ActiveProducers) != 2 {
		t.Fatalf("partition 0 producers: %+v", p0)
	}
	var idem, txnal kadm.DescribedProducer
	for _, p := range p0.ActiveProducers.Sorted() {
		if p.CurrentTxnStartOffset < 0 {
			idem = p
		} else {
			txnal = p
		}
	}
	if idem.LastSequence != 1 || idem.ProducerEpoch != 0 || idem.LastTimestamp <= 0 {
		t.Errorf("idempotent producer: %+v", idem)
	}
	if txnal.CurrentTxnStartOffset != 2 || txnal.LastSequence != 0 {
		t.Errorf("transactional producer: %+v", txnal)
	}

	// DescribeTransactions.
	d, err := adm.DescribeTransactions(ctx, "hang-1")
	if err != nil {
		t.Fatal(err)
	}
	dt := d["hang-1"]
	if dt.Err != nil || dt.State != "Ongoing" || dt.ProducerID != txnal.ProducerID || dt.TimeoutMillis != 600000 ||
		dt.StartTimestamp <= 0 || len(dt.Topics["k664"]) != 2 {
		t.Fatalf("described: %+v", dt)
	}
	d, err = adm.DescribeTransactions(ctx, "no-such-id")
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(d["no-such-id"].Err, kerr.TransactionalIDNotFound) {
		t.Errorf("unknown id: %v", d["no-such-id"].Err)
	}

	// DescribeProducers of an unknown partition.
	dreq := kmsg.NewPtrDescribeProducersRequest()
	dreq.Topics = []kmsg.DescribeProducersRequestTopic{{Topic: "k664", Partitions: []int32{7}}, {Topic: "nope", Partitions: []int32{0}}}
	dresp, err := dreq.RequestWith(ctx, directBroker(t, cl))
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range dresp.Topics {
		if rt.Partitions[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
			t.Errorf("%s: error %d", rt.Topic, rt.Partitions[0].ErrorCode)
		}
	}

	// ListTransactions filters.
	listed, err := adm.ListTransactions(ctx, nil, []string{"Ongoing"})
	if err != nil || !slices.Contains(listed.TransactionalIDs(), "hang-1") {
		t.Fatalf("list Ongoing: %v %v", listed, err)
	}
	listed, err = adm.ListTransactions(ctx, nil, []string{"Empty"})
	if err != nil || len(listed) != 0 {
		t.Fatalf("list Empty: %v %v", listed, err)
	}
	listed, err = adm.ListTransactions(ctx, []int64{txnal.ProducerID + 1000}, nil)
	if err != nil || len(listed) != 0 {
		t.Fatalf("list other producer: %v %v", listed, err)
	}
	listed, err = adm.ListTransactionsByTxPattern(ctx, []int64{txnal.ProducerID}, nil, "hang-.*")
	if err != nil || !slices.Contains(listed.TransactionalIDs(), "hang-1") {
		t.Fatalf("list by pattern: %v %v", listed, err)
	}
	// Unknown state names are echoed and match nothing, even alone.
	resp := listRaw(t, cl, func(r *kmsg.ListTransactionsRequest) { r.StateFilters = []string{"Bogus"} })
	if len(resp.TransactionStates) != 0 || !slices.Equal(resp.UnknownStateFilters, []string{"Bogus"}) {
		t.Errorf("unknown state: %+v", resp)
	}
	resp = listRaw(t, cl, func(r *kmsg.ListTransactionsRequest) { r.StateFilters = []string{"Bogus", "Ongoing"} })
	if !slices.Equal(listedIDs(resp), []string{"hang-1"}) {
		t.Errorf("unknown and Ongoing: %+v", resp)
	}
	// v1 duration filter: running longer than.
	time.Sleep(20 * time.Millisecond)
	resp = listRaw(t, cl, func(r *kmsg.ListTransactionsRequest) { r.DurationFilterMillis = 10 })
	if !slices.Equal(listedIDs(resp), []string{"hang-1"}) {
		t.Errorf("duration 10ms: %+v", resp)
	}
	resp = listRaw(t, cl, func(r *kmsg.ListTransactionsRequest) { r.DurationFilterMillis = time.Hour.Milliseconds() })
	if len(resp.TransactionStates) != 0 {
		t.Errorf("duration 1h: %+v", resp)
	}
	// v2 pattern: the whole id must match; an invalid one is refused.
	for pat, want := range map[string]bool{"hang-.*": true, "hang": false, "h.*1": true, "": true} {
		resp = listRaw(t, cl, func(r *kmsg.ListTransactionsRequest) { r.TransactionalIDPattern = &pat })
		if got := slices.Contains(listedIDs(resp), "hang-1"); got != want || resp.ErrorCode != 0 {
			t.Errorf("pattern %q: listed %v (error %d), want %v", pat, listedIDs(resp), resp.ErrorCode, want)
		}
	}
	bad := "hang-("
	resp = listRaw(t, cl, func(r *kmsg.ListTransactionsRequest) { r.TransactionalIDPattern = &bad })
	if resp.ErrorCode != kerr.InvalidRegularExpression.Code {
		t.Errorf("invalid pattern: error %d", resp.ErrorCode)
	}

	// The CLI.
	r := runCLI(t, addr, "txn", "list", "--state", "Ongoing").mustCode(t, 0, "txn list --state Ongoing")
	if !regexp.MustCompile(`(?m)^hang-1\s+\d+\s+Ongoing\s+\d[\d.]*(ms|s)\s+2$`).MatchString(r.stdout) {
		t.Errorf("txn list:\n%s", r.stdout)
	}
	r = runCLI(t, addr, "txn", "list", "--min-duration", "1h").mustCode(t, 0, "txn list --min-duration 1h")
	if strings.Contains(r.stdout, "hang-1") {
		t.Errorf("txn list --min-duration 1h:\n%s", r.stdout)
	}
	r = runCLI(t, addr, "txn", "list", "--min-duration", "1ms", "--pattern", "hang-\\d").mustCode(t, 0, "txn list --min-duration 1ms --pattern")
	if !strings.Contains(r.stdout, "hang-1") {
		t.Errorf("txn list --min-duration 1ms --pattern:\n%s", r.stdout)
	}
	r = runCLI(t, addr, "txn", "describe", "hang-1").mustCode(t, 0, "txn describe hang-1")
	for _, want := range []string{"state: Ongoing", "partitions: 2", "timeout: 10m0s", "(open "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("txn describe lacks %q:\n%s", want, r.stdout)
		}
	}
	if !regexp.MustCompile(`(?m)^k664\s+0$`).MatchString(r.stdout) || !regexp.MustCompile(`(?m)^k664\s+1$`).MatchString(r.stdout) {
		t.Errorf("txn describe partitions:\n%s", r.stdout)
	}
	r = runCLI(t, addr, "txn", "producers", "--topic", "k664").mustCode(t, 0, "txn producers")
	lines := regexp.MustCompile(`(?m)^0\s+\d+\s+0\s+\d+\s+\S+\s+0\s+(\S+)$`).FindAllStringSubmatch(r.stdout, -1)
	if len(lines) != 2 || lines[0][1] == lines[1][1] {
		t.Errorf("txn producers (want one idempotent and one transactional on partition 0):\n%s", r.stdout)
	}
	r = runCLI(t, addr, "txn", "producers", "--topic", "k664", "--partition", "1").mustCode(t, 0, "txn producers --partition 1")
	if !regexp.MustCompile(`(?m)^1\s+\d+\s+0\s+0\s+\S+\s+0\s+0$`).MatchString(r.stdout) {
		t.Errorf("txn producers --partition 1:\n%s", r.stdout)
	}

	// Errors and usage.
	runCLI(t, addr, "txn", "describe", "no-such-id").mustCode(t, 1, "txn describe no-such-id")
	runCLI(t, addr, "txn", "producers", "--topic", "nope").mustCode(t, 1, "txn producers --topic nope")
	runCLI(t, addr, "txn", "producers", "--topic", "k664", "--partition", "9").mustCode(t, 1, "txn producers --partition 9")
	runCLI(t, addr, "txn", "list", "--state", "Bogus").mustCode(t, 2, "txn list --state Bogus")
	runCLI(t, addr, "txn", "list", "--pattern", "(").mustCode(t, 2, "txn list --pattern (")
	runCLI(t, addr, "txn", "abort").mustCode(t, 2, "txn abort")
	runCLI(t, addr, "txn", "abort", "--transactional-id", "x", "--topic", "k664").mustCode(t, 2, "txn abort mixed")
	runCLI(t, addr, "txn", "abort", "--topic", "k664", "--partition", "0").mustCode(t, 2, "txn abort without producer")
	runCLI(t, addr, "txn", "bogus").mustCode(t, 2, "txn bogus")
	runCLI(t, addr, "txn").mustCode(t, 2, "txn")
	for _, sub := range []string{"list", "describe", "producers", "abort"} {
		r := runCLI(t, addr, "txn", sub, "--help").mustCode(t, 0, "txn "+sub+" --help")
		if !strings.Contains(r.stdout, "usage: oncelog txn "+sub) || !strings.Contains(r.stdout, "--brokers") {
			t.Errorf("txn %s --help:\n%s", sub, r.stdout)
		}
	}
	runCLI(t, addr, "txn", "abort", "--transactional-id", "no-such-id").mustCode(t, 1, "txn abort unknown id")
}

// TestKIP664AbortAtPartition: a producer opened a transaction and vanished.
// The coordinator still tracks it (its timeout is ten minutes), so the
// partition abort refuses without --force; with it, the marker ends the
// transaction at partition 0 and the LSO moves: read_committed consumers
// see the later records and never the aborted one.
func TestKIP664AbortAtPartition(t *testing.T) {
	b := startBroker(t, nil)
	addr := b.Addr()
	cl, adm := adminClients(t, addr)
	createTopics(t, addr, 2, "k664a")
	producePlain(t, addr, "k664a", 0, "before")
	openTxn(t, addr, "hang-a", "k664a", map[int32][]string{0: {"aborted-0"}, 1: {"open-1"}})
	producePlain(t, addr, "k664a", 0, "after-0", "after-1")
	if got := lso(t, adm, "k664a", 0); got != 1 {
		t.Fatalf("LSO before the abort: %d, want 1 (the open transaction's first offset)", got)
	}
	if got := readAll(t, addr, true, "k664a"); !slices.Equal(got, []string{"k664a:before"}) {
		t.Fatalf("read_committed before the abort: %v", got)
	}

	r := runCLI(t, addr, "txn", "abort", "--topic", "k664a", "--partition", "0", "--start-offset", "1").mustCode(t, 1, "txn abort (tracked)")
	if !strings.Contains(r.stderr, "--transactional-id hang-a") {
		t.Errorf("refusal does not point at the coordinator abort:\n%s", r.stderr)
	}
	// Raw marker answers: unknown partition, old epoch.
	d, err := adm.DescribeTransactions(testCtx(t), "hang-a")
	if err != nil {
		t.Fatal(err)
	}
	pid, epoch := d["hang-a"].ProducerID, d["hang-a"].ProducerEpoch
	mreq := kmsg.NewPtrWriteTxnMarkersRequest()
	mreq.Markers = []kmsg.WriteTxnMarkersRequestMarker{{ProducerID: pid, ProducerEpoch: epoch - 1, Topics: []kmsg.WriteTxnMarkersRequestMarkerTopic{
		{Topic: "k664a", Partitions: []int32{0, 5}}, {Topic: "nope", Partitions: []int32{0}},
	}}}
	mresp, err := mreq.RequestWith(testCtx(t), directBroker(t, cl))
	if err != nil {
		t.Fatal(err)
	}
	codes := []int16{}
	for _, rt := range mresp.Markers[0].Topics {
		for _, rp := range rt.Partitions {
			codes = append(codes, rp.ErrorCode)
		}
	}
	want := []int16{kerr.InvalidProducerEpoch.Code, kerr.UnknownTopicOrPartition.Code, kerr.UnknownTopicOrPartition.Code}
	if !slices.Equal(codes, want) {
		t.Errorf("marker answers %v, want %v", codes, want)
	}

	r = runCLI(t, addr, "txn", "abort", "--topic", "k664a", "--partition", "0", "--start-offset", "1", "--force").mustCode(t, 0, "txn abort --force")
	if !strings.Contains(r.stdout, "aborted the transaction of producer") {
		t.Errorf("txn abort output:\n%s", r.stdout)
	}
	if got, end := lso(t, adm, "k664a", 0), hwm(t, adm, "k664a", 0); got != end {
		t.Fatalf("LSO after the abort: %d, want the high watermark %d", got, end)
	}
	producePlain(t, addr, "k664a", 0, "later")
	got := readAll(t, addr, true, "k664a")
	if !slices.Equal(got, []string{"k664a:after-0", "k664a:after-1", "k664a:before", "k664a:later"}) {
		t.Fatalf("read_committed after the abort: %v", got)
	}
	// Partition 1 is still held by the coordinator's transaction.
	if got := lso(t, adm, "k664a", 1); got != 0 {
		t.Errorf("LSO of partition 1: %d, want 0", got)
	}
	// Aborting again: nothing open at the partition any more.
	runCLI(t, addr, "txn", "abort", "--topic", "k664a", "--partition", "0", "--start-offset", "1").mustCode(t, 1, "txn abort again")
}

// TestKIP664AbortByTransactionalID: the coordinator aborts a vanished
// producer's transaction on all its partitions and fences the producer.
func TestKIP664AbortByTransactionalID(t *testing.T) {
	b := startBroker(t, nil)
	addr := b.Addr()
	_, adm := adminClients(t, addr)
	createTopics(t, addr, 2, "k664b")
	txnCl := openTxn(t, addr, "hang-b", "k664b", map[int32][]string{0: {"aborted-0"}, 1: {"aborted-1"}})
	producePlain(t, addr, "k664b", 0, "after-0")
	producePlain(t, addr, "k664b", 1, "after-1")

	r := runCLI(t, addr, "txn", "abort", "--transactional-id", "hang-b").mustCode(t, 0, "txn abort --transactional-id")
	if !strings.Contains(r.stdout, "k664b/0") || !strings.Contains(r.stdout, "k664b/1") {
		t.Errorf("txn abort output:\n%s", r.stdout)
	}
	for p := int32(0); p < 2; p++ {
		if got, end := lso(t, adm, "k664b", p), hwm(t, adm, "k664b", p); got != end {
			t.Errorf("LSO of partition %d: %d, want %d", p, got, end)
		}
	}
	got := readAll(t, addr, true, "k664b")
	if !slices.Equal(got, []string{"k664b:after-0", "k664b:after-1"}) {
		t.Fatalf("read_committed after the abort: %v", got)
	}
	r = runCLI(t, addr, "txn", "describe", "hang-b").mustCode(t, 0, "txn describe")
	if !strings.Contains(r.stdout, "state: CompleteAbort") && !strings.Contains(r.stdout, "state: Empty") {
		t.Errorf("after the abort:\n%s", r.stdout)
	}
	// The vanished producer comes back: it is fenced.
	if err := txnCl.EndTransaction(testCtx(t), kgo.TryCommit); err == nil {
		t.Errorf("the fenced producer committed")
	}
	runCLI(t, addr, "txn", "abort", "--transactional-id", "hang-b").mustCode(t, 1, "txn abort nothing open")
}

// TestKIP664LostCoordinatorState is the case KIP-664 is for: a partition
// holds a transaction open that no coordinator knows. Here the
// coordinator's log is lost between two runs of the broker; the producer
// state, rebuilt from the data partition's log, still has the open
// transaction. On one node nothing else could ever end it, so the broker
// aborts it at start (the same scan aborts a batch whose registration a
// crash lost) and the LSO is not stuck.
func TestKIP664LostCoordinatorState(t *testing.T) {
	dir := t.TempDir()
	b, err := embed.Start(embed.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	createTopics(t, addr, 1, "k664c")
	producePlain(t, addr, "k664c", 0, "before")
	txnCl := openTxn(t, addr, "hang-c", "k664c", map[int32][]string{0: {"aborted"}})
	txnCl.Close()
	b.Close()
	matches, _ := filepath.Glob(filepath.Join(dir, "__transaction_state-*"))
	if len(matches) == 0 {
		t.Fatalf("no __transaction_state partitions in %s", dir)
	}
	for _, m := range matches {
		if err := os.RemoveAll(m); err != nil {
			t.Fatal(err)
		}
	}
	b, err = embed.Start(embed.Options{DataDir: dir})
	if err != nil {
		t.Fatalf("the broker does not start without its coordinator log: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	addr = b.Addr()
	_, adm := adminClients(t, addr)
	if r := runCLI(t, addr, "txn", "describe", "hang-c"); r.code != 1 {
		t.Fatalf("the coordinator still knows hang-c:\n%s", r.stdout)
	}
	producePlain(t, addr, "k664c", 0, "after")
	// The abort marker is written by the start-up scan, in the background.
	deadline := time.Now().Add(10 * time.Second)
	for lso(t, adm, "k664c", 0) != hwm(t, adm, "k664c", 0) {
		if time.Now().After(deadline) {
			t.Fatalf("LSO %d stuck below the high watermark %d", lso(t, adm, "k664c", 0), hwm(t, adm, "k664c", 0))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := readAll(t, addr, true, "k664c"); !slices.Equal(got, []string{"k664c:after", "k664c:before"}) {
		t.Fatalf("read_committed after the restart: %v", got)
	}
}
