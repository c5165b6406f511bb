package cli

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// maxLineBytes bounds one input line (one record). Brokers refuse batches
// over max.message.bytes (1 MiB by default) anyway.
const maxLineBytes = 16 << 20

// maxPrintedErrors bounds the per-record errors printed; the summary counts
// them all.
const maxPrintedErrors = 10

var produceCmd = command{
	name:    "produce",
	summary: "produce each line of stdin as one record",
	help: "With --key-separator, a line is KEY SEP VALUE, split at the first SEP; a line\n" +
		"without SEP is an error. With --transactional-id, all lines go in one\n" +
		"transaction, committed at the end of input, aborted on any error.\n" +
		"A summary goes to stderr; the exit code is 1 if any record failed.",
	flags: func(fs *flag.FlagSet) func(*env, *connFlags, []string) error {
		topic := fs.String("topic", "", "`topic` to produce to (required)")
		keySep := fs.String("key-separator", "", "split each line into key and value at the first `SEP`")
		idempotent := fs.Bool("idempotent", true, "idempotent producer (needs --acks -1)")
		acks := fs.String("acks", "-1", "acknowledgement: -1 (all), 1 (leader) or 0 (none)")
		partition := fs.Int("partition", -1, "produce every record to this `partition` (default: by key hash, else sticky)")
		compression := fs.String("compression", "none", "codec: none, gzip, snappy, lz4 or zstd")
		txnID := fs.String("transactional-id", "", "produce all input in one transaction with this `id`")
		return func(e *env, c *connFlags, _ []string) error {
			set := map[string]bool{}
			fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
			if *topic == "" {
				return usagef("--topic is required")
			}
			opts := []kgo.Opt{kgo.DefaultProduceTopic(*topic)}
			switch *acks {
			case "-1", "all":
				opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
			case "1":
				opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()))
			case "0":
				opts = append(opts, kgo.RequiredAcks(kgo.NoAck()))
			default:
				return usagef("--acks %q: want -1, 1 or 0", *acks)
			}
			weakAcks := *acks == "1" || *acks == "0"
			if *txnID != "" && (weakAcks || (set["idempotent"] && !*idempotent)) {
				return usagef("--transactional-id needs --acks -1 and --idempotent")
			}
			switch {
			case weakAcks && set["idempotent"] && *idempotent:
				return usagef("--idempotent needs --acks -1")
			case weakAcks || !*idempotent:
				// An idempotent producer must wait for all
				// replicas, so weaker acks imply a plain one.
				opts = append(opts, kgo.DisableIdempotentWrite())
			}
			codec, err := parseCodec(*compression)
			if err != nil {
				return err
			}
			opts = append(opts, kgo.ProducerBatchCompression(codec))
			if *partition < -1 || *partition > 1<<31-1 {
				return usagef("--partition %d: want a partition number", *partition)
			}
			if *partition >= 0 {
				opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
			}
			if *txnID != "" {
				opts = append(opts, kgo.TransactionalID(*txnID))
			}

			cl, err := c.connect(e.ctx, opts...)
			if err != nil {
				return err
			}
			defer cl.Close()
			parts, err := requireTopic(e.ctx, kadm.NewClient(cl), *topic)
			if err != nil {
				return err
			}
			if *partition >= 0 {
				if _, ok := parts[int32(*partition)]; !ok {
					return fmt.Errorf("topic %q has no partition %d (it has %d)", *topic, *partition, len(parts))
				}
			}
			p := &producer{e: e, cl: cl, topic: *topic, partition: int32(*partition), keySep: []byte(*keySep)}
			return p.run(*txnID != "")
		}
	},
}

func parseCodec(s string) (kgo.CompressionCodec, error) {
	switch s {
	case "none", "":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, usagef("--compression %q: want none, gzip, snappy, lz4 or zstd", s)
}

type producer struct {
	e         *env
	cl        *kgo.Client
	topic     string
	partition int32
	keySep    []byte

	mu struct {
		sync.Mutex
		ok, failed int
		printed    int
	}
}

// run reads stdin to the end, producing as it goes, and waits for every
// record's outcome.
func (p *producer) run(txn bool) error {
	if txn {
		if err := p.cl.BeginTransaction(); err != nil {
			return fmt.Errorf("begin transaction: %w", err)
		}
	}
	readErr := p.readLines()
	flushErr := p.cl.Flush(p.e.ctx)

	p.mu.Lock()
	ok, failed := p.mu.ok, p.mu.failed
	p.mu.Unlock()
	var endErr error
	committed := false
	if txn {
		commit := readErr == nil && flushErr == nil && failed == 0
		// Ending with abort after a failed flush first aborts what is
		// still buffered, as kgo requires.
		if !commit && flushErr != nil {
			_ = p.cl.AbortBufferedRecords(p.e.ctx)
		}
		endErr = p.cl.EndTransaction(p.e.ctx, kgo.TransactionEndTry(commit))
		committed = commit && endErr == nil
	}

	summary := fmt.Sprintf("oncelog: produced %d records to topic %q, %d failed", ok, p.topic, failed)
	if txn {
		if committed {
			summary += ", transaction committed"
		} else {
			summary += ", transaction aborted"
		}
	}
	fmt.Fprintln(p.e.stderr, summary)

	switch {
	case readErr != nil:
		return readErr
	case flushErr != nil:
		return fmt.Errorf("flush: %w", flushErr)
	case endErr != nil:
		return fmt.Errorf("end transaction: %w", endErr)
	case failed > 0:
		return fmt.Errorf("%d of %d records failed", failed, ok+failed)
	case txn && !committed:
		return errors.New("transaction aborted")
	}
	return nil
}

func (p *producer) readLines() error {
	r := bufio.NewReaderSize(p.e.stdin, 64<<10)
	for lineNo := 1; ; lineNo++ {
		line, err := readLine(r)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read stdin line %d: %w", lineNo, err)
		}
		rec := &kgo.Record{Topic: p.topic, Partition: p.partition}
		if len(p.keySep) > 0 {
			k, v, ok := bytes.Cut(line, p.keySep)
			if !ok {
				p.fail(lineNo, fmt.Errorf("no key separator %q", p.keySep))
				continue
			}
			rec.Key = k
			line = v
		}
		rec.Value = line
		n := lineNo
		p.cl.Produce(p.e.ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil {
				p.fail(n, err)
				return
			}
			p.mu.Lock()
			p.mu.ok++
			p.mu.Unlock()
		})
		if p.e.ctx.Err() != nil {
			return p.e.ctx.Err()
		}
	}
}

func (p *producer) fail(lineNo int, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mu.failed++
	if p.mu.printed < maxPrintedErrors {
		p.mu.printed++
		fmt.Fprintf(p.e.stderr, "oncelog: line %d: %v\n", lineNo, err)
	}
}

// readLine returns the next line without its "\n" in a fresh slice (the
// record keeps it), or io.EOF after the last one. A last line without "\n"
// counts; an empty input has no lines.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxLineBytes {
			return nil, errors.New("line longer than " + strconv.Itoa(maxLineBytes) + " bytes")
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF && len(line) > 0:
			return line, nil
		case err != nil:
			return nil, err
		}
		return line[:len(line)-1], nil
	}
}
