package groupcompat

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oncelog/oncelog/internal/testbroker"
)

// runKcatGroup consumes n records of topic as a member of group with kcat
// (librdkafka's high-level consumer, auto-commit on) and returns the
// (partition, offset) of each. kcat exits after n records (-c), which
// closes the consumer and commits what it consumed.
func runKcatGroup(t *testing.T, ctx context.Context, addr, group, topic string, n int) map[int32][]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kcat", "-b", addr, "-G", group, "-c", strconv.Itoa(n), "-q",
		"-f", "%p %o\\n", "-X", "auto.offset.reset=earliest", "-X", "broker.address.family=v4", topic)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat -G %s: %v\nstderr:\n%s", group, err, stderr.String())
	}
	got := map[int32][]int64{}
	for l := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		var p int32
		var o int64
		if _, err := fmt.Sscanf(l, "%d %d", &p, &o); err != nil {
			t.Fatalf("kcat output line %q: %v", l, err)
		}
		got[p] = append(got[p], o)
	}
	return got
}

// TestKcatGroupCommits: kcat -G consumes a 3-partition topic as a group
// member; the offsets committed afterwards (read with kadm) are one past
// the last record it consumed of each partition. A second run of the same
// group resumes there and consumes only the records written since.
func TestKcatGroupCommits(t *testing.T) {
	_, err := exec.LookPath("kcat")
	testbroker.Require(t, "kcat", err)
	addr := startBroker(t)
	ctx := testCtx(t, 100*time.Second)
	const topic, group, partitions = "kcat-group", "kcat-g1", int32(3)
	createAndFill(t, ctx, addr, topic, partitions, 40)

	check := func(round string, got map[int32][]int64, from, to int64) {
		t.Helper()
		for p := range partitions {
			os := got[p]
			if int64(len(os)) != to-from {
				t.Errorf("%s: partition %d: consumed %d records, want %d (%v)", round, p, len(os), to-from, os)
				continue
			}
			for i, o := range os {
				if o != from+int64(i) {
					t.Errorf("%s: partition %d: record %d has offset %d, want %d", round, p, i, o, from+int64(i))
					break
				}
			}
		}
		c := committed(t, ctx, addr, group, topic, partitions)
		for p := range partitions {
			if c[p] != to {
				t.Errorf("%s: partition %d: committed %d, want %d (one past the last consumed)", round, p, c[p], to)
			}
		}
	}
	check("first run", runKcatGroup(t, ctx, addr, group, topic, 3*40), 0, 40)

	fill(t, ctx, addr, topic, partitions, 10)
	check("second run", runKcatGroup(t, ctx, addr, group, topic, 3*10), 40, 50)
}
