package verify

// The copy workload, after Kafka's transactions system test
// (tests/kafkatest/tests/core/transactions_test.py with its
// TransactionalMessageCopier): seed values 1..N with an idempotent
// producer, value v into input partition (v-1) mod P; copiers move input
// partition p to output partition p, one transaction per batch, committing
// the input offsets in the same transaction; a concurrent read_committed
// consumer follows the output; at the end the output is read with
// read_committed from the start and compared with the input.
//
// Copier kills follow the copier's lifecycle in Kafka's test (SIGKILL, then
// a new process with the same transactional id): the killed client's
// connections are cut and it never speaks again; a new incarnation with the
// same transactional id fences it and aborts its open transaction.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type copyRun struct {
	e                  *env
	in, out, group     string
	inID               [16]byte // the input topic's id, for TxnOffsetCommit v6+
	txnPrefix          string
	inCount            map[int32]int64 // records per input partition
	pause              time.Duration   // in each full transaction (TxnSize records) of one copier; see pauseFor
	committed          atomic.Int64    // input records whose offsets are committed (monitor)
	concurrentSeen     atomic.Int64
	slotsMu            sync.Mutex
	slots              []*copierSlot
	txnAttempts, txnOK atomic.Int64
}

// copierSlot is one copier's current incarnation.
type copierSlot struct {
	name   string
	ks     *killSwitch
	cancel context.CancelFunc
}

func runCopy(ctx context.Context, e *env) (*Result, error) {
	cfg := e.cfg
	id := e.runID()
	c := &copyRun{
		e:         e,
		in:        "verify-copy-in-" + id,
		out:       "verify-copy-out-" + id,
		group:     "verify-copy-" + id,
		txnPrefix: "verify-copy-" + id,
		inCount:   map[int32]int64{},
	}
	if err := e.createTopics(ctx, c.in, c.out); err != nil {
		return nil, err
	}
	if err := c.lookupInputID(ctx); err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.progress = func() string { return "seeding" }
	e.mu.Unlock()
	seeded, err := c.seed(ctx)
	if err != nil {
		return nil, err
	}
	input, err := e.readAll(ctx, c.in, cfg.Records, time.Second, 2*time.Minute)
	if err != nil {
		e.fail("reading back the input: %v", err)
	}
	for p, vs := range input {
		c.inCount[p] = int64(len(vs))
	}
	// Copiers sleep in each transaction so that the copy takes about 3/4
	// of the run and the faults land in the middle of it; a transaction of
	// fewer records sleeps less (pauseFor). Group mode plans for half of
	// it: under --faults all its members spend about a third of the run
	// rejoining after kills and restarts (a 6-minute run of 30,000 records
	// paced for 3/4 copied 73 records/s against 111 planned, and was cut
	// off at 29,100).
	nCopiers, share := cfg.Partitions, int64(3)
	if cfg.Mode == "group" {
		nCopiers, share = cfg.Copiers, 2
	}
	txns := max(1, cfg.Records/cfg.TxnSize)
	c.pause = time.Duration(int64(cfg.Duration) * share / 4 * int64(nCopiers) / int64(txns))
	e.logf("copy: %d records seeded into %s, %d copiers (%s mode), %v between transactions",
		cfg.Records, c.in, nCopiers, cfg.Mode, c.pause)

	e.mu.Lock()
	e.progress = func() string {
		return fmt.Sprintf("copied %d/%d (committed txns %d of %d tried), concurrent consumer %d",
			c.committed.Load(), cfg.Records, c.txnOK.Load(), c.txnAttempts.Load(), c.concurrentSeen.Load())
	}
	e.mu.Unlock()
	e.inj.killOne = c.killOne

	wctx, stopWorkers := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range nCopiers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.copierLoop(wctx, i)
		}()
	}
	concCtx, stopConc := context.WithCancel(ctx)
	concDone := make(chan map[int32][]int64, 1)
	go func() { concDone <- c.concurrentConsumer(concCtx) }()

	stopFaults := e.startFaults(ctx)
	// The copy must finish within 4/5 of the timeout; the rest is for the
	// final reads.
	mctx, mcancel := context.WithTimeout(ctx, cfg.Timeout*4/5)
	finished := c.monitor(mctx, time.Now().Add(cfg.Duration), stopFaults)
	mcancel()
	stopFaults()
	stopWorkers()
	wg.Wait()
	if !finished {
		e.fail("copy did not finish within %v: %d of %d records committed", cfg.Timeout, c.committed.Load(), cfg.Records)
	}
	// Fence every transactional id once more, so that a copier killed
	// just before the end does not hold the output's LSO until its
	// transaction times out.
	c.fenceAll(ctx, nCopiers)

	e.mu.Lock()
	e.progress = func() string { return "reading the output" }
	e.mu.Unlock()
	output, err := e.readAll(ctx, c.out, cfg.Records, 3*time.Second, 2*time.Minute)
	if err != nil {
		e.logf("final read: %v", err)
	}
	// Give the concurrent consumer a little longer to catch up.
	deadline := time.Now().Add(30 * time.Second)
	for c.concurrentSeen.Load() < int64(cfg.Records) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // let any duplicate arrive
	stopConc()
	concurrent := <-concDone

	res := CheckCopy(CopyData{Input: input, Output: output, Concurrent: concurrent})
	res.Merge(checkSeeded(seeded, input))
	res.Stats["records"] = cfg.Records
	res.Stats["txns.committed"] = int(c.txnOK.Load())
	res.Stats["txns.tried"] = int(c.txnAttempts.Load())
	return res, nil
}

