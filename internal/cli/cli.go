// Package cli implements oncelog's client commands — topic administration,
// produce and consume — as a Kafka client (franz-go kgo and kadm) that talks
// to any Kafka-compatible broker over TCP, oncelog's own included.
//
// Run is the whole interface: cmd/oncelog hands it the arguments after the
// binary's name. Output meant for pipes (records, topic names, descriptions)
// goes to stdout; summaries and errors go to stderr. Exit codes:
//
//	0  success (also --help)
//	1  operational failure: the broker is unreachable, a topic does not
//	   exist, a request failed, a record was not produced
//	2  usage error: unknown command or flag, bad or missing argument
//
// Every error is printed as one line starting with "oncelog: " that names
// what failed.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// DefaultBrokers is where the commands look for a broker unless --brokers
// says otherwise: the listener `oncelog serve` opens by default.
const DefaultBrokers = "127.0.0.1:9092"

// env is what one invocation reads and writes.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// command is one leaf command, e.g. "topic create".
type command struct {
	name    string // as typed, e.g. "topic create"
	args    string // positional arguments in the usage line
	summary string // one line, for the command list
	help    string // more paragraphs for --help
	flags   func(fs *flag.FlagSet) func(e *env, c *connFlags, pos []string) error
	npos    int // exact number of positional arguments
}

var commands = []command{
	topicCreateCmd, topicListCmd, topicDescribeCmd, topicDeleteCmd, topicAlterConfigCmd,
	produceCmd, consumeCmd, verifyCmd,
	txnListCmd, txnDescribeCmd, txnProducersCmd, txnAbortCmd,
}

// Run executes one command line, args without the binary's name, and
// returns the process exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		topUsage(stderr)
		return ExitUsage
	}
	if isHelp(args[0]) || args[0] == "help" {
		topUsage(stdout)
		return ExitOK
	}
	var cmd *command
	n := 1
	for i := range commands {
		words := strings.Fields(commands[i].name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == commands[i].name {
			cmd, n = &commands[i], len(words)
			break
		}
	}
	if cmd == nil {
		if args[0] == "txn" {
			return txnGroup(e, args)
		}
		if args[0] == "topic" {
			if len(args) == 1 || isHelp(args[1]) {
				w, code := stderr, ExitUsage
				if len(args) > 1 {
					w, code = stdout, ExitOK
				}
				topicUsage(w)
				return code
			}
			fmt.Fprintf(stderr, "oncelog: unknown command \"topic %s\"\n", args[1])
			topicUsage(stderr)
			return ExitUsage
		}
		fmt.Fprintf(stderr, "oncelog: unknown command %q\n", args[0])
		topUsage(stderr)
		return ExitUsage
	}
	return cmd.run(e, args[n:])
}

func isHelp(s string) bool { return s == "-h" || s == "-help" || s == "--help" }

func (cmd *command) run(e *env, args []string) int {
	fs := flag.NewFlagSet("oncelog "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var c connFlags
	c.register(fs)
	runFn := cmd.flags(fs)
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "usage: oncelog %s [flags]%s\n\n%s\n\n", cmd.name, cmd.args, cmd.summary)
		if cmd.help != "" {
			fmt.Fprintf(w, "%s\n\n", cmd.help)
		}
		fmt.Fprintf(w, "flags:\n")
		printFlags(w, fs)
	}
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		usage(e.stdout)
		return ExitOK
	}
	if err == nil && len(pos) != cmd.npos {
		switch {
		case cmd.npos == 0:
			err = usagef("unexpected argument %q", pos[0])
		case len(pos) < cmd.npos:
			err = usagef("missing argument%s", cmd.args)
		default:
			err = usagef("unexpected argument %q", pos[cmd.npos])
		}
	}
	if err == nil {
		err = runFn(e, &c, pos)
	}
	var ue usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "oncelog %s: %v\n", cmd.name, ue.err)
		fmt.Fprintf(e.stderr, "run 'oncelog %s --help' for usage\n", cmd.name)
		return ExitUsage
	default:
		fmt.Fprintf(e.stderr, "oncelog: %v\n", err)
		return ExitError
	}
}

