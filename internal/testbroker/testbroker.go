// Package testbroker runs the real oncelog binary for tests that need a
// process rather than the embed package: ones that SIGKILL the broker,
// restart it on the same data directory and address, set failpoints through
// its environment, read what it logs, or point an outside client (kcat,
// librdkafka, franz-go's own suite) at it. It also finds the Python
// interpreter that can import confluent_kafka.
//
// It is for _test.go files only: every function takes the test's
// testing.TB and fails (or skips) the test itself instead of returning an
// error, and a broker left running is killed when its test ends.
//
// Binaries are built once per test binary, each package once (Build), into
// one directory under os.TempDir(). A test package removes that directory
// when its tests are done by calling Main from its TestMain; one that does
// not leaves it to the OS's cleaning of the temporary directory.
//
// The broker runs as a child of the test binary and dies with it
// (Pdeathsig, so Linux only), even when a test panics before its cleanup.
package testbroker

import (
	"bufio"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BrokerPackage is the package of the oncelog binary.
const BrokerPackage = "github.com/oncelog/oncelog/cmd/oncelog"

const (
	// maxStartup bounds how long a start waits for the "listening on" line;
	// the fault tests start on a data directory of a few GiB.
	maxStartup = 60 * time.Second
	// maxStop bounds how long Stop waits for the exit after SIGTERM.
	maxStop = 30 * time.Second
	// maxStartAttempts bounds the first start's retries on a port that
	// another process took between FreeAddr and the broker's bind.
	maxStartAttempts = 3
	// maxLoggedLines is how much of each run's output a failed test logs.
	maxLoggedLines = 200
	// maxLoggedRuns is how many runs (the last ones) a failed test logs.
	maxLoggedRuns = 3
)

// builds holds the binaries built so far, by package.
var builds struct {
	mu   sync.Mutex
	dir  string // made by the first Build; removed by Main
	bins map[string]*build
}

type build struct {
	once sync.Once
	bin  string // where it goes
	err  error
}

// Main runs the tests of m, removes the binaries Build made, and exits with
// the tests' code. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	builds.mu.Lock()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
	}
	builds.mu.Unlock()
	os.Exit(code)
}

// Build compiles the main package pkg (an import path in this module) once
// per test binary and returns the path of the executable.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	builds.mu.Lock()
	if builds.bins == nil {
		builds.bins = map[string]*build{}
	}
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "oncelog-testbroker-")
		if err != nil {
			builds.mu.Unlock()
			t.Fatal(err)
		}
		builds.dir = dir
	}
	b := builds.bins[pkg]
	if b == nil {
		// Numbered: two packages may share the last element of their path.
		b = &build{bin: filepath.Join(builds.dir, fmt.Sprintf("%d-%s", len(builds.bins), filepath.Base(pkg)))}
		builds.bins[pkg] = b
	}
	builds.mu.Unlock()

	b.once.Do(func() {
		out, err := exec.Command(GoTool(), "build", "-o", b.bin, pkg).CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.bin
}

// GoTool is the go command of the toolchain running the tests, so that
// what a test builds or runs is built by the same Go as the test itself.
func GoTool() string {
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return "go"
}

// FreeAddr returns a loopback address whose port was free a moment ago.
//
// NB: another process may take the port before whoever is given the address
// binds it; New copes with that on the broker's first start.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Require does nothing when err is nil. Otherwise what (a tool the test
// needs) is missing: the test fails under CI=true, where every tool must be
// installed, and is skipped elsewhere.
func Require(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	const hint = "scripts/install-test-deps.sh installs the test tools"
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required under CI=true: %v (%s)", what, err, hint)
	}
	t.Skipf("%s not available: %v (%s)", what, err, hint)
}

// python is the result of the search for a confluent_kafka interpreter,
// made once per test binary.
var python = sync.OnceValues(func() (string, error) {
	candidates := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil && p != candidates[0] {
		candidates = append(candidates, p)
	}
	for _, py := range candidates {
		if _, err := os.Stat(py); err != nil {
			continue
		}
		if exec.Command(py, "-c", "import confluent_kafka").Run() == nil {
			return py, nil
		}
	}
	return "", fmt.Errorf("no python3 that can import confluent_kafka (tried %s)", strings.Join(candidates, ", "))
})

// Python returns a python3 that can import confluent_kafka, or fails or
// skips the test as Require does.
//
// NB: Debian's python3-confluent-kafka is installed for Debian's own
// /usr/bin/python3, and another python3 (pyenv, a virtualenv) is often
// first on PATH, so /usr/bin/python3 is tried before the PATH's.
func Python(t testing.TB) string {
	t.Helper()
	py, err := python()
	Require(t, "python3-confluent-kafka", err)
	return py
}

