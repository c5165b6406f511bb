// Package compat runs real Kafka clients against the real oncelog binary:
// kcat and python3-confluent-kafka (both librdkafka) from Debian, and
// franz-go's own kgo integration suite.
//
// Each test builds nothing itself: TestMain builds ./cmd/oncelog once into a
// temporary directory, and every test starts that binary on a free loopback
// port with a data directory in t.TempDir(), then stops it with SIGTERM and
// checks that it exited cleanly.
//
// A client tool that is missing makes a test skip locally and fail in CI
// (CI=true); scripts/install-test-deps.sh installs them.
package compat

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// oncelogBin is the broker binary built from this checkout by TestMain.
var oncelogBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "oncelog-compat-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	oncelogBin = filepath.Join(dir, "oncelog")
	build := exec.Command(goTool(), "build", "-o", oncelogBin, "github.com/oncelog/oncelog/cmd/oncelog")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "compat: go build ./cmd/oncelog:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// goTool is the go command of the toolchain running the tests.
func goTool() string {
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return "go"
}

// inCI reports whether missing tools must fail the test instead of skipping.
func inCI() bool { return os.Getenv("CI") == "true" }

// requireTool skips (or, in CI, fails) the test when msg's tool is missing.
func requireTool(t *testing.T, msg string) {
	t.Helper()
	msg += " (scripts/install-test-deps.sh installs it)"
	if inCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// proc is one running oncelog serve process.
type proc struct {
	Addr    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed when the process has exited
	copied  chan struct{} // closed when all of stderr is in the log file
	waitErr error
}

// startBroker starts `oncelog serve` on a free loopback port and stops it
// with SIGTERM when the test ends, failing the test unless it stops cleanly.
// settings are broker settings under Kafka's names, passed with --config.
func startBroker(t *testing.T, settings map[string]string) *proc {
	t.Helper()
	dir := t.TempDir()
	args := []string{"serve", "--data-dir", filepath.Join(dir, "data")}
	if len(settings) > 0 {
		var b strings.Builder
		for k, v := range settings {
			fmt.Fprintf(&b, "%s=%s\n", k, v)
		}
		cfg := filepath.Join(dir, "broker.properties")
		if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", cfg)
	}
	// NB: the port is free when we look; another process may take it before
	// the broker binds, so a failed start is retried on a new port.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		p, err := tryStart(t, dir, attempt, append(args, "--listen", freeAddr(t)))
		if err == nil {
			t.Cleanup(func() { p.stop(t) })
			return p
		}
		lastErr = err
	}
	t.Fatalf("oncelog serve did not start: %v", lastErr)
	return nil
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func tryStart(t *testing.T, dir string, attempt int, args []string) (*proc, error) {
	addr := args[len(args)-1]
	logPath := filepath.Join(dir, fmt.Sprintf("broker-%d.log", attempt))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	cmd := exec.Command(oncelogBin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		logFile.Close()
		pr.Close()
		pw.Close()
		return nil, err
	}
	pw.Close()
	p := &proc{Addr: addr, cmd: cmd, logPath: logPath, exited: make(chan struct{}), copied: make(chan struct{})}
	ready := make(chan struct{})
	// Copy stderr into the log file, watching for the ready line.
	go func() {
		defer close(p.copied)
		defer logFile.Close()
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		want := "listening on " + addr
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			if !signalled && strings.Contains(line, want) {
				signalled = true
				close(ready)
			}
		}
	}()
	go func() {
		p.waitErr = cmd.Wait()
		<-p.copied
		close(p.exited)
	}()
	select {
	case <-ready:
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("exited before listening (%v):\n%s", p.waitErr, p.logTail())
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-p.exited
		return nil, fmt.Errorf("no %q line within 30s:\n%s", "listening on "+addr, p.logTail())
	}
}

// stop sends SIGTERM and fails the test unless the broker exits 0 in time.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		t.Errorf("oncelog serve exited during the test (%v):\n%s", p.waitErr, p.logTail())
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.waitErr != nil {
			t.Errorf("oncelog serve did not stop cleanly on SIGTERM: %v\n%s", p.waitErr, p.logTail())
		}
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
		t.Errorf("oncelog serve did not stop within 20s of SIGTERM:\n%s", p.logTail())
	}
	if t.Failed() {
		t.Logf("broker log (%s):\n%s", p.logPath, p.logTail())
	}
}

// logTail returns the last lines the broker logged.
func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// createTopic creates a topic with franz-go's admin client.
func createTopic(t *testing.T, addr, topic string, partitions int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}
