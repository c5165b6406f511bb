package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Target is a broker program the driver can start.
type Target struct {
	// Name is how the target is reported ("oncelog", "kfake").
	Name string
	// Bin is the executable.
	Bin string
	// Args returns the command line for a broker listening on addr with
	// dataDir as its (fresh, empty) data directory.
	Args func(addr, dataDir string, partitions int) []string
}

// OncelogTarget runs `oncelog serve`.
func OncelogTarget(bin string) Target {
	return Target{
		Name: "oncelog",
		Bin:  bin,
		Args: func(addr, dataDir string, _ int) []string {
			return []string{"serve", "--listen", addr, "--data-dir", dataDir}
		},
	}
}

// KfakeTarget runs bench/kfakeserver, which keeps everything in memory; the
// data directory is not passed.
func KfakeTarget(bin string) Target {
	return Target{
		Name: "kfake",
		Bin:  bin,
		Args: func(addr, _ string, partitions int) []string {
			return []string{"--listen", addr, "--partitions", fmt.Sprint(partitions)}
		},
	}
}

// readyLine is what both brokers print, on stdout or stderr, once they accept
// connections.
const readyLine = "listening on"

// Limits on a broker process's life, named so a hung broker fails a run
// instead of the whole benchmark.
const (
	maxStartWait = 30 * time.Second
	maxStopWait  = 15 * time.Second
	logTailBytes = 16 << 10
)

// Broker is one running broker process.
type Broker struct {
	Target  Target
	Addr    string
	DataDir string

	// Started is when the process was started; Ready is when its output
	// first contained readyLine (as seen by this process, so it includes
	// the pipe's delay, well under a millisecond).
	Started, Ready time.Time

	// keepData: DataDir was given by the caller and outlives the process.
	keepData bool
	cmd      *exec.Cmd
	out      *watchWriter
	exited   chan struct{} // closed once cmd.Wait returned; waitErr is then set
	// waitErr is written once before exited is closed, read only after.
	waitErr error
}

// StartBroker starts t on a free loopback port with a fresh data directory
// under tmpDir and waits until it prints readyLine.
func StartBroker(ctx context.Context, t Target, tmpDir string, partitions int) (*Broker, error) {
	return startBroker(ctx, t, tmpDir, "", partitions, maxStartWait)
}

// StartBrokerOn starts t on a free loopback port with dataDir as its data
// directory, which may hold the data of an earlier process, and waits up to
// wait for readyLine. Stop and Kill leave dataDir in place.
func StartBrokerOn(ctx context.Context, t Target, dataDir string, wait time.Duration) (*Broker, error) {
	return startBroker(ctx, t, "", dataDir, 0, wait)
}

func startBroker(ctx context.Context, t Target, tmpDir, dataDir string, partitions int, wait time.Duration) (*Broker, error) {
	// A free port can be taken between our probe and the broker's bind;
	// try a few.
	var lastErr error
	for range 3 {
		b, err := startBrokerOnce(ctx, t, tmpDir, dataDir, partitions, wait)
		if err == nil {
			return b, nil
		}
		lastErr = err
		if ctx.Err() != nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, lastErr
}

func startBrokerOnce(ctx context.Context, t Target, tmpDir, dataDir string, partitions int, wait time.Duration) (*Broker, error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	keep := dataDir != ""
	if !keep {
		if dataDir, err = os.MkdirTemp(tmpDir, t.Name+"-data-"); err != nil {
			return nil, err
		}
	}
	b := &Broker{
		Target:   t,
		Addr:     addr,
		DataDir:  dataDir,
		keepData: keep,
		out:      newWatchWriter(readyLine),
		exited:   make(chan struct{}),
	}
	// Not exec.CommandContext: the broker must get SIGTERM and a chance
	// to shut down cleanly, and its CPU counters must stay readable until
	// we decide to stop it.
	b.cmd = exec.Command(t.Bin, t.Args(addr, dataDir, partitions)...)
	b.cmd.Stdout = b.out
	b.cmd.Stderr = b.out
	b.cmd.Dir = dataDir
	b.Started = time.Now()
	if err := b.cmd.Start(); err != nil {
		if !keep {
			os.RemoveAll(dataDir)
		}
		return nil, fmt.Errorf("start %s: %w", t.Name, err)
	}
	go func() {
		b.waitErr = b.cmd.Wait()
		close(b.exited)
	}()

	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-b.out.ready:
		b.Ready = b.out.ReadyAt()
		return b, nil
	case <-b.exited:
		err = fmt.Errorf("%s exited before %q: %v; output:\n%s", t.Name, readyLine, b.waitErr, b.out.Tail())
	case <-timer.C:
		err = fmt.Errorf("%s did not print %q within %v; output:\n%s", t.Name, readyLine, wait, b.out.Tail())
	case <-ctx.Done():
		err = ctx.Err()
	}
	b.Stop()
	return nil, err
}

