package main

import (
	"context"
	"fmt"
	"io"
)

// runClient runs the client subcommands (topic, produce, consume).
func runClient(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fmt.Fprintf(stderr, "oncelog: unknown command %q\n\n%s", args[0], usage)
	return 2
}
