package cli

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/oncelog/oncelog/internal/verify"
)

var verifyCmd = command{
	name:    "verify",
	args:    " copy|queue",
	summary: "check exactly-once guarantees of a broker under faults",
	help: `Runs a workload against a Kafka-compatible broker while injecting faults,
then checks what the clients saw (docs/VERIFY.md lists the checks).

  copy   Kafka's transactions system test: seed --records values with an
         idempotent producer, copy them with transactional copiers (one
         transactional id per input partition, or --mode group with KIP-447
         offset commits), read the output with read_committed; the output
         must equal the input, without duplicates, in order per partition.
  queue  Jepsen's queue test: clients send unique values inside and outside
         transactions, abort some on purpose, poll with assign and subscribe;
         every operation goes into a history that is then checked.

With --spawn, verify starts its own broker (this binary, or --oncelog-bin)
in a temporary directory on a loopback port and may kill, stop and restart
it (faults hard, clean, pause). With --brokers only client-side faults are
possible (copier, proxy), and the proxy only in front of loopback addresses.

Exit status: 0 if every check passed, 1 on any violation or if the run could
not finish, 2 on a usage error.`,
	npos: 1,
	flags: func(fs *flag.FlagSet) func(e *env, c *connFlags, pos []string) error {
		var cfg verify.Config
		var faults, report string
		fs.BoolVar(&cfg.Spawn, "spawn", false, "start a broker of our own instead of using --brokers")
		fs.StringVar(&cfg.OncelogBin, "oncelog-bin", "", "oncelog binary for --spawn (default: this executable)")
		fs.IntVar(&cfg.Records, "records", 100000, "copy: records to seed and copy")
		fs.IntVar(&cfg.Partitions, "partitions", 0, "partitions per topic (default 4; 6 in group mode)")
		fs.IntVar(&cfg.Copiers, "copiers", 3, "copy: copiers in group mode; queue: clients")
		fs.StringVar(&cfg.Mode, "mode", "partition", "copy: partition (a transactional id per input partition) or group (KIP-447)")
		fs.StringVar(&cfg.GroupProto, "group-protocol", "classic", "copy --mode group: classic or consumer (KIP-848)")
		fs.IntVar(&cfg.TxnSize, "txn-size", 100, "records per transaction")
		fs.StringVar(&faults, "faults", "", "comma-separated: hard,clean,pause,copier,proxy, or all (default none)")
		fs.DurationVar(&cfg.FaultInterval, "fault-interval", 4*time.Second, "mean time between faults")
		fs.DurationVar(&cfg.Duration, "duration", 2*time.Minute, "copy: paced to finish in about 3/4 of it (1/2 with --mode group); queue: how long clients run")
		fs.DurationVar(&cfg.Timeout, "timeout", 0, "hard bound on the run (default --duration + 3m)")
		fs.Uint64Var(&cfg.Seed, "seed", 0, "random seed (default: from the clock; printed in the report)")
		fs.StringVar(&report, "report", "", "write the JSON report to this `file`")
		fs.StringVar(&cfg.HistoryPath, "history", "", "queue: write the history (JSON lines) to this `file`")
		verbose := fs.Bool("v", false, "log faults and client events to stderr")
		return func(e *env, c *connFlags, pos []string) error {
			cfg.Workload = pos[0]
			if cfg.Workload != "copy" && cfg.Workload != "queue" {
				return usagef("unknown workload %q (want copy or queue)", pos[0])
			}
			var err error
			if cfg.Faults, err = verify.ParseFaults(faults); err != nil {
				return usagef("--faults: %v", err)
			}
			if !cfg.Spawn {
				cfg.Brokers = c.seeds()
				for _, f := range cfg.Faults {
					if f == verify.FaultHard || f == verify.FaultClean || f == verify.FaultPause {
						return usagef("--faults %s needs --spawn (a broker verify starts itself)", f)
					}
				}
			}
			cfg.Progress = e.stderr
			if *verbose {
				cfg.Log = e.stderr
			}
			rep, err := verify.Run(e.ctx, cfg)
			if err != nil {
				return err
			}
			rep.WriteText(e.stdout)
			if report != "" {
				f, err := os.Create(report)
				if err != nil {
					return err
				}
				werr := rep.WriteJSON(f)
				if cerr := f.Close(); werr == nil {
					werr = cerr
				}
				if werr != nil {
					return fmt.Errorf("--report: %w", werr)
				}
			}
			if rep.Failed() {
				return fmt.Errorf("verify %s: %d violations, %d errors", cfg.Workload, rep.Violations, len(rep.Errors))
			}
			return nil
		}
	},
}
