package bench

import (
	"math"
	"testing"
)

// BuildSummaries pairs the two targets by repetition: a repetition where one
// side failed contributes no ratio, and the medians are taken over the runs
// that succeeded.
func TestBuildSummariesPairsByRepetition(t *testing.T) {
	sc := Scenario{Name: "s", Metric: "records/s"}
	cfg := Config{
		Targets:   []Target{{Name: "oncelog"}, {Name: "kfake"}},
		Scenarios: []Scenario{sc},
		Reps:      3,
	}
	run := func(target string, rep int, rps float64) Run {
		return Run{Scenario: "s", Target: target, Rep: rep, RecordsPerSec: rps, ElapsedSeconds: 10, Records: int64(rps * 10)}
	}
	failed := run("kfake", 2, 0)
	failed.Err = "boom"
	contended := run("kfake", 3, 50)
	contended.OtherCPUSeconds = 5 // half a core over 10 s
	runs := []Run{
		run("oncelog", 1, 300), run("kfake", 1, 100), // ratio 3
		run("oncelog", 2, 999), failed, // no ratio
		run("oncelog", 3, 100), contended, // ratio 2
	}
	ss := BuildSummaries(runs, cfg)
	if len(ss) != 1 {
		t.Fatalf("%d summaries", len(ss))
	}
	s := ss[0]
	if s.RatioName != "oncelog/kfake" || s.Ratio.N != 2 || s.Ratio.Median != 2.5 || s.Ratio.Min != 2 || s.Ratio.Max != 3 {
		t.Errorf("ratio %s %+v", s.RatioName, s.Ratio)
	}
	on, kf := s.Targets["oncelog"], s.Targets["kfake"]
	if on.OK != 3 || on.RecordsPerSec.Median != 300 || on.RecordsPerSec.Min != 100 || on.RecordsPerSec.Max != 999 {
		t.Errorf("oncelog %+v", on)
	}
	if kf.OK != 2 || kf.Failed != 1 || kf.Errors[0] != "boom" || kf.RecordsPerSec.Median != 75 {
		t.Errorf("kfake %+v", kf)
	}
	if kf.Contended != 1 || on.Contended != 0 {
		t.Errorf("contended: kfake %d, oncelog %d", kf.Contended, on.Contended)
	}
	if got := kf.BrokerUSPerRec; got.N != 2 {
		t.Errorf("µs/record over %d runs", got.N)
	}
}

func TestRunMetricFailedIsNaN(t *testing.T) {
	r := Run{Err: "x", RecordsPerSec: 5}
	if !math.IsNaN(r.metric("records/s")) {
		t.Errorf("failed run has a metric")
	}
	if (Run{ElapsedSeconds: 10, OtherCPUSeconds: 2}).Contended() {
		t.Errorf("0.2 cores of other load counted as contended")
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.4: "1,234,567", -12345: "-12,345"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v) = %q, want %q", in, got, want)
		}
	}
	if thousands(math.NaN()) != "-" {
		t.Errorf("NaN")
	}
}
