package cli

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

var consumeCmd = command{
	name:    "consume",
	summary: "print records of a topic to stdout",
	help: "Without --from-beginning or --offset it starts at the end and waits for new\n" +
		"records. It stops after --max-messages records, after --timeout without a\n" +
		"record, or when interrupted. With --group, the offsets of printed records are\n" +
		"committed for the group on the way out.\n\n" +
		"--format is value (the default), kv (key TAB value), json (one object a line)\n" +
		"or a template: %k key, %v value, %t topic, %p partition, %o offset,\n" +
		"%T timestamp (ms), %h headers (k=v,...), %% a percent sign; \\n \\t \\\\ escapes.",
	flags: func(fs *flag.FlagSet) func(*env, *connFlags, []string) error {
		topic := fs.String("topic", "", "`topic` to consume (required)")
		fromBeginning := fs.Bool("from-beginning", false, "start at the earliest offset (for a group: where it has no committed offset)")
		group := fs.String("group", "", "consume as a member of this consumer `group`")
		isolation := fs.String("isolation", "read_uncommitted", "`level`: read_uncommitted, or read_committed (skip aborted and open transactions)")
		format := fs.String("format", "value", "output `format`: value, kv, json or a template")
		maxMessages := fs.Int64("max-messages", 0, "stop after `N` records (0: no limit)")
		timeout := fs.Duration("timeout", 0, "stop after this `duration` without a new record (0: never)")
		partition := fs.Int("partition", -1, "consume only this `partition` (not with --group; default: all)")
		offset := fs.String("offset", "", "with --partition: start `offset`, a number, beginning or end")
		return func(e *env, c *connFlags, _ []string) error {
			set := map[string]bool{}
			fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
			if *topic == "" {
				return usagef("--topic is required")
			}
			out, err := parseFormat(*format)
			if err != nil {
				return err
			}
			if *maxMessages < 0 {
				return usagef("--max-messages %d: want 0 or more", *maxMessages)
			}
			if *timeout < 0 {
				return usagef("--timeout %v: want 0 or more", *timeout)
			}
			start := kgo.NewOffset().AtEnd()
			if *fromBeginning {
				start = kgo.NewOffset().AtStart()
			}
			if set["offset"] && !set["partition"] {
				return usagef("--offset needs --partition")
			}
			if set["partition"] {
				if *group != "" {
					return usagef("--partition cannot be used with --group: a group assigns partitions itself")
				}
				if *partition < 0 || *partition > 1<<31-1 {
					return usagef("--partition %d: want a partition number", *partition)
				}
				switch *offset {
				case "":
				case "beginning":
					start = kgo.NewOffset().AtStart()
				case "end":
					start = kgo.NewOffset().AtEnd()
				default:
					n, err := strconv.ParseInt(*offset, 10, 64)
					if err != nil || n < 0 {
						return usagef("--offset %q: want a number >= 0, beginning or end", *offset)
					}
					start = kgo.NewOffset().At(n)
				}
			}
			var opts []kgo.Opt
			switch *isolation {
			case "read_uncommitted":
				opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
			case "read_committed":
				opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
			default:
				return usagef("--isolation %q: want read_uncommitted or read_committed", *isolation)
			}
			switch {
			case set["partition"]:
				opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{*topic: {int32(*partition): start}}))
			case *group != "":
				opts = append(opts, kgo.ConsumeTopics(*topic), kgo.ConsumerGroup(*group),
					kgo.ConsumeResetOffset(start), kgo.AutoCommitMarks())
			default:
				opts = append(opts, kgo.ConsumeTopics(*topic), kgo.ConsumeResetOffset(start))
			}
			// Without a group kgo would not look for a topic that does
			// not exist yet; we check it once up front instead.
			cl, err := c.connect(e.ctx, opts...)
			if err != nil {
				return err
			}
			defer cl.Close()
			parts, err := requireTopic(e.ctx, kadm.NewClient(cl), *topic)
			if err != nil {
				return err
			}
			if set["partition"] {
				if _, ok := parts[int32(*partition)]; !ok {
					return fmt.Errorf("topic %q has no partition %d (it has %d)", *topic, *partition, len(parts))
				}
			}
			cs := &consumer{e: e, cl: cl, out: out, max: *maxMessages, idle: *timeout, group: *group != ""}
			return cs.run()
		}
	},
}

type consumer struct {
	e     *env
	cl    *kgo.Client
	out   func(w *bufio.Writer, r *kgo.Record)
	max   int64
	idle  time.Duration
	group bool
}

func (cs *consumer) run() error {
	w := bufio.NewWriterSize(cs.e.stdout, 64<<10)
	var n int64
	err := cs.poll(w, &n)
	if ferr := w.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("write stdout: %w", ferr)
	}
	if cs.group {
		// Commit what was printed, and no more, even when
		// interrupted: a fresh context, briefly.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(cs.e.ctx), 10*time.Second)
		defer cancel()
		if cerr := cs.cl.CommitMarkedOffsets(ctx); cerr != nil && err == nil {
			err = fmt.Errorf("commit offsets: %w", cerr)
		}
	}
	fmt.Fprintf(cs.e.stderr, "oncelog: consumed %d records\n", n)
	return err
}

