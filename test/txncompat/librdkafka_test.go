package txncompat

import (
	"context"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oncelog/oncelog/internal/testbroker"
	"github.com/twmb/franz-go/pkg/kgo"
)

// pyRead reads topic with testdata/read_topic.py (librdkafka) and returns
// the values per partition in the order the consumer saw them.
func pyRead(t *testing.T, py, addr, topic, isolation string) map[int32][]string {
	t.Helper()
	p := startProc(t, "read_topic "+isolation+" "+topic, exec.Command(py, script(t, "read_topic.py"), addr, isolation, topic))
	if !p.waitExit(90 * time.Second) {
		t.Fatalf("read_topic.py %s %s did not finish; output:\n%s", isolation, topic, p.output())
	}
	out := map[int32][]string{}
	done := false
	for _, e := range events(p.snapshot()) {
		switch e.Ev {
		case "rec":
			out[e.P] = append(out[e.P], e.V)
		case "done":
			done = true
		case "error":
			t.Fatalf("read_topic.py %s %s: %s", isolation, topic, e.Err)
		}
	}
	if !done {
		t.Fatalf("read_topic.py %s %s did not finish; output:\n%s", isolation, topic, p.output())
	}
	return out
}

// TestLibrdkafkaCommitAndAbort: a confluent-kafka transactional producer
// commits one transaction and aborts the next, each over every partition of
// two topics. librdkafka and franz-go read_committed consumers see exactly
// the committed records, in produce order per partition; read_uncommitted
// consumers see both transactions' records.
func TestLibrdkafkaCommitAndAbort(t *testing.T) {
	py := testbroker.Python(t)
	b := startBroker(t)
	const partitions, perPartition = 3, 40
	topics := []string{"rdk-basic-a", "rdk-basic-b"}
	for _, tp := range topics {
		createTopic(t, b.Addr, tp, partitions)
	}
	args := append([]string{script(t, "txn_basic.py"), b.Addr, "rdk-basic", fmt.Sprint(partitions), fmt.Sprint(perPartition)}, topics...)
	p := startProc(t, "txn_basic", exec.Command(py, args...))
	p.logOnFailure(t)
	if !p.waitExit(60 * time.Second) {
		t.Fatal("txn_basic.py did not finish")
	}
	var committed, aborted int
	for _, e := range events(p.snapshot()) {
		switch e.Ev {
		case "committed":
			committed = e.N
		case "aborted":
			aborted = e.N
		case "error":
			t.Fatalf("txn_basic.py: %s (code %d, fatal %v)", e.Err, e.Code, e.Fatal)
		}
	}
	if want := len(topics) * partitions * perPartition; committed != want || aborted != want {
		t.Fatalf("txn_basic.py committed %d and aborted %d records, want %d each", committed, aborted, want)
	}

	for _, topic := range topics {
		want := func(kinds ...string) map[int32][]string {
			m := map[int32][]string{}
			for _, k := range kinds {
				for p := range int32(partitions) {
					for i := range perPartition {
						m[p] = append(m[p], fmt.Sprintf("%s/%s/%d/%d", k, topic, p, i))
					}
				}
			}
			return m
		}
		check := func(who string, got, want map[int32][]string) {
			t.Helper()
			if !maps.EqualFunc(got, want, slices.Equal) {
				t.Errorf("%s of %s: got %s, want %s", who, topic, summary(got), summary(want))
			}
		}
		check("franz-go read_committed", values(readTopic(t, b.Addr, topic, true, 30*time.Second)), want("commit"))
		check("franz-go read_uncommitted", values(readTopic(t, b.Addr, topic, false, 30*time.Second)), want("commit", "abort"))
		check("librdkafka read_committed", pyRead(t, py, b.Addr, topic, "read_committed"), want("commit"))
		check("librdkafka read_uncommitted", pyRead(t, py, b.Addr, topic, "read_uncommitted"), want("commit", "abort"))
	}
}

// summary describes per-partition values briefly: count, first and last.
func summary(m map[int32][]string) string {
	s := "{"
	for _, p := range slices.Sorted(maps.Keys(m)) {
		v := m[p]
		if len(v) == 0 {
			s += fmt.Sprintf(" %d: none", p)
			continue
		}
		s += fmt.Sprintf(" %d: %d [%s .. %s]", p, len(v), v[0], v[len(v)-1])
	}
	return s + " }"
}

