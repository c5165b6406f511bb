// Command run benchmarks oncelog against franz-go's in-memory kfake: it
// builds both brokers from this checkout (or takes --oncelog-bin), starts
// each as its own process per scenario and repetition, drives it with
// franz-go from this process, and reports throughput, latency and the
// broker's CPU seconds.
//
//	go run ./bench/run --targets oncelog,kfake --reps 3 --duration 10s \
//	    --scenarios produce-idempotent-1k,consume-committed --json out.json
//
// See docs/BENCHMARKS.md for what the figures mean and internal/bench for
// how they are taken.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/oncelog/oncelog/internal/bench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "bench/run: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	var names []string
	for _, s := range bench.Scenarios() {
		names = append(names, s.Name)
	}
	var (
		targets        = flag.String("targets", "oncelog,kfake", "comma-separated targets: oncelog, kfake; the ratio is first/second")
		scenarios      = flag.String("scenarios", "produce-idempotent-1k,produce-idempotent-100b,produce-acks1-1k,consume-uncommitted,consume-committed", "comma-separated scenarios, or \"all\"; known: "+strings.Join(names, ","))
		reps           = flag.Int("reps", 3, "repetitions; targets alternate within each")
		duration       = flag.Duration("duration", 10*time.Second, "timed phase of each time-bound scenario")
		recordBytes    = flag.Int("records-size", 1024, "value bytes for scenarios whose name fixes no size (consume-*, txn-*, copier, latency-5000)")
		partitions     = flag.Int("partitions", 6, "partitions per topic")
		consumeRecords = flag.Int("consume-records", 2_000_000, "records preloaded by consume-* and copier (2M of 1 KiB: a timed phase of seconds, not a start-up)")
		linger         = flag.Duration("linger", 0, "override franz-go's producer linger (0: client default)")
		topicConfigs   = flag.String("topic-config", "", "comma-separated key=value topic configs for the scenarios' topics, e.g. preallocate=true")
		jsonOut        = flag.String("json", "", "write the full report (every run) as JSON here")
		markdown       = flag.Bool("markdown", false, "also print the summary as a Markdown table")
		oncelogBin     = flag.String("oncelog-bin", "", "oncelog binary (default: go build ./cmd/oncelog)")
		kfakeBin       = flag.String("kfake-bin", "", "kfakeserver binary (default: go build ./bench/kfakeserver)")
		repo           = flag.String("repo", "", "oncelog checkout to build from (default: found above the working directory)")
		tmpDir         = flag.String("tmp-dir", "", "where binaries and broker data directories go (default: $TMPDIR); put it on the disk you mean to measure")
	)
	flag.Parse()

	if *reps < 1 || *duration <= 0 || *recordBytes < 1 || *partitions < 1 || *consumeRecords < 1 {
		return errors.New("--reps, --duration, --records-size, --partitions and --consume-records must be positive")
	}

	var scs []bench.Scenario
	if *scenarios == "all" {
		scs = bench.Scenarios()
	} else {
		for _, n := range splitList(*scenarios) {
			s, ok := bench.ScenarioByName(n)
			if !ok {
				return fmt.Errorf("unknown scenario %q; known: %s", n, strings.Join(names, ","))
			}
			scs = append(scs, s)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	tmp, err := os.MkdirTemp(*tmpDir, "oncelog-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	// Build only what is needed, and only when no binary was given. A
	// failed build fails that target's runs, not the benchmark.
	repoDir := *repo
	needBuild := func(name, bin string) bool { return bin == "" && strings.Contains(*targets, name) }
	if repoDir == "" && (needBuild("oncelog", *oncelogBin) || needBuild("kfake", *kfakeBin)) {
		if repoDir, err = bench.FindRepo("."); err != nil {
			return err
		}
	}
	targetErrs := map[string]error{}
	var tgts []bench.Target
	for _, n := range splitList(*targets) {
		switch n {
		case "oncelog":
			bin := *oncelogBin
			if bin == "" {
				fmt.Fprintln(os.Stderr, "building ./cmd/oncelog")
				if bin, err = bench.Build(ctx, repoDir, "./cmd/oncelog", tmp); err != nil {
					fmt.Fprintf(os.Stderr, "oncelog will be reported failed: %v\n", err)
					targetErrs[n] = err
				}
			}
			tgts = append(tgts, bench.OncelogTarget(bin))
		case "kfake":
			bin := *kfakeBin
			if bin == "" {
				fmt.Fprintln(os.Stderr, "building ./bench/kfakeserver")
				if bin, err = bench.Build(ctx, repoDir, "./bench/kfakeserver", tmp); err != nil {
					fmt.Fprintf(os.Stderr, "kfake will be reported failed: %v\n", err)
					targetErrs[n] = err
				}
			}
			tgts = append(tgts, bench.KfakeTarget(bin))
		default:
			return fmt.Errorf("unknown target %q (oncelog, kfake)", n)
		}
	}
	if len(tgts) == 0 {
		return errors.New("no targets")
	}

	rep := bench.Execute(ctx, bench.Config{
		Targets:        tgts,
		TargetErrs:     targetErrs,
		Scenarios:      scs,
		Reps:           *reps,
		Duration:       *duration,
		RecordBytes:    *recordBytes,
		Partitions:     *partitions,
		ConsumeRecords: *consumeRecords,
		Linger:         *linger,
		TopicConfigs:   parseTopicConfigs(*topicConfigs),
		TmpDir:         tmp,
		Log:            os.Stdout,
	})
	rep.WriteText(os.Stdout)
	if *markdown {
		fmt.Println()
		rep.WriteMarkdown(os.Stdout)
	}
	if *jsonOut != "" {
		if err := rep.WriteJSON(*jsonOut); err != nil {
			return err
		}
	}
	return ctx.Err()
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

// parseTopicConfigs reads "k=v,k=v"; a malformed pair stops the program.
func parseTopicConfigs(s string) map[string]*string {
	if s == "" {
		return nil
	}
	out := map[string]*string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			fmt.Fprintf(os.Stderr, "bench/run: --topic-config %q: want key=value\n", kv)
			os.Exit(2)
		}
		out[k] = &v
	}
	return out
}
