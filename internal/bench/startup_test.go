package bench

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestParseBrokerStartup(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want time.Duration
	}{
		{`time=2026-12-01T20:00:00Z level=INFO msg="listening on 127.0.0.1:9092" data_dir=/d startup=1.234s` + "\n", 1234 * time.Millisecond},
		{`level=INFO msg="listening on 127.0.0.1:1" data_dir=/x startup=12ms`, 12 * time.Millisecond},
		{"some other line startup=3s\n", 0},
		{"", 0},
	} {
		if got := ParseBrokerStartup(tc.out); got != tc.want {
			t.Errorf("ParseBrokerStartup(%q) = %v, want %v", tc.out, got, tc.want)
		}
	}
}

func TestParseRSS(t *testing.T) {
	status := "Name:\toncelog\nVmHWM:\t   20480 kB\nVmRSS:\t  1024 kB\n"
	if n, err := ParseRSS([]byte(status)); err != nil || n != 1024<<10 {
		t.Errorf("ParseRSS = %d, %v; want %d", n, err, 1024<<10)
	}
	if n, err := ParsePeakRSS([]byte(status)); err != nil || n != 20480<<10 {
		t.Errorf("ParsePeakRSS = %d, %v; want %d", n, err, 20480<<10)
	}
	if _, err := ParseRSS([]byte("Name:\tx\n")); err == nil {
		t.Error("missing VmRSS: no error")
	}
}

func TestSummarizeStarts(t *testing.T) {
	runs := []StartRun{
		{Kind: StartEmpty, Rep: 1, ListenSeconds: 0.01},
		{Kind: StartClean, Rep: 1, ListenSeconds: 1, MetadataSeconds: 1.1, PeakRSSBytes: 50e6},
		{Kind: StartKill, Rep: 1, ListenSeconds: 2},
		{Kind: StartClean, Rep: 2, ListenSeconds: 3, MetadataSeconds: 3.1, PeakRSSBytes: 70e6},
		{Kind: StartKill, Rep: 2, Err: "boom"},
		{Kind: StartClean, Rep: 3, ListenSeconds: 2, MetadataSeconds: 2.1, PeakRSSBytes: 60e6},
	}
	got := SummarizeStarts(runs)
	if len(got) != 3 {
		t.Fatalf("got %d summaries, want 3 (no clean-cold): %+v", len(got), got)
	}
	if got[0].Kind != StartEmpty || got[1].Kind != StartClean || got[2].Kind != StartKill {
		t.Fatalf("order: %s %s %s", got[0].Kind, got[1].Kind, got[2].Kind)
	}
	c := got[1]
	if c.OK != 3 || c.ListenSeconds != (Summary{Median: 2, Min: 1, Max: 3, N: 3}) || c.PeakRSSMB.Median != 60 {
		t.Errorf("clean summary: %+v", c)
	}
	if k := got[2]; k.OK != 1 || k.Failed != 1 || k.ListenSeconds.Median != 2 {
		t.Errorf("kill summary: %+v", k)
	}
}

func TestMetadataComplete(t *testing.T) {
	topic := func(name string, leaders ...int32) kmsg.MetadataResponseTopic {
		rt := kmsg.NewMetadataResponseTopic()
		rt.Topic = kmsg.StringPtr(name)
		for i, l := range leaders {
			p := kmsg.NewMetadataResponseTopicPartition()
			p.Partition, p.Leader = int32(i), l
			rt.Partitions = append(rt.Partitions, p)
		}
		return rt
	}
	resp := &kmsg.MetadataResponse{Topics: []kmsg.MetadataResponseTopic{topic("a", 1, 1), topic("b", 1, 1)}}
	if err := metadataComplete(resp, 2, 2); err != nil {
		t.Errorf("complete answer: %v", err)
	}
	if err := metadataComplete(resp, 3, 2); err == nil {
		t.Error("a topic missing: no error")
	}
	resp.Topics[1] = topic("b", 1, -1)
	if err := metadataComplete(resp, 2, 2); err == nil {
		t.Error("a partition without leader: no error")
	}
	resp.Topics[1] = topic("b", 1, 1)
	resp.Topics[1].ErrorCode = kerr.UnknownTopicOrPartition.Code
	if err := metadataComplete(resp, 2, 2); err == nil {
		t.Error("topic error: no error")
	}
}

