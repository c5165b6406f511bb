// Package txncompat runs real transactional clients against the real
// `oncelog serve` process: librdkafka through Debian's
// python3-confluent-kafka (transaction protocol v1, as librdkafka speaks
// it), franz-go in the test process, and franz-go GroupTransactSession
// copiers as separate processes of a helper binary (testdata/copier).
// Clients, brokers and copiers are killed at random or chosen moments; the
// tests then read the outputs read_committed and compare them with what was
// committed.
//
// python3-confluent-kafka is looked up as testbroker.Python does; when it
// is missing its tests skip, except under CI=true, where they fail.
package txncompat

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/oncelog/oncelog/internal/testbroker"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// script is the absolute path of a file in testdata.
func script(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// seed returns the test's random seed: TXNCOMPAT_SEED if set, else a fresh
// one, logged so that a failure can be replayed.
func seed(t *testing.T) uint64 {
	t.Helper()
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("TXNCOMPAT_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("TXNCOMPAT_SEED: %v", err)
		}
		s = n
	}
	t.Logf("seed %d (replay with TXNCOMPAT_SEED=%d)", s, s)
	return s
}

func newRand(s uint64) *rand.Rand { return rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15)) }

// copierPackage is the helper binary of the session tests.
const copierPackage = "github.com/oncelog/oncelog/test/txncompat/testdata/copier"

func TestMain(m *testing.M) { testbroker.Main(m) }

// brokerSettings are the settings every test broker runs with: no initial
// rebalance delay and short sessions allowed, so that killed group members
// are noticed within seconds.
var brokerSettings = map[string]string{
	"group.initial.rebalance.delay.ms": "0",
	"group.min.session.timeout.ms":     "1000",
	"transaction.max.timeout.ms":       "60000",
}

// newBroker prepares a broker with the test settings; the test starts it.
func newBroker(t *testing.T) *testbroker.Broker {
	t.Helper()
	return testbroker.New(t, testbroker.Options{Settings: brokerSettings})
}

// startBroker starts a broker with the test settings.
func startBroker(t *testing.T) *testbroker.Broker {
	t.Helper()
	return testbroker.Start(t, testbroker.Options{Settings: brokerSettings})
}

// proc is a child process whose output lines (stdout and stderr) are
// collected.
type proc struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}

	mu    sync.Mutex
	lines []string
	cond  *sync.Cond
}

