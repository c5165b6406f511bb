package txn

// The driver.
//
// Persistence order. A transition is written (fsynced) to the id's
// __transaction_state partition before anything acts on it: PrepareCommit
// is durable before the first marker is written and before EndTxn is
// answered (the commit is decided then; the markers follow in the
// background, as in Kafka). A partition added by AddPartitionsToTxn is
// durable in the partition set before any transactional batch of it is
// appended. One added by Produce v12+ (transaction protocol v2) is queued
// before its batches and not waited for: the Prepare record that decides
// the transaction comes after it in the same log and syncs it. If a crash
// keeps the batch and loses the registration, the next start finds the
// open transaction in the partition's producer state and aborts it,
// fencing the producer (findUnregistered, abortUnregistered). The Complete
// record is written once every marker is durable, and not waited for.
//
// The next transaction. After EndTxn v5+ the id stays busy until the
// markers are durable, but is admitted as soon as they are all in their
// logs: the producer's next transaction may register partitions (in
// memory) and append behind the markers while their fsyncs run (usually
// one fsync then covers the marker and the next batch). The id's record,
// with that registration, is written once the markers are durable; until
// then the Prepare record is its last one. A crash in that window
// re-drives the ended transaction, skipping a partition where the
// producer's next transaction is already open (its marker is before that
// transaction's batches, and a second one would end the wrong
// transaction: laterTxnOpen), and aborts the next transaction as
// unregistered. This relies on TV2's epoch bump (the next transaction's
// batches carry the epoch the markers carry); TV1 (EndTxn up to v4) keeps
// the id busy until the markers are durable.
//
// Ordering with data. A transactional produce (and a transactional offset
// commit) is verified and enqueued to its partition under mu, and a
// transaction enters its Prepare state under mu before its markers are
// enqueued. Partitions append in enqueue order, so every batch that passed
// verification is in the log before the marker that ends its transaction,
// and any batch verified later sees the Prepare state and is refused: a
// delayed produce can never join a decided transaction. Under transaction
// protocol v2 the marker also carries a bumped epoch, so a batch of the old
// epoch is fenced by the partition itself.
//
// Locking. mu guards txns and every entry. It is not held across writes:
// an entry being changed is marked busy, and other requests for it wait
// (bounded) for the change to finish.

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/oncelog/oncelog/internal/broker"
	"github.com/oncelog/oncelog/internal/clock"
	"github.com/oncelog/oncelog/internal/failpoint"
	"github.com/oncelog/oncelog/internal/partition"
	"github.com/oncelog/oncelog/internal/recordbatch"
	"github.com/twmb/franz-go/pkg/kerr"
)

// StateTopic is the internal topic of the coordinator's log.
const StateTopic = "__transaction_state"

// Limits.
const (
	// MaxPartitionsPerTxn bounds one transaction's partition set.
	MaxPartitionsPerTxn = 100000
	// busyWait bounds how long a request waits for another change of the
	// same transactional id before it answers CONCURRENT_TRANSACTIONS.
	busyWait = 10 * time.Second
	// timeoutCheckInterval is how often expired transactions are looked for.
	timeoutCheckInterval = time.Second
	// markerRetryBackoff spaces retries of a failed marker write.
	markerRetryBackoff = time.Second
)

// Groups is what the transaction coordinator needs of the group
// coordinator: where a group's offsets live, and the news that a marker
// for a producer reached an offsets partition.
type Groups interface {
	EnsureTopic() *kerr.Error
	PartitionFor(group string) int32
	OffsetsTopic() string
	CompleteTxn(partition int32, producerID int64, commit bool, markerOffset int64)
}

// Settings are the broker's transaction settings.
type Settings struct {
	MaxTimeout   time.Duration // transaction.max.timeout.ms
	IDExpiration time.Duration // transactional.id.expiration.ms
	Partitions   int32         // transaction.state.log.num.partitions
}

// DefaultSettings are Kafka's defaults.
func DefaultSettings() Settings {
	return Settings{MaxTimeout: 15 * time.Minute, IDExpiration: 7 * 24 * time.Hour, Partitions: 50}
}

type entry struct {
	meta Metadata
	// busy is set while a transition of this id is being written or its
	// markers are in flight; done is closed when it clears.
	busy bool
	done chan struct{}
	// admit is set, while busy, once every marker of a transaction ended
	// by EndTxn v5+ is in its log but not yet durable; admitted is closed
	// then. The producer's next transaction may meanwhile register
	// partitions (Produce v12+, TxnOffsetCommit v5+), in memory only, and
	// append behind the markers; the id's record, registration included,
	// is written once the markers are durable (finish). Everything else
	// waits for busy to clear.
	admit    bool
	admitted chan struct{}
}

// Coordinator is the transaction coordinator of this node.
type Coordinator struct {
	b        *broker.Broker
	groups   Groups
	clk      clock.Clock
	lg       *slog.Logger
	settings Settings

	topicMu sync.Mutex

	mu struct {
		sync.Mutex
		txns map[string]*entry
	}
	stop chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
	// compact is the state of __transaction_state compaction (compact.go).
	compact compactor
}

// Options configure New.
type Options struct {
	Broker   *broker.Broker
	Groups   Groups
	Clock    clock.Clock
	Logger   *slog.Logger
	Settings Settings
}