// TestLibrdkafkaCopierKilled: the read-process-write loop of
// testdata/rpw_copier.py (a read_committed group consumer and a
// transactional producer sending its positions with
// send_offsets_to_transaction) copies 5,100 seeded records over three
// partitions, keeping partitions. The test SIGKILLs it at random moments,
// six times, each time after it has committed at least once, and restarts it
// with the same transactional.id; the new instance fences the old one and
// its open transaction is aborted. At the end a read_committed read of the
// output holds every input record exactly once, in input order per
// partition, and so did a read_committed consumer tailing the output all
// along.
func TestLibrdkafkaCopierKilled(t *testing.T) {
	py := testbroker.Python(t)
	r := newRand(seed(t))
	b := startBroker(t)
	const in, out, group, txnID, partitions, perPartition, kills = "rdk-rpw-in", "rdk-rpw-out", "rdk-rpw", "rdk-rpw-copier", 3, 1700, 6
	createTopic(t, b.Addr, in, partitions)
	createTopic(t, b.Addr, out, partitions)
	want := produceSeeded(t, b.Addr, in, partitions, perPartition, r)
	stopTail := tail(t, b.Addr, out, partitions)

	// pos is the highest committed position per partition over the runs
	// so far; a copier reports -1001 for a partition it read nothing of.
	pos := map[string]int64{}
	finished := func(lines []string) bool {
		cur := maps.Clone(pos)
		for _, e := range events(lines) {
			for p, o := range e.Pos {
				cur[p] = max(cur[p], o)
			}
		}
		for p := range partitions {
			if cur[fmt.Sprint(p)] < perPartition {
				return false
			}
		}
		return true
	}
	var perRun []int // records committed by each killed copier
	record := func(c *proc) {
		n := 0
		for _, e := range events(c.snapshot()) {
			if e.Ev == "committed" {
				n += e.N
			}
			for p, o := range e.Pos {
				pos[p] = max(pos[p], o)
			}
		}
		perRun = append(perRun, n)
	}
	fatal := func(c *proc) {
		for _, e := range events(c.snapshot()) {
			if e.Ev == "error" {
				t.Fatalf("%s: %s (fatal %v)", c.name, e.Err, e.Fatal)
			}
		}
	}
	deadline := time.Now().Add(80 * time.Second)
	var aborted int
	for run := 0; ; run++ {
		c := startProc(t, fmt.Sprintf("copier#%d", run), exec.Command(py, script(t, "rpw_copier.py"),
			b.Addr, group, in, out, txnID, "25", "40"))
		c.logOnFailure(t)
		if run == kills {
			if !c.waitFor(time.Until(deadline), finished) {
				fatal(c)
				t.Fatalf("the last copier did not finish copying")
			}
			c.kill()
			break
		}
		// Once everything is copied a copier commits nothing more; then
		// the kill lands at a random moment after its start.
		if !c.waitFor(time.Until(deadline), func(l []string) bool { return hasEvent("committed")(l) || finished(nil) }) {
			fatal(c)
			t.Fatalf("%s committed nothing", c.name)
		}
		time.Sleep(time.Duration(r.IntN(1200)) * time.Millisecond)
		c.kill()
		fatal(c)
		record(c)
		for _, e := range events(c.snapshot()) {
			if e.Ev == "aborted" {
				aborted++
			}
		}
	}
	got := values(readTopic(t, b.Addr, out, true, 30*time.Second))
	if d := diffMultisets(multiset(flatten(want)), multiset(flatten(got))); d != "" {
		t.Fatalf("output of %s read_committed: %s", out, d)
	}
	for p := range int32(partitions) {
		if !slices.Equal(got[p], want[p]) {
			t.Errorf("partition %d: the output is not in input order", p)
		}
	}
	tailed := stopTail(partitions*perPartition, 30*time.Second)
	if !maps.EqualFunc(tailed, want, slices.Equal) {
		t.Errorf("the concurrent read_committed consumer saw %s (%s); want the input %s",
			summary(tailed), diffMultisets(multiset(flatten(want)), multiset(flatten(tailed))), summary(want))
	}
	hw := endOffsets(t, b.Addr, out, false)
	var total int64
	for _, h := range hw {
		total += h
	}
	t.Logf("copied %d records through %d kills (records committed by the killed copiers: %v; %d aborted transactions seen by them); the output log holds %d offsets (aborted copies and markers included)",
		len(flatten(got)), kills, perRun, aborted, total)
}