// Options say how a broker runs. The zero value is a broker with default
// settings on a fresh data directory.
type Options struct {
	// DataDir is the data directory, the same for every run; empty means
	// a fresh one under t.TempDir().
	DataDir string
	// Settings are broker settings under Kafka's names
	// (group.initial.rebalance.delay.ms), written to a properties file
	// passed with --config.
	Settings map[string]string
	// Args are more arguments to `oncelog serve`, after --listen,
	// --data-dir and --config.
	Args []string
	// Env is added to the environment of every run (Start adds to one).
	Env []string
	// CleanStop makes the end of the test stop the broker with Stop and
	// fail the test unless the broker was still running (or stopped or
	// killed by the test) and exits 0. Otherwise the end of the test
	// SIGKILLs a broker still running.
	CleanStop bool
}

// Broker is `oncelog serve` on a fixed address and data directory, one
// process (a run) at a time: Start may be called again once the last run is
// gone. Its methods are for the test's goroutine.
type Broker struct {
	// Addr is the loopback address every run listens on.
	Addr string
	// DataDir is the data directory of every run.
	DataDir string
	// Startup is how long the last start took, from exec to the
	// "listening on" line.
	Startup time.Duration

	t          testing.TB
	bin        string
	config     string // the properties file, or ""
	opts       Options
	pickedAddr bool   // Addr is ours to change until the first run listens
	listened   bool   // some run has listened
	runs       []*run // the last maxLoggedRuns runs, the current last
}

// run is one process.
type run struct {
	n      int // 1 for the first run of the broker
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process is reaped and its output read
	err    error         // the exit status; read it after exited is closed
	asked  bool          // the test signalled it (Stop, Kill, Signal)

	mu  sync.Mutex
	out strings.Builder // stdout and stderr
}

func (r *run) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