// New loads the coordinator's state from __transaction_state, re-drives
// the transactions left in a Prepare state, and starts the timeout sweep.
func New(opts Options) (*Coordinator, error) {
	if opts.Clock == nil {
		opts.Clock = clock.Real
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Settings.Partitions <= 0 {
		opts.Settings.Partitions = 50
	}
	c := &Coordinator{b: opts.Broker, groups: opts.Groups, clk: opts.Clock, lg: opts.Logger, settings: opts.Settings,
		stop: make(chan struct{}), done: make(chan struct{})}
	c.mu.txns = map[string]*entry{}
	if t := c.b.Topic(StateTopic); t != nil {
		c.settings.Partitions = int32(len(t.Partitions))
		if err := c.load(t); err != nil {
			return nil, err
		}
	}
	orphans := c.findUnregistered()
	c.mu.Lock()
	var redo []string
	for id, e := range c.mu.txns {
		prepared := e.meta.State == PrepareCommit || e.meta.State == PrepareAbort
		if prepared || orphans.byID[id] != nil {
			redo = append(redo, id)
			e.setBusy()
		}
	}
	c.mu.Unlock()
	for _, id := range redo {
		c.wg.Add(1)
		go func(id string, tps []TopicPartition) {
			defer c.wg.Done()
			c.mu.Lock()
			e := c.mu.txns[id]
			st := e.meta.State
			c.mu.Unlock()
			defer func() {
				c.mu.Lock()
				e.clearBusy()
				c.mu.Unlock()
			}()
			if st == PrepareCommit || st == PrepareAbort {
				c.lg.Info("completing transaction left in prepare state", "transactional_id", id)
				if !c.finish(id, finishRedrive) {
					return
				}
			}
			if len(tps) > 0 {
				c.abortUnregistered(e, tps)
			}
		}(id, orphans.byID[id])
	}
	for _, o := range orphans.unknown {
		c.wg.Add(1)
		go func(o orphanTxn) {
			defer c.wg.Done()
			c.lg.Warn("aborting an open transaction of an unknown producer", "topic", o.tp.Topic, "partition", o.tp.Partition, "producer_id", o.pid, "producer_epoch", o.epoch)
			c.writeMarker(o.tp, o.pid, o.epoch, false)
		}(o)
	}
	go c.run()
	return c, nil
}

// orphanTxn is an open transaction found in a partition's producer state.
type orphanTxn struct {
	tp    TopicPartition
	pid   int64
	epoch int16
}

// orphans are the open transactions of partitions that no transaction of
// the coordinator accounts for: per transactional id (its producer id
// matches) the partitions, and those of producer ids no id has.
type orphans struct {
	byID    map[string][]TopicPartition
	unknown []orphanTxn
}

// findUnregistered lists the partitions holding an open transaction that
// the loaded coordinator state does not include: what a crash leaves when a
// Produce v12+ batch reached its partition's disk but the registration
// written beside it (VerifyAndEnqueue) did not. Left alone, such a
// transaction would hold the partition's LSO for good.
func (c *Coordinator) findUnregistered() orphans {
	out := orphans{byID: map[string][]TopicPartition{}}
	c.mu.Lock()
	byPID := make(map[int64]*entry, len(c.mu.txns))
	for _, e := range c.mu.txns {
		byPID[e.meta.ProducerID] = e
	}
	c.mu.Unlock()
	for _, t := range c.b.Topics() {
		for _, p := range t.Partitions {
			tp := TopicPartition{Topic: p.Topic, Partition: p.Index}
			for _, pe := range p.Producers() {
				if pe.CurrentTxnFirstOffset < 0 {
					continue
				}
				e := byPID[pe.ProducerID]
				if e == nil {
					out.unknown = append(out.unknown, orphanTxn{tp, pe.ProducerID, pe.ProducerEpoch})
					continue
				}
				switch e.meta.State {
				case Ongoing, PrepareCommit, PrepareAbort, PrepareEpochFence:
					if e.meta.hasPartition(tp) && !openIsLater(&e.meta, pe) {
						continue
					}
				}
				id := e.meta.TransactionalID
				out.byID[id] = append(out.byID[id], tp)
			}
		}
	}
	return out
}

// abortUnregistered ends the open transactions of e's producer in tps
// (found by findUnregistered) by aborting e's transaction with them added,
// fencing the producer (e busy, mu not held). The fence matters: the
// producer was never answered for those batches and may retry them with
// the same sequence numbers, which the partitions would take for duplicates
// of the aborted ones; with the epoch bumped the retry is refused instead.
func (c *Coordinator) abortUnregistered(e *entry, tps []TopicPartition) {
	cur := c.snapshot(e)
	c.lg.Warn("aborting transaction data whose registration was lost in a crash; fencing its producer", "transactional_id", cur.TransactionalID, "partitions", len(tps))
	next := cur.clone()
	next.addPartitions(tps)
	if next.State != Ongoing {
		next.State = Ongoing
		next.StartMs = c.clk.Now().UnixMilli()
	}
	next.UpdateMs = c.clk.Now().UnixMilli()
	if err := c.commitTransition(e, next); err != nil {
		c.lg.Error("registering lost transaction partitions failed; retried at the next start", "transactional_id", cur.TransactionalID, "err", err)
		return
	}
	if err := c.abortLocked(e, true); err != nil {
		c.lg.Error("aborting lost transaction data failed; retried at the next start", "transactional_id", cur.TransactionalID, "err", err)
	}
}

// Close stops the sweeps and waits for marker writes in flight.
func (c *Coordinator) Close() {
	close(c.stop)
	<-c.done
	c.wg.Wait()
}

func (c *Coordinator) load(t *broker.Topic) error {
	for _, p := range t.Partitions {
		err := p.Replay(func(b []byte, h recordbatch.Header) error {
			if h.IsControl() {
				return nil
			}
			return recordbatch.Records(b, func(r recordbatch.Record) error {
				id := string(r.Key)
				if r.Value == nil {
					delete(c.mu.txns, id)
					return nil
				}
				var m Metadata
				if err := json.Unmarshal(r.Value, &m); err != nil {
					return fmt.Errorf("record at offset %d: %w", r.Offset, err)
				}
				c.mu.txns[id] = &entry{meta: m}
				return nil
			})
		})
		if err != nil {
			return fmt.Errorf("loading transactions: %w", err)
		}
	}
	c.lg.Info("loaded transactional ids", "count", len(c.mu.txns))
	return nil
}

func (c *Coordinator) ensureTopic() *kerr.Error {
	if c.b.Topic(StateTopic) != nil {
		return nil
	}
	c.topicMu.Lock()
	defer c.topicMu.Unlock()
	if c.b.Topic(StateTopic) != nil {
		return nil
	}
	// NB: retention stays off: a quiet partition's live records are old,
	// and only compaction (compact.go) may drop what they supersede. Its
	// segments are 100 MiB (Kafka's transaction.state.log.segment.bytes),
	// so superseded records go with whole segments soon after a compaction.
	// Preallocated: every EndTxn waits for one fsync of a small append
	// here, which a pre-zeroed extent turns into an fdatasync with no
	// journal commit (about a third less); the zeros cost nothing that
	// matters at this topic's few bytes per transition.
	_, perr := c.b.CreateInternalTopic(StateTopic, c.settings.Partitions, map[string]string{"retention.ms": "-1", "retention.bytes": "-1", "segment.bytes": "104857600", "preallocate": "true"})
	if perr != nil && perr.Code != kerr.TopicAlreadyExists {
		c.lg.Error("creating the transaction state topic failed", "err", perr)
		return kerr.CoordinatorNotAvailable
	}
	return nil
}

// EnsureTopic creates __transaction_state on first use (FindCoordinator).
func (c *Coordinator) EnsureTopic() *kerr.Error { return c.ensureTopic() }

func (c *Coordinator) partitionFor(id string) int32 {
	return partition.CoordinatorPartition(id, c.settings.Partitions)
}

// write persists m durably (or a tombstone when m is nil).
func (c *Coordinator) write(id string, m *Metadata) error {
	if err := c.ensureTopic(); err != nil {
		return err
	}
	p := c.b.Partition(StateTopic, c.partitionFor(id))
	if p == nil {
		return kerr.CoordinatorNotAvailable
	}
	res := <-c.enqueueWrite(p, id, m, partition.AckDurable)
	if res.Err != nil {
		return res.Err
	}
	return nil
}

func (c *Coordinator) enqueueWrite(p *partition.Partition, id string, m *Metadata, ack partition.Ack) <-chan partition.AppendResult {
	var value []byte
	if m != nil {
		var err error
		if value, err = json.Marshal(m); err != nil {
			panic(err)
		}
	}
	ts := c.clk.Now().UnixMilli()
	rec := recordbatch.AppendRecord(nil, recordbatch.Record{Key: []byte(id), Value: value})
	b := recordbatch.Build(recordbatch.Header{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, BaseTimestamp: ts, MaxTimestamp: ts}, [][]byte{rec})
	h, _ := recordbatch.Check(b)
	return p.AppendAck(b, h, ack)
}

// acquireLocked waits (mu held, released while waiting) until id is not
// busy, or, when admitted is set, until it is admitted (see entry.admit).
// It returns the entry, nil if the id is unknown.
func (c *Coordinator) acquireLocked(id string, admitted bool) (*entry, *kerr.Error) {
	// NB: a real-time bound, not the injected clock: it limits how long a
	// request waits for another one's disk write, not a protocol timeout.
	var timeout <-chan time.Time
	for {
		e := c.mu.txns[id]
		if e == nil || !e.busy || (admitted && e.admit) {
			return e, nil
		}
		if timeout == nil {
			t := time.NewTimer(busyWait)
			defer t.Stop()
			timeout = t.C
		}
		done, adm := e.done, e.admitted
		if !admitted {
			adm = nil
		}
		c.mu.Unlock()
		select {
		case <-done:
		case <-adm:
		case <-timeout:
			c.mu.Lock()
			return nil, kerr.ConcurrentTransactions
		}
		c.mu.Lock()
	}
}

func (e *entry) setBusy() {
	e.busy = true
	e.done = make(chan struct{})
	e.admit = false
	e.admitted = make(chan struct{})
}

func (e *entry) setAdmit() {
	e.admit = true
	close(e.admitted)
}

func (e *entry) clearBusy() {
	e.busy = false
	e.admit = false
	close(e.done)
}

// commitTransition writes next for e (busy, mu not held), then installs it.
func (c *Coordinator) commitTransition(e *entry, next Metadata) error {
	if !canTransition(e.meta.State, next.State) && !(e.meta.State == next.State) {
		panic(fmt.Sprintf("txn %s: invalid transition %s -> %s", next.TransactionalID, e.meta.State, next.State))
	}
	if err := c.write(next.TransactionalID, &next); err != nil {
		return err
	}
	c.mu.Lock()
	e.meta = next
	c.mu.Unlock()
	return nil
}

// InitResult is the answer to InitProducerId.
type InitResult struct {
	ProducerID    int64
	ProducerEpoch int16
	Err           *kerr.Error
}

// InitProducerID serves InitProducerId with a transactional id: a new
// producer id for a new id, otherwise the epoch bump that fences the
// previous instance, after aborting its open transaction. producerID and
// epoch are -1 unless the client resumes (KIP-360). Blocking.
func (c *Coordinator) InitProducerID(id string, timeoutMs int32, producerID int64, epoch int16, knowsFenced bool) InitResult {
	fail := func(err *kerr.Error) InitResult { return InitResult{-1, -1, err} }
	if id == "" {
		return fail(kerr.InvalidRequest)
	}
	if timeoutMs <= 0 || time.Duration(timeoutMs)*time.Millisecond > c.settings.MaxTimeout {
		return fail(kerr.InvalidTransactionTimeout)
	}
	if err := c.ensureTopic(); err != nil {
		return fail(err)
	}
	now := c.clk.Now().UnixMilli()
	c.mu.Lock()
	e, kerrv := c.acquireLocked(id, false)
	if kerrv != nil {
		c.mu.Unlock()
		return fail(kerrv)
	}
	if e == nil {
		pid, err := c.b.AllocateProducerID()
		if err != nil {
			c.mu.Unlock()
			return fail(kerr.CoordinatorNotAvailable)
		}
		e = &entry{meta: Metadata{TransactionalID: id, ProducerID: pid, PrevProducerID: -1, ProducerEpoch: -1, LastProducerEpoch: -1, State: Empty, StartMs: -1}}
		c.mu.txns[id] = e
	}
	e.setBusy()
	cur := e.meta.clone()
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if e.meta.ProducerEpoch < 0 {
			// Created above and never made durable (the request
			// failed): forget it, so memory says what a restart loads.
			delete(c.mu.txns, id)
		}
		e.clearBusy()
		c.mu.Unlock()
	}()

	if producerID >= 0 {
		// KIP-360: the client names the producer id and epoch it has.
		switch {
		case cur.ProducerEpoch < 0:
			// The id was unknown (never seen, or expired): "if no
			// mapping exists, the coordinator can generate a new
			// producerId" (KIP-360). It was allocated above.
		case producerID == cur.ProducerID && epoch == cur.ProducerEpoch:
			// Bump below.
		case producerID == cur.ProducerID && epoch == cur.LastProducerEpoch && (cur.State == Empty || cur.State == CompleteAbort || cur.State == CompleteCommit):
			// A retry of an init that already bumped, or the producer
			// whose transaction timed out (KIP-588): it gets the
			// current epoch. NB: MaxInt16 is only ever reached by the
			// timeout fence and is never handed out: the bump below
			// gives a new producer id instead.
			if cur.ProducerEpoch < math.MaxInt16 {
				return InitResult{cur.ProducerID, cur.ProducerEpoch, nil}
			}
		default:
			return fail(fencedError(knowsFenced))
		}
	}
	if cur.State == Ongoing {
		// Fence the previous instance and abort its transaction first.
		if err := c.abortLocked(e, true); err != nil {
			return fail(kerr.ConcurrentTransactions)
		}
		cur = c.snapshot(e)
	}
	next := cur.clone()
	if epochExhausted(next.ProducerEpoch) {
		pid, err := c.b.AllocateProducerID()
		if err != nil {
			return fail(kerr.CoordinatorNotAvailable)
		}
		next.PrevProducerID = next.ProducerID
		next.ProducerID, next.ProducerEpoch, next.LastProducerEpoch = pid, 0, -1
	} else {
		next.LastProducerEpoch = next.ProducerEpoch
		next.ProducerEpoch++
	}
	if producerID < 0 {
		// A new instance: the epoch it fenced must not be taken for a
		// retry. Otherwise the fenced instance, resuming with KIP-360
		// and its old epoch, would be handed this instance's epoch, and
		// two producers would share one (Kafka clears it too).
		next.LastProducerEpoch = -1
	}
	next.TimeoutMs = timeoutMs
	next.State = Empty
	next.Partitions = nil
	next.StartMs = -1
	next.UpdateMs = now
	next.TV2 = false
	if err := c.commitTransition(e, next); err != nil {
		return fail(kerr.CoordinatorNotAvailable)
	}
	return InitResult{next.ProducerID, next.ProducerEpoch, nil}
}

