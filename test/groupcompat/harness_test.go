// Package groupcompat runs real Kafka clients other than franz-go as
// consumer group members against the real `oncelog serve` process:
// librdkafka through Debian's python3-confluent-kafka, and kcat.
//
// The tools are found on the machine; a missing one skips its test, except
// under CI=true, where it fails it.
package groupcompat

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/oncelog/oncelog/internal/testbroker"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestMain(m *testing.M) { testbroker.Main(m) }

// startBroker runs `oncelog serve` with no initial rebalance delay on a
// fresh data directory until the test ends, and returns its address.
func startBroker(t *testing.T) string {
	t.Helper()
	return testbroker.Start(t, testbroker.Options{Settings: map[string]string{"group.initial.rebalance.delay.ms": "0"}}).Addr
}

// proc is a child process whose output lines are collected.
type proc struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}

	mu    sync.Mutex
	lines []string
	cond  *sync.Cond
}

// startProc starts cmd, collects stdout and stderr line by line, and
// SIGKILLs it (if still running) when the test ends.
func startProc(t *testing.T, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{name: name, cmd: cmd, exited: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	w.Close()
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.cond.Broadcast()
			p.mu.Unlock()
		}
		r.Close()
		cmd.Wait()
		p.mu.Lock()
		close(p.exited)
		p.cond.Broadcast()
		p.mu.Unlock()
	}()
	t.Cleanup(p.kill)
	return p
}

func (p *proc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop asks the process to finish with SIGTERM and waits up to d, then kills it.
func (p *proc) stop(d time.Duration) {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(d):
		p.kill()
	}
}

// snapshot returns the lines so far.
func (p *proc) snapshot() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

func (p *proc) output() string { return strings.Join(p.snapshot(), "\n") }

// waitFor waits up to d until cond holds for the lines so far; it gives up
// early when the process has exited and cond still fails.
func (p *proc) waitFor(d time.Duration, cond func([]string) bool) bool {
	timer := time.AfterFunc(d, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(d)
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if cond(p.lines) {
			return true
		}
		select {
		case <-p.exited:
			return cond(p.lines)
		default:
		}
		if !time.Now().Before(deadline) {
			return false
		}
		p.cond.Wait()
	}
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func adminClient(t *testing.T, addr string) (*kgo.Client, *kadm.Client) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl, kadm.NewClient(cl)
}

// createAndFill creates topic with partitions and writes perPartition
// records to each, with values "p-o".
func createAndFill(t *testing.T, ctx context.Context, addr, topic string, partitions int32, perPartition int) {
	t.Helper()
	_, adm := adminClient(t, addr)
	resp, err := adm.CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
	fill(t, ctx, addr, topic, partitions, perPartition)
}

func fill(t *testing.T, ctx context.Context, addr, topic string, partitions int32, perPartition int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for p := range partitions {
		for i := range perPartition {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "%d-%d", p, i)})
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
}

// committed returns the group's committed offset of every partition (-1
// when none).
func committed(t *testing.T, ctx context.Context, addr, group, topic string, partitions int32) map[int32]int64 {
	t.Helper()
	_, adm := adminClient(t, addr)
	resps, err := adm.FetchOffsetsForTopics(ctx, group, topic)
	if err != nil {
		t.Fatalf("fetch offsets of %s: %v", group, err)
	}
	out := map[int32]int64{}
	for p := range partitions {
		o, ok := resps.Lookup(topic, p)
		if !ok || o.Err != nil {
			t.Fatalf("fetch offsets of %s %s/%d: %v (found %v)", group, topic, p, o.Err, ok)
		}
		out[p] = o.At
	}
	return out
}
