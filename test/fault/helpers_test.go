package fault

// Helpers shared by the fault tests: the oncelog binary (built once per test
// run), broker processes on a free loopback port, franz-go clients.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// oncelogBinary builds ./cmd/oncelog once per test run and returns its path.
func oncelogBinary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "oncelog-fault-bin-")
		if err != nil {
			build.err = err
			return
		}
		build.dir = dir
		build.bin = filepath.Join(dir, "oncelog")
		cmd := exec.Command("go", "build", "-o", build.bin, "github.com/oncelog/oncelog/cmd/oncelog")
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.bin
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// lockedBuffer collects a process's stderr.
type lockedBuffer struct {
	mu sync.Mutex
	sb strings.Builder
}

func (b *lockedBuffer) add(line string) {
	b.mu.Lock()
	b.sb.WriteString(line)
	b.sb.WriteByte('\n')
	b.mu.Unlock()
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sb.String()
}

// brokerProc is one `oncelog serve` process at a time on a fixed address and
// data directory; Start may be called again after Kill or Stop.
type brokerProc struct {
	t       testing.TB
	bin     string
	Addr    string
	DataDir string
	Args    []string // extra arguments to serve

	cmd       *exec.Cmd
	stderr    *lockedBuffer
	exited    chan struct{}
	exitErr   error
	listening time.Duration // from process start to the "listening on" line
}

func newBrokerProc(t testing.TB, dataDir string, args ...string) *brokerProc {
	t.Helper()
	p := &brokerProc{t: t, bin: oncelogBinary(t), Addr: freeAddr(t), DataDir: dataDir, Args: args}
	t.Cleanup(func() {
		if p.running() {
			p.Kill()
		}
	})
	return p
}

func (p *brokerProc) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// launch starts the process and returns a channel closed when it logs
// "listening on".
func (p *brokerProc) launch() (<-chan struct{}, time.Time, error) {
	if p.running() {
		p.t.Fatalf("broker already running")
	}
	args := append([]string{"serve", "--listen", p.Addr, "--data-dir", p.DataDir}, p.Args...)
	cmd := exec.Command(p.bin, args...)
	// The broker dies with the test binary even if cleanup never runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pipe, err := cmd.StderrPipe()
	if err != nil {
		return nil, time.Time{}, err
	}
	p.stderr = &lockedBuffer{}
	p.exited = make(chan struct{})
	listening := make(chan struct{})
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, start, err
	}
	p.cmd = cmd
	stderr, exited := p.stderr, p.exited
	scanDone := make(chan struct{})
	go func() {
		defer close(scanDone)
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		want := "listening on " + p.Addr
		seen := false
		for sc.Scan() {
			line := sc.Text()
			stderr.add(line)
			if !seen && strings.Contains(line, want) {
				seen = true
				close(listening)
			}
		}
	}()
	go func() {
		<-scanDone // Wait must not run before the pipe is drained
		p.exitErr = cmd.Wait()
		close(exited)
	}()
	return listening, start, nil
}

// Start starts the broker and waits until it listens.
func (p *brokerProc) Start() {
	p.t.Helper()
	if err := p.TryStart(60 * time.Second); err != nil {
		p.t.Fatal(err)
	}
}

// TryStart starts the broker and waits up to timeout for it to listen; it
// returns an error if the process exits first.
func (p *brokerProc) TryStart(timeout time.Duration) error {
	listening, start, err := p.launch()
	if err != nil {
		return err
	}
	select {
	case <-listening:
		p.listening = time.Since(start)
		return nil
	case <-p.exited:
		return fmt.Errorf("broker exited before listening (%v); stderr:\n%s", p.exitErr, p.stderr)
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("broker not listening after %v; stderr:\n%s", timeout, p.stderr)
	}
}

// Kill sends SIGKILL and waits for the process to go.
func (p *brokerProc) Kill() {
	if !p.running() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// Stop sends SIGTERM and waits for a clean exit (SIGKILL after 30s).
func (p *brokerProc) Stop() {
	p.t.Helper()
	if !p.running() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.exitErr != nil {
			p.t.Errorf("broker did not stop cleanly: %v; stderr:\n%s", p.exitErr, p.stderr)
		}
	case <-time.After(30 * time.Second):
		p.Kill()
		p.t.Errorf("broker did not stop within 30s of SIGTERM")
	}
}

// WaitExit waits for the process to exit on its own and returns its error.
func (p *brokerProc) WaitExit(timeout time.Duration) (error, bool) {
	select {
	case <-p.exited:
		return p.exitErr, true
	case <-time.After(timeout):
		return nil, false
	}
}

// Stderr is everything the current (or last) process wrote to stderr.
func (p *brokerProc) Stderr() string { return p.stderr.String() }

// newClient makes a franz-go client that the test closes at cleanup.
func newClient(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// createTopic creates a topic with n partitions.
func createTopic(t testing.TB, addr, topic string, n int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := newClient(t, addr)
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, n, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	cl.Close()
}

// endOffsets returns the high watermark of each partition of topic.
func endOffsets(t testing.TB, addr, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := newClient(t, addr)
	defer cl.Close()
	lo, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list end offsets of %s: %v", topic, err)
	}
	out := map[int32]int64{}
	lo.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset of %s/%d: %v", topic, o.Partition, o.Err)
		}
		out[o.Partition] = o.Offset
	})
	return out
}

// readAll reads every partition of topic from offset 0 up to its high
// watermark, directly (no proxy), and returns the records per partition in
// log order.
func readAll(t testing.TB, addr, topic string, timeout time.Duration) map[int32][]*kgo.Record {
	t.Helper()
	ends := endOffsets(t, addr, topic)
	parts := map[int32]kgo.Offset{}
	want := 0
	for p, e := range ends {
		parts[p] = kgo.NewOffset().At(0)
		want += int(e)
	}
	out := map[int32][]*kgo.Record{}
	if want == 0 {
		return out
	}
	cl := newClient(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}), kgo.FetchMaxWait(200*time.Millisecond))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	got := 0
	done := func() bool {
		for p, e := range ends {
			rs := out[p]
			if e > 0 && (len(rs) == 0 || rs[len(rs)-1].Offset < e-1) {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: got %d of %d records before timeout", topic, got, want)
		}
		fs.EachError(func(tp string, p int32, err error) {
			t.Fatalf("fetch %s/%d: %v", tp, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < ends[r.Partition] {
				out[r.Partition] = append(out[r.Partition], r)
				got++
			}
		})
	}
	return out
}

// checkGapFree fails unless each partition's records carry offsets 0, 1, 2...
func checkGapFree(t testing.TB, recs map[int32][]*kgo.Record) {
	t.Helper()
	for p, rs := range recs {
		for i, r := range rs {
			if r.Offset != int64(i) {
				t.Fatalf("partition %d: record %d has offset %d (gap or duplicate in the offsets)", p, i, r.Offset)
			}
		}
	}
}
