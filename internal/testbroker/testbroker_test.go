package testbroker

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

// dial fails the test unless something accepts on addr.
func dial(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	c.Close()
}

// TestLifecycle: one broker through a clean stop, a kill and a restart
// keeps its address and data directory, and its settings reach the
// process; a refused start reports the process's exit.
func TestLifecycle(t *testing.T) {
	b := Start(t, Options{Settings: map[string]string{"group.initial.rebalance.delay.ms": "0"}})
	addr := b.Addr
	dial(t, addr)
	if !strings.Contains(b.Output(), "listening on "+addr) || b.Startup <= 0 {
		t.Fatalf("startup %v, output:\n%s", b.Startup, b.Output())
	}
	b.Restart()
	b.Kill()
	if exited, err := b.WaitExit(time.Second); !exited || err == nil {
		t.Fatalf("after Kill: exited %v with %v, want a signal status", exited, err)
	}
	b.Start()
	if b.Addr != addr {
		t.Fatalf("restarted on %s, want %s", b.Addr, addr)
	}
	dial(t, addr)
	b.Stop()
	if b.Running() {
		t.Fatal("running after Stop")
	}
	if _, err := os.Stat(b.DataDir); err != nil {
		t.Fatalf("data directory: %v", err)
	}

	bad := New(t, Options{DataDir: filepath.Join(t.TempDir(), "file")})
	if err := os.WriteFile(bad.DataDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := bad.TryStart(); err == nil {
		t.Fatal("started with a file for its data directory")
	}
	if exited, err := bad.WaitExit(time.Second); !exited || err == nil {
		t.Fatalf("refused start: exited %v with %v, want a failure status", exited, err)
	}
}
