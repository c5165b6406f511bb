package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKfakeEndToEnd builds bench/kfakeserver, starts it as a child process,
// and runs one short produce scenario and one short consume scenario
// through the whole driver: start, wait for "listening on", create topics,
// measure, SIGTERM, summarise, write JSON.
func TestKfakeEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a broker process; skipped under -short")
	}
	repo, err := FindRepo(".")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tmp := t.TempDir()
	bin, err := Build(ctx, repo, "./bench/kfakeserver", tmp)
	if err != nil {
		t.Fatal(err)
	}

	var scs []Scenario
	for _, n := range []string{"produce-idempotent-1k", "consume-committed"} {
		sc, ok := ScenarioByName(n)
		if !ok {
			t.Fatalf("no scenario %s", n)
		}
		scs = append(scs, sc)
	}
	var log bytes.Buffer
	cfg := Config{
		Targets:        []Target{KfakeTarget(bin)},
		Scenarios:      scs,
		Reps:           1,
		Duration:       time.Second,
		RecordBytes:    1024,
		Partitions:     3,
		ConsumeRecords: 20_000,
		TmpDir:         tmp,
		Log:            &log,
	}
	rep := Execute(ctx, cfg)
	t.Logf("driver output:\n%s", log.String())

	if len(rep.Runs) != 2 {
		t.Fatalf("got %d runs, want 2", len(rep.Runs))
	}
	for _, r := range rep.Runs {
		if !r.ok() {
			t.Fatalf("%s failed: %s", r.Scenario, r.Err)
		}
		if r.Records <= 0 || r.RecordsPerSec <= 0 || r.ElapsedSeconds <= 0 {
			t.Errorf("%s: implausible run %+v", r.Scenario, r)
		}
		if r.BrokerCPUSeconds < 0 || r.BrokerLifeCPUSeconds <= 0 {
			t.Errorf("%s: broker CPU %v s in the window, %v s over its life", r.Scenario, r.BrokerCPUSeconds, r.BrokerLifeCPUSeconds)
		}
		if r.BrokerStopErr != "" {
			t.Errorf("%s: broker did not stop cleanly: %s", r.Scenario, r.BrokerStopErr)
		}
	}
	if got := rep.Runs[1].Records; got != 20_000 {
		t.Errorf("consume-committed read %d records, preloaded 20000", got)
	}
	if p := rep.Runs[0]; p.Bytes != p.Records*1024 {
		t.Errorf("produce: %d bytes for %d records of 1 KiB", p.Bytes, p.Records)
	}
	if ts := rep.Summaries[0].Targets["kfake"]; ts.OK != 1 || ts.RecordsPerSec.N != 1 {
		t.Errorf("summary %+v", ts)
	}

	var text bytes.Buffer
	rep.WriteText(&text)
	if !strings.Contains(text.String(), "produce-idempotent-1k") {
		t.Errorf("text report lacks the scenario:\n%s", text.String())
	}
	path := filepath.Join(tmp, "out.json")
	if err := rep.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("JSON report does not parse back: %v", err)
	}
	// The data directories of stopped brokers are removed.
	left, _ := filepath.Glob(filepath.Join(tmp, "kfake-data-*"))
	if len(left) != 0 {
		t.Errorf("data directories left behind: %v", left)
	}
}

// A target that cannot run, and a broker that dies on start, fail their
// runs without stopping the benchmark.
func TestFailedTargetsAreReported(t *testing.T) {
	sc, _ := ScenarioByName("produce-idempotent-1k")
	tmp := t.TempDir()
	cfg := Config{
		Targets: []Target{
			OncelogTarget("/nonexistent/oncelog"),
			{Name: "dies", Bin: "/bin/sh", Args: func(string, string, int) []string { return []string{"-c", "echo boom; exit 3"} }},
		},
		TargetErrs: map[string]error{},
		Scenarios:  []Scenario{sc},
		Reps:       2,
		Duration:   time.Second,
		Partitions: 1,
		TmpDir:     tmp,
	}
	rep := Execute(context.Background(), cfg)
	if len(rep.Runs) != 4 {
		t.Fatalf("got %d runs, want 4", len(rep.Runs))
	}
	for _, r := range rep.Runs {
		if r.ok() {
			t.Errorf("%s/%s succeeded", r.Scenario, r.Target)
		}
		if r.Target == "dies" && !strings.Contains(r.Err, "boom") {
			t.Errorf("the dying broker's output is not in the error: %q", r.Err)
		}
	}
	ss := rep.Summaries[0]
	if ss.Targets["oncelog"].Failed != 2 || ss.Ratio.N != 0 {
		t.Errorf("summary %+v", ss)
	}
	var md bytes.Buffer
	rep.WriteMarkdown(&md)
	if !strings.Contains(md.String(), "failed") {
		t.Errorf("markdown does not show the failure:\n%s", md.String())
	}
}