// printFlags lists the flags GNU style (--name), which is how the help
// and error messages spell them; the flag package accepts both.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		kind, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if kind != "" {
			line += " " + kind
		}
		fmt.Fprintf(w, "%s\n      %s", line, usage)
		switch f.DefValue {
		case "", "0", "0s", "false", "[]":
		default:
			if !strings.Contains(usage, "default") {
				fmt.Fprintf(w, " (default %s)", f.DefValue)
			}
		}
		fmt.Fprintln(w)
	})
}

// usageError marks an error as the caller's misuse (exit code 2).
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// parseInterspersed parses flags that may come before, between or after the
// positional arguments, as in "topic create NAME --partitions 3". A lone
// "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// fs.Parse consumed a "--" if it stopped at one.
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// connFlags are the flags every command takes.
type connFlags struct {
	brokers     string
	dialTimeout time.Duration
}

func (c *connFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.brokers, "brokers", DefaultBrokers, "comma-separated bootstrap `addresses` (host:port)")
	fs.DurationVar(&c.dialTimeout, "dial-timeout", 10*time.Second, "how long to wait for a connection to a broker")
}

func (c *connFlags) seeds() []string {
	var s []string
	for b := range strings.SplitSeq(c.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			s = append(s, b)
		}
	}
	return s
}

// connect makes a client and checks that a broker answers, so that an
// unreachable broker is one clear error up front instead of retries later.
func (c *connFlags) connect(ctx context.Context, opts ...kgo.Opt) (*kgo.Client, error) {
	seeds := c.seeds()
	if len(seeds) == 0 {
		return nil, usagef("--brokers is empty")
	}
	base := []kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.DialTimeout(c.dialTimeout),
		kgo.ClientID("oncelog-cli"),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, usageError{fmt.Errorf("client options: %w", err)}
	}
	pingCtx, cancel := context.WithTimeout(ctx, c.dialTimeout+5*time.Second)
	defer cancel()
	if err := cl.Ping(pingCtx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("cannot reach broker %s: %w", c.brokers, err)
	}
	return cl, nil
}

// admin connects and wraps the client for the topic commands.
func (c *connFlags) admin(ctx context.Context) (*kadm.Client, error) {
	cl, err := c.connect(ctx)
	if err != nil {
		return nil, err
	}
	return kadm.NewClient(cl), nil
}

// topicErr words a broker's answer about a topic for a person.
func topicErr(topic string, err error, msg string) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID):
		return fmt.Errorf("topic %q does not exist", topic)
	case errors.Is(err, kerr.TopicAlreadyExists):
		return fmt.Errorf("topic %q already exists", topic)
	}
	if msg != "" && !strings.Contains(err.Error(), msg) {
		return fmt.Errorf("topic %q: %w: %s", topic, err, msg)
	}
	return fmt.Errorf("topic %q: %w", topic, err)
}

// requireTopic fails with "topic does not exist" unless topic exists, so
// that produce and consume do not spin on retries against a missing topic.
// It returns the topic's partitions.
func requireTopic(ctx context.Context, adm *kadm.Client, topic string) (kadm.PartitionDetails, error) {
	details, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("metadata for topic %q: %w", topic, err)
	}
	d, ok := details[topic]
	if !ok {
		return nil, fmt.Errorf("topic %q does not exist", topic)
	}
	if d.Err != nil {
		return nil, topicErr(topic, d.Err, "")
	}
	return d.Partitions, nil
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// splitKV splits "k=v" for --config and --set.
func splitKV(flagName, s string) (string, string, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return "", "", usagef("--%s %q: want key=value", flagName, s)
	}
	return k, v, nil
}

func topUsage(w io.Writer) {
	fmt.Fprintf(w, `usage: oncelog <command> [flags]

client commands (each takes --brokers, default %s):
`, DefaultBrokers)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-20s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nrun 'oncelog <command> --help' for a command's flags\n")
}

func topicUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: oncelog topic <create|list|describe|delete|alter-config> [flags]\n\n")
	for _, c := range commands {
		if strings.HasPrefix(c.name, "topic ") {
			fmt.Fprintf(w, "  %-20s %s\n", c.name, c.summary)
		}
	}
}