func (c *Coordinator) snapshot(e *entry) Metadata {
	c.mu.Lock()
	defer c.mu.Unlock()
	return e.meta.clone()
}

// checkProducer validates the producer id and epoch of a request against
// the current metadata.
func checkProducer(m *Metadata, producerID int64, epoch int16, knowsFenced bool) *kerr.Error {
	if producerID != m.ProducerID {
		return kerr.InvalidProducerIDMapping
	}
	if epoch < m.ProducerEpoch {
		return fencedError(knowsFenced)
	}
	if epoch > m.ProducerEpoch {
		return kerr.InvalidProducerEpoch
	}
	return nil
}

// AddPartitions serves AddPartitionsToTxn (and AddOffsetsToTxn with the
// group's offsets partition): it makes the partitions part of the open
// transaction, durably, before answering. Blocking.
func (c *Coordinator) AddPartitions(id string, producerID int64, epoch int16, tps []TopicPartition, knowsFenced bool) *kerr.Error {
	c.mu.Lock()
	e, kerrv := c.acquireLocked(id, false)
	if kerrv != nil {
		c.mu.Unlock()
		return kerrv
	}
	if e == nil {
		c.mu.Unlock()
		return kerr.InvalidProducerIDMapping
	}
	if err := checkProducer(&e.meta, producerID, epoch, knowsFenced); err != nil {
		c.mu.Unlock()
		return err
	}
	switch e.meta.State {
	case PrepareCommit, PrepareAbort, PrepareEpochFence:
		c.mu.Unlock()
		return kerr.ConcurrentTransactions
	case Dead:
		c.mu.Unlock()
		return kerr.InvalidProducerIDMapping
	}
	missing := false
	for _, tp := range tps {
		if !e.meta.hasPartition(tp) {
			missing = true
		}
	}
	if !missing && e.meta.State == Ongoing {
		c.mu.Unlock()
		return nil
	}
	next := e.meta.clone()
	next.addPartitions(tps)
	if len(next.Partitions) > MaxPartitionsPerTxn {
		c.mu.Unlock()
		return kerr.InvalidRequest
	}
	now := c.clk.Now().UnixMilli()
	if next.State != Ongoing {
		next.State = Ongoing
		next.StartMs = now
	}
	next.UpdateMs = now
	e.setBusy()
	c.mu.Unlock()
	err := c.commitTransition(e, next)
	c.mu.Lock()
	e.clearBusy()
	c.mu.Unlock()
	if err != nil {
		return kerr.CoordinatorNotAvailable
	}
	return nil
}