// pyEvents collects the events of a finished script, failing on "error".
func pyEvents(t *testing.T, p *proc, d time.Duration) []event {
	t.Helper()
	if !p.waitExit(d) {
		t.Fatalf("%s did not finish within %v", p.name, d)
	}
	evs := events(p.snapshot())
	for _, e := range evs {
		if e.Ev == "error" {
			t.Fatalf("%s: %s", p.name, e.Err)
		}
	}
	return evs
}

// fencedCodes are the errors librdkafka may report for a producer fenced
// by a newer instance of its transactional.id: _FENCED (-144, its own code
// for the fatal state), INVALID_PRODUCER_EPOCH (47), PRODUCER_FENCED (90).
var fencedCodes = []int{-144, 47, 90}

// TestLibrdkafkaFencing: a second confluent-kafka producer with the same
// transactional.id calls init_transactions while the first has an open
// transaction with acknowledged records. The first producer's later sends
// fail, its commit fails as fenced (a fatal error), and none of its
// records, early or late, is visible to read_committed; the second
// producer's transaction commits and is.
func TestLibrdkafkaFencing(t *testing.T) {
	py := testbroker.Python(t)
	b := startBroker(t)
	const topic, partitions = "rdk-fence", 3
	createTopic(t, b.Addr, topic, partitions)
	p := startProc(t, "fence", exec.Command(py, script(t, "fence.py"), b.Addr, "rdk-fence", topic, fmt.Sprint(partitions)))
	p.logOnFailure(t)
	evs := pyEvents(t, p, 90*time.Second)
	var commitFailed, fresh bool
	for _, e := range evs {
		switch e.Ev {
		case "late_delivered":
			t.Errorf("a send of the fenced producer was acknowledged")
		case "zombie_committed":
			t.Errorf("the fenced producer's commit succeeded")
		case "commit_failed":
			commitFailed = true
			if !e.Fatal || !slices.Contains(fencedCodes, e.Code) {
				t.Errorf("the fenced producer's commit failed with %q (code %d, fatal %v); want a fatal fenced error, one of %v", e.Err, e.Code, e.Fatal, fencedCodes)
			}
			t.Logf("fenced commit: %s (code %d, fatal %v)", e.Err, e.Code, e.Fatal)
		case "fresh_committed":
			fresh = true
		}
	}
	if !commitFailed || !fresh {
		t.Fatalf("fence.py did not run to the end (commit failed %v, second committed %v)", commitFailed, fresh)
	}
	got := values(readTopic(t, b.Addr, topic, true, 30*time.Second))
	for part := range int32(partitions) {
		var want []string
		for i := range 10 {
			want = append(want, fmt.Sprintf("fresh/%d/%d", part, i))
		}
		if !slices.Equal(got[part], want) {
			t.Errorf("partition %d read_committed: %v, want only the second producer's records %v", part, got[part], want)
		}
	}
	// The zombie's first records are in the log (and were aborted).
	all := multiset(flatten(values(readTopic(t, b.Addr, topic, false, 30*time.Second))))
	if all["zombie/0/0"] != 1 {
		t.Errorf("read_uncommitted does not hold the fenced producer's first records once: %d", all["zombie/0/0"])
	}
}

// commitWithFranz commits one transaction of perPartition records
// "kind/P/I" to every partition of topic with a franz-go transactional
// producer.
func commitWithFranz(t *testing.T, addr, txnID, topic, kind string, partitions int32, perPartition int) {
	t.Helper()
	cl := newClient(t, addr, kgo.TransactionalID(txnID), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for p := range partitions {
		for i := range perPartition {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "%s/%d/%d", kind, p, i)})
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce %s: %v", kind, err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit %s: %v", kind, err)
	}
}

