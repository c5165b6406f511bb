package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Env is what a scenario is given: where the broker is, its topics, the
// knobs from the command line, and the two calls that bracket the timed
// phase. A scenario must call Begin and End exactly once each, in order;
// only what happens between them is measured (wall time, broker CPU, driver
// CPU).
type Env struct {
	Addr string
	// Topics were created with Partitions partitions before the scenario
	// started (or will be auto-created); Topics[0] is the main one.
	Topics     []string
	Partitions int
	// RecordBytes is the value size for scenarios whose name does not
	// fix one (consume-*, txn-*, copier, latency-5000).
	RecordBytes int
	Duration    time.Duration
	// ConsumeRecords is how many records consume-* and copier preload.
	ConsumeRecords int
	// Linger, when positive, overrides the client's default linger.
	Linger time.Duration
	Logf   func(format string, args ...any)

	begin, end func()
}

// Begin marks the start of the timed phase.
func (e *Env) Begin() { e.begin() }

// End marks its end.
func (e *Env) End() { e.end() }

// Result is what a scenario reports; rates are derived by the runner from
// these counts and the Begin–End interval.
type Result struct {
	Records int64 // records produced (acknowledged) or consumed
	Bytes   int64 // their value bytes
	Commits int64 // committed transactions
	// Latencies, if any, are per-record produce latencies: promise
	// callback time minus record creation.
	Latencies []time.Duration
	// Note is a one-line remark for the report (e.g. achieved rate).
	Note string
}

// Scenario is one named benchmark.
type Scenario struct {
	Name string
	// Topics is how many topics to create (the copier needs two).
	Topics int
	// Metric names the figure that is compared between targets:
	// "records/s", "commits/s" or "p99" (lower is better).
	Metric string
	Run    func(ctx context.Context, env *Env) (Result, error)
}

// Scenarios lists every scenario in report order.
func Scenarios() []Scenario {
	return []Scenario{
		{Name: "produce-idempotent-1k", Topics: 1, Metric: "records/s", Run: produceScenario(1024, true)},
		{Name: "produce-idempotent-100b", Topics: 1, Metric: "records/s", Run: produceScenario(100, true)},
		{Name: "produce-acks1-1k", Topics: 1, Metric: "records/s", Run: produceScenario(1024, false)},
		{Name: "consume-uncommitted", Topics: 1, Metric: "records/s", Run: consumeScenario(kgo.ReadUncommitted())},
		{Name: "consume-committed", Topics: 1, Metric: "records/s", Run: consumeScenario(kgo.ReadCommitted())},
		{Name: "txn-100ms", Topics: 1, Metric: "commits/s", Run: txnWindowScenario(100 * time.Millisecond)},
		{Name: "txn-10ms", Topics: 1, Metric: "commits/s", Run: txnWindowScenario(10 * time.Millisecond)},
		{Name: "txn-1-record", Topics: 1, Metric: "commits/s", Run: txnOneRecordScenario},
		{Name: "copier", Topics: 2, Metric: "records/s", Run: copierScenario},
		{Name: "latency-5000", Topics: 1, Metric: "p99", Run: latencyScenario(5000, -1)},
		{Name: "latency-5000-linger0", Topics: 1, Metric: "p99", Run: latencyScenario(5000, 0)},
		// Scale: producer ids the broker keeps state for (issue 6).
		{Name: "idle-pids-1", Topics: 1, Metric: "records/s", Run: idlePIDsScenario(1)},
		{Name: "idle-pids-100", Topics: 1, Metric: "records/s", Run: idlePIDsScenario(100)},
		{Name: "idle-pids-10000", Topics: 1, Metric: "records/s", Run: idlePIDsScenario(10_000)},
	}
}

// ScenarioByName finds a scenario.
func ScenarioByName(name string) (Scenario, bool) {
	for _, s := range Scenarios() {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

// Producer settings shared by every producing scenario: what a throughput-
// minded franz-go user sets. NB: franz-go also caps buffered *records*
// (50,000 by default); it is raised so that 32 MiB of bytes, not the record
// count, is the bound at 100-byte records too.
//
// NB: compression is off. franz-go defaults to snappy, and since every record
// carries the same value (see value), a batch of them compresses a
// thousandfold: the benchmark would measure the compressor and how well a
// broker stores tiny batches, not the record path. Both brokers keep
// compressed batches opaque anyway.
const (
	maxBufferedBytes   = 32 << 20
	maxBufferedRecords = 1 << 20
)

func (e *Env) clientOpts(extra ...kgo.Opt) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(e.Addr),
		kgo.DefaultProduceTopic(e.Topics[0]),
		kgo.MaxBufferedBytes(maxBufferedBytes),
		kgo.MaxBufferedRecords(maxBufferedRecords),
		kgo.AllowAutoTopicCreation(),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
	}
	if e.Linger > 0 {
		opts = append(opts, kgo.ProducerLinger(e.Linger))
	}
	return append(opts, extra...)
}

