package txncompat

import (
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"testing"
	"time"
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
	py := needPython(t)
	b := startBroker(t)
	const partitions, perPartition = 3, 40
	topics := []string{"rdk-basic-a", "rdk-basic-b"}
	for _, tp := range topics {
		createTopic(t, b.addr, tp, partitions)
	}
	args := append([]string{script(t, "txn_basic.py"), b.addr, "rdk-basic", fmt.Sprint(partitions), fmt.Sprint(perPartition)}, topics...)
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
		check("franz-go read_committed", values(readTopic(t, b.addr, topic, true, 30*time.Second)), want("commit"))
		check("franz-go read_uncommitted", values(readTopic(t, b.addr, topic, false, 30*time.Second)), want("commit", "abort"))
		check("librdkafka read_committed", pyRead(t, py, b.addr, topic, "read_committed"), want("commit"))
		check("librdkafka read_uncommitted", pyRead(t, py, b.addr, topic, "read_uncommitted"), want("commit", "abort"))
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
// partition.
func TestLibrdkafkaCopierKilled(t *testing.T) {
	py := needPython(t)
	r := newRand(seed(t))
	b := startBroker(t)
	const in, out, group, txnID, partitions, perPartition, kills = "rdk-rpw-in", "rdk-rpw-out", "rdk-rpw", "rdk-rpw-copier", 3, 1700, 6
	createTopic(t, b.addr, in, partitions)
	createTopic(t, b.addr, out, partitions)
	want := produceSeeded(t, b.addr, in, partitions, perPartition, r)

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
			b.addr, group, in, out, txnID, "25", "40"))
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
	got := values(readTopic(t, b.addr, out, true, 30*time.Second))
	if d := diffMultisets(multiset(flatten(want)), multiset(flatten(got))); d != "" {
		t.Fatalf("output of %s read_committed: %s", out, d)
	}
	for p := range int32(partitions) {
		if !slices.Equal(got[p], want[p]) {
			t.Errorf("partition %d: the output is not in input order", p)
		}
	}
	hw := endOffsets(t, b.addr, out, false)
	var total int64
	for _, h := range hw {
		total += h
	}
	t.Logf("copied %d records through %d kills (records committed by the killed copiers: %v; %d aborted transactions seen by them); the output log holds %d offsets (aborted copies and markers included)",
		len(flatten(got)), kills, perRun, aborted, total)
}
