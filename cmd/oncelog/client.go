package main

import (
	"context"
	"io"

	"github.com/oncelog/oncelog/internal/cli"
)

// runClient runs the client subcommands (topic, produce, consume).
func runClient(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cli.Run(ctx, args, stdin, stdout, stderr)
}