// PID is the broker's process id.
func (b *Broker) PID() int { return b.cmd.Process.Pid }

// CPU reads the broker's accumulated CPU time.
func (b *Broker) CPU() (CPUTimes, error) { return ReadCPUTimes(b.PID()) }

// Alive reports an error if the broker has exited.
func (b *Broker) Alive() error {
	select {
	case <-b.exited:
		return fmt.Errorf("%s exited: %v; output:\n%s", b.Target.Name, b.waitErr, b.out.Tail())
	default:
		return nil
	}
}

// StopResult is what is known about a broker after it stopped.
type StopResult struct {
	CPU       CPUTimes // whole life; zero if unreadable
	PeakRSS   int64    // bytes; zero if unreadable
	CleanExit bool     // exited on SIGTERM within maxStopWait with status 0
	Err       error    // why not clean
}

// Stop sends SIGTERM, waits up to maxStopWait, then SIGKILLs, and removes
// the data directory unless the caller gave it (StartBrokerOn). Safe to
// call once.
func (b *Broker) Stop() StopResult {
	var r StopResult
	// Read the counters while the process still exists: once reaped,
	// /proc/PID is gone.
	if c, err := b.CPU(); err == nil {
		r.CPU = c
	}
	if n, err := ReadPeakRSS(b.PID()); err == nil {
		r.PeakRSS = n
	}
	select {
	case <-b.exited:
		r.Err = fmt.Errorf("%s had already exited: %v", b.Target.Name, b.waitErr)
	default:
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		timer := time.NewTimer(maxStopWait)
		select {
		case <-b.exited:
			timer.Stop()
			if b.waitErr == nil {
				r.CleanExit = true
			} else {
				r.Err = fmt.Errorf("%s exit after SIGTERM: %v", b.Target.Name, b.waitErr)
			}
		case <-timer.C:
			_ = b.cmd.Process.Kill()
			<-b.exited
			r.Err = fmt.Errorf("%s ignored SIGTERM for %v, killed", b.Target.Name, maxStopWait)
		}
	}
	if !b.keepData {
		os.RemoveAll(b.DataDir)
	}
	return r
}

// Kill sends SIGKILL and waits for the process to go: no shutdown, no final
// fsync or snapshot, as in a crash of the process (not of the machine: what
// it wrote is in the page cache). The data directory is removed unless the
// caller gave it (StartBrokerOn). Safe to call once, instead of Stop.
func (b *Broker) Kill() StopResult {
	var r StopResult
	if c, err := b.CPU(); err == nil {
		r.CPU = c
	}
	if n, err := ReadPeakRSS(b.PID()); err == nil {
		r.PeakRSS = n
	}
	select {
	case <-b.exited:
		r.Err = fmt.Errorf("%s had already exited: %v", b.Target.Name, b.waitErr)
	default:
		_ = b.cmd.Process.Kill()
		<-b.exited
	}
	if !b.keepData {
		os.RemoveAll(b.DataDir)
	}
	return r
}

// Tail returns the last bytes the broker printed.
func (b *Broker) Tail() string { return b.out.Tail() }

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// watchWriter keeps the last logTailBytes of a process's output and closes
// ready the first time the output contains the needle. It never blocks and
// never errors, so a chatty broker cannot stall on a full pipe.
type watchWriter struct {
	needle []byte
	ready  chan struct{}

	mu struct {
		sync.Mutex
		tail    []byte
		found   bool
		foundAt time.Time // when found became true
	}
}

func newWatchWriter(needle string) *watchWriter {
	return &watchWriter{needle: []byte(needle), ready: make(chan struct{})}
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	// Search the old tail and the new bytes together so a needle split
	// across two writes is still found.
	from := max(len(w.mu.tail)-len(w.needle)+1, 0)
	w.mu.tail = append(w.mu.tail, p...)
	if !w.mu.found && bytes.Contains(w.mu.tail[from:], w.needle) {
		w.mu.found = true
		w.mu.foundAt = time.Now()
		close(w.ready)
	}
	if over := len(w.mu.tail) - logTailBytes; over > 0 {
		w.mu.tail = append(w.mu.tail[:0], w.mu.tail[over:]...)
	}
	return len(p), nil
}

// ReadyAt is when the needle was first seen; zero before.
func (w *watchWriter) ReadyAt() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.foundAt
}

func (w *watchWriter) Tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.mu.tail)
}

// FindRepo walks up from dir to the directory holding oncelog's go.mod.
func FindRepo(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/oncelog/oncelog\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no oncelog go.mod above the working directory; pass --repo")
		}
		dir = parent
	}
}

// Build compiles the package pkg (relative to repo, e.g. "./cmd/oncelog")
// into outDir and returns the binary's path.
func Build(ctx context.Context, repo, pkg, outDir string) (string, error) {
	out := filepath.Join(outDir, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = repo
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}