func (c *copyRun) lookupInputID(ctx context.Context) error {
	cl, err := c.e.direct()
	if err != nil {
		return err
	}
	defer cl.Close()
	details, err := kadm.NewClient(cl).ListTopics(ctx, c.in)
	if err != nil {
		return fmt.Errorf("metadata of %s: %w", c.in, err)
	}
	c.inID = details[c.in].ID
	return nil
}

// seed produces values 1..N with an idempotent producer and returns where
// each acknowledged value landed.
func (c *copyRun) seed(ctx context.Context) (map[int64]pos, error) {
	cfg := c.e.cfg
	cl, err := c.e.direct(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MaxBufferedRecords(20000))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var mu sync.Mutex
	acked := make(map[int64]pos, cfg.Records)
	var firstErr error
	for v := int64(1); v <= int64(cfg.Records); v++ {
		s := strconv.FormatInt(v, 10)
		r := &kgo.Record{Topic: c.in, Partition: int32((v - 1) % int64(cfg.Partitions)), Key: []byte(s), Value: []byte(s)}
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			acked[v] = pos{r.Partition, r.Offset}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return nil, fmt.Errorf("seeding: %w", err)
	}
	if firstErr != nil {
		return nil, fmt.Errorf("seeding: %w", firstErr)
	}
	return acked, nil
}

// checkSeeded checks that every acknowledged seed is in the input, at the
// offset its acknowledgement gave.
func checkSeeded(acked map[int64]pos, input map[int32][]int64) *Result {
	res := newResult(CheckLostWrite, CheckInconsistentOffsets)
	at := map[int64]pos{}
	for p, vs := range input {
		for i, v := range vs {
			at[v] = pos{p, int64(i)}
		}
	}
	for v := int64(1); v <= int64(len(acked)); v++ {
		want, ok := acked[v]
		if !ok {
			continue
		}
		got, ok := at[v]
		switch {
		case !ok:
			res.check(CheckLostWrite).add("seed value %d acknowledged at %s, not in the input", v, want)
		case got != want:
			res.check(CheckInconsistentOffsets).add("seed value %d acknowledged at %s, read at %s", v, want, got)
		}
	}
	return res
}