// ProduceCheck is the outcome of verifying a transactional produce for one
// partition.
type ProduceCheck struct {
	TP  TopicPartition
	Err *kerr.Error
}

// VerifyAndEnqueue verifies that (producerID, epoch) holds an open
// transaction of id that includes every partition in tps (KIP-890 part 1),
// adding missing ones durably first when implicitAdd (transaction protocol
// v2: Produce v12+, TxnOffsetCommit v5+), and then calls enqueue for each
// verified partition with mu held, so that the batch is queued to its
// partition before any marker of this transaction can be. notAdded is the
// error for a partition not in the transaction (INVALID_TXN_STATE, or
// TRANSACTION_ABORTABLE for request versions that know it).
func (c *Coordinator) VerifyAndEnqueue(id string, producerID int64, epoch int16, tps []TopicPartition, implicitAdd bool, notAdded *kerr.Error, enqueue func(TopicPartition)) map[TopicPartition]*kerr.Error {
	errs := map[TopicPartition]*kerr.Error{}
	failAll := func(err *kerr.Error) map[TopicPartition]*kerr.Error {
		for _, tp := range tps {
			errs[tp] = err
		}
		return errs
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.mu.txns[id]
	if e == nil {
		return failAll(kerr.InvalidProducerIDMapping)
	}
	if implicitAdd {
		var err *kerr.Error
		e, err = c.acquireLocked(id, true)
		if err != nil {
			return failAll(err)
		}
		if e == nil {
			return failAll(kerr.InvalidProducerIDMapping)
		}
	}
	if err := checkProducer(&e.meta, producerID, epoch, true); err != nil {
		if err == kerr.ProducerFenced {
			// A produce from an older epoch: the partition answers
			// this as INVALID_PRODUCER_EPOCH (Kafka 2.7+).
			err = kerr.InvalidProducerEpoch
		}
		return failAll(err)
	}
	var missing []TopicPartition
	for _, tp := range tps {
		if !e.meta.hasPartition(tp) {
			missing = append(missing, tp)
		}
	}
	st := e.meta.State
	switch {
	case st == Ongoing && len(missing) == 0:
	case implicitAdd && (st == Ongoing || st == Empty || st == CompleteCommit || st == CompleteAbort):
		next := e.meta.clone()
		next.addPartitions(missing)
		now := c.clk.Now().UnixMilli()
		if next.State != Ongoing {
			next.State = Ongoing
			next.StartMs = now
			next.TV2 = true
		}
		next.UpdateMs = now
		if e.busy {
			// Admitted: the previous transaction's markers are in
			// their logs, not yet durable, and its Prepare record is
			// the id's last one. The registration stays in memory;
			// finish writes it, as the id's record, once those
			// markers are durable. Until then a crash re-drives the
			// previous transaction, and these batches, found open in
			// their partitions and unaccounted for, are aborted at
			// the next start with the producer fenced
			// (findUnregistered). They are appended behind the
			// markers, so none of them can be taken for part of the
			// previous transaction.
			e.meta = next
			for _, tp := range tps {
				enqueue(tp)
			}
			return errs
		}
		sp := c.b.Partition(StateTopic, c.partitionFor(id))
		if sp == nil {
			return failAll(kerr.CoordinatorNotAvailable)
		}
		// The registration is queued before the batches it announces
		// and not waited for: EndTxn's Prepare record comes after it
		// in the same log, so no transaction is decided before its
		// registration is durable, and the produce waits only for its
		// own batches. NB: a crash can keep a batch and lose the
		// registration; the next start finds the batch open in its
		// partition's producer state and aborts it, fencing the
		// producer (findUnregistered, abortUnregistered).
		// NB: the append's own result is not needed: a failing disk
		// makes the partition fail every later write (logged there),
		// the Prepare record included.
		c.enqueueWrite(sp, id, &next, partition.AckDeferred)
		e.meta = next
		for _, tp := range tps {
			enqueue(tp)
		}
		return errs
	default:
		for _, tp := range tps {
			if st != Ongoing || !e.meta.hasPartition(tp) {
				errs[tp] = notAdded
			}
		}
	}
	for _, tp := range tps {
		if errs[tp] == nil {
			enqueue(tp)
		}
	}
	return errs
}

// EndResult is the answer to EndTxn.
type EndResult struct {
	Err           *kerr.Error
	ProducerID    int64
	ProducerEpoch int16
}

// EndTxn commits or aborts the open transaction: Prepare is written, the
// answer given, and then, in the background, the markers are written to
// every partition and the transaction completes. tv2 is set for EndTxn
// v5+, which bumps the epoch at every end and returns the producer id and
// epoch of the next transaction. Blocks until Prepare is durable.
func (c *Coordinator) EndTxn(id string, producerID int64, epoch int16, commit, tv2, knowsFenced bool) EndResult {
	c.mu.Lock()
	e, kerrv := c.acquireLocked(id, false)
	if kerrv != nil {
		c.mu.Unlock()
		return EndResult{Err: kerrv}
	}
	if e == nil {
		c.mu.Unlock()
		return EndResult{Err: kerr.InvalidProducerIDMapping}
	}
	m := &e.meta
	ok := EndResult{ProducerID: m.ProducerID, ProducerEpoch: m.ProducerEpoch}
	want := CompleteAbort
	if commit {
		want = CompleteCommit
	}
	// A retry of an EndTxn that already finished: the same outcome is
	// success, the other one INVALID_TXN_STATE.
	// Under TV2 the finished transaction bumped the epoch, so the retry
	// carries the previous one. Only an end sets TV2 (InitProducerId
	// clears it), so a fenced zombie's old epoch is never taken for a
	// retry.
	retry := producerID == m.ProducerID && epoch == m.ProducerEpoch
	if m.TV2 {
		retry = (producerID == m.ProducerID && epoch == m.LastProducerEpoch) ||
			(producerID == m.MarkerProducerID && m.MarkerProducerID != m.ProducerID &&
				(epoch == m.MarkerEpoch-1 || epoch == math.MaxInt16 && m.MarkerEpoch == math.MaxInt16))
	}
	if (m.State == CompleteCommit || m.State == CompleteAbort) && retry {
		c.mu.Unlock()
		if m.State == want {
			return ok
		}
		return EndResult{Err: kerr.InvalidTxnState}
	}
	if err := checkProducer(m, producerID, epoch, knowsFenced); err != nil {
		c.mu.Unlock()
		return EndResult{Err: err}
	}
	switch m.State {
	case Ongoing:
	case Empty, CompleteCommit, CompleteAbort:
		if tv2 && !commit {
			// TV2: an abort with nothing added still bumps the epoch.
			break
		}
		c.mu.Unlock()
		return EndResult{Err: kerr.InvalidTxnState}
	default:
		c.mu.Unlock()
		return EndResult{Err: kerr.InvalidTxnState}
	}
	next, err := c.prepared(m, commit, tv2)
	if err != nil {
		c.mu.Unlock()
		return EndResult{Err: kerr.CoordinatorNotAvailable}
	}
	next.UpdateMs = c.clk.Now().UnixMilli()
	e.setBusy()
	c.mu.Unlock()
	if err := c.commitTransition(e, next); err != nil {
		c.mu.Lock()
		e.clearBusy()
		c.mu.Unlock()
		return EndResult{Err: kerr.CoordinatorNotAvailable}
	}
	cur := c.snapshot(e)
	mode := finishStrict
	if tv2 && cur.TV2 {
		// The markers carry the epoch the producer's next transaction
		// uses, which is what lets it start behind them before they
		// are durable (entry.admit; laterTxnOpen after a crash).
		mode = finishAdmit
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.finish(id, mode)
		c.mu.Lock()
		e.clearBusy()
		c.mu.Unlock()
	}()
	return EndResult{ProducerID: cur.ProducerID, ProducerEpoch: cur.ProducerEpoch}
}

// prepared is the Prepare state that EndTxn writes to end m's open
// transaction (tv2: EndTxn v5+, which bumps the epoch).
func (c *Coordinator) prepared(m *Metadata, commit, tv2 bool) (Metadata, error) {
	next := m.clone()
	next.TV2 = next.TV2 || tv2
	next.MarkerProducerID, next.MarkerEpoch = next.ProducerID, next.ProducerEpoch
	if next.TV2 {
		// TV2: the markers carry the bumped epoch, and the next
		// transaction uses it. At the last epoch of a producer id the
		// next transaction gets a new id (KAFKA-5283).
		next.MarkerEpoch = next.ProducerEpoch + 1
		if next.ProducerEpoch == math.MaxInt16 {
			// NB: only after a timeout fence (abortLocked). The
			// bump would wrap to a negative epoch, which the
			// partition takes for an old marker and skips, leaving
			// the transaction open there. The same epoch still ends
			// it, and the next transaction gets a new producer id.
			next.MarkerEpoch = math.MaxInt16
		}
		next.LastProducerEpoch = next.ProducerEpoch
		if epochExhausted(next.ProducerEpoch) {
			pid, err := c.b.AllocateProducerID()
			if err != nil {
				return Metadata{}, err
			}
			next.PrevProducerID = next.ProducerID
			next.ProducerID, next.ProducerEpoch, next.LastProducerEpoch = pid, 0, -1
		} else {
			next.ProducerEpoch++
		}
	}
	if commit {
		next.State = PrepareCommit
	} else {
		next.State = PrepareAbort
	}
	if m.State != Ongoing {
		// TV2 empty abort: nothing to mark; go straight to complete.
		next.State = PrepareAbort
		next.Partitions = nil
	}
	return next, nil
}

// finishMode says how finish treats the producer's next transaction and
// markers already written.
type finishMode int

const (
	// finishStrict: the id stays busy until every marker is durable.
	finishStrict finishMode = iota
	// finishAdmit: once every marker is in its log the id is admitted
	// (entry.admit): the producer's next transaction may register and
	// append behind the markers while their fsyncs run.
	finishAdmit
	// finishRedrive: after a restart; a marker is skipped where the
	// producer's next transaction is already open (laterTxnOpen).
	finishRedrive
)

// finish writes the markers of a prepared transaction (retrying until each
// is durable), then records its completion. The entry must be busy (the
// caller clears it) and in PrepareCommit or PrepareAbort. It reports false
// when the coordinator stopped before every marker was durable: the
// transaction then stays in its Prepare state, for the next start.
func (c *Coordinator) finish(id string, mode finishMode) bool {
	c.mu.Lock()
	e := c.mu.txns[id]
	m := e.meta.clone()
	c.mu.Unlock()
	commit := m.State == PrepareCommit
	pid, epoch := m.MarkerProducerID, m.MarkerEpoch
	failpoint.Hit("txn.after-prepare")
	var wg sync.WaitGroup
	written := make([]bool, len(m.Partitions))
	// durable[i] is set when marker i was answered once written: it then
	// receives the result once the marker is durable.
	durable := make([]<-chan partition.AppendResult, len(m.Partitions))
	for i, tp := range m.Partitions {
		if mode == finishRedrive && c.laterTxnOpen(tp, &m) {
			c.lg.Info("marker already written before the producer's next transaction; not written again", "transactional_id", id, "topic", tp.Topic, "partition", tp.Partition)
			written[i] = true
			continue
		}
		if i == 0 && failpoint.Armed("txn.after-first-marker") {
			// The first marker alone, so a crash test can stop between
			// the first and the others.
			written[i] = c.writeMarker(tp, pid, epoch, commit)
			failpoint.Hit("txn.after-first-marker")
			continue
		}
		wg.Add(1)
		go func(i int, tp TopicPartition) {
			defer wg.Done()
			if mode == finishAdmit {
				written[i], durable[i] = c.writeMarkerEarly(tp, pid, epoch, commit)
				return
			}
			written[i] = c.writeMarker(tp, pid, epoch, commit)
		}(i, tp)
	}
	wg.Wait()
	for _, ok := range written {
		if !ok {
			// NB: recording the completion now would leave the
			// partitions without their marker with a transaction open
			// for good (nothing re-drives a complete transaction).
			c.lg.Warn("stopping with transaction markers unwritten; the transaction is completed at the next start", "transactional_id", id)
			return false
		}
	}
	next := m.clone()
	if commit {
		next.State = CompleteCommit
	} else {
		next.State = CompleteAbort
	}
	next.Partitions = nil
	next.StartMs = -1
	next.UpdateMs = c.clk.Now().UnixMilli()
	if mode == finishAdmit {
		c.mu.Lock()
		e.meta = next
		e.setAdmit()
		c.mu.Unlock()
		for i, ch := range durable {
			if ch == nil {
				continue
			}
			tp := m.Partitions[i]
			res := <-ch
			if res.Err != nil {
				// NB: not written again: the producer's next
				// transaction may be behind it in the log. A failed
				// fsync fails the partition until the restart, which
				// re-drives this transaction (finishRedrive).
				c.lg.Warn("transaction marker not durable; the transaction is completed at the next start", "transactional_id", id, "topic", tp.Topic, "partition", tp.Partition, "err", res.Err)
				<-c.stop
				return false
			}
			c.markerDurable(tp, pid, commit, res.BaseOffset)
		}
	}
	failpoint.Hit("txn.after-markers")
	p := c.b.Partition(StateTopic, c.partitionFor(id))
	c.mu.Lock()
	if mode == finishAdmit {
		// The id's current state: the completion, or the next
		// transaction's registration admitted meanwhile.
		next = e.meta.clone()
	}
	e.meta = next
	if p != nil {
		// Not waited for, and not fsynced on its own (AckDeferred): any
		// later transition of this id is written to the same partition
		// after this record and syncs it, and if a crash loses it,
		// recovery finds the Prepare record and re-drives the markers,
		// which are idempotent. This takes one fsync off every commit.
		// Enqueued under mu, so no later record of the id precedes it.
		wait := c.enqueueWrite(p, id, &next, partition.AckDeferred)
		go func() {
			if res := <-wait; res.Err != nil {
				c.lg.Warn("writing transaction completion failed; it is re-driven at the next start", "transactional_id", id, "err", res.Err)
			}
		}()
	}
	c.mu.Unlock()
	return true
}

// laterTxnOpen reports whether the producer of prepared transaction m has
// a later transaction open in tp. Under TV2 the markers carry the epoch
// EndTxn gave the producer for its next transaction, which could append
// only behind them (entry.admit): a transaction open at that epoch or
// later means a crash kept that next transaction's batches and lost the
// record completing m. m's marker is then before them in the log, and
// writing it again would end the wrong transaction. (At the last epoch
// the next transaction has a new producer id, so the test cannot
// confuse the two.)
func (c *Coordinator) laterTxnOpen(tp TopicPartition, m *Metadata) bool {
	p := c.b.Partition(tp.Topic, tp.Partition)
	if p == nil {
		return false
	}
	for _, pe := range p.Producers() {
		if openIsLater(m, pe) {
			return true
		}
	}
	return false
}

// openIsLater reports whether pe holds a transaction of m's producer
// opened after m (see laterTxnOpen).
func openIsLater(m *Metadata, pe partition.ProducerEntry) bool {
	prepared := m.State == PrepareCommit || m.State == PrepareAbort
	return prepared && m.TV2 && m.MarkerEpoch < math.MaxInt16 && pe.ProducerID == m.MarkerProducerID &&
		pe.CurrentTxnFirstOffset >= 0 && pe.ProducerEpoch >= m.MarkerEpoch
}

// writeMarkerEarly appends one marker and reports once it is in the log,
// with the channel that gets its durable result. A marker that cannot be
// appended is retried as writeMarker does, and comes back durable (nil
// channel), or not written when the coordinator stops.
func (c *Coordinator) writeMarkerEarly(tp TopicPartition, pid int64, epoch int16, commit bool) (bool, <-chan partition.AppendResult) {
	p := c.b.Partition(tp.Topic, tp.Partition)
	if p == nil {
		return c.writeMarker(tp, pid, epoch, commit), nil
	}
	res, durable := p.AppendMarkerEarly(pid, epoch, commit, c.clk.Now().UnixMilli())
	if res.Err != nil {
		return c.writeMarker(tp, pid, epoch, commit), nil
	}
	return true, durable
}

// markerDurable passes a durable marker in an offsets partition on to the
// group coordinator.
func (c *Coordinator) markerDurable(tp TopicPartition, pid int64, commit bool, offset int64) {
	if tp.Topic == c.groups.OffsetsTopic() {
		c.groups.CompleteTxn(tp.Partition, pid, commit, offset)
	}
}

// writeMarker appends one marker, retrying until it is durable or the
// partition no longer exists (true), or the coordinator stops (false).
func (c *Coordinator) writeMarker(tp TopicPartition, pid int64, epoch int16, commit bool) bool {
	for attempt := 0; ; attempt++ {
		p := c.b.Partition(tp.Topic, tp.Partition)
		if p == nil {
			c.lg.Warn("transaction partition no longer exists; skipping its marker", "topic", tp.Topic, "partition", tp.Partition)
			return true
		}
		res := p.AppendMarker(pid, epoch, commit, c.clk.Now().UnixMilli())
		if res.Err == nil {
			c.markerDurable(tp, pid, commit, res.BaseOffset)
			return true
		}
		c.lg.Warn("writing transaction marker failed; retrying", "topic", tp.Topic, "partition", tp.Partition, "attempt", attempt, "err", res.Err)
		select {
		case <-c.stop:
			return false
		case <-time.After(markerRetryBackoff):
		}
	}
}

// errStopped is abortLocked's answer when the coordinator stopped before
// the abort's markers were durable.
var errStopped = errors.New("transaction coordinator stopped")

// abortLocked aborts e's open transaction (e busy, mu not held), bumping the
// epoch first when fence is set (timeouts and a new instance's
// InitProducerId), so that the old producer's later requests are refused.
func (c *Coordinator) abortLocked(e *entry, fence bool) error {
	cur := c.snapshot(e)
	if cur.State != Ongoing {
		return nil
	}
	next := cur.clone()
	// NB: the fence may take the epoch to MaxInt16 (from the exhausted
	// MaxInt16-1). Not bumping there would leave a timed-out producer
	// its epoch: unaware of the abort, its next AddPartitionsToTxn would
	// open a new transaction, and what it believes is one transaction
	// would be committed in part. The producer then needs InitProducerId,
	// which gives it a new producer id.
	if fence && next.ProducerEpoch < math.MaxInt16 {
		next.LastProducerEpoch = next.ProducerEpoch
		next.ProducerEpoch++
	}
	next.MarkerProducerID, next.MarkerEpoch = next.ProducerID, next.ProducerEpoch
	next.State = PrepareAbort
	next.UpdateMs = c.clk.Now().UnixMilli()
	if err := c.commitTransition(e, next); err != nil {
		return err
	}
	if !c.finish(next.TransactionalID, finishStrict) {
		return errStopped
	}
	return nil
}

func (c *Coordinator) run() {
	defer close(c.done)
	lastExpiry := c.clk.Now()
	for {
		select {
		case <-c.stop:
			return
		case <-c.clk.After(timeoutCheckInterval):
		}
		now := c.clk.Now()
		c.AbortExpired(now)
		c.Compact(now)
		if now.Sub(lastExpiry) > time.Minute {
			c.ExpireIDs(now)
			lastExpiry = now
		}
	}
}

// AbortExpired aborts every transaction open longer than its timeout.
func (c *Coordinator) AbortExpired(now time.Time) {
	c.mu.Lock()
	var expired []string
	for id, e := range c.mu.txns {
		m := &e.meta
		if !e.busy && m.State == Ongoing && now.UnixMilli() > m.StartMs+int64(m.TimeoutMs) {
			expired = append(expired, id)
		}
	}
	c.mu.Unlock()
	for _, id := range expired {
		c.mu.Lock()
		e, err := c.acquireLocked(id, false)
		if err != nil || e == nil || e.meta.State != Ongoing || now.UnixMilli() <= e.meta.StartMs+int64(e.meta.TimeoutMs) {
			c.mu.Unlock()
			continue
		}
		e.setBusy()
		c.mu.Unlock()
		c.lg.Info("aborting timed-out transaction", "transactional_id", id)
		if err := c.abortLocked(e, true); err != nil {
			c.lg.Warn("aborting timed-out transaction failed", "transactional_id", id, "err", err)
		}
		c.mu.Lock()
		e.clearBusy()
		c.mu.Unlock()
	}
}

// ExpireIDs forgets transactional ids idle longer than
// transactional.id.expiration.ms with no open transaction.
func (c *Coordinator) ExpireIDs(now time.Time) {
	c.mu.Lock()
	var expired []string
	for id, e := range c.mu.txns {
		m := &e.meta
		idle := m.State == Empty || m.State == CompleteCommit || m.State == CompleteAbort
		if !e.busy && idle && now.UnixMilli()-m.UpdateMs > c.settings.IDExpiration.Milliseconds() {
			expired = append(expired, id)
		}
	}
	c.mu.Unlock()
	for _, id := range expired {
		// The id is busy while its tombstone is written, so an
		// InitProducerId arriving meanwhile waits and then starts afresh
		// instead of being forgotten with it.
		c.mu.Lock()
		e := c.mu.txns[id]
		if e == nil || e.busy {
			c.mu.Unlock()
			continue
		}
		e.setBusy()
		c.mu.Unlock()
		err := c.write(id, nil)
		c.mu.Lock()
		if err == nil {
			delete(c.mu.txns, id)
		}
		e.clearBusy()
		c.mu.Unlock()
		if err == nil {
			c.lg.Info("expired transactional id", "transactional_id", id)
		}
	}
}

// Describe returns the metadata of id.
func (c *Coordinator) Describe(id string) (Metadata, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.mu.txns[id]
	if e == nil {
		return Metadata{}, false
	}
	return e.meta.clone(), true
}

// ListFilter selects transactions for ListTransactions.
type ListFilter struct {
	States      []string
	ProducerIDs []int64
	MinDuration time.Duration // only transactions open at least this long (v1)
	Pattern     *regexp.Regexp
}

// List returns the transactions matching f, sorted by id.
func (c *Coordinator) List(f ListFilter, now time.Time) []Metadata {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Metadata
	for _, e := range c.mu.txns {
		m := &e.meta
		if len(f.States) > 0 && !containsString(f.States, m.State.String()) {
			continue
		}
		if len(f.ProducerIDs) > 0 && !containsInt64(f.ProducerIDs, m.ProducerID) {
			continue
		}
		if f.MinDuration > 0 && (m.StartMs < 0 || now.UnixMilli()-m.StartMs < f.MinDuration.Milliseconds()) {
			continue
		}
		if f.Pattern != nil && !f.Pattern.MatchString(m.TransactionalID) {
			continue
		}
		out = append(out, m.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TransactionalID < out[j].TransactionalID })
	return out
}

func containsString(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func containsInt64(s []int64, v int64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
