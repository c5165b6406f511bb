package bench

import (
	"math"
	"slices"
	"time"
)

// Median returns the median of xs (the mean of the two middle values for an
// even count) and NaN for an empty slice. xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Range returns the smallest and largest of xs, and NaN, NaN when empty.
func Range(xs []float64) (lo, hi float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	return slices.Min(xs), slices.Max(xs)
}

// Ratios pairs num[i] with den[i] (the same repetition) and returns num/den
// for every pair where both are present. A pair is present when neither value
// is NaN and den is not zero; absent pairs (a failed run) are skipped rather
// than poisoning the median.
func Ratios(num, den []float64) []float64 {
	var out []float64
	for i := range min(len(num), len(den)) {
		a, b := num[i], den[i]
		if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
			continue
		}
		out = append(out, a/b)
	}
	return out
}

// Percentile returns the p-quantile (0 <= p <= 1) of sorted by the
// nearest-rank method: the smallest value such that at least p of the samples
// are at or below it. sorted must be sorted ascending; 0 when empty.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p * float64(n)))
	rank = max(rank, 1)
	rank = min(rank, n)
	return sorted[rank-1]
}

// Summary is the median and min–max of one metric over repetitions.
type Summary struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

// Summarize drops NaNs (failed runs) and summarises the rest. With nothing
// left it returns the zero Summary (N == 0), which JSON can encode.
func Summarize(xs []float64) Summary {
	var ok []float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			ok = append(ok, x)
		}
	}
	if len(ok) == 0 {
		return Summary{}
	}
	lo, hi := Range(ok)
	return Summary{Median: Median(ok), Min: lo, Max: hi, N: len(ok)}
}
