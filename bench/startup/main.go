// Command startup measures how long `oncelog serve` takes to start on a data
// directory an earlier process left, after a clean stop (SIGTERM) and after
// SIGKILL, and the broker's memory then: in log mode as a function of how
// much log the directory holds, in partitions mode of how many partitions.
//
//	go run ./bench/startup --gib 0.1,1,10 --reps 3 --json out.json
//	go run ./bench/startup --partitions 100,1000,10000 --reps 3 --json out.json
//
// See internal/bench/startup.go for the shape of a run and docs/BENCHMARKS.md
// for the figures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/oncelog/oncelog/internal/bench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "bench/startup: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		gib        = flag.String("gib", "", "log mode: comma-separated GiB of log to start on, e.g. 0.1,1,10")
		partitions = flag.String("partitions", "", "partitions mode: comma-separated partition counts, e.g. 100,1000,10000")
		perTopic   = flag.Int("partitions-per-topic", 100, "partitions mode: partitions per topic (10,000 = 100 topics of 100)")
		logParts   = flag.Int("log-partitions", 6, "log mode: partitions of the one topic the log is written to")
		valueBytes = flag.Int("value-bytes", 4096, "log mode: record value size of the bulk write")
		cold       = flag.Bool("cold", true, "also start once per repetition after dropping the data directory's files from the page cache")
		load       = flag.Duration("load", 10*time.Second, "partitions mode: idempotent acks=all produce load after the first clean start")
		reps       = flag.Int("reps", 3, "repetitions of the restarts per point")
		wait       = flag.Duration("wait", 5*time.Minute, "longest one start may take")
		settle     = flag.Duration("settle", 3*time.Second, "how long a started broker idles before its RSS is read")
		jsonOut    = flag.String("json", "", "write the report (every start) as JSON here")
		oncelogBin = flag.String("oncelog-bin", "", "oncelog binary (default: go build ./cmd/oncelog from this checkout)")
		commit     = flag.String("commit", "", "commit the binary was built from, for the report (default: this checkout's HEAD, when building)")
		tmpDir     = flag.String("tmp-dir", "", "where the binary and the data directories go (default: $TMPDIR); put it on the disk you mean to measure, with room for the largest --gib")
	)
	flag.Parse()

	if (*gib == "") == (*partitions == "") {
		return errors.New("give exactly one of --gib (log mode) and --partitions (partitions mode)")
	}
	if *reps < 1 || *perTopic < 1 || *logParts < 1 || *valueBytes < 1 || *wait <= 0 || *settle < 0 || *load <= 0 {
		return errors.New("--reps, --partitions-per-topic, --log-partitions, --value-bytes, --wait and --load must be positive")
	}
	cfg := bench.StartupConfig{
		Reps:               *reps,
		Wait:               *wait,
		Settle:             *settle,
		Log:                os.Stdout,
		Partitions:         *logParts,
		ValueBytes:         *valueBytes,
		Cold:               *cold,
		PartitionsPerTopic: *perTopic,
		LoadDuration:       *load,
	}
	for _, f := range splitList(*gib) {
		g, err := strconv.ParseFloat(f, 64)
		if err != nil || g <= 0 {
			return fmt.Errorf("--gib: bad size %q", f)
		}
		cfg.GiB = append(cfg.GiB, g)
	}
	for _, f := range splitList(*partitions) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return fmt.Errorf("--partitions: bad count %q", f)
		}
		cfg.PartitionCounts = append(cfg.PartitionCounts, n)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	tmp, err := os.MkdirTemp(*tmpDir, "oncelog-startup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cfg.TmpDir = tmp

	bin := *oncelogBin
	if bin == "" {
		repo, err := bench.FindRepo(".")
		if err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "building ./cmd/oncelog")
		if bin, err = bench.Build(ctx, repo, "./cmd/oncelog", tmp); err != nil {
			return err
		}
		if *commit == "" {
			*commit = headCommit(repo)
		}
	}
	cfg.Target = bench.OncelogTarget(bin)

	rep := bench.ExecuteStartup(ctx, cfg)
	rep.Settings.Commit = *commit
	rep.WriteText(os.Stdout)
	if *jsonOut != "" {
		if err := rep.WriteJSON(*jsonOut); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// headCommit names the checkout's HEAD, marked dirty when the broker's
// sources differ from it.
func headCommit(repo string) string {
	out, err := exec.Command("git", "-C", repo, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	c := strings.TrimSpace(string(out))
	st, err := exec.Command("git", "-C", repo, "status", "--porcelain", "--", "cmd", "internal", "embed").Output()
	if err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += "-dirty"
	}
	return c
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
