// Package partition is one partition of a topic as a deterministic state
// machine over its log: the owner goroutine validates and stamps incoming
// batches against producer state, appends them, fsyncs once for everything
// that arrived meanwhile (group commit), then derives the high watermark,
// producer state, last stable offset and aborted-transaction index from what
// was appended. Handlers call Append, Fetch and the small query methods; they
// never touch files.
package partition

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/oncelog/oncelog/internal/clock"
	"github.com/oncelog/oncelog/internal/config"
	"github.com/oncelog/oncelog/internal/partlog"
	"github.com/oncelog/oncelog/internal/recordbatch"
	"github.com/oncelog/oncelog/internal/vfs"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Limits of the owner loop.
const (
	// appendQueueLen bounds the appends waiting for the owner; handlers
	// block (and so their connections stop reading) when it is full.
	appendQueueLen = 1024
	// maxAppendsPerRound bounds how many appends one fsync covers, so a
	// flood cannot delay the first waiter's answer without bound.
	maxAppendsPerRound = 512
	// maintenanceInterval is how often the owner checks retention and
	// producer expiry.
	maintenanceInterval = 30 * time.Second
	// lazySyncDelay is how long a marker appended by AppendMarkerEarly
	// waits for a round that syncs anyway before the partition syncs for
	// it alone. The producer's next batch, which usually lands on the
	// same partition, comes well within it (a round trip), so one fsync
	// makes both durable. NB: real time, not the injected clock: a
	// batching delay, not a protocol timeout.
	lazySyncDelay = 300 * time.Microsecond
)

// Options are the parts a partition is built from.
type Options struct {
	FS     vfs.FS
	Dir    string
	Topic  string
	Index  int32
	Config config.Topic
	Clock  clock.Clock
	Logger *slog.Logger
	// LeaderEpoch is stamped on every batch; one node keeps epoch 0 until
	// replication exists.
	LeaderEpoch int32
	// ProducerIDExpiration is producer.id.expiration.ms.
	ProducerIDExpiration time.Duration
	// MaxProducers bounds the producer table.
	MaxProducers int
	// Zeros bounds the zeros the log writes for preallocate, shared with
	// other partitions (partlog.ZeroBudget); nil: no bound.
	Zeros *partlog.ZeroBudget
	// OnSync, if set, is told how long each sync of the log took (metrics).
	OnSync func(time.Duration)
}

// AppendResult is the outcome of one Append.
type AppendResult struct {
	BaseOffset     int64
	LogAppendTime  int64 // -1 unless the topic uses LogAppendTime
	LogStartOffset int64
	Err            *kerr.Error
	ErrMessage     string
}

// Ack says when an append is answered.
type Ack int8

const (
	// AckDurable answers once the batch is durable under the topic's flush
	// policy: by default after the fsync that covers it (acks=all, and the
	// internal partitions).
	AckDurable Ack = iota
	// AckWritten answers once the batch is written to the OS, before the
	// fsync of its round (acks=1, as DESIGN.md allows). NB: the high
	// watermark still moves only after the fsync, so no consumer sees the
	// batch before it is durable; what acks=1 gives up is that a machine
	// crash (or a failing fsync) may lose a batch already answered.
	AckWritten
	// AckDeferred answers once the batch is written and asks for no fsync
	// of its own: the batch is synced with the next round that needs a
	// sync, at the next maintenance tick, or at close, and becomes visible
	// (high watermark) then. For records whose loss in a crash costs
	// nothing but redone work, such as a transaction's completion record,
	// which recovery re-derives by re-driving the prepared transaction.
	AckDeferred
)

type appendOp struct {
	batch []byte
	h     recordbatch.Header
	ack   Ack
	done  chan AppendResult
	res   AppendResult
	// written is set once the batch is in the log and waits for the sync.
	written bool
	// answered is set when an AckWritten op was answered before the sync.
	answered bool
	// writtenCh, when not nil, receives the result as soon as the batch
	// is in the log (or refused); done receives it once the batch is
	// durable, after a sync of its round or a later one (Partition.lazy).
	writtenCh chan AppendResult
}