// TestLibrdkafkaTransactionTimeout: a confluent-kafka producer with
// transaction.timeout.ms=4000 writes into a transaction and is SIGSTOPped.
// A franz-go producer then commits later records to the same partitions.
// While the hung transaction is open, read_committed stops at its first
// offset: the LSO stays there and a read_committed consumer sees only the
// records before it, not the later committed ones. Once the coordinator
// aborts the expired transaction the consumer moves on to the later
// records and never sees the hung ones; the resumed producer cannot commit.
func TestLibrdkafkaTransactionTimeout(t *testing.T) {
	py := testbroker.Python(t)
	b := startBroker(t)
	const topic, partitions, timeout = "rdk-hang", 2, 4 * time.Second
	createTopic(t, b.Addr, topic, partitions)
	before := produceSeeded(t, b.Addr, topic, partitions, 5, newRand(1))

	cmd := exec.Command(py, script(t, "hang.py"), b.Addr, "rdk-hang", topic, fmt.Sprint(partitions), fmt.Sprint(timeout.Milliseconds()))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	h := startProc(t, "hang", cmd)
	h.logOnFailure(t)
	if !h.waitFor(30*time.Second, hasEvent("open")) {
		t.Fatal("hang.py did not open its transaction")
	}
	opened := time.Now()
	if err := h.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	commitWithFranz(t, b.Addr, "rdk-hang-later", topic, "later", partitions, 5)

	// Held at the LSO: the hung transaction starts at offset 5 of each
	// partition.
	lso, hw := endOffsets(t, b.Addr, topic, true), endOffsets(t, b.Addr, topic, false)
	for p := range int32(partitions) {
		if lso[p] != 5 || hw[p] <= 5 {
			t.Errorf("partition %d while the transaction hangs: LSO %d, high watermark %d; want LSO 5 below the high watermark", p, lso[p], hw[p])
		}
	}
	parts := map[int32]kgo.Offset{}
	for p := range int32(partitions) {
		parts[p] = kgo.NewOffset().At(0)
	}
	cl := newClient(t, b.Addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(200*time.Millisecond))
	seen := map[int32][]string{}
	var laterAt time.Time
	poll := func(until time.Time) {
		ctx, cancel := context.WithDeadline(context.Background(), until)
		defer cancel()
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachError(func(tp string, p int32, err error) {
				if !isTimeout(err) {
					t.Fatalf("fetch %s/%d: %v", tp, p, err)
				}
			})
			fs.EachRecord(func(r *kgo.Record) {
				v := string(r.Value)
				seen[r.Partition] = append(seen[r.Partition], v)
				if strings.HasPrefix(v, "later/") && laterAt.IsZero() {
					laterAt = time.Now()
				}
			})
		}
	}
	poll(opened.Add(timeout / 2))
	if !maps.EqualFunc(seen, before, slices.Equal) {
		t.Fatalf("while the transaction hangs, read_committed saw %s; want only the records before it %s", summary(seen), summary(before))
	}
	if !laterAt.IsZero() {
		t.Fatal("read_committed saw later records past the LSO")
	}
	// The coordinator looks for expired transactions every second; give it
	// the timeout and ten seconds.
	deadline := opened.Add(timeout + 10*time.Second)
	for time.Now().Before(deadline) && total(seen) < 2*partitions*5 {
		poll(time.Now().Add(500 * time.Millisecond))
	}
	for p := range int32(partitions) {
		want := append(slices.Clone(before[p]), fmt.Sprint("later/", p, "/0"), fmt.Sprint("later/", p, "/1"), fmt.Sprint("later/", p, "/2"), fmt.Sprint("later/", p, "/3"), fmt.Sprint("later/", p, "/4"))
		if !slices.Equal(seen[p], want) {
			t.Errorf("partition %d after the timeout: read_committed saw %v, want %v", p, seen[p], want)
		}
	}
	if laterAt.IsZero() {
		t.Fatalf("read_committed never moved past the hung transaction (LSO %v)", endOffsets(t, b.Addr, topic, true))
	}
	t.Logf("later records visible %v after the hung transaction opened (timeout %v)", laterAt.Sub(opened).Round(time.Millisecond), timeout)
	if laterAt.Sub(opened) < timeout-500*time.Millisecond {
		t.Errorf("the hung transaction ended %v after it opened, before its timeout %v", laterAt.Sub(opened), timeout)
	}

	// The producer wakes up and tries to commit: too late.
	h.cmd.Process.Signal(syscall.SIGCONT)
	fmt.Fprintln(stdin, "commit")
	if !h.waitExit(30 * time.Second) {
		t.Fatal("hang.py did not finish after SIGCONT")
	}
	for _, e := range events(h.snapshot()) {
		switch e.Ev {
		case "committed":
			t.Errorf("the timed-out producer's commit succeeded")
		case "commit_failed":
			t.Logf("timed-out producer's commit: %s (code %d, fatal %v)", e.Err, e.Code, e.Fatal)
		}
	}
	final := values(readTopic(t, b.Addr, topic, true, 30*time.Second))
	for p, vs := range final {
		for _, v := range vs {
			if strings.HasPrefix(v, "hung/") {
				t.Errorf("partition %d: read_committed holds %s of the timed-out transaction", p, v)
			}
		}
	}
}

func total(m map[int32][]string) int32 {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return int32(n)
}