// TestDropPageCache only checks that the call works on ordinary files (what
// it does to the page cache is not visible without mincore).
func TestDropPageCache(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "t-0"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "t-0", "00000000000000000000.log"), make([]byte, 1<<16), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := dropPageCache(dir); err != nil {
		t.Fatal(err)
	}
	if n := dirBytes(dir); n != 1<<16 {
		t.Errorf("dirBytes = %d, want %d", n, 1<<16)
	}
}

// TestStartupEndToEnd builds oncelog and runs both modes at toy sizes
// through the whole measurement: fill, clean, kill and cold starts, the
// load, the summaries, the JSON.
func TestStartupEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs broker processes; skipped under -short")
	}
	repo, err := FindRepo(".")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	tmp := t.TempDir()
	bin, err := Build(ctx, repo, "./cmd/oncelog", tmp)
	if err != nil {
		t.Fatal(err)
	}
	base := StartupConfig{
		Target: OncelogTarget(bin), TmpDir: tmp, Reps: 1, Wait: time.Minute,
		Partitions: 2, ValueBytes: 4096, Cold: true,
		PartitionsPerTopic: 5, LoadDuration: 500 * time.Millisecond,
	}
	logCfg := base
	logCfg.GiB = []float64{0.01}
	partCfg := base
	partCfg.PartitionCounts = []int{5, 12} // one topic; three (12 rounded up to 15)
	for _, cfg := range []StartupConfig{logCfg, partCfg} {
		rep := ExecuteStartup(ctx, cfg)
		if len(rep.Points) != len(cfg.GiB)+len(cfg.PartitionCounts) {
			t.Fatalf("%s mode: %d points", rep.Settings.Mode, len(rep.Points))
		}
		for _, p := range rep.Points {
			checkStartupPoint(t, rep.Settings.Mode, p)
		}
		path := filepath.Join(tmp, rep.Settings.Mode+".json")
		if err := rep.WriteJSON(path); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var back StartupReport
		if err := json.Unmarshal(b, &back); err != nil || len(back.Points) != len(rep.Points) || len(back.Points[0].Starts) != len(rep.Points[0].Starts) {
			t.Errorf("JSON round trip: %v", err)
		}
	}
}

func checkStartupPoint(t *testing.T, mode string, p StartupPoint) {
	t.Helper()
	if p.Err != "" {
		t.Fatalf("%s mode: %s", mode, p.Err)
	}
	want := map[string]bool{StartEmpty: true, StartClean: true, StartKill: true, StartCleanCold: true}
	if mode == "log" {
		if p.DataBytes < 10<<20 {
			t.Errorf("log mode: %d bytes on disk, want about 10 MiB", p.DataBytes)
		}
	} else {
		if wantTopics := map[int]int{5: 1, 15: 3}[p.Partitions]; p.Topics != wantTopics || p.Load == nil || p.Load.Records == 0 || p.Load.Err != "" {
			t.Errorf("partitions mode: topics %d, load %+v", p.Topics, p.Load)
		}
	}
	for _, s := range p.Summaries {
		if !want[s.Kind] || s.OK != 1 || s.ListenSeconds.Median <= 0 || s.MetadataSeconds.Median < s.ListenSeconds.Median || s.PeakRSSMB.Median <= 0 {
			t.Errorf("%s mode: summary %+v", mode, s)
		}
		delete(want, s.Kind)
	}
	if len(want) > 0 {
		t.Errorf("%s mode: no summary for %v", mode, want)
	}
}
