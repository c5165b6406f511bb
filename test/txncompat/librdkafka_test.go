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