func (r *run) running() bool {
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

// New prepares a broker without starting it: builds the binary, picks a
// free address, writes the settings. At the end of the test it stops or
// kills the broker (see Options.CleanStop) and, when the test failed, logs
// what the last runs wrote.
func New(t testing.TB, opts Options) *Broker {
	t.Helper()
	b := &Broker{t: t, bin: Build(t, BrokerPackage), Addr: FreeAddr(t), DataDir: opts.DataDir, opts: opts, pickedAddr: true}
	if b.DataDir == "" {
		b.DataDir = filepath.Join(t.TempDir(), "data")
	}
	if len(opts.Settings) > 0 {
		var sb strings.Builder
		for _, k := range slices.Sorted(maps.Keys(opts.Settings)) {
			fmt.Fprintf(&sb, "%s=%s\n", k, opts.Settings[k])
		}
		b.config = filepath.Join(t.TempDir(), "broker.properties")
		if err := os.WriteFile(b.config, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(b.cleanup)
	return b
}

// Start is New followed by Start.
func Start(t testing.TB, opts Options) *Broker {
	t.Helper()
	b := New(t, opts)
	b.Start()
	return b
}

func (b *Broker) cur() *run {
	if len(b.runs) == 0 {
		return nil
	}
	return b.runs[len(b.runs)-1]
}

// Running reports whether the current run is alive.
func (b *Broker) Running() bool {
	r := b.cur()
	return r != nil && r.running()
}

// Start starts a run, with env added to its environment (for example
// ONCELOG_FAILPOINTS=txn.after-prepare), and waits until it listens; it
// fails the test if it does not.
func (b *Broker) Start(env ...string) {
	b.t.Helper()
	if err := b.TryStart(env...); err != nil {
		b.t.Fatal(err)
	}
}

// TryStart is Start returning the error instead of failing the test: the
// run exited before it listened (it is gone then; WaitExit has its
// status), or it did not listen in time (it is killed then).
func (b *Broker) TryStart(env ...string) error {
	b.t.Helper()
	if b.Running() {
		b.t.Fatal("testbroker: Start while the broker is running")
	}
	for attempt := 1; ; attempt++ {
		err := b.launch(env)
		if err == nil {
			b.listened = true
			return nil
		}
		// The port FreeAddr saw free was taken before the broker bound it:
		// nobody knows the address yet, so take another.
		if b.pickedAddr && !b.listened && attempt < maxStartAttempts &&
			!b.cur().running() && strings.Contains(b.cur().output(), "address already in use") {
			b.Addr = FreeAddr(b.t)
			continue
		}
		return err
	}
}

// launch runs the process and waits for its "listening on" line.
func (b *Broker) launch(env []string) error {
	args := []string{"serve", "--listen", b.Addr, "--data-dir", b.DataDir}
	if b.config != "" {
		args = append(args, "--config", b.config)
	}
	args = append(args, b.opts.Args...)
	cmd := exec.Command(b.bin, args...)
	cmd.Env = append(append(os.Environ(), b.opts.Env...), env...)
	// The broker dies with the test binary even if no cleanup runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	start := time.Now()
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return fmt.Errorf("start oncelog serve: %w", err)
	}
	pw.Close()
	n := 1
	if r := b.cur(); r != nil {
		n = r.n + 1
	}
	r := &run{n: n, cmd: cmd, exited: make(chan struct{})}
	b.runs = append(b.runs, r)
	if len(b.runs) > maxLoggedRuns {
		b.runs = b.runs[1:]
	}

	listening := make(chan struct{})
	want := "listening on " + b.Addr
	go func() {
		// NB: a bufio.Reader, not a Scanner: a Scanner stops at an over-long
		// line, and a pipe nobody drains blocks the broker's next write.
		br := bufio.NewReader(pr)
		seen := false
		for {
			line, err := br.ReadString('\n')
			if line != "" {
				r.mu.Lock()
				r.out.WriteString(line)
				if !strings.HasSuffix(line, "\n") {
					r.out.WriteByte('\n')
				}
				r.mu.Unlock()
				if !seen && strings.Contains(line, want) {
					seen = true
					close(listening)
				}
			}
			if err != nil {
				break
			}
		}
		pr.Close()
		// Wait only after the pipe is drained: it closes the pipe.
		r.err = cmd.Wait()
		close(r.exited)
	}()

	select {
	case <-listening:
		b.Startup = time.Since(start)
		return nil
	case <-r.exited:
		return fmt.Errorf("oncelog serve (run %d) exited before listening on %s (%v); output:\n%s", r.n, b.Addr, r.err, r.output())
	case <-time.After(maxStartup):
		b.Kill()
		return fmt.Errorf("oncelog serve (run %d) not listening on %s after %v; output:\n%s", r.n, b.Addr, maxStartup, r.output())
	}
}

// Signal sends sig to the current run, if it is alive.
func (b *Broker) Signal(sig os.Signal) {
	r := b.cur()
	if r == nil || !r.running() {
		return
	}
	r.asked = true
	if err := r.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		b.t.Errorf("signal %v to oncelog serve: %v", sig, err)
	}
}

// Kill SIGKILLs the current run, if it is alive, and waits for it to go.
func (b *Broker) Kill() {
	r := b.cur()
	if r == nil || !r.running() {
		return
	}
	b.Signal(syscall.SIGKILL)
	<-r.exited
}

// Stop sends SIGTERM to the current run, if it is alive, and fails the test
// unless it exits 0 within maxStop (it is SIGKILLed then).
func (b *Broker) Stop() {
	b.t.Helper()
	r := b.cur()
	if r == nil || !r.running() {
		return
	}
	b.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
		if r.err != nil {
			b.t.Errorf("oncelog serve (run %d) did not stop cleanly on SIGTERM: %v; output:\n%s", r.n, r.err, r.output())
		}
	case <-time.After(maxStop):
		b.Kill()
		b.t.Errorf("oncelog serve (run %d) did not stop within %v of SIGTERM; output:\n%s", r.n, maxStop, r.output())
	}
}

// Restart stops the current run (as Stop does) and starts another (as
// Start does, with env).
func (b *Broker) Restart(env ...string) {
	b.t.Helper()
	b.Stop()
	b.Start(env...)
}

// WaitExit waits up to d for the current run to exit on its own. exited
// is false if it is still running; otherwise err is its exit status (nil
// for 0).
func (b *Broker) WaitExit(d time.Duration) (exited bool, err error) {
	r := b.cur()
	if r == nil {
		return true, nil
	}
	select {
	case <-r.exited:
		return true, r.err
	case <-time.After(d):
		return false, nil
	}
}

// Output is everything the current (or last) run wrote so far, stdout and
// stderr together: the broker logs to stderr.
func (b *Broker) Output() string {
	r := b.cur()
	if r == nil {
		return ""
	}
	return r.output()
}

func (b *Broker) cleanup() {
	r := b.cur()
	if r == nil {
		return
	}
	if b.opts.CleanStop {
		if !r.running() && !r.asked {
			b.t.Errorf("oncelog serve (run %d) exited during the test (%v); output:\n%s", r.n, r.err, r.output())
		}
		b.Stop()
	}
	b.Kill()
	if b.t.Failed() {
		for _, r := range b.runs {
			b.t.Logf("oncelog serve on %s, run %d, output:\n%s", b.Addr, r.n, lastLines(r.output(), maxLoggedLines))
		}
	}
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	s = strings.TrimSuffix(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) <= n {
		return s
	}
	return fmt.Sprintf("... (%d lines before)\n", len(lines)-n) + strings.Join(lines[len(lines)-n:], "\n")
}
