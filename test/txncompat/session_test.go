package txncompat

import (
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/oncelog/oncelog/internal/testbroker"
	"github.com/twmb/franz-go/pkg/kadm"
)

// TestGroupTransactSessionCopiersKilled: three franz-go
// GroupTransactSession copiers (testdata/copier, separate processes) in one
// group copy a seeded 6-partition input to the same partitions of an output
// topic. Five times a random copier is killed, with SIGKILL (it neither
// leaves the group nor ends its transaction) or, one time in three, with
// SIGTERM (it closes its session and leaves), and is restarted at once with
// the same transactional id. When the group's committed offsets reach the
// end of the input, a read_committed read of the output holds every input
// record exactly once, in input order per partition, and so did a
// read_committed consumer tailing the output all along.
func TestGroupTransactSessionCopiersKilled(t *testing.T) {
	r := newRand(seed(t))
	b := startBroker(t)
	const in, out, group, partitions, perPartition, copiers, kills = "gts-in", "gts-out", "gts", 6, 1000, 3, 5
	createTopic(t, b.Addr, in, partitions)
	createTopic(t, b.Addr, out, partitions)
	want := produceSeeded(t, b.Addr, in, partitions, perPartition, r)
	ctx := testCtx(t, 110*time.Second)
	// A read_committed consumer of the output all along, as in Kafka's
	// transactions system test: it must never see an aborted or
	// duplicated copy either.
	stopTail := tail(t, b.Addr, out, partitions)

	bin := testbroker.Build(t, copierPackage)
	runs := make([]int, copiers)
	procs := make([]*proc, copiers)
	var all []*proc // every copier process, the killed ones too
	start := func(i int) {
		runs[i]++
		p := startProc(t, fmt.Sprintf("copier%d#%d", i, runs[i]), exec.Command(bin,
			"-brokers", b.Addr, "-group", group, "-in", in, "-out", out,
			"-txn-id", fmt.Sprint("gts-copier-", i), "-max-records", "20", "-pause", "60ms"))
		p.logOnFailure(t)
		procs[i] = p
		all = append(all, p)
	}
	for i := range copiers {
		start(i)
	}
	for i := range copiers {
		if !procs[i].waitFor(30*time.Second, hasEvent("ready")) {
			t.Fatalf("%s did not start", procs[i].name)
		}
	}
	if !procs[0].waitFor(30*time.Second, hasEvent("committed")) {
		t.Fatalf("%s committed nothing", procs[0].name)
	}

	cl := newClient(t, b.Addr)
	adm := kadm.NewClient(cl)
	progress := func() (int64, bool) {
		resp, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			t.Fatalf("fetch offsets of %s: %v", group, err)
		}
		var n int64
		for p := range int32(partitions) {
			if o, ok := resp.Lookup(in, p); ok && o.Err == nil && o.At > 0 {
				n += o.At
			}
		}
		return n, n == partitions*perPartition
	}
	var hard, clean int
	for k := range kills {
		time.Sleep(time.Duration(800+r.IntN(1700)) * time.Millisecond)
		n, done := progress()
		i := r.IntN(copiers)
		if r.IntN(3) == 0 {
			clean++
			procs[i].cmd.Process.Signal(syscall.SIGTERM)
			if !procs[i].waitExit(20 * time.Second) {
				t.Fatalf("%s did not close after SIGTERM", procs[i].name)
			}
		} else {
			hard++
			procs[i].kill()
		}
		t.Logf("kill %d: %s after %d of %d records committed (all done: %v)", k+1, procs[i].name, n, partitions*perPartition, done)
		start(i)
	}
	for {
		if _, done := progress(); done {
			break
		}
		for _, p := range procs {
			for _, e := range events(p.snapshot()) {
				if e.Ev == "error" {
					t.Fatalf("%s: %s", p.name, e.Err)
				}
			}
		}
		if ctx.Err() != nil {
			n, _ := progress()
			t.Fatalf("the copiers did not finish: %d of %d records committed", n, partitions*perPartition)
		}
		time.Sleep(300 * time.Millisecond)
	}
	var committedTxns, abortedTxns int
	for _, p := range procs {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range procs {
		p.waitExit(20 * time.Second)
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
	for _, p := range all {
		for _, e := range events(p.snapshot()) {
			switch e.Ev {
			case "committed":
				committedTxns++
			case "aborted":
				abortedTxns++
			}
		}
	}
	t.Logf("%d records copied exactly once through %d SIGKILLs and %d clean restarts; %d copier processes committed %d and aborted %d transactions",
		partitions*perPartition, hard, clean, len(all), committedTxns, abortedTxns)
}
