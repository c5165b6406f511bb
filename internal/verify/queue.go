package verify

// The queue workload, after Jepsen's Kafka queue test
// (jepsen.tests.kafka): writers send unique values to keys, some plainly
// with an idempotent producer, some in transactions of one to five sends of
// which about one in five is aborted on purpose; readers poll with assign
// (every partition from the start) and with subscribe (a consumer group);
// every operation goes into a history. When the time is up the faults
// heal, every client stops, and a final reader reads every partition from
// the start; then CheckHistory judges the history.

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

type queueRun struct {
	e      *env
	topic  string
	group  string
	txnPfx string
	rec    *Recorder

	procs  atomic.Int64 // process ids
	values atomic.Int64 // unique values
	txns   atomic.Int64 // unique transaction ids

	slotsMu sync.Mutex
	slots   map[string]*copierSlot
}

func runQueue(ctx context.Context, e *env) (*Result, error) {
	cfg := e.cfg
	id := e.runID()
	q := &queueRun{
		e: e, topic: "verify-queue-" + id, group: "verify-queue-" + id, txnPfx: "verify-queue-" + id,
		slots: map[string]*copierSlot{},
	}
	var hf *os.File
	if cfg.HistoryPath != "" {
		var err error
		if hf, err = os.Create(cfg.HistoryPath); err != nil {
			return nil, err
		}
		defer hf.Close()
	}
	if hf != nil {
		q.rec = NewRecorder(hf)
	} else {
		q.rec = NewRecorder(nil)
	}
	if err := e.createTopics(ctx, q.topic); err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.progress = func() string {
		return fmt.Sprintf("%d operations, %d values sent, %d transactions", q.rec.Len(), q.values.Load(), q.txns.Load())
	}
	e.mu.Unlock()
	e.inj.killOne = q.killOne

	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	roles := []string{}
	for i := range cfg.Copiers {
		roles = append(roles, fmt.Sprintf("txn-writer-%d", i), fmt.Sprintf("writer-%d", i))
	}
	roles = append(roles, "assign-reader", "subscribe-reader-0", "subscribe-reader-1")
	for _, role := range roles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q.loop(wctx, role)
		}()
	}
	stopFaults := e.startFaults(ctx)
	sleepCtx(ctx, cfg.Duration)
	stopFaults()
	stop()
	wg.Wait()
	// Abort whatever a killed writer left open.
	for i := range cfg.Copiers {
		q.fence(ctx, fmt.Sprintf("%s-t%d", q.txnPfx, i))
	}
	e.mu.Lock()
	e.progress = func() string { return "final read" }
	e.mu.Unlock()
	q.finalRead(ctx)
	if err := q.rec.Flush(); err != nil {
		e.fail("history: %v", err)
	}
	res := CheckHistory(q.rec.Ops())
	res.Stats["records"] = int(q.values.Load())
	res.Stats["operations"] = q.rec.Len()
	return res, nil
}

func (q *queueRun) fence(ctx context.Context, txnID string) {
	cl, err := q.e.direct(kgo.TransactionalID(txnID))
	if err != nil {
		return
	}
	defer cl.Close()
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, _, err := cl.ProducerID(fctx); err != nil {
		q.e.logf("fence %s: %v", txnID, err)
	}
}

func (q *queueRun) killOne() bool {
	q.slotsMu.Lock()
	var live []*copierSlot
	for _, s := range q.slots {
		if s != nil && !s.ks.Dead() {
			live = append(live, s)
		}
	}
	q.slotsMu.Unlock()
	if len(live) == 0 {
		return false
	}
	// Map order is random; pick with the workload's generator for a
	// repeatable choice among them.
	s := live[q.e.randN(int64(len(live)))]
	q.e.logf("fault: kill %s", s.name)
	s.ks.Kill()
	s.cancel()
	q.e.countClient("client.kills")
	return true
}