// Partition is one topic partition. All methods are safe for concurrent use.
type Partition struct {
	Topic string
	Index int32

	opts Options
	log  *partlog.Log
	clk  clock.Clock
	lg   *slog.Logger

	appends chan *appendOp
	ops     chan func()
	closing chan struct{}
	closed  chan struct{}

	// Owner-only state (touched only by the run goroutine, or before it
	// starts).
	producers        *producerTable
	unflushedBatches int64
	lastFlush        time.Time
	snapshotOffset   int64
	// syncedOffset is the end of the log as of the last successful fsync.
	syncedOffset int64
	// snapshotStale is set when the producer state or the aborted index
	// changed since the last snapshot; a clean close of an idle partition
	// then writes nothing.
	snapshotStale bool
	// lazy are appends answered once written (writtenCh) whose durable
	// answer waits for the next successful sync; lazyTimer bounds that
	// wait (lazySyncDelay).
	lazy      []*appendOp
	lazyTimer *time.Timer

	mu struct {
		sync.Mutex
		// Invariant: logStart <= lso <= hw <= log.NextOffset().
		hw       int64
		lso      int64
		logStart int64
		// watch is closed and replaced whenever hw or lso moves.
		watch chan struct{}
		// aborted is the aborted-transaction index, sorted by
		// LastOffset (markers are appended in offset order).
		aborted []AbortedTxn
		cfg     config.Topic
		// storageErr is sticky: once a write or fsync failed the
		// partition answers KAFKA_STORAGE_ERROR until restart.
		storageErr error
	}
}

// ErrClosed is returned for operations on a closed partition.
var ErrClosed = errors.New("partition closed")

// Open recovers the partition from its directory (creating it if needed),
// rebuilds its state from the snapshot and the log, and starts its owner.
func Open(opts Options) (*Partition, error) {
	if opts.Clock == nil {
		opts.Clock = clock.Real
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := opts.FS.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("partition %s-%d: %w", opts.Topic, opts.Index, err)
	}
	l, err := partlog.Open(opts.FS, opts.Dir, logConfig(opts.Config, opts.Zeros), opts.Clock.Now())
	if err != nil {
		return nil, err
	}
	p := &Partition{
		Topic:     opts.Topic,
		Index:     opts.Index,
		opts:      opts,
		log:       l,
		clk:       opts.Clock,
		lg:        opts.Logger.With("topic", opts.Topic, "partition", opts.Index),
		appends:   make(chan *appendOp, appendQueueLen),
		ops:       make(chan func(), 64),
		closing:   make(chan struct{}),
		closed:    make(chan struct{}),
		producers: newProducerTable(),
		lastFlush: opts.Clock.Now(),
	}
	p.mu.cfg = opts.Config
	p.mu.watch = make(chan struct{})
	if err := p.rebuild(); err != nil {
		l.Close()
		return nil, err
	}
	go p.run()
	return p, nil
}

// syncLog syncs the log, timing it for Options.OnSync.
func (p *Partition) syncLog() error {
	if p.opts.OnSync == nil {
		return p.log.Sync()
	}
	start := time.Now()
	err := p.log.Sync()
	p.opts.OnSync(time.Since(start))
	return err
}

func logConfig(t config.Topic, zeros *partlog.ZeroBudget) partlog.Config {
	c := partlog.DefaultConfig()
	c.SegmentBytes = t.SegmentBytes
	c.SegmentMs = t.SegmentMs
	c.IndexIntervalBytes = t.IndexIntervalBytes
	c.RetentionMs = t.RetentionMs
	c.RetentionBytes = t.RetentionBytes
	c.Preallocate = t.Preallocate
	c.Zeros = zeros
	return c
}