// monitor watches the group's committed offsets until every input record
// is committed (true) or ctx ends (false). It stops the faults at
// faultsUntil if the copy is not done by then.
func (c *copyRun) monitor(ctx context.Context, faultsUntil time.Time, stopFaults func()) bool {
	cl, err := c.e.direct()
	if err != nil {
		return false
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	total := int64(0)
	for _, n := range c.inCount {
		total += n
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		if time.Now().After(faultsUntil) {
			stopFaults()
		}
		fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		offs, err := adm.FetchOffsets(fctx, c.group)
		cancel()
		if err != nil {
			continue
		}
		sum := int64(0)
		offs.Each(func(o kadm.OffsetResponse) {
			if o.Topic == c.in && o.Err == nil && o.At > 0 {
				sum += min(o.At, c.inCount[o.Partition])
			}
		})
		c.committed.Store(sum)
		if sum >= total {
			return true
		}
	}
}

// copierLoop runs incarnations of copier i until ctx ends.
func (c *copyRun) copierLoop(ctx context.Context, i int) {
	e := c.e
	for ctx.Err() == nil {
		ictx, cancel := context.WithCancel(ctx)
		ks := e.net.killSwitch()
		slot := &copierSlot{name: fmt.Sprintf("copier-%d", i), ks: ks, cancel: cancel}
		c.setSlot(i, slot)
		e.countClient("copier.incarnations")
		var err error
		if e.cfg.Mode == "group" {
			err = c.groupCopier(ictx, i, ks)
		} else {
			err = c.partitionCopier(ictx, int32(i), ks)
		}
		cancel()
		killed := ks.Dead()
		c.setSlot(i, nil)
		switch {
		case ctx.Err() != nil:
			return
		case killed:
			e.logf("%s killed", slot.name)
			sleepCtx(ctx, time.Duration(200+e.randN(1800))*time.Millisecond)
		default:
			e.countClient("copier.restarts")
			e.logf("%s restarts: %v", slot.name, err)
			sleepCtx(ctx, 250*time.Millisecond)
		}
	}
}

func (e *env) randN(n int64) int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rnd.Int64N(n)
}

func (c *copyRun) setSlot(i int, s *copierSlot) {
	c.slotsMu.Lock()
	defer c.slotsMu.Unlock()
	for len(c.slots) <= i {
		c.slots = append(c.slots, nil)
	}
	c.slots[i] = s
}

// killOne kills a random live copier: its connections are cut, its client
// is abandoned mid-transaction.
func (c *copyRun) killOne() bool {
	c.slotsMu.Lock()
	var live []*copierSlot
	for _, s := range c.slots {
		if s != nil && !s.ks.Dead() {
			live = append(live, s)
		}
	}
	c.slotsMu.Unlock()
	if len(live) == 0 {
		return false
	}
	s := live[c.e.randN(int64(len(live)))]
	c.e.logf("fault: kill %s", s.name)
	s.ks.Kill()
	s.cancel()
	c.e.countClient("copier.kills")
	return true
}

// abandon closes a client in the background: a killed one can no longer
// reach anyone, and a failed one has nothing left to say.
func abandon(close func()) { go close() }