// loop runs incarnations of one role until ctx ends; each incarnation is a
// new process in the history.
func (q *queueRun) loop(ctx context.Context, role string) {
	e := q.e
	for ctx.Err() == nil {
		ictx, cancel := context.WithCancel(ctx)
		ks := e.net.killSwitch()
		proc := int(q.procs.Add(1))
		q.slotsMu.Lock()
		q.slots[role] = &copierSlot{name: fmt.Sprintf("%s (p%d)", role, proc), ks: ks, cancel: cancel}
		q.slotsMu.Unlock()
		e.countClient("client.incarnations")
		var err error
		switch {
		case role == "assign-reader":
			err = q.reader(ictx, proc, ks, false)
		case len(role) > 16 && role[:16] == "subscribe-reader":
			err = q.reader(ictx, proc, ks, true)
		case len(role) > 10 && role[:10] == "txn-writer":
			n, _ := strconv.Atoi(role[11:])
			err = q.txnWriter(ictx, proc, ks, fmt.Sprintf("%s-t%d", q.txnPfx, n))
		default:
			err = q.writer(ictx, proc, ks)
		}
		cancel()
		q.slotsMu.Lock()
		delete(q.slots, role)
		q.slotsMu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if !ks.Dead() {
			e.countClient("client.restarts")
			e.logf("%s (p%d) restarts: %v", role, proc, err)
		}
		sleepCtx(ctx, time.Duration(200+e.randN(800))*time.Millisecond)
	}
}

func (q *queueRun) partitionOf(key int) int32 { return int32(key % q.e.cfg.Partitions) }

// nextSend picks a key and a fresh value.
func (q *queueRun) nextSend() (string, int32, int64) {
	k := int(q.e.randN(int64(2 * q.e.cfg.Partitions)))
	return "k" + strconv.Itoa(k), q.partitionOf(k), q.values.Add(1)
}

// send produces one value and records its invoke and outcome; the outcome
// arrives through done.
func (q *queueRun) send(ctx context.Context, cl *kgo.Client, proc int, txn int64, wg *sync.WaitGroup, failed *atomic.Bool) {
	key, part, v := q.nextSend()
	q.rec.Add(Op{Process: proc, Type: Invoke, F: Send, Txn: txn, Key: key, Value: v, Partition: part, Offset: -1})
	wg.Add(1)
	r := &kgo.Record{Topic: q.topic, Partition: part, Key: []byte(key), Value: []byte(strconv.FormatInt(v, 10))}
	cl.Produce(ctx, r, func(r *kgo.Record, err error) {
		defer wg.Done()
		if err != nil {
			// NB: a produce error after retries is never definite: the
			// broker may have written the batch and lost only the answer.
			failed.Store(true)
			q.rec.Add(Op{Process: proc, Type: Info, F: Send, Txn: txn, Key: key, Value: v, Partition: part, Offset: -1, Error: err.Error()})
			return
		}
		q.rec.Add(Op{Process: proc, Type: OK, F: Send, Txn: txn, Key: key, Value: v, Partition: r.Partition, Offset: r.Offset})
	})
}