func (cs *consumer) poll(w *bufio.Writer, n *int64) error {
	for cs.max == 0 || *n < cs.max {
		ctx, cancel := cs.e.ctx, context.CancelFunc(func() {})
		if cs.idle > 0 {
			ctx, cancel = context.WithTimeout(cs.e.ctx, cs.idle)
		}
		fetches := cs.cl.PollRecords(ctx, int(min(cs.max-*n, 10000)))
		cancel()
		if cs.e.ctx.Err() != nil {
			return nil // interrupted: a normal way to stop
		}
		idle := true
		var err error
		fetches.EachError(func(topic string, p int32, ferr error) {
			switch {
			case errors.Is(ferr, context.DeadlineExceeded), errors.Is(ferr, context.Canceled):
			case err == nil:
				err = topicErr(topic, ferr, "")
				if p >= 0 {
					err = fmt.Errorf("partition %d: %w", p, err)
				}
			}
		})
		if err != nil {
			return err
		}
		fetches.EachRecord(func(r *kgo.Record) {
			idle = false
			if cs.max > 0 && *n >= cs.max {
				return
			}
			cs.out(w, r)
			*n++
			if cs.group {
				cs.cl.MarkCommitRecords(r)
			}
		})
		if err := w.Flush(); err != nil {
			return fmt.Errorf("write stdout: %w", err)
		}
		if idle && cs.idle > 0 && ctx.Err() != nil {
			return nil // --timeout without a record
		}
	}
	return nil
}

// parseFormat turns --format into a printer.
func parseFormat(f string) (func(*bufio.Writer, *kgo.Record), error) {
	switch f {
	case "value":
		return func(w *bufio.Writer, r *kgo.Record) { w.Write(r.Value); w.WriteByte('\n') }, nil
	case "kv":
		return func(w *bufio.Writer, r *kgo.Record) {
			w.Write(r.Key)
			w.WriteByte('\t')
			w.Write(r.Value)
			w.WriteByte('\n')
		}, nil
	case "json":
		return printJSON, nil
	}
	return parseTemplate(f)
}

type jsonRecord struct {
	Topic       string            `json:"topic"`
	Partition   int32             `json:"partition"`
	Offset      int64             `json:"offset"`
	Timestamp   int64             `json:"timestamp"`
	Key         *string           `json:"key"`
	KeyBase64   string            `json:"key_base64,omitempty"`
	Value       *string           `json:"value"`
	ValueBase64 string            `json:"value_base64,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
}

// jsonBytes puts b in a JSON string if it is UTF-8, else in base64; null
// stays null.
func jsonBytes(b []byte) (*string, string) {
	if b == nil {
		return nil, ""
	}
	if utf8.Valid(b) {
		s := string(b)
		return &s, ""
	}
	return nil, base64.StdEncoding.EncodeToString(b)
}

func printJSON(w *bufio.Writer, r *kgo.Record) {
	j := jsonRecord{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli()}
	j.Key, j.KeyBase64 = jsonBytes(r.Key)
	j.Value, j.ValueBase64 = jsonBytes(r.Value)
	if len(r.Headers) > 0 {
		j.Headers = make(map[string]string, len(r.Headers))
		for _, h := range r.Headers {
			j.Headers[h.Key] = string(h.Value)
		}
	}
	b, _ := json.Marshal(j) // cannot fail: strings and numbers only
	w.Write(b)
	w.WriteByte('\n')
}

// parseTemplate compiles a kcat-style template into a list of pieces.
func parseTemplate(f string) (func(*bufio.Writer, *kgo.Record), error) {
	type piece func(w *bufio.Writer, r *kgo.Record)
	var pieces []piece
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			s := lit.String()
			pieces = append(pieces, func(w *bufio.Writer, _ *kgo.Record) { w.WriteString(s) })
			lit.Reset()
		}
	}
	verb := func(p piece) { flush(); pieces = append(pieces, p) }
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c != '%' && c != '\\' || i+1 == len(f) {
			if c == '%' || c == '\\' {
				return nil, usagef("--format %q: dangling %c at the end", f, c)
			}
			lit.WriteByte(c)
			continue
		}
		i++
		if c == '\\' {
			switch f[i] {
			case 'n':
				lit.WriteByte('\n')
			case 't':
				lit.WriteByte('\t')
			case 'r':
				lit.WriteByte('\r')
			case '\\':
				lit.WriteByte('\\')
			default:
				return nil, usagef("--format %q: unknown escape \\%c", f, f[i])
			}
			continue
		}
		switch f[i] {
		case '%':
			lit.WriteByte('%')
		case 'k':
			verb(func(w *bufio.Writer, r *kgo.Record) { w.Write(r.Key) })
		case 'v':
			verb(func(w *bufio.Writer, r *kgo.Record) { w.Write(r.Value) })
		case 't':
			verb(func(w *bufio.Writer, r *kgo.Record) { w.WriteString(r.Topic) })
		case 'p':
			verb(func(w *bufio.Writer, r *kgo.Record) { w.WriteString(strconv.Itoa(int(r.Partition))) })
		case 'o':
			verb(func(w *bufio.Writer, r *kgo.Record) { w.WriteString(strconv.FormatInt(r.Offset, 10)) })
		case 'T':
			verb(func(w *bufio.Writer, r *kgo.Record) { w.WriteString(strconv.FormatInt(r.Timestamp.UnixMilli(), 10)) })
		case 'h':
			verb(func(w *bufio.Writer, r *kgo.Record) {
				for j, h := range r.Headers {
					if j > 0 {
						w.WriteByte(',')
					}
					w.WriteString(h.Key)
					w.WriteByte('=')
					w.Write(h.Value)
				}
			})
		default:
			return nil, usagef("--format %q: unknown verb %%%c (want %%k %%v %%t %%p %%o %%T %%h %%%%)", f, f[i])
		}
	}
	flush()
	if len(pieces) == 0 {
		return nil, usagef("--format is empty")
	}
	return func(w *bufio.Writer, r *kgo.Record) {
		for _, p := range pieces {
			p(w, r)
		}
	}, nil
}
