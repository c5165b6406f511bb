package bench

import (
	"math"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{5, 5, 1}, 5},
	} {
		in := append([]float64(nil), tc.in...)
		if got := Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.in[i] {
				t.Fatalf("Median modified its input: %v -> %v", in, tc.in)
			}
		}
	}
	if !math.IsNaN(Median(nil)) {
		t.Errorf("Median(nil) is not NaN")
	}
}

func TestRange(t *testing.T) {
	lo, hi := Range([]float64{2, -1, 7, 3})
	if lo != -1 || hi != 7 {
		t.Errorf("Range = %v, %v; want -1, 7", lo, hi)
	}
	lo, hi = Range(nil)
	if !math.IsNaN(lo) || !math.IsNaN(hi) {
		t.Errorf("Range(nil) = %v, %v; want NaN, NaN", lo, hi)
	}
}

func TestRatiosSkipMissingPairs(t *testing.T) {
	nan := math.NaN()
	// Repetition 1 failed on the numerator side, repetition 3 on the
	// denominator side, repetition 4 has a zero denominator: only 0 and 2
	// pair up. The extra numerator value has no partner.
	num := []float64{10, nan, 30, 40, 50, 99}
	den := []float64{5, 5, 10, nan, 0}
	got := Ratios(num, den)
	want := []float64{2, 3}
	if len(got) != len(want) {
		t.Fatalf("Ratios = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Ratios = %v, want %v", got, want)
		}
	}
}

// The ratio is taken per repetition, then the median: with a drifting
// machine this differs from the ratio of medians, and that is the point.
func TestMedianOfRatiosIsNotRatioOfMedians(t *testing.T) {
	oncelog := []float64{100, 200, 400}
	kfake := []float64{50, 400, 200}
	if got := Median(Ratios(oncelog, kfake)); got != 2 {
		t.Errorf("median of ratios = %v, want 2", got)
	}
	if got := Median(oncelog) / Median(kfake); got != 1 {
		t.Errorf("ratio of medians = %v, want 1", got)
	}
}

func TestSummarizeDropsNaN(t *testing.T) {
	s := Summarize([]float64{3, math.NaN(), 1, 2})
	if s.Median != 2 || s.Min != 1 || s.Max != 3 || s.N != 3 {
		t.Errorf("Summarize = %+v", s)
	}
	s = Summarize([]float64{math.NaN()})
	if s != (Summary{}) {
		t.Errorf("Summarize(all NaN) = %+v", s)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 1000; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{
		{0, 1 * time.Millisecond},
		{0.5, 500 * time.Millisecond},
		{0.99, 990 * time.Millisecond},
		{0.999, 999 * time.Millisecond},
		{1, 1000 * time.Millisecond},
	} {
		if got := Percentile(d, tc.p); got != tc.want {
			t.Errorf("Percentile(%v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := Percentile(nil, 0.5); got != 0 {
		t.Errorf("Percentile(nil) = %v", got)
	}
	if got := Percentile([]time.Duration{7}, 0.999); got != 7 {
		t.Errorf("Percentile(single) = %v", got)
	}
}