// partitionCopier copies input partition p with transactional id
// <prefix>-p<p>, committing offsets for the group with TxnOffsetCommit
// outside group membership (generation -1), as Kafka's copier does
// without --group-mode.
func (c *copyRun) partitionCopier(ctx context.Context, p int32, ks *killSwitch) error {
	e := c.e
	txnID := fmt.Sprintf("%s-p%d", c.txnPrefix, p)
	cl, err := kgo.NewClient(e.faulty(ks,
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(20*time.Second),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)...)
	if err != nil {
		return err
	}
	defer abandon(cl.Close)
	// InitProducerId first: it fences the previous incarnation and aborts
	// its open transaction, so that the offsets read next are final.
	if _, _, err := cl.ProducerID(ctx); err != nil {
		return fmt.Errorf("init producer id: %w", err)
	}
	adm := kadm.NewClient(cl)
	var next int64
	for {
		offs, err := adm.FetchOffsetsForTopics(kadm.RequireStable(ctx), c.group, c.in)
		if errors.Is(err, kerr.GroupIDNotFound) {
			break // kfake's answer before the first commit; a wrong one would show as duplicates
		}
		if err == nil {
			o, ok := offs.Lookup(c.in, p)
			if !ok {
				break // nothing committed yet: start at 0
			}
			if o.Err == nil {
				next = max(o.At, 0)
				break
			}
			err = o.Err
		}
		c.e.logf("copier-%d: fetching committed offsets: %v", p, err)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
	if next >= c.inCount[p] {
		<-ctx.Done() // nothing left to copy
		return ctx.Err()
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{c.in: {p: kgo.NewOffset().At(next)}})
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollRecords(pctx, e.cfg.TxnSize)
		cancel()
		recs := fs.Records()
		if len(recs) == 0 {
			continue
		}
		if recs[0].Offset != next {
			return fmt.Errorf("partition %d: expected offset %d, polled %d", p, next, recs[0].Offset)
		}
		c.txnAttempts.Add(1)
		if err := c.copyTxn(ctx, cl, txnID, p, recs); err != nil {
			// Abort, then start over from the committed offsets with a
			// new incarnation, as Kafka's copier resets its positions.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			cl.AbortBufferedRecords(actx)
			cl.EndTransaction(actx, kgo.TryAbort)
			cancel()
			return err
		}
		c.txnOK.Add(1)
		next = recs[len(recs)-1].Offset + 1
		if next >= c.inCount[p] {
			<-ctx.Done()
			return ctx.Err()
		}
	}
	return ctx.Err()
}