// value returns a record value of n bytes. Random bytes, so a compressing
// client or broker gains nothing; the same slice is shared by every record
// since neither franz-go nor the brokers modify values.
func value(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{'o', 'n', 'c', 'e'})
	_, _ = r.Read(b)
	return b
}

// producer counts acknowledged records and remembers the first failure.
type producer struct {
	cl      *kgo.Client
	acked   atomic.Int64
	bytes   atomic.Int64
	failed  atomic.Bool
	errOnce sync.Once
	err     error
}

func (p *producer) promise(r *kgo.Record, err error) {
	if err != nil {
		p.errOnce.Do(func() { p.err = err })
		p.failed.Store(true)
		return
	}
	p.acked.Add(1)
	p.bytes.Add(int64(len(r.Value)))
}

func (p *producer) firstErr() error {
	// p.err is written inside errOnce before failed is stored, so a
	// reader that sees failed sees the error.
	if p.failed.Load() {
		return p.err
	}
	return nil
}

// produceUntil produces val-sized records as fast as the client accepts
// them until stop returns true or a produce fails, then flushes.
func (p *producer) produceUntil(ctx context.Context, val []byte, stop func(sent int64) bool) error {
	var sent int64
	for !stop(sent) && !p.failed.Load() && ctx.Err() == nil {
		p.cl.Produce(ctx, &kgo.Record{Value: val}, p.promise)
		sent++
	}
	if err := p.cl.Flush(ctx); err != nil {
		return err
	}
	if err := p.firstErr(); err != nil {
		return err
	}
	return ctx.Err()
}

func produceScenario(size int, idempotent bool) func(context.Context, *Env) (Result, error) {
	return func(ctx context.Context, env *Env) (Result, error) {
		var opts []kgo.Opt
		if !idempotent {
			opts = append(opts, kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.LeaderAck()))
		} else {
			opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
		}
		cl, err := kgo.NewClient(env.clientOpts(opts...)...)
		if err != nil {
			return Result{}, err
		}
		defer cl.Close()
		// Connect and load metadata before the clock starts.
		if err := cl.Ping(ctx); err != nil {
			return Result{}, fmt.Errorf("ping: %w", err)
		}
		p := &producer{cl: cl}
		val := value(size)
		env.Begin()
		deadline := time.Now().Add(env.Duration)
		err = p.produceUntil(ctx, val, func(sent int64) bool {
			// time.Now per record costs ~20ns, noise next to Produce.
			return time.Now().After(deadline)
		})
		env.End()
		return Result{Records: p.acked.Load(), Bytes: p.bytes.Load()}, err
	}
}

// preload produces n records of the given size with an idempotent acks=all
// producer (not timed) and returns once all are acknowledged.
func preload(ctx context.Context, env *Env, topic string, n, size int) error {
	cl, err := kgo.NewClient(env.clientOpts(kgo.DefaultProduceTopic(topic))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	p := &producer{cl: cl}
	start := time.Now()
	if err := p.produceUntil(ctx, value(size), func(sent int64) bool { return sent >= int64(n) }); err != nil {
		return fmt.Errorf("preload: %w", err)
	}
	if got := p.acked.Load(); got != int64(n) {
		return fmt.Errorf("preload: %d of %d records acknowledged", got, n)
	}
	env.Logf("preloaded %d records of %d bytes into %s in %v", n, size, topic, time.Since(start).Round(time.Millisecond))
	return nil
}

func consumeScenario(isolation kgo.IsolationLevel) func(context.Context, *Env) (Result, error) {
	return func(ctx context.Context, env *Env) (Result, error) {
		n := env.ConsumeRecords
		if err := preload(ctx, env, env.Topics[0], n, env.RecordBytes); err != nil {
			return Result{}, err
		}
		env.Begin()
		res, err := consumeAll(ctx, env, isolation, int64(n))
		env.End()
		return res, err
	}
}

// consumeAll reads the main topic from the start until n records arrived.
// The clock includes connecting and the first metadata request, a few
// milliseconds against seconds of reading.
func consumeAll(ctx context.Context, env *Env, isolation kgo.IsolationLevel, n int64) (Result, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(env.Addr),
		kgo.ConsumeTopics(env.Topics[0]),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(isolation),
	)
	if err != nil {
		return Result{}, err
	}
	defer cl.Close()
	var res Result
	for res.Records < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("consumed %d of %d records: %w", res.Records, n, err)
		}
		if err := firstFetchErr(fs); err != nil {
			return res, err
		}
		fs.EachRecord(func(r *kgo.Record) {
			res.Records++
			res.Bytes += int64(len(r.Value))
		})
	}
	if res.Records != n {
		return res, fmt.Errorf("consumed %d records, preloaded %d", res.Records, n)
	}
	return res, nil
}