// rebuild derives the producer state and the aborted index from the
// snapshot (if valid) and the log after it.
func (p *Partition) rebuild() error {
	from := p.log.StartOffset()
	snap, err := readSnapshot(p.opts.FS, p.opts.Dir)
	if err != nil {
		p.lg.Warn("ignoring producer state snapshot; rebuilding from the log", "err", err)
	}
	var aborted []AbortedTxn
	if snap != nil && snap.Offset <= p.log.NextOffset() {
		for i := range snap.Producers {
			e := snap.Producers[i]
			p.producers.entries[e.ProducerID] = &e
		}
		aborted = snap.Aborted
		if snap.Offset > from {
			from = snap.Offset
		}
		p.snapshotOffset = snap.Offset
	}
	err = p.log.Scan(from, func(b []byte) error {
		h, err := recordbatch.ParseHeader(b)
		if err != nil {
			return err
		}
		p.snapshotStale = true
		if a, ok := p.applyBatch(b, &h); ok {
			aborted = append(aborted, a)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("partition %s-%d: rebuilding state: %w", p.Topic, p.Index, err)
	}
	p.mu.logStart = p.log.StartOffset()
	p.mu.hw = p.log.NextOffset()
	p.syncedOffset = p.mu.hw
	p.mu.aborted = trimAborted(aborted, p.mu.logStart)
	p.mu.lso = p.lsoLocked()
	return nil
}

// applyBatch is the apply step: it derives state from one appended batch.
// It never reads the clock.
func (p *Partition) applyBatch(b []byte, h *recordbatch.Header) (AbortedTxn, bool) {
	if h.ProducerID >= 0 {
		p.snapshotStale = true
	}
	if h.IsControl() {
		commit, coordEpoch, err := recordbatch.ParseControl(b)
		if err != nil {
			// A control batch we cannot read changes nothing; it was
			// validated before it was written.
			p.lg.Error("unreadable control batch in log", "offset", h.BaseOffset, "err", err)
			return AbortedTxn{}, false
		}
		return p.producers.applyControl(h, commit, coordEpoch)
	}
	p.producers.apply(h)
	return AbortedTxn{}, false
}

func trimAborted(a []AbortedTxn, logStart int64) []AbortedTxn {
	i := sort.Search(len(a), func(i int) bool { return a[i].LastOffset >= logStart })
	return append([]AbortedTxn(nil), a[i:]...)
}

// lsoLocked computes the last stable offset: the first offset of the
// earliest open transaction, capped by the high watermark. Records at
// offsets below it are decided (committed, aborted or not transactional).
// This is the one definition used everywhere.
func (p *Partition) lsoLocked() int64 {
	first := p.producers.firstUnstableOffset()
	if first >= 0 && first < p.mu.hw {
		return first
	}
	return p.mu.hw
}

// Append submits one validated batch (recordbatch.Validate has passed) and
// returns a channel that receives the result once the batch is durable
// according to the topic's flush policy, or rejected.
func (p *Partition) Append(batch []byte, h recordbatch.Header) <-chan AppendResult {
	return p.AppendAck(batch, h, AckDurable)
}

// AppendAck is Append with the moment of the answer chosen by ack: with
// AckWritten the result comes once the batch is written to the OS (acks=1),
// before the fsync. Either way the batch becomes visible to fetches (the
// high watermark) only once it is durable. The caller must not touch batch
// until the result arrives.
func (p *Partition) AppendAck(batch []byte, h recordbatch.Header, ack Ack) <-chan AppendResult {
	op := &appendOp{batch: batch, h: h, ack: ack, done: make(chan AppendResult, 1)}
	select {
	case p.appends <- op:
	case <-p.closing:
		op.done <- AppendResult{Err: kerr.NotLeaderForPartition, ErrMessage: "partition is closing"}
	}
	return op.done
}

func (p *Partition) run() {
	defer close(p.closed)
	tick := p.clk.After(maintenanceInterval)
	round := make([]*appendOp, 0, maxAppendsPerRound)
	for {
		var lazyC <-chan time.Time
		if p.lazyTimer != nil {
			lazyC = p.lazyTimer.C
		}
		select {
		case <-p.closing:
			p.drainOnClose()
			return
		case fn := <-p.ops:
			fn()
			continue
		case <-tick:
			p.maintain()
			tick = p.clk.After(maintenanceInterval)
			continue
		case <-lazyC:
			p.lazyTimer = nil
			p.syncLazy()
			continue
		case op := <-p.appends:
			round = append(round[:0], op)
		}
	drain:
		for len(round) < maxAppendsPerRound {
			select {
			case op := <-p.appends:
				round = append(round, op)
			default:
				break drain
			}
		}
		p.appendRound(round)
		if len(p.lazy) > 0 && p.lazyTimer == nil {
			p.lazyTimer = time.NewTimer(lazySyncDelay)
		}
		// NB: drop the answered ops: each holds its batch, which aliases
		// the whole request frame it came in. Kept in round's backing
		// array, every partition of a many-partition produce request
		// would pin that frame until its next append (10,000 partitions:
		// gigabytes of dead frames).
		clear(round)
	}
}

// appendRound writes every op of the round, fsyncs once, publishes the new
// high watermark and answers the waiters.
func (p *Partition) appendRound(round []*appendOp) {
	now := p.clk.Now()
	p.mu.Lock()
	cfg := p.mu.cfg
	storageErr := p.mu.storageErr
	p.mu.Unlock()
	logAppendTime := cfg.MessageTimestampType == "LogAppendTime"
	var newAborted []AbortedTxn
	wroteAny := false
	for _, op := range round {
		op.res.LogAppendTime = -1
		if storageErr != nil {
			op.res.Err = kerr.KafkaStorageError
			op.res.ErrMessage = storageErr.Error()
			continue
		}
		cr := p.producers.check(&op.h)
		if cr.err != nil {
			op.res.Err, op.res.ErrMessage = cr.err, cr.msg
			continue
		}
		if cr.skip {
			op.res.BaseOffset = -1
			continue
		}
		if cr.duplicate != nil {
			// A retry of a batch already appended: answer with the
			// original offsets and no error. The original may be in
			// this very round, so the answer waits for the sync too.
			op.res.BaseOffset = cr.duplicate.FirstOffset
			if logAppendTime {
				op.res.LogAppendTime = cr.duplicate.Timestamp
			}
			op.written = true
			continue
		}
		base := p.log.NextOffset()
		recordbatch.SetBaseOffset(op.batch, base)
		recordbatch.SetPartitionLeaderEpoch(op.batch, p.opts.LeaderEpoch)
		op.h.BaseOffset = base
		op.h.PartitionLeaderEpoch = p.opts.LeaderEpoch
		if logAppendTime && !op.h.IsControl() {
			ts := now.UnixMilli()
			recordbatch.SetLogAppendTime(op.batch, ts)
			op.h.MaxTimestamp = ts
			op.h.Attributes |= recordbatch.AttrLogAppendTime
			op.res.LogAppendTime = ts
		}
		if err := p.log.Append(op.batch, now); err != nil {
			storageErr = p.failLocked(fmt.Errorf("append at offset %d: %w", base, err))
			op.res.Err, op.res.ErrMessage = kerr.KafkaStorageError, storageErr.Error()
			continue
		}
		if a, ok := p.applyBatch(op.batch, &op.h); ok {
			newAborted = append(newAborted, a)
		}
		op.res.BaseOffset = base
		op.written = true
		wroteAny = true
		p.unflushedBatches++
	}
	for _, op := range round {
		if op.writtenCh != nil {
			op.writtenCh <- op.res
		}
	}
	needSync := false
	for _, op := range round {
		if op.written && op.ack != AckDeferred && op.writtenCh == nil {
			needSync = true
		}
	}
	syncing := (wroteAny || p.unflushedBatches > 0) && needSync && storageErr == nil && p.flushDue(cfg, now)
	if syncing {
		// acks=1: answer what is written before waiting for the disk.
		// Nothing the sync decides can change these answers except its
		// failure, which acks=1 accepts (see AckWritten).
		var logStart int64
		early := false
		for _, op := range round {
			if op.ack == AckWritten && op.written {
				if !early {
					p.mu.Lock()
					logStart = p.mu.logStart
					p.mu.Unlock()
					early = true
				}
				op.res.LogStartOffset = logStart
				op.answered = true
				op.done <- op.res
			}
		}
		if err := p.syncLog(); err != nil {
			storageErr = p.failLocked(fmt.Errorf("fsync: %w", err))
		} else {
			p.unflushedBatches = 0
			p.lastFlush = now
			p.syncedOffset = p.log.NextOffset()
		}
	}
	for _, op := range round {
		if op.writtenCh != nil && op.written && !syncing && storageErr == nil {
			// Answered once written; durable with a later sync.
			p.lazy = append(p.lazy, op)
			op.answered = true
		}
	}
	p.mu.Lock()
	logStart := p.mu.logStart
	if storageErr == nil {
		p.mu.aborted = append(p.mu.aborted, newAborted...)
		p.publishLocked(p.visibleEndLocked(cfg))
	}
	p.mu.Unlock()
	if syncing || storageErr != nil {
		// Before this round's answers: what was appended earlier is
		// never answered durable later than what came behind it.
		p.answerLazy(storageErr)
	}
	for _, op := range round {
		if op.answered {
			continue
		}
		if op.written && storageErr != nil {
			// NB: the batch may be in the page cache but its fsync
			// failed: its fate is unknown, so it must not be acked.
			op.res.Err, op.res.ErrMessage = kerr.KafkaStorageError, storageErr.Error()
		}
		op.res.LogStartOffset = logStart
		op.done <- op.res
	}
}

// answerLazy gives the durable answer to every lazy append after a sync
// (err nil) or a storage failure.
func (p *Partition) answerLazy(err error) {
	for _, op := range p.lazy {
		res := op.res
		if err != nil {
			res.Err, res.ErrMessage = kerr.KafkaStorageError, err.Error()
		}
		op.done <- res
	}
	clear(p.lazy)
	p.lazy = p.lazy[:0]
	if p.lazyTimer != nil {
		p.lazyTimer.Stop()
		p.lazyTimer = nil
	}
}

// syncLazy syncs for the lazy appends when no round did within
// lazySyncDelay.
func (p *Partition) syncLazy() {
	if len(p.lazy) == 0 {
		return
	}
	p.mu.Lock()
	err := p.mu.storageErr
	p.mu.Unlock()
	if err == nil {
		if serr := p.syncLog(); serr != nil {
			err = p.failLocked(fmt.Errorf("fsync: %w", serr))
		} else {
			p.unflushedBatches = 0
			p.lastFlush = p.clk.Now()
			p.syncedOffset = p.log.NextOffset()
			p.mu.Lock()
			p.publishLocked(p.visibleEndLocked(p.mu.cfg))
			p.mu.Unlock()
		}
	}
	p.answerLazy(err)
}

// visibleEndLocked is where the high watermark may move: the fsynced end
// of the log under the default flush policy, so consumers never see data a
// crash could take back; the written end when the topic relaxes the policy
// (flush.messages > 1), as Kafka's page-cache reads do.
func (p *Partition) visibleEndLocked(cfg config.Topic) int64 {
	end := p.syncedOffset
	if cfg.FlushMessages > 1 {
		end = p.log.NextOffset()
	}
	// NB: the policy can change at runtime; the high watermark never
	// moves back.
	return max(end, p.mu.hw)
}

// AppendMarker writes the commit or abort marker of producer (pid, epoch)'s
// transaction and waits until it is durable. A marker for a producer with
// no open transaction here is written all the same (it changes nothing); one
// older than the producer's current epoch is skipped. Markers are therefore
// safe to re-drive after a crash.
func (p *Partition) AppendMarker(pid int64, epoch int16, commit bool, ts int64) AppendResult {
	b := recordbatch.BuildControlBatch(pid, epoch, commit, 0, ts)
	h, err := recordbatch.Check(b)
	if err != nil {
		panic(fmt.Sprintf("partition: built an invalid marker: %v", err))
	}
	return <-p.Append(b, h)
}

// AppendMarkerEarly is AppendMarker answered twice: it returns once the
// marker is in the log (the result, or why it was refused), before its
// fsync, and durable receives the result once the marker is durable. A
// transaction coordinator uses the first answer to let the producer's next
// transaction append behind the marker while the marker's fsync runs.
func (p *Partition) AppendMarkerEarly(pid int64, epoch int16, commit bool, ts int64) (written AppendResult, durable <-chan AppendResult) {
	b := recordbatch.BuildControlBatch(pid, epoch, commit, 0, ts)
	h, err := recordbatch.Check(b)
	if err != nil {
		panic(fmt.Sprintf("partition: built an invalid marker: %v", err))
	}
	op := &appendOp{batch: b, h: h, ack: AckDurable, done: make(chan AppendResult, 1), writtenCh: make(chan AppendResult, 1)}
	select {
	case p.appends <- op:
	case <-p.closing:
		res := AppendResult{Err: kerr.NotLeaderForPartition, ErrMessage: "partition is closing"}
		op.done <- res
		return res, op.done
	}
	return <-op.writtenCh, op.done
}

// flushDue applies the topic's flush policy: by default (flush.messages=1)
// every round is fsynced before it is answered.
func (p *Partition) flushDue(cfg config.Topic, now time.Time) bool {
	if cfg.FlushMessages <= 1 {
		return true
	}
	if p.unflushedBatches >= cfg.FlushMessages {
		return true
	}
	return cfg.FlushMs > 0 && now.Sub(p.lastFlush) >= cfg.FlushMs
}

// failLocked makes a storage error sticky and returns it. Called by the owner.
func (p *Partition) failLocked(err error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.storageErr == nil {
		p.mu.storageErr = err
		p.lg.Error("partition storage failed; answering KAFKA_STORAGE_ERROR until restart", "err", err)
	}
	return p.mu.storageErr
}

// publishLocked moves the high watermark and the LSO and wakes fetchers.
func (p *Partition) publishLocked(hw int64) {
	p.mu.hw = hw
	lso := p.lsoLocked()
	if lso < p.mu.lso {
		panic(fmt.Sprintf("partition %s-%d: LSO moved back from %d to %d", p.Topic, p.Index, p.mu.lso, lso))
	}
	p.mu.lso = lso
	close(p.mu.watch)
	p.mu.watch = make(chan struct{})
}

func (p *Partition) drainOnClose() {
	for {
		select {
		case op := <-p.appends:
			res := AppendResult{Err: kerr.NotLeaderForPartition, ErrMessage: "partition is closing", LogAppendTime: -1}
			if op.writtenCh != nil {
				op.writtenCh <- res
			}
			op.done <- res
		default:
			return
		}
	}
}

// maintain enforces retention and expires idle producers.
func (p *Partition) maintain() {
	now := p.clk.Now()
	p.mu.Lock()
	limit := p.mu.lso
	failed := p.mu.storageErr != nil
	p.mu.Unlock()
	if failed {
		return
	}
	if p.unflushedBatches > 0 {
		// Deferred appends (and relaxed flush policies) are synced at
		// least once per maintenance interval.
		if err := p.syncLog(); err != nil {
			p.failLocked(fmt.Errorf("fsync: %w", err))
			return
		}
		p.unflushedBatches = 0
		p.lastFlush = now
		p.syncedOffset = p.log.NextOffset()
		p.mu.Lock()
		p.publishLocked(p.visibleEndLocked(p.mu.cfg))
		p.mu.Unlock()
		p.answerLazy(nil)
	}
	if exp := p.opts.ProducerIDExpiration; exp > 0 {
		if p.producers.expire(now.Add(-exp).UnixMilli(), p.opts.MaxProducers) > 0 {
			p.snapshotStale = true
		}
	}
	before := p.log.StartOffset()
	if p.log.RetentionDue(now, limit) {
		// Producer state must outlive the data it describes: snapshot
		// before segments go.
		if err := p.writeSnapshot(); err != nil {
			p.lg.Warn("producer state snapshot failed; retention postponed", "err", err)
			return
		}
		start, err := p.log.EnforceRetention(now, limit)
		if err != nil {
			p.failLocked(fmt.Errorf("retention: %w", err))
			return
		}
		if start != before {
			p.setLogStart(start)
		}
	}
}

func (p *Partition) setLogStart(start int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if start > p.mu.logStart {
		p.mu.logStart = start
		p.mu.aborted = trimAborted(p.mu.aborted, start)
	}
}

// do runs fn on the owner goroutine and waits for it.
func (p *Partition) do(fn func()) error {
	done := make(chan struct{})
	select {
	case p.ops <- func() { fn(); close(done) }:
	case <-p.closing:
		return ErrClosed
	}
	select {
	case <-done:
		return nil
	case <-p.closed:
		return ErrClosed
	}
}

// Offsets are the partition's current bounds.
type Offsets struct {
	LogStartOffset   int64
	HighWatermark    int64
	LastStableOffset int64
}

// Offsets returns the current bounds.
func (p *Partition) Offsets() Offsets {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Offsets{LogStartOffset: p.mu.logStart, HighWatermark: p.mu.hw, LastStableOffset: p.mu.lso}
}

// Watch returns a channel that is closed the next time the high watermark or
// the last stable offset moves.
func (p *Partition) Watch() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.watch
}

// FetchResult is what Fetch returns for one partition.
type FetchResult struct {
	Offsets
	Records []byte
	// Aborted lists the aborted transactions overlapping the returned
	// records; set only for read_committed fetches.
	Aborted []AbortedTxn
	Err     *kerr.Error
}

// Fetch reads whole batches from offset, at most maxBytes unless the first
// batch alone is bigger, up to the high watermark (read_uncommitted) or the
// last stable offset (readCommitted).
func (p *Partition) Fetch(offset int64, maxBytes int, readCommitted bool) FetchResult {
	res, _ := p.FetchAppend(nil, offset, maxBytes, readCommitted)
	return res
}

// FetchAppend is Fetch that reads the records into dst, after what it holds,
// and returns the extended buffer; res.Records is the part appended (it
// aliases the returned buffer, so it moves if a later append to the buffer
// grows it). A caller reusing one buffer allocates nothing per fetch.
func (p *Partition) FetchAppend(dst []byte, offset int64, maxBytes int, readCommitted bool) (FetchResult, []byte) {
	p.mu.Lock()
	off := Offsets{LogStartOffset: p.mu.logStart, HighWatermark: p.mu.hw, LastStableOffset: p.mu.lso}
	storageErr := p.mu.storageErr
	p.mu.Unlock()
	res := FetchResult{Offsets: off}
	if storageErr != nil {
		res.Err = kerr.KafkaStorageError
		return res, dst
	}
	if offset < off.LogStartOffset || offset > off.HighWatermark {
		res.Err = kerr.OffsetOutOfRange
		return res, dst
	}
	limit := off.HighWatermark
	if readCommitted {
		limit = off.LastStableOffset
	}
	if offset >= limit {
		return res, dst
	}
	n := len(dst)
	out, err := p.log.ReadAppend(dst, offset, maxBytes, limit)
	if err != nil {
		if errors.Is(err, partlog.ErrOffsetOutOfRange) {
			// Retention moved the start between our snapshot of the
			// bounds and the read.
			res.Err = kerr.OffsetOutOfRange
			return res, out
		}
		res.Err = kerr.KafkaStorageError
		p.lg.Error("read failed", "offset", offset, "err", err)
		return res, out
	}
	recs := out[n:]
	if len(recs) > 0 {
		res.Records = recs
	}
	if readCommitted && len(recs) > 0 {
		res.Aborted = p.abortedIn(offset, lastOffsetOf(recs))
	}
	return res, out
}

// FetchRanges is FetchAppend's counterpart for a zero-copy send: the same
// bounds, limits, errors and aborted transactions, but the records are left
// in the log's files and located by rs (res.Records is nil), through
// partlog.ReadRanges. release, never nil when ok, must be called once the
// ranges are sent (or dropped); until then the segments' files stay open.
// ok is false, with nothing held, when the log's files cannot give ranges
// (not OS files): the caller uses FetchAppend.
func (p *Partition) FetchRanges(offset int64, maxBytes int, readCommitted bool) (res FetchResult, rs partlog.FileRanges, release func(), ok bool) {
	p.mu.Lock()
	off := Offsets{LogStartOffset: p.mu.logStart, HighWatermark: p.mu.hw, LastStableOffset: p.mu.lso}
	storageErr := p.mu.storageErr
	p.mu.Unlock()
	res = FetchResult{Offsets: off}
	nothing := func() {}
	if storageErr != nil {
		res.Err = kerr.KafkaStorageError
		return res, rs, nothing, true
	}
	if offset < off.LogStartOffset || offset > off.HighWatermark {
		res.Err = kerr.OffsetOutOfRange
		return res, rs, nothing, true
	}
	limit := off.HighWatermark
	if readCommitted {
		limit = off.LastStableOffset
	}
	if offset >= limit {
		return res, rs, nothing, true
	}
	rs, release, err := p.log.ReadRanges(offset, maxBytes, limit)
	if err != nil {
		switch {
		case errors.Is(err, partlog.ErrNoFileRanges):
			return res, rs, nil, false
		case errors.Is(err, partlog.ErrOffsetOutOfRange):
			// Retention moved the start between our snapshot of the
			// bounds and the read.
			res.Err = kerr.OffsetOutOfRange
		default:
			res.Err = kerr.KafkaStorageError
			p.lg.Error("read failed", "offset", offset, "err", err)
		}
		return res, partlog.FileRanges{}, nothing, true
	}
	if readCommitted && rs.Bytes > 0 {
		res.Aborted = p.abortedIn(offset, rs.LastOffset)
	}
	return res, rs, release, true
}

func lastOffsetOf(recs []byte) int64 {
	last := int64(-1)
	_ = recordbatch.Split(recs, func(b []byte) error {
		if h, err := recordbatch.ParseHeader(b); err == nil {
			last = h.LastOffset()
		}
		return nil
	})
	return last
}

// abortedIn returns the aborted transactions that overlap [from, to].
func (p *Partition) abortedIn(from, to int64) []AbortedTxn {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := sort.Search(len(p.mu.aborted), func(i int) bool { return p.mu.aborted[i].LastOffset >= from })
	var out []AbortedTxn
	for _, a := range p.mu.aborted[i:] {
		if a.FirstOffset <= to {
			out = append(out, a)
		}
	}
	return out
}

// Replay calls fn for every batch from the log start offset to the high
// watermark, in offset order: how coordinators rebuild their state from
// their partitions. The batch is only valid during the call.
func (p *Partition) Replay(fn func(batch []byte, h recordbatch.Header) error) error {
	off := p.Offsets().LogStartOffset
	for {
		res := p.Fetch(off, 8<<20, false)
		if res.Err != nil {
			return fmt.Errorf("%s-%d at offset %d: %v", p.Topic, p.Index, off, res.Err)
		}
		if len(res.Records) == 0 {
			return nil
		}
		err := recordbatch.Split(res.Records, func(b []byte) error {
			h, err := recordbatch.ParseHeader(b)
			if err != nil {
				return err
			}
			off = h.LastOffset() + 1
			return fn(b, h)
		})
		if err != nil {
			return fmt.Errorf("%s-%d: %w", p.Topic, p.Index, err)
		}
	}
}

// CoordinatorPartition places a coordinator key (a group id or a
// transactional id) on one of n partitions as Kafka does: the absolute
// value of Java's String.hashCode (over UTF-16 code units) modulo n, so
// tools that compute it find the same partition.
func CoordinatorPartition(key string, n int32) int32 {
	var h int32
	for _, r := range key {
		if r >= 0x10000 {
			r -= 0x10000
			h = 31*h + int32(0xD800+(r>>10))
			h = 31*h + int32(0xDC00+(r&0x3FF))
			continue
		}
		h = 31*h + int32(r)
	}
	if h == -1<<31 {
		h = 0
	}
	if h < 0 {
		h = -h
	}
	return h % n
}

// Config returns the topic config in force.
func (p *Partition) Config() config.Topic {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.cfg
}

// SetConfig changes the topic config at runtime.
func (p *Partition) SetConfig(cfg config.Topic) {
	p.mu.Lock()
	p.mu.cfg = cfg
	p.mu.Unlock()
	p.do(func() { p.log.SetConfig(logConfig(cfg, p.opts.Zeros)) })
}

// DeleteRecordsBefore raises the log start offset to offset (DeleteRecords);
// offset -1 means the high watermark. It returns the new log start offset.
func (p *Partition) DeleteRecordsBefore(offset int64) (int64, *kerr.Error) {
	var kerrOut *kerr.Error
	var start int64
	err := p.do(func() {
		p.mu.Lock()
		hw := p.mu.hw
		cur := p.mu.logStart
		p.mu.Unlock()
		if offset == -1 {
			offset = hw
		}
		if offset < 0 || offset > hw {
			kerrOut = kerr.OffsetOutOfRange
			return
		}
		if offset <= cur {
			start = cur
			return
		}
		if err := p.writeSnapshot(); err != nil {
			kerrOut = kerr.KafkaStorageError
			return
		}
		if err := p.log.SetStartOffset(offset); err != nil {
			p.failLocked(fmt.Errorf("delete records: %w", err))
			kerrOut = kerr.KafkaStorageError
			return
		}
		p.setLogStart(offset)
		start = offset
	})
	if err != nil {
		return 0, kerr.NotLeaderForPartition
	}
	return start, kerrOut
}

// Producers returns a copy of the producer table (DescribeProducers, tests).
func (p *Partition) Producers() []ProducerEntry {
	var out []ProducerEntry
	if err := p.do(func() { out = p.producers.sorted() }); err != nil {
		return nil
	}
	return out
}

// AbortedTxns returns a copy of the aborted-transaction index.
func (p *Partition) AbortedTxns() []AbortedTxn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]AbortedTxn(nil), p.mu.aborted...)
}

// Log gives read access to the log for ListOffsets and tests.
func (p *Partition) Log() *partlog.Log { return p.log }

// Close stops the owner, writes a producer state snapshot and closes the
// log. Appends still queued are answered NOT_LEADER so clients retry.
func (p *Partition) Close() error {
	select {
	case <-p.closing:
		<-p.closed
		return nil
	default:
	}
	close(p.closing)
	<-p.closed
	var errs []error
	p.mu.Lock()
	failed := p.mu.storageErr
	p.mu.Unlock()
	// The owner has stopped: its lazy appends are answered here.
	if failed != nil {
		p.answerLazy(failed)
	} else {
		err := p.syncLog()
		p.answerLazy(err)
		if err != nil {
			errs = append(errs, err)
		} else if p.snapshotStale || p.snapshotOffset != p.log.NextOffset() {
			if err := p.writeSnapshot(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := p.log.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Delete closes the partition and removes its files.
func (p *Partition) Delete() error {
	select {
	case <-p.closing:
	default:
		close(p.closing)
	}
	<-p.closed
	return p.log.Delete()
}