// copyTxn copies recs to the output and commits their offsets in one
// transaction.
func (c *copyRun) copyTxn(ctx context.Context, cl *kgo.Client, txnID string, p int32, recs []*kgo.Record) error {
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	var perr atomic.Pointer[error]
	for _, r := range recs {
		out := &kgo.Record{Topic: c.out, Partition: p, Key: r.Key, Value: r.Value}
		cl.Produce(ctx, out, func(_ *kgo.Record, err error) {
			if err != nil {
				perr.CompareAndSwap(nil, &err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	if err := perr.Load(); err != nil {
		return fmt.Errorf("produce: %w", *err)
	}
	// NB: the pacing pause is inside the transaction, so that kills and
	// bounces mostly land on an open transaction whose records are written
	// but not committed.
	sleepCtx(ctx, c.pauseFor(len(recs)))
	id, epoch, err := cl.ProducerID(ctx)
	if err != nil {
		return err
	}
	next := recs[len(recs)-1].Offset + 1
	if err := retryKafka(ctx, func() error {
		req := kmsg.NewPtrAddOffsetsToTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = txnID, id, epoch, c.group
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		return kerr.ErrorForCode(resp.ErrorCode)
	}); err != nil {
		return fmt.Errorf("AddOffsetsToTxn: %w", err)
	}
	if err := retryKafka(ctx, func() error {
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = txnID, c.group, id, epoch
		req.Generation, req.MemberID = -1, ""
		t := kmsg.NewTxnOffsetCommitRequestTopic()
		t.Topic, t.TopicID = c.in, c.inID
		tp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		tp.Partition, tp.Offset, tp.LeaderEpoch = p, next, -1
		t.Partitions = append(t.Partitions, tp)
		req.Topics = append(req.Topics, t)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		for _, t := range resp.Topics {
			for _, pp := range t.Partitions {
				if err := kerr.ErrorForCode(pp.ErrorCode); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("TxnOffsetCommit: %w", err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// retryKafka retries fn while it returns a retriable Kafka error, for up
// to 20 tries.
func retryKafka(ctx context.Context, fn func() error) error {
	var err error
	for try := 0; try < 20; try++ {
		if err = fn(); err == nil {
			return nil
		}
		var ke *kerr.Error
		if !errors.As(err, &ke) || !ke.Retriable {
			return err
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
	return err
}

// groupCopier is one member of the copy group with transactional id
// <prefix>-g<i>: kgo's GroupTransactSession commits the offsets with the
// group's generation and member id (KIP-447) and rewinds after an abort.
func (c *copyRun) groupCopier(ctx context.Context, i int, ks *killSwitch) error {
	e := c.e
	opts := e.faulty(ks,
		kgo.TransactionalID(fmt.Sprintf("%s-g%d", c.txnPrefix, i)),
		kgo.TransactionTimeout(20*time.Second),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ConsumerGroup(c.group),
		kgo.ConsumeTopics(c.in),
		kgo.RequireStableFetchOffsets(),
		kgo.SessionTimeout(6*time.Second),
		kgo.HeartbeatInterval(500*time.Millisecond),
	)
	if e.cfg.GroupProto == "consumer" {
		opts = append(opts, kgo.GroupProtocol("consumer"))
	}
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return err
	}
	defer abandon(sess.Close)
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := sess.PollRecords(pctx, e.cfg.TxnSize)
		cancel()
		if fs.IsClientClosed() {
			return errors.New("client closed")
		}
		recs := fs.Records()
		if len(recs) == 0 {
			continue
		}
		c.txnAttempts.Add(1)
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		for _, r := range recs {
			out := &kgo.Record{Topic: c.out, Partition: r.Partition, Key: r.Key, Value: r.Value}
			sess.Produce(ctx, out, nil)
		}
		// Inside the transaction, as in partitionCopier. A group member's
		// poll often returns fewer than TxnSize records; a full pause for
		// each made group-mode copies take several times their --duration.
		sleepCtx(ctx, c.pauseFor(len(recs)))
		committed, err := sess.End(ctx, kgo.TryCommit)
		if err != nil {
			return fmt.Errorf("end: %w", err)
		}
		if committed {
			c.txnOK.Add(1)
		}
	}
	return ctx.Err()
}

// pauseFor is the pacing pause of a transaction of n records: c.pause for
// a full one (TxnSize records), in proportion for fewer.
func (c *copyRun) pauseFor(n int) time.Duration {
	return time.Duration(int64(c.pause) * int64(min(n, c.e.cfg.TxnSize)) / int64(max(1, c.e.cfg.TxnSize)))
}

// fenceAll initializes every transactional id the copiers used once, which
// aborts any transaction a killed copier left open.
func (c *copyRun) fenceAll(ctx context.Context, n int) {
	for i := range n {
		id := fmt.Sprintf("%s-p%d", c.txnPrefix, i)
		if c.e.cfg.Mode == "group" {
			id = fmt.Sprintf("%s-g%d", c.txnPrefix, i)
		}
		cl, err := c.e.direct(kgo.TransactionalID(id))
		if err != nil {
			continue
		}
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if _, _, err := cl.ProducerID(fctx); err != nil {
			c.e.logf("fence %s: %v", id, err)
		}
		cancel()
		cl.Close()
	}
}

// concurrentConsumer follows the output with read_committed through the
// faulty network while the copiers run, as Kafka's test runs a console
// consumer beside the copiers.
func (c *copyRun) concurrentConsumer(ctx context.Context) map[int32][]int64 {
	e := c.e
	parts := map[int32]kgo.Offset{}
	for p := range int32(e.cfg.Partitions) {
		parts[p] = kgo.NewOffset().AtStart()
	}
	out := map[int32][]int64{}
	for p := range int32(e.cfg.Partitions) {
		out[p] = nil
	}
	cl, err := kgo.NewClient(e.faulty(e.net.killSwitch(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{c.out: parts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)...)
	if err != nil {
		e.fail("concurrent consumer: %v", err)
		return out
	}
	defer cl.Close()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			v, err := strconv.ParseInt(string(r.Value), 10, 64)
			if err != nil {
				v = -1
			}
			out[r.Partition] = append(out[r.Partition], v)
			c.concurrentSeen.Add(1)
		})
	}
	return out
}