// firstFetchErr returns the first fetch error, ignoring the ones franz-go
// retries by itself; every error it surfaces is either fatal for the topic
// or a closed context, so any is a failed run.
func firstFetchErr(fs kgo.Fetches) error {
	for _, fe := range fs.Errors() {
		if errors.Is(fe.Err, context.Canceled) || errors.Is(fe.Err, context.DeadlineExceeded) {
			continue
		}
		return fmt.Errorf("fetch %s/%d: %w", fe.Topic, fe.Partition, fe.Err)
	}
	return nil
}

func txnClient(ctx context.Context, env *Env, name string, extra ...kgo.Opt) (*kgo.Client, error) {
	opts := env.clientOpts(append([]kgo.Opt{
		kgo.TransactionalID(fmt.Sprintf("bench-%s-%d", name, rand.Uint64())),
	}, extra...)...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	if err := cl.Ping(ctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("ping: %w", err)
	}
	return cl, nil
}

// commitTxn flushes and commits the open transaction.
func commitTxn(ctx context.Context, cl *kgo.Client) error {
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// txnWindowScenario runs back-to-back transactions, each producing as fast
// as possible for window and then committing, for env.Duration. Only records
// of committed transactions count.
func txnWindowScenario(window time.Duration) func(context.Context, *Env) (Result, error) {
	return func(ctx context.Context, env *Env) (Result, error) {
		cl, err := txnClient(ctx, env, fmt.Sprintf("window-%v", window))
		if err != nil {
			return Result{}, err
		}
		defer cl.Close()
		val := value(env.RecordBytes)
		var res Result
		env.Begin()
		defer env.End()
		deadline := time.Now().Add(env.Duration)
		for time.Now().Before(deadline) {
			if err := cl.BeginTransaction(); err != nil {
				return res, fmt.Errorf("begin: %w", err)
			}
			p := &producer{cl: cl}
			end := time.Now().Add(window)
			for time.Now().Before(end) && !p.failed.Load() && ctx.Err() == nil {
				cl.Produce(ctx, &kgo.Record{Value: val}, p.promise)
			}
			if err := commitTxn(ctx, cl); err != nil {
				return res, err
			}
			if err := p.firstErr(); err != nil {
				return res, err
			}
			res.Commits++
			res.Records += p.acked.Load()
			res.Bytes += p.bytes.Load()
		}
		return res, nil
	}
}

// txnOneRecordScenario commits transactions of a single record each, one
// after another: the cost of a transaction's round trips and fsyncs.
func txnOneRecordScenario(ctx context.Context, env *Env) (Result, error) {
	cl, err := txnClient(ctx, env, "one")
	if err != nil {
		return Result{}, err
	}
	defer cl.Close()
	val := value(env.RecordBytes)
	var res Result
	env.Begin()
	defer env.End()
	deadline := time.Now().Add(env.Duration)
	for time.Now().Before(deadline) {
		if err := cl.BeginTransaction(); err != nil {
			return res, fmt.Errorf("begin: %w", err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: val}).FirstErr(); err != nil {
			return res, fmt.Errorf("produce: %w", err)
		}
		if err := commitTxn(ctx, cl); err != nil {
			return res, err
		}
		res.Commits++
		res.Records++
		res.Bytes += int64(len(val))
	}
	return res, nil
}

// copierRecordsPerTxn is how many records the copier polls, copies and
// commits per transaction: about 5 MiB at 1 KiB records, the order of what a
// Kafka Streams task commits per 100 ms under exactly-once at these rates.
const copierRecordsPerTxn = 5000

// copierScenario is consume-transform-produce with exactly-once: a
// GroupTransactSession reads the preloaded input topic read_committed and
// writes every record to the output topic, committing its input offsets in
// the same transaction, copierRecordsPerTxn records per transaction. The
// clock starts when the group assigns the partitions, so the join (and any
// initial rebalance delay the broker imposes) is not counted, and stops when
// every input record is committed to the output.
func copierScenario(ctx context.Context, env *Env) (Result, error) {
	n := int64(env.ConsumeRecords)
	in, out := env.Topics[0], env.Topics[1]
	if err := preload(ctx, env, in, int(n), env.RecordBytes); err != nil {
		return Result{}, err
	}
	var (
		beginOnce sync.Once
		assigned  = make(chan struct{})
	)
	sess, err := kgo.NewGroupTransactSession(env.clientOpts(
		// Runs on a client goroutine before fetching starts; closing
		// assigned orders Begin before anything the poll loop does.
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
			beginOnce.Do(func() {
				env.Begin()
				close(assigned)
			})
		}),
		kgo.TransactionalID(fmt.Sprintf("bench-copier-%d", rand.Uint64())),
		kgo.DefaultProduceTopic(out),
		kgo.ConsumerGroup(fmt.Sprintf("bench-copier-%d", rand.Uint64())),
		kgo.ConsumeTopics(in),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
	)...)
	if err != nil {
		return Result{}, err
	}
	defer sess.Close()

	var res Result
	defer func() {
		select {
		case <-assigned:
			env.End()
		default:
		}
	}()
	for res.Records < n {
		fs := sess.PollRecords(ctx, copierRecordsPerTxn)
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("copied %d of %d records: %w", res.Records, n, err)
		}
		if err := firstFetchErr(fs); err != nil {
			return res, err
		}
		if fs.NumRecords() == 0 {
			continue
		}
		<-assigned
		if err := sess.Begin(); err != nil {
			return res, fmt.Errorf("begin: %w", err)
		}
		p := &producer{cl: sess.Client()}
		var polled, polledBytes int64
		fs.EachRecord(func(r *kgo.Record) {
			polled++
			polledBytes += int64(len(r.Value))
			// The "transform": keep key and value, tag the origin.
			sess.Produce(ctx, &kgo.Record{Key: r.Key, Value: r.Value, Headers: []kgo.RecordHeader{{Key: "from", Value: []byte(in)}}}, p.promise)
		})
		committed, err := sess.End(ctx, kgo.TryCommit)
		if err != nil {
			return res, fmt.Errorf("end: %w", err)
		}
		if err := p.firstErr(); err != nil {
			return res, err
		}
		if !committed {
			// A rebalance aborted the transaction; the records will be
			// polled again. With one member this should not happen.
			env.Logf("copier: transaction aborted (rebalance?), %d records will be redone", polled)
			continue
		}
		res.Commits++
		res.Records += polled
		res.Bytes += polledBytes
	}
	if res.Records != n {
		return res, fmt.Errorf("copied %d records, preloaded %d", res.Records, n)
	}
	return res, nil
}

