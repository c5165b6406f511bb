// Command oncelog is the whole product in one binary: `oncelog serve` runs
// the broker; the other subcommands are Kafka clients for it (and for any
// Kafka-compatible cluster).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `oncelog: a Kafka-compatible broker built around exactly-once semantics

Usage:
  oncelog serve [--listen HOST:PORT] [--data-dir DIR] [--advertise HOST:PORT] [--config FILE]
  oncelog topic create|list|describe|delete|alter-config ...
  oncelog produce --topic T ...
  oncelog consume --topic T ...
  oncelog txn list|describe|producers|abort ...
  oncelog verify copy|queue [--spawn] ...

Run "oncelog COMMAND --help" for the flags of a command.
`

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		return runClient(ctx, args, stdin, stdout, stderr)
	}
}
