package verify

import (
	"bufio"
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

// spawnConfig is the broker configuration of a spawned broker: short group
// timeouts so that a killed copier's partitions move on within seconds.
const spawnConfig = `group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
group.consumer.session.timeout.ms=6000
group.consumer.heartbeat.interval.ms=500
`

// brokerProc is one `oncelog serve` process at a time on a fixed loopback
// address and data directory; start may be called again after kill or
// term.
type brokerProc struct {
	bin, addr, dir string
	logPath        string

	// mu protects cmd, exited and paused.
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	paused bool

	tail lineRing // the last lines of stderr, for error messages
}

// startBroker writes the configuration, picks a free loopback port and
// starts the broker.
func startBroker(bin, dir string) (*brokerProc, error) {
	cfg := filepath.Join(dir, "broker.properties")
	if err := os.WriteFile(cfg, []byte(spawnConfig), 0o644); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	b := &brokerProc{bin: bin, addr: addr, dir: dir, logPath: filepath.Join(dir, "broker.log")}
	return b, b.start(60 * time.Second)
}

func (b *brokerProc) start(timeout time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil {
		select {
		case <-b.exited:
		default:
			return fmt.Errorf("broker already running")
		}
	}
	log, err := os.OpenFile(b.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(b.bin, "serve", "--listen", b.addr, "--data-dir", filepath.Join(b.dir, "data"),
		"--config", filepath.Join(b.dir, "broker.properties"))
	// The broker dies with us even if we are killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pipe, err := cmd.StderrPipe()
	if err != nil {
		log.Close()
		return err
	}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start %s: %w", b.bin, err)
	}
	listening := make(chan struct{})
	exited := make(chan struct{})
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		defer log.Close()
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		seen := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(log, line)
			b.tail.add(line)
			if !seen && strings.Contains(line, "listening on") {
				seen = true
				close(listening)
			}
		}
	}()
	go func() {
		<-scanned // Wait closes the pipe: drain it first
		cmd.Wait()
		close(exited)
	}()
	b.cmd, b.exited, b.paused = cmd, exited, false
	select {
	case <-listening:
		return nil
	case <-exited:
		return fmt.Errorf("broker exited before listening; last lines:\n%s", b.tail.String())
	case <-time.After(timeout):
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		return fmt.Errorf("broker not listening after %v; last lines:\n%s", timeout, b.tail.String())
	}
}

func (b *brokerProc) signal(sig syscall.Signal) (chan struct{}, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return nil, fmt.Errorf("broker not started")
	}
	if b.paused && sig != syscall.SIGCONT {
		// A stopped process gets SIGKILL, but SIGTERM waits for SIGCONT.
		b.cmd.Process.Signal(syscall.SIGCONT)
		b.paused = false
	}
	switch sig {
	case syscall.SIGSTOP:
		b.paused = true
	case syscall.SIGCONT:
		b.paused = false
	}
	return b.exited, b.cmd.Process.Signal(sig)
}

// kill sends SIGKILL and waits for the process to go.
func (b *brokerProc) kill() error {
	exited, err := b.signal(syscall.SIGKILL)
	if err != nil {
		return err
	}
	<-exited
	return nil
}

// term sends SIGTERM and waits up to timeout for a clean exit; after that
// it kills the process and says so.
func (b *brokerProc) term(timeout time.Duration) error {
	exited, err := b.signal(syscall.SIGTERM)
	if err != nil {
		return err
	}
	select {
	case <-exited:
		if st := b.exitState(); st != nil && !st.Success() {
			return fmt.Errorf("broker exited with %v after SIGTERM; last lines:\n%s", st, b.tail.String())
		}
		return nil
	case <-time.After(timeout):
		b.kill()
		return fmt.Errorf("broker did not exit within %v of SIGTERM", timeout)
	}
}

func (b *brokerProc) exitState() *os.ProcessState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cmd.ProcessState
}

func (b *brokerProc) pause() error {
	_, err := b.signal(syscall.SIGSTOP)
	return err
}

func (b *brokerProc) resume() error {
	_, err := b.signal(syscall.SIGCONT)
	return err
}

// lineRing keeps the last 40 lines.
type lineRing struct {
	mu    sync.Mutex
	lines []string
}

func (r *lineRing) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, s)
	if len(r.lines) > 40 {
		r.lines = r.lines[len(r.lines)-40:]
	}
}

func (r *lineRing) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}
