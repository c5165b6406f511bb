package bench

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// thousands formats x rounded to an integer with comma separators.
func thousands(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "-"
	}
	s := strconv.FormatInt(int64(math.Round(x)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// span formats a summary as "median [min–max]" with f formatting one value.
func span(s Summary, f func(float64) string) string {
	if s.N == 0 {
		return "-"
	}
	if s.N == 1 {
		return f(s.Median)
	}
	return fmt.Sprintf("%s [%s–%s]", f(s.Median), f(s.Min), f(s.Max))
}

func fixed(prec int) func(float64) string {
	return func(x float64) string { return strconv.FormatFloat(x, 'f', prec, 64) }
}

// WriteText prints the summaries for a terminal.
func (rep Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "\n%d repetitions, %gs per scenario, %d partitions, %d-byte records where the name fixes none; median [min–max] over repetitions\n",
		rep.Settings.Reps, rep.Settings.DurationSecs, rep.Settings.Partitions, rep.Settings.RecordBytes)
	for _, ss := range rep.Summaries {
		better := "higher is better"
		if ss.Metric == "p99" {
			better = "lower is better"
		}
		fmt.Fprintf(w, "\n%s (compared on %s, %s)\n", ss.Scenario, ss.Metric, better)
		for _, name := range rep.Settings.Targets {
			ts := ss.Targets[name]
			if ts.OK == 0 {
				msg := "no successful run"
				if len(ts.Errors) > 0 {
					msg = ts.Errors[0]
				}
				fmt.Fprintf(w, "  %-8s FAILED (%d/%d): %s\n", name, ts.Failed, ts.Failed+ts.OK, truncate(msg, 200))
				continue
			}
			line := fmt.Sprintf("  %-8s %s records/s  %s MB/s", name, span(ts.RecordsPerSec, thousands), span(ts.MBPerSec, fixed(1)))
			if ts.CommitsPerSec.N > 0 && ts.CommitsPerSec.Median > 0 {
				line += fmt.Sprintf("  %s commits/s", span(ts.CommitsPerSec, fixed(1)))
			}
			if ts.P99Millis.N > 0 && ts.P99Millis.Median > 0 {
				line += fmt.Sprintf("  p50 %s ms  p99 %s ms  p999 %s ms", span(ts.P50Millis, fixed(2)), span(ts.P99Millis, fixed(2)), span(ts.P999Millis, fixed(2)))
			}
			line += fmt.Sprintf("\n           CPU s: broker %s (%s µs/record)  driver %s  other %s;  broker peak RSS %s MB;  disk MB %s",
				span(ts.BrokerCPU, fixed(2)), span(ts.BrokerUSPerRec, fixed(2)), span(ts.DriverCPU, fixed(2)), span(ts.OtherCPU, fixed(2)), span(ts.PeakRSSMB, fixed(0)), span(ts.DiskMB, fixed(0)))
			if ts.Contended > 0 {
				line += fmt.Sprintf("  [%d of %d runs contended]", ts.Contended, ts.OK)
			}
			if ts.Failed > 0 {
				line += fmt.Sprintf("  (%d failed: %s)", ts.Failed, truncate(ts.Errors[0], 120))
			}
			fmt.Fprintln(w, line)
		}
		if ss.RatioName != "" {
			fmt.Fprintf(w, "  %s %s: %s (median of per-repetition ratios, n=%d)\n", ss.RatioName, ss.Metric, span(ss.Ratio, fixed(2)), ss.Ratio.N)
		}
	}
}

// WriteMarkdown prints the summaries as a Markdown table.
func (rep Report) WriteMarkdown(w io.Writer) {
	ratio := "ratio"
	for _, ss := range rep.Summaries {
		if ss.RatioName != "" {
			ratio = ss.RatioName
			break
		}
	}
	fmt.Fprintf(w, "| scenario | target | records/s | MB/s | commits/s or p50/p99/p999 ms | broker CPU s | driver CPU s | other CPU s | %s |\n", ratio)
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, ss := range rep.Summaries {
		for i, name := range rep.Settings.Targets {
			ts := ss.Targets[name]
			r := ""
			if i == 0 && ss.RatioName != "" {
				r = span(ss.Ratio, fixed(2)) + " (" + ss.Metric + ")"
			}
			if ts.OK == 0 {
				msg := "failed"
				if len(ts.Errors) > 0 {
					msg = "failed: " + truncate(ts.Errors[0], 80)
				}
				fmt.Fprintf(w, "| %s | %s | %s | | | | | | %s |\n", ss.Scenario, name, escapeCell(msg), r)
				continue
			}
			extra := ""
			switch {
			case ts.P99Millis.N > 0 && ts.P99Millis.Median > 0:
				extra = fmt.Sprintf("%s / %s / %s", fixed(2)(ts.P50Millis.Median), span(ts.P99Millis, fixed(2)), fixed(2)(ts.P999Millis.Median))
			case ts.CommitsPerSec.N > 0 && ts.CommitsPerSec.Median > 0:
				extra = span(ts.CommitsPerSec, fixed(1))
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", ss.Scenario, name,
				span(ts.RecordsPerSec, thousands), span(ts.MBPerSec, fixed(1)), extra,
				fixed(2)(ts.BrokerCPU.Median), fixed(2)(ts.DriverCPU.Median), fixed(2)(ts.OtherCPU.Median)+contendedMark(ts), r)
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func escapeCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// contendedMark flags, in the Markdown table, summaries that include runs
// taken while other processes used the machine.
func contendedMark(ts TargetSummary) string {
	if ts.Contended == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d/%d contended)", ts.Contended, ts.OK)
}
