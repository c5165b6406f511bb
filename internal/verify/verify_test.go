package verify

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// oncelogBin builds cmd/oncelog for the tests that spawn the broker.
func oncelogBin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "oncelog")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/oncelog/oncelog/cmd/oncelog").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

// runAndReport runs cfg and fails the test on any violation or error; it
// logs the text report, which is what the CI log shows.
func runAndReport(t *testing.T, cfg Config) *Report {
	t.Helper()
	cfg.Log = testLog{t}
	cfg.Progress = testLog{t}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	rep.WriteText(&buf)
	t.Logf("report:\n%s", buf.String())
	if rep.Failed() {
		t.Fatalf("%d violations, errors %v", rep.Violations, rep.Errors)
	}
	return rep
}

// TestCopySpawnAllFaults is the CI run of the copy workload: a short copy
// through hard and clean bounces, pauses, copier kills and proxy storms of
// a broker the run starts itself.
func TestCopySpawnAllFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute of faults")
	}
	for _, mode := range []string{"partition", "group"} {
		t.Run(mode, func(t *testing.T) {
			rep := runAndReport(t, Config{
				Workload: "copy", Spawn: true, OncelogBin: oncelogBin(t),
				Records: 5000, Mode: mode, TxnSize: 25,
				Faults: AllFaults, FaultInterval: 2 * time.Second,
				Duration: 30 * time.Second, Seed: 1,
			})
			for _, f := range AllFaults {
				if rep.Faults[f] == 0 {
					t.Errorf("no %s fault injected: %v", f, rep.Faults)
				}
			}
			if rep.Records != 5000 || rep.Stats["output"] != 5000 {
				t.Errorf("records %d, output %d", rep.Records, rep.Stats["output"])
			}
		})
	}
}

// TestQueueSpawnAllFaults is the CI run of the queue workload.
func TestQueueSpawnAllFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("half a minute of faults")
	}
	rep := runAndReport(t, Config{
		Workload: "queue", Spawn: true, OncelogBin: oncelogBin(t),
		Faults: AllFaults, FaultInterval: 2 * time.Second,
		Duration: 25 * time.Second, Seed: 2,
		HistoryPath: filepath.Join(t.TempDir(), "history.jsonl"),
	})
	for _, f := range AllFaults {
		if rep.Faults[f] == 0 {
			t.Errorf("no %s fault injected: %v", f, rep.Faults)
		}
	}
	if rep.Stats["txns.committed"] == 0 || rep.Stats["txns.aborted"] == 0 || rep.Stats["polled"] == 0 {
		t.Errorf("stats %v", rep.Stats)
	}
}

// TestKfakeReference runs both workloads against franz-go's in-memory
// kfake, a known-good reference, with the client-side faults only: the
// checkers must pass it.
func TestKfakeReference(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of faults")
	}
	cases := []Config{
		{Workload: "copy", Records: 2000, Mode: "partition", TxnSize: 50, Duration: 10 * time.Second},
		{Workload: "copy", Records: 2000, Mode: "group", TxnSize: 50, Duration: 10 * time.Second},
		{Workload: "queue", Duration: 10 * time.Second},
	}
	for _, cfg := range cases {
		t.Run(cfg.Workload+"-"+cfg.Mode, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			cfg.Brokers = c.ListenAddrs()
			cfg.Faults = []string{FaultCopier, FaultProxy}
			cfg.FaultInterval = time.Second
			cfg.Seed = 3
			rep := runAndReport(t, cfg)
			if rep.FaultTotal == 0 {
				t.Errorf("no fault injected")
			}
		})
	}
}

func TestBrokerFaultsNeedSpawn(t *testing.T) {
	_, err := Run(context.Background(), Config{Workload: "copy", Brokers: []string{"127.0.0.1:1"}, Faults: []string{FaultHard}})
	if err == nil {
		t.Fatal("hard bounce without --spawn accepted")
	}
	_, err = Run(context.Background(), Config{Workload: "copy", Brokers: []string{"192.0.2.1:9092"}, Faults: []string{FaultProxy}})
	if err == nil {
		t.Fatal("proxy in front of a non-loopback address accepted")
	}
}

func TestParseFaults(t *testing.T) {
	all, err := ParseFaults("all")
	if err != nil || !slices.Equal(all, AllFaults) {
		t.Fatalf("all: %v %v", all, err)
	}
	if fs, err := ParseFaults("hard,proxy,hard"); err != nil || !slices.Equal(fs, []string{"hard", "proxy"}) {
		t.Fatalf("%v %v", fs, err)
	}
	if _, err := ParseFaults("hard,nope"); err == nil {
		t.Fatal("unknown fault accepted")
	}
}