// writer sends plain values with an idempotent producer, a few in flight.
func (q *queueRun) writer(ctx context.Context, proc int, ks *killSwitch) error {
	cl, err := kgo.NewClient(q.e.faulty(ks, kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		return err
	}
	defer abandon(cl.Close)
	var wg sync.WaitGroup
	var failed atomic.Bool
	for ctx.Err() == nil {
		for range 1 + q.e.randN(4) {
			q.send(ctx, cl, proc, 0, &wg, &failed)
		}
		sleepCtx(ctx, time.Duration(20+q.e.randN(60))*time.Millisecond)
	}
	return ctx.Err()
}

// txnWriter sends values in transactions; one in five is aborted on
// purpose. An unknown outcome ends the incarnation: the next one fences
// this one by reusing the transactional id.
func (q *queueRun) txnWriter(ctx context.Context, proc int, ks *killSwitch, txnID string) error {
	cl, err := kgo.NewClient(q.e.faulty(ks,
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(20*time.Second),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)...)
	if err != nil {
		return err
	}
	defer abandon(cl.Close)
	for ctx.Err() == nil {
		if err := cl.BeginTransaction(); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		txn := q.txns.Add(1)
		q.rec.Add(Op{Process: proc, Type: OK, F: Begin, Txn: txn})
		var wg sync.WaitGroup
		var failed atomic.Bool
		for range 1 + q.e.randN(5) {
			q.send(ctx, cl, proc, txn, &wg, &failed)
		}
		ferr := cl.Flush(ctx)
		if ctx.Err() != nil {
			// Killed, or the run is over: the transaction stays open,
			// never committed. NB: do not wait for the sends' callbacks:
			// a killed client can no longer connect, so its buffered
			// records would wait forever (the 30-minute soak hung here);
			// the deferred Close fails them.
			return ctx.Err()
		}
		wg.Wait()
		commit := ferr == nil && !failed.Load() && q.e.randN(5) != 0
		f, try := Abort, kgo.TryAbort
		if commit {
			f, try = Commit, kgo.TryCommit
		}
		q.rec.Add(Op{Process: proc, Type: Invoke, F: f, Txn: txn})
		if ferr == nil && !commit {
			if err := cl.AbortBufferedRecords(ctx); err != nil {
				ferr = err
			}
		}
		eerr := cl.EndTransaction(ctx, try)
		if eerr != nil {
			q.rec.Add(Op{Process: proc, Type: Info, F: f, Txn: txn, Error: eerr.Error()})
			return fmt.Errorf("%s: %w", f, eerr)
		}
		q.rec.Add(Op{Process: proc, Type: OK, F: f, Txn: txn})
		if ferr != nil {
			return fmt.Errorf("flush: %w", ferr)
		}
		sleepCtx(ctx, time.Duration(20+q.e.randN(100))*time.Millisecond)
	}
	return ctx.Err()
}

// reader polls with read_committed, by assigning every partition from the
// start or by subscribing in the group, and records every record it gets.
func (q *queueRun) reader(ctx context.Context, proc int, ks *killSwitch, subscribe bool) error {
	opts := []kgo.Opt{kgo.FetchIsolationLevel(kgo.ReadCommitted())}
	marker := func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
		for _, p := range m[q.topic] {
			q.rec.Add(Op{Process: proc, Type: OK, F: Assign, Partition: p})
		}
	}
	if subscribe {
		opts = append(opts, kgo.ConsumerGroup(q.group), kgo.ConsumeTopics(q.topic),
			kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(500*time.Millisecond),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.OnPartitionsAssigned(marker), kgo.OnPartitionsRevoked(marker), kgo.OnPartitionsLost(marker))
	} else {
		parts := map[int32]kgo.Offset{}
		for p := range int32(q.e.cfg.Partitions) {
			parts[p] = kgo.NewOffset().AtStart()
		}
		opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{q.topic: parts}))
		q.rec.Add(Op{Process: proc, Type: OK, F: Assign, Partition: -1})
	}
	cl, err := kgo.NewClient(q.e.faulty(ks, opts...)...)
	if err != nil {
		return err
	}
	defer abandon(cl.Close)
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		q.rec.AddAll(pollOps(proc, fs))
	}
	return ctx.Err()
}

func pollOps(proc int, fs kgo.Fetches) []Op {
	var ops []Op
	fs.EachRecord(func(r *kgo.Record) {
		v, err := strconv.ParseInt(string(r.Value), 10, 64)
		if err != nil {
			v = -1
		}
		ops = append(ops, Op{Process: proc, Type: OK, F: Poll, Key: string(r.Key), Value: v, Partition: r.Partition, Offset: r.Offset})
	})
	return ops
}

// finalRead reads every partition from the start, directly, until nothing
// new comes for three seconds.
func (q *queueRun) finalRead(ctx context.Context) {
	proc := int(q.procs.Add(1))
	parts := map[int32]kgo.Offset{}
	for p := range int32(q.e.cfg.Partitions) {
		parts[p] = kgo.NewOffset().AtStart()
	}
	cl, err := q.e.direct(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{q.topic: parts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		q.e.fail("final read: %v", err)
		return
	}
	defer cl.Close()
	q.rec.Add(Op{Process: proc, Type: OK, F: Assign, Partition: -1})
	last := time.Now()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Since(last) < 3*time.Second && time.Now().Before(deadline) && ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		fs := cl.PollFetches(pctx)
		cancel()
		if ops := pollOps(proc, fs); len(ops) > 0 {
			q.rec.AddAll(ops)
			last = time.Now()
		}
	}
}