// latencyScenario produces at a fixed rate with an idempotent acks=all
// producer and records each record's latency: promise callback time minus
// the moment the record was created, so time spent waiting in the client's
// buffer (linger, in-flight limits) counts, as it does for an application.
//
// linger, when not negative, fixes the client's linger whatever --linger
// says: latency-5000-linger0 is what a latency-minded user runs (each
// record is sent as soon as the one produce request in flight is answered),
// latency-5000 keeps franz-go's default (10 ms) or the flag.
func latencyScenario(rate int, linger time.Duration) func(context.Context, *Env) (Result, error) {
	return func(ctx context.Context, env *Env) (Result, error) {
		opts := env.clientOpts(kgo.RequiredAcks(kgo.AllISRAcks()))
		if linger >= 0 {
			opts = append(opts, kgo.ProducerLinger(linger))
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return Result{}, err
		}
		defer cl.Close()
		if err := cl.Ping(ctx); err != nil {
			return Result{}, fmt.Errorf("ping: %w", err)
		}
		val := value(env.RecordBytes)
		lats := make([]time.Duration, 0, int(float64(rate)*env.Duration.Seconds()*1.1)+16)
		var mu sync.Mutex
		p := &producer{cl: cl}

		env.Begin()
		start := time.Now()
		var sent int64
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for el := time.Duration(0); el < env.Duration && !p.failed.Load(); el = time.Since(start) {
			due := int64(el.Seconds() * float64(rate))
			for ; sent < due; sent++ {
				created := time.Now()
				cl.Produce(ctx, &kgo.Record{Value: val}, func(r *kgo.Record, err error) {
					if err == nil {
						d := time.Since(created)
						mu.Lock()
						lats = append(lats, d)
						mu.Unlock()
					}
					p.promise(r, err)
				})
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
			}
		}
		err = cl.Flush(ctx)
		elapsed := time.Since(start)
		env.End()
		if err == nil {
			err = p.firstErr()
		}
		mu.Lock()
		defer mu.Unlock()
		slices.Sort(lats)
		return Result{
			Records:   p.acked.Load(),
			Bytes:     p.bytes.Load(),
			Latencies: lats,
			Note:      fmt.Sprintf("target %d records/s, achieved %.0f", rate, float64(p.acked.Load())/elapsed.Seconds()),
		}, err
	}
}
