package compat

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/oncelog/oncelog/internal/testbroker"
)

// franzGoPackage is franz-go's client package, whose integration tests run
// against any broker named by KGO_SEEDS. Its version is the one in go.mod.
const franzGoPackage = "github.com/twmb/franz-go/pkg/kgo"

// readAllowlist returns the test names in franz-go-allowlist.txt: one a
// line, # starts a comment.
func readAllowlist(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("franz-go-allowlist.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	valid := regexp.MustCompile(`^Test[A-Za-z0-9_]*$`)
	var names []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if !valid.MatchString(line) || seen[line] {
			t.Fatalf("franz-go-allowlist.txt:%d: %q is not a new top-level test name", n, line)
		}
		seen[line] = true
		names = append(names, line)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("franz-go-allowlist.txt lists no test")
	}
	return names
}

// TestFranzGoSuite runs the allowlisted tests of franz-go's own kgo
// integration suite against a fresh broker. Every listed test must pass:
// one that fails, skips or does not exist fails this test. FRANZ_GO.md says
// why each test not listed is left out.
func TestFranzGoSuite(t *testing.T) {
	names := readAllowlist(t)
	b := startBroker(t, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	run := "^(" + strings.Join(names, "|") + ")$"
	cmd := exec.CommandContext(ctx, testbroker.GoTool(), "test", franzGoPackage,
		"-run", run, "-count=1", "-v", "-timeout=10m")
	cmd.Dir = ".." // inside this module, so go.mod picks franz-go's version
	cmd.Env = append(os.Environ(),
		"KGO_SEEDS="+b.Addr,
		"KGO_TEST_RF=1",          // one broker: replication factor 1
		"KGO_TEST_RECORDS=20000", // keeps the ETL tests to seconds
		"KGO_LOG_LEVEL=none",     // the client's logs would drown the output
	)
	logPath := filepath.Join(t.TempDir(), "kgo.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	started := time.Now()
	runErr := cmd.Run()
	logFile.Close()
	out, _ := os.ReadFile(logPath)
	if ctx.Err() != nil {
		t.Fatalf("go test %s timed out after %s:\n%s", franzGoPackage, time.Since(started).Round(time.Second), tail(string(out), 60))
	}

	// Top-level results only: "--- PASS: TestX (1.23s)" at column 0.
	result := map[string]string{}
	duration := map[string]string{}
	re := regexp.MustCompile(`^--- (PASS|FAIL|SKIP): (Test[A-Za-z0-9_]*) \(([^)]*)\)`)
	for _, line := range strings.Split(string(out), "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			result[m[2]], duration[m[2]] = m[1], m[3]
		}
	}
	passed := 0
	var report strings.Builder
	for _, name := range names {
		r := result[name]
		switch r {
		case "PASS":
			passed++
		case "":
			r = "NOT RUN"
			t.Errorf("%s: no result (not a test of %s at this version?)", name, franzGoPackage)
		default:
			t.Errorf("%s: %s", name, r)
		}
		fmt.Fprintf(&report, "  %-8s %-50s %s\n", r, name, duration[name])
	}
	t.Logf("franz-go %s against oncelog (%s): %d of %d allowlisted tests passed\n%s",
		franzGoPackage, time.Since(started).Round(time.Second), passed, len(names), report.String())
	if runErr != nil && passed == len(names) {
		t.Errorf("go test %s: %v", franzGoPackage, runErr)
	}
	if t.Failed() {
		t.Logf("kgo output (last lines):\n%s", tail(string(out), 80))
	}
}