// startProc starts cmd and SIGKILLs it (if still running) when the test
// ends. It also dies with the test binary (Pdeathsig).
func startProc(t *testing.T, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{name: name, cmd: cmd, exited: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	w.Close()
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
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

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill SIGKILLs the process (continuing it first, should it be stopped)
// and waits for it to go.
func (p *proc) kill() {
	if !p.running() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Process.Signal(syscall.SIGCONT)
	<-p.exited
}

// waitExit waits up to d for the process to exit on its own.
func (p *proc) waitExit(d time.Duration) bool {
	select {
	case <-p.exited:
		return true
	case <-time.After(d):
		return false
	}
}

func (p *proc) snapshot() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

func (p *proc) output() string { return strings.Join(p.snapshot(), "\n") }

func (p *proc) logOnFailure(t *testing.T) {
	t.Cleanup(func() {
		if t.Failed() {
			out := p.snapshot()
			if len(out) > 300 {
				out = append([]string{fmt.Sprintf("... (%d lines before)", len(out)-300)}, out[len(out)-300:]...)
			}
			t.Logf("%s output:\n%s", p.name, strings.Join(out, "\n"))
		}
	})
}

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

// event is one JSON line of a testdata script or of the copier helper.
type event struct {
	Ev    string           `json:"ev"`
	Err   string           `json:"err"`
	Code  int              `json:"code"`
	Fatal bool             `json:"fatal"`
	N     int              `json:"n"`
	Pos   map[string]int64 `json:"pos"`
	P     int32            `json:"p"`
	O     int64            `json:"o"`
	V     string           `json:"v"`
}

// events parses the JSON lines of a process's output; other lines
// (librdkafka's logs) are skipped.
func events(lines []string) []event {
	var out []event
	for _, l := range lines {
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var e event
		if json.Unmarshal([]byte(l), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

func hasEvent(name string) func([]string) bool {
	return func(lines []string) bool {
		for _, e := range events(lines) {
			if e.Ev == name {
				return true
			}
		}
		return false
	}
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func newClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func createTopic(t *testing.T, addr, topic string, partitions int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := newClient(t, addr)
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

// offsets are per partition offsets of one topic.
type offsets map[int32]int64

// endOffsets lists the high watermarks (read_uncommitted) or the last
// stable offsets (read_committed) of topic.
func endOffsets(t *testing.T, addr, topic string, committed bool) offsets {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := newClient(t, addr)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	list := adm.ListEndOffsets
	if committed {
		list = adm.ListCommittedOffsets
	}
	lo, err := list(ctx, topic)
	if err != nil {
		t.Fatalf("list end offsets of %s: %v", topic, err)
	}
	out := offsets{}
	lo.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset of %s/%d: %v", topic, o.Partition, o.Err)
		}
		out[o.Partition] = o.Offset
	})
	return out
}

// waitStable waits until no transaction holds topic's LSO below its high
// watermark, and returns the high watermarks.
func waitStable(t *testing.T, addr, topic string, d time.Duration) offsets {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		hw, lso := endOffsets(t, addr, topic, false), endOffsets(t, addr, topic, true)
		stable := true
		for p, h := range hw {
			if lso[p] != h {
				stable = false
			}
		}
		if stable {
			return hw
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the last stable offsets %v stay below the high watermarks %v for %v (a hanging transaction)", topic, lso, hw, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readTopic reads every partition of topic from offset 0 until the
// partition's last record below its high watermark at the call (control
// records are kept so that the end of a transactional partition is seen),
// and returns the data records per partition in log order. read_committed
// reads wait first until no open transaction holds the LSO.
func readTopic(t *testing.T, addr, topic string, committed bool, d time.Duration) map[int32][]*kgo.Record {
	t.Helper()
	var ends offsets
	if committed {
		ends = waitStable(t, addr, topic, d)
	} else {
		ends = endOffsets(t, addr, topic, false)
	}
	parts := map[int32]kgo.Offset{}
	for p := range ends {
		parts[p] = kgo.NewOffset().At(0)
	}
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	cl := newClient(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.FetchIsolationLevel(iso), kgo.KeepControlRecords(), kgo.FetchMaxWait(200*time.Millisecond))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	out := map[int32][]*kgo.Record{}
	last := offsets{}
	done := func() bool {
		for p, e := range ends {
			if l, ok := last[p]; e > 0 && (!ok || l < e-1) {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: reached %v of %v before the timeout", topic, last, ends)
		}
		fs.EachError(func(tp string, p int32, err error) {
			t.Fatalf("fetch %s/%d: %v", tp, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= ends[r.Partition] {
				return
			}
			last[r.Partition] = r.Offset
			if !r.Attrs.IsControl() {
				out[r.Partition] = append(out[r.Partition], r)
			}
		})
	}
	return out
}

// values lists the record values of recs, partition by partition.
func values(recs map[int32][]*kgo.Record) map[int32][]string {
	out := map[int32][]string{}
	for p, rs := range recs {
		for _, r := range rs {
			out[p] = append(out[p], string(r.Value))
		}
	}
	return out
}

// multiset counts values.
func multiset(vs ...[]string) map[string]int {
	m := map[string]int{}
	for _, v := range vs {
		for _, s := range v {
			m[s]++
		}
	}
	return m
}

// flatten lists every value of a per-partition map.
func flatten(m map[int32][]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v...)
	}
	return out
}

// diffMultisets describes how got differs from want (missing and extra
// values, with a few examples), or returns "" when they are equal.
func diffMultisets(want, got map[string]int) string {
	var missing, extra, dup int
	var ex []string
	for v, n := range want {
		if g := got[v]; g < n {
			missing += n - g
			if len(ex) < 5 {
				ex = append(ex, fmt.Sprintf("missing %q", v))
			}
		} else if g > n {
			dup += g - n
			if len(ex) < 5 {
				ex = append(ex, fmt.Sprintf("%q %d times", v, g))
			}
		}
	}
	for v, n := range got {
		if _, ok := want[v]; !ok {
			extra += n
			if len(ex) < 5 {
				ex = append(ex, fmt.Sprintf("unexpected %q", v))
			}
		}
	}
	if missing+extra+dup == 0 {
		return ""
	}
	return fmt.Sprintf("%d missing, %d duplicated, %d never written; e.g. %s", missing, dup, extra, strings.Join(ex, ", "))
}

// produceSeeded writes perPartition seeded records to each partition of
// topic (idempotently, acks=all) and returns their values per partition.
func produceSeeded(t *testing.T, addr, topic string, partitions int32, perPartition int, r *rand.Rand) map[int32][]string {
	t.Helper()
	cl := newClient(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	defer cl.Close()
	want := map[int32][]string{}
	var recs []*kgo.Record
	for p := range partitions {
		for i := range perPartition {
			v := fmt.Sprintf("%s/%d/%d/%016x", topic, p, i, r.Uint64())
			want[p] = append(want[p], v)
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
	return want
}

// isTimeout reports whether err is a context deadline.
func isTimeout(err error) bool { return errors.Is(err, context.DeadlineExceeded) }

// tail consumes topic read_committed from the start, concurrently with the
// test, until stop is called; stop returns the values per partition once at
// least n records were seen (or fails after d).
func tail(t *testing.T, addr, topic string, partitions int32) (stop func(n int, d time.Duration) map[int32][]string) {
	t.Helper()
	parts := map[int32]kgo.Offset{}
	for p := range partitions {
		parts[p] = kgo.NewOffset().At(0)
	}
	cl := newClient(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(200*time.Millisecond))
	var mu sync.Mutex
	seen := map[int32][]string{}
	count := 0
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var fetchErr error
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachError(func(tp string, p int32, err error) {
				if ctx.Err() == nil && fetchErr == nil {
					fetchErr = fmt.Errorf("tail %s/%d: %w", tp, p, err)
				}
			})
			mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				seen[r.Partition] = append(seen[r.Partition], string(r.Value))
				count++
			})
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return func(n int, d time.Duration) map[int32][]string {
		t.Helper()
		deadline := time.Now().Add(d)
		for {
			mu.Lock()
			c := count
			mu.Unlock()
			if c >= n || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		cancel()
		<-done
		if fetchErr != nil {
			t.Fatal(fetchErr)
		}
		return seen
	}
}
