// Command plot draws the PNG figures of docs/BENCHMARKS.md from the JSON
// reports of bench/run and bench/startup, with gonum.org/v1/plot:
//
//	go run ./bench/plot --out docs/plots
//
// reproduces every figure from the reports in bench/results (the defaults);
// each flag names the reports of one figure, and an empty flag skips it.
// Every figure shows the median of the repetitions with their min–max range
// as error bars.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/oncelog/oncelog/internal/bench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "bench/plot: %v\n", err)
		os.Exit(1)
	}
}

const (
	results = "bench/results/"
	scale   = results + "scale/"
)

func run() error {
	var (
		out        = flag.String("out", "docs/plots", "directory the PNG files are written to")
		throughput = flag.String("throughput", results+"2026-12-02-session4-all.json", "bench/run reports: throughput per scenario, oncelog vs kfake (throughput.png)")
		latency    = flag.String("latency", results+"2026-12-02-session4-latency-linger0.json,"+results+"2026-12-02-session4-all.json,"+results+"2026-12-02-session4-consume2m-latency.json", "bench/run reports of latency-5000: p50/p99/p999 (latency.png)")
		partitions = flag.String("partitions", scale+"2026-12-01-partitions-1.json,"+scale+"2026-12-01-partitions-100.json,"+scale+"2026-12-01-partitions-1000.json,"+scale+"2026-12-01-partitions-10000.json", "bench/run reports, one per --partitions count (partitions.png)")
		before     = flag.String("partitions-before", scale+"2026-12-01-partitions-1-before.json,"+scale+"2026-12-01-partitions-100-before.json,"+scale+"2026-12-01-partitions-1000-before.json,"+scale+"2026-12-01-partitions-10000-before.json", "the same before a change, drawn as a second oncelog series (and kfake's)")
		idle       = flag.String("idle-pids", scale+"2026-12-01-idle-pids.json", "bench/run report of the idle-pids-N scenarios (idle-pids.png)")
		startup    = flag.String("startup", scale+"2026-12-01-startup-log.json,"+scale+"2026-12-01-startup-10gib.json", "bench/startup log-mode reports, their points merged (startup.png)")
		startParts = flag.String("startup-partitions", scale+"2026-12-01-startup-partitions.json", "bench/startup partitions-mode report (startup-partitions.png)")
	)
	flag.Parse()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	figures := []struct {
		name string
		in   []string
		draw func(in []string, path string) error
	}{
		{"throughput.png", splitList(*throughput), func(in []string, path string) error {
			reps, err := readReports(in)
			if err != nil {
				return err
			}
			var names []string
			for _, f := range in {
				names = append(names, strings.TrimSuffix(filepath.Base(f), ".json"))
			}
			return Throughput(reps, names, path)
		}},
		{"latency.png", splitList(*latency), func(in []string, path string) error {
			reps, err := readReports(in)
			if err != nil {
				return err
			}
			return Latency(reps, path)
		}},
		{"partitions.png", splitList(*partitions), func(in []string, path string) error {
			after, err := readReports(in)
			if err != nil {
				return err
			}
			bef, err := readReports(splitList(*before))
			if err != nil {
				return err
			}
			return Partitions(after, bef, path)
		}},
		{"idle-pids.png", splitList(*idle), func(in []string, path string) error {
			reps, err := readReports(in)
			if err != nil {
				return err
			}
			return IdlePIDs(reps, path)
		}},
		{"startup.png", splitList(*startup), func(in []string, path string) error {
			reps, err := readStartupReports(in)
			if err != nil {
				return err
			}
			return StartupLog(reps, path)
		}},
		{"startup-partitions.png", splitList(*startParts), func(in []string, path string) error {
			reps, err := readStartupReports(in)
			if err != nil {
				return err
			}
			return StartupPartitions(reps, path)
		}},
	}
	var errs []error
	for _, f := range figures {
		if len(f.in) == 0 {
			continue
		}
		path := filepath.Join(*out, f.name)
		if err := f.draw(f.in, path); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.name, err))
			continue
		}
		fmt.Println("wrote", path)
	}
	return errors.Join(errs...)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func readReports(paths []string) ([]bench.Report, error) {
	var out []bench.Report
	for _, p := range paths {
		var r bench.Report
		if err := readJSON(p, &r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func readStartupReports(paths []string) ([]bench.StartupReport, error) {
	var out []bench.StartupReport
	for _, p := range paths {
		var r bench.StartupReport
		if err := readJSON(p, &r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
