package txn

// Golden-file tests of the transaction coordinator (STYLE habit 14).
//
// Each file in testdata/ is a script: blocks of one command, a "----" line
// and the output the command must produce, separated by blank lines. Lines
// starting with '#' before a command are comments and are kept on rewrite.
// `go test ./internal/txn -run TestGolden -rewrite` regenerates the
// expectations from the current behaviour; read the diff before committing.
//
// The pieces are the real ones, on a temporary directory: a broker
// (partitions, producer state, __transaction_state), a group coordinator and
// the transaction coordinator. The harness owns what they do not:
//
//   - Time. The clock starts at goldenStart and moves only with `advance`.
//     Its After never fires, so neither the coordinator's timeout sweep nor
//     the partitions' maintenance runs on its own: `advance` calls
//     AbortExpired and `expire` calls ExpireIDs, at the harness's time.
//     (clock.Manual would fire those loops on Advance, concurrently with
//     the harness, and the output would depend on scheduling.)
//   - Delivery. Requests are made one at a time, in script order; a delayed
//     or retried request is simply written later in the script. Every
//     request names its version ([vN]); what the version changes is the
//     same as in internal/server (see the defaults below).
//   - Durability. After every command the harness waits until the
//     __transaction_state log says the same as the coordinator's memory
//     for every transactional id (the completion record is written after
//     EndTxn answers), and fails the test if it never does. `restart` thus
//     never races a write, and the check doubles as an invariant: what the
//     coordinator acts on is what a restart would load.
//   - Sequences. Each produce appends one transactional batch of one record
//     per partition with the next sequence of (producer id, epoch,
//     partition); the sequence advances only when the append succeeds.
//
// After every command a line starting with "~" shows each transactional
// id whose summary changed (producer id, epoch, last epoch, state,
// partitions), or "gone" when it was forgotten.
//
// Commands (durations in Go syntax):
//
//	topic NAME partitions=N
//	init id=ID timeout=D [pid=N epoch=N] [vN]      InitProducerId, v4 by default
//	    (PRODUCER_FENCED from v4, INVALID_PRODUCER_EPOCH before)
//	add id=ID pid=N epoch=N tps=T/P,... [vN]       AddPartitionsToTxn, v3 by default
//	    (PRODUCER_FENCED from v2)
//	produce id=ID pid=N epoch=N tps=T/P,... [vN]    transactional Produce, v11 by default
//	    (TRANSACTION_ABORTABLE for a partition not in the transaction from
//	    v11, INVALID_TXN_STATE before; v12+ adds partitions implicitly)
//	end id=ID pid=N epoch=N commit|abort [vN]      EndTxn, v4 by default
//	    (PRODUCER_FENCED from v2; v5 is transaction protocol v2 and prints
//	    the producer id and epoch it returns)
//	advance D                                       move the clock, then AbortExpired
//	expire                                          ExpireIDs at the current time
//	describe id=ID
//	list
//	partition T/P       high watermark, LSO, every batch, aborted index, producers
//	restart             close everything, reopen on the same directory, print the txns
//	fail-writes T/P     every later write and fsync of the partition's files fails
//	                    (until the next restart: the disk is back after it)
//	end ... async       EndTxn without waiting for its answer: it is printed
//	                    when it comes, at the latest during the next restart
//
// Test-only commands (no production hook; they use the package's own
// unexported pieces):
//
//	set-epoch id=ID epoch=N
//	    durably set the producer epoch of an idle id (to reach the epoch limit)
//	prepare id=ID commit|abort [vN]
//	    write the Prepare record of the open transaction as EndTxn (v4 by
//	    default; v5 bumps the epoch) does, and stop there: what a crash
//	    right after it leaves behind
//	marker T/P pid=N epoch=N commit|abort
//	    append one marker by hand, as the coordinator would
//	orphan T/P id=ID pid=N epoch=N
//	    append the next transactional batch of (pid, epoch) to the
//	    partition without the coordinator: what a crash leaves when a
//	    Produce v12+ batch reached the disk and its registration, written
//	    beside it, did not

import (
	"encoding/json"
	"fmt"
	"github.com/oncelog/oncelog/internal/clock"
	"github.com/oncelog/oncelog/internal/golden"
	"log/slog"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oncelog/oncelog/internal/broker"
	"github.com/oncelog/oncelog/internal/config"
	"github.com/oncelog/oncelog/internal/group"
	"github.com/oncelog/oncelog/internal/partition"
	"github.com/oncelog/oncelog/internal/recordbatch"
	"github.com/oncelog/oncelog/internal/vfs"
	"github.com/twmb/franz-go/pkg/kerr"
)

func TestGolden(t *testing.T) {
	for _, f := range golden.Files(t) {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runGoldenFile(t, f) })
	}
}

func runGoldenFile(t *testing.T, path string) {
	h := newHarness(t)
	defer h.close()
	golden.Run(t, path, func(path string, line int, cmd string) string { return h.run(fmt.Sprintf("%s:%d", path, line), cmd) })
}

var goldenStart = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

type seqKey struct {
	pid   int64
	epoch int16
	tp    TopicPartition
}

// harness drives the real coordinator for one golden file.
type harness struct {
	t   *testing.T
	dir string
	clk *clock.Still
	lg  *slog.Logger

	b *broker.Broker
	g *group.Coordinator
	c *Coordinator

	seqs      map[seqKey]int32
	summaries map[string]string

	cClosed bool
	// pending receives the answer of an `end ... async`.
	pending chan string

	faults struct {
		sync.Mutex
		dirs []string
	}
}

// inject fails writes and fsyncs under the directories of fail-writes.
func (h *harness) inject(op, path string) error {
	if op != vfs.OpWrite && op != vfs.OpSync && op != vfs.OpSyncDir {
		return nil
	}
	h.faults.Lock()
	defer h.faults.Unlock()
	for _, d := range h.faults.dirs {
		if strings.HasPrefix(path, d+string(filepath.Separator)) || path == d {
			return vfs.ErrInjected
		}
	}
	return nil
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, dir: t.TempDir(), clk: clock.NewStill(goldenStart),
		lg: slog.New(slog.DiscardHandler), seqs: map[seqKey]int32{}, summaries: map[string]string{}}
	h.open()
	return h
}

func (h *harness) open() {
	cfg := config.Default()
	cfg.DataDir = h.dir
	b, err := broker.Open(broker.Options{Config: cfg, FS: vfs.NewFaultFS(vfs.OS, h.inject), Clock: h.clk, Logger: h.lg})
	if err != nil {
		h.t.Fatal(err)
	}
	g, err := group.New(group.Options{Broker: b, Clock: h.clk, Logger: h.lg, Partitions: 1})
	if err != nil {
		h.t.Fatal(err)
	}
	// One state partition keeps the log easy to read in settle.
	c, err := New(Options{Broker: b, Groups: g, Clock: h.clk, Logger: h.lg,
		Settings: Settings{MaxTimeout: cfg.TransactionMaxTimeout, IDExpiration: cfg.TransactionalIDExpiration, Partitions: 1}})
	if err != nil {
		h.t.Fatal(err)
	}
	// Let the re-driven transactions of New finish before anything else.
	c.wg.Wait()
	h.b, h.g, h.c, h.cClosed = b, g, c, false
}

func (h *harness) close() {
	if h.c == nil {
		return
	}
	h.closeCoordinator()
	h.g.Close()
	h.faults.Lock()
	h.faults.dirs = nil
	h.faults.Unlock()
	if err := h.b.Close(); err != nil {
		h.t.Errorf("closing the broker: %v", err)
	}
	h.b, h.g, h.c = nil, nil, nil
}

// closeCoordinator closes the coordinator once.
func (h *harness) closeCoordinator() {
	if !h.cClosed {
		h.c.Close()
		h.cClosed = true
	}
}

// args are a command's key=value arguments and bare words.
type args struct {
	kv    map[string]string
	words []string
}

func parseArgs(fields []string) args {
	a := args{kv: map[string]string{}}
	for _, f := range fields {
		if k, v, ok := strings.Cut(f, "="); ok {
			a.kv[k] = v
		} else {
			a.words = append(a.words, f)
		}
	}
	return a
}

// cmdError aborts one command with a message for the test log.
type cmdError string

func (h *harness) run(where, cmd string) (out string) {
	fields := strings.Fields(cmd)
	a := parseArgs(fields[1:])
	var lines []string
	p := func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }
	defer func() {
		if r := recover(); r != nil {
			msg, ok := r.(cmdError)
			if !ok {
				panic(r)
			}
			h.t.Fatalf("%s: %s: %s", where, cmd, msg)
		}
	}()
	switch fields[0] {
	case "topic":
		n := a.int("partitions", 1)
		if _, err := h.b.CreateTopic(a.word(0), int32(n), nil, false); err != nil {
			p("error: %v", err)
		} else {
			p("ok")
		}
	case "init":
		v := a.version(4)
		pid, epoch := int64(-1), int16(-1)
		if _, ok := a.kv["pid"]; ok {
			pid, epoch = int64(a.int("pid", 0)), int16(a.int("epoch", 0))
		}
		r := h.c.InitProducerID(a.str("id"), int32(a.dur("timeout").Milliseconds()), pid, epoch, v >= 4)
		if r.Err != nil {
			p("error: %s", r.Err.Message)
		} else {
			p("ok pid=%d epoch=%d", r.ProducerID, r.ProducerEpoch)
		}
	case "add":
		v := a.version(3)
		err := h.c.AddPartitions(a.str("id"), int64(a.int("pid", 0)), int16(a.int("epoch", 0)), a.tps(), v >= 2)
		p("%s", okOr(err))
	case "produce":
		lines = append(lines, h.produce(a)...)
	case "end":
		v := a.version(4)
		commit := a.has("commit")
		if !commit && !a.has("abort") {
			panic(cmdError("end needs commit or abort"))
		}
		id, pid, epoch := a.str("id"), int64(a.int("pid", 0)), int16(a.int("epoch", 0))
		answer := func() string {
			r := h.c.EndTxn(id, pid, epoch, commit, v >= 5, v >= 2)
			switch {
			case r.Err != nil:
				return "error: " + r.Err.Message
			case v >= 5:
				return fmt.Sprintf("ok pid=%d epoch=%d", r.ProducerID, r.ProducerEpoch)
			default:
				return "ok"
			}
		}
		if !a.has("async") {
			p("%s", answer())
			break
		}
		h.pending = make(chan string, 1)
		go func(ch chan string) { ch <- answer() }(h.pending)
		// Wait until it is in flight: Prepare is durable.
		for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
			if m, ok := h.c.Describe(id); ok && (m.State == PrepareCommit || m.State == PrepareAbort) {
				break
			}
			select {
			case r := <-h.pending:
				h.pending = nil
				p("answered at once: %s", r)
			default:
			}
			if h.pending == nil || time.Now().After(deadline) {
				break
			}
		}
		if h.pending != nil {
			p("in flight")
		}
	case "advance":
		d, err := time.ParseDuration(a.word(0))
		if err != nil {
			panic(cmdError(err.Error()))
		}
		h.clk.Advance(d)
		h.c.AbortExpired(h.clk.Now())
		p("now=+%s", h.clk.Now().Sub(goldenStart))
	case "expire":
		h.c.ExpireIDs(h.clk.Now())
		p("ok")
	case "describe":
		m, ok := h.c.Describe(a.str("id"))
		if !ok {
			p("unknown")
			break
		}
		lines = append(lines, describe(m)...)
	case "list":
		for _, m := range h.c.List(ListFilter{}, h.clk.Now()) {
			p("%s", summary(m))
		}
		if len(lines) == 0 {
			p("none")
		}
	case "partition":
		lines = append(lines, h.partition(parseTP(a.word(0)))...)
	case "fail-writes":
		tp := parseTP(a.word(0))
		h.faults.Lock()
		h.faults.dirs = append(h.faults.dirs, filepath.Join(h.dir, tp.Topic+"-"+strconv.Itoa(int(tp.Partition))))
		h.faults.Unlock()
		p("ok")
	case "restart":
		if h.pending != nil {
			// The coordinator stops first; the answer must come by then.
			h.closeCoordinator()
			select {
			case r := <-h.pending:
				p("end answered: %s", r)
			case <-time.After(5 * time.Second):
				panic(cmdError("the EndTxn in flight was not answered when the coordinator closed"))
			}
			h.pending = nil
		}
		h.close()
		h.open()
		for _, m := range h.c.List(ListFilter{}, h.clk.Now()) {
			p("%s", summary(m))
		}
		if len(lines) == 0 {
			p("no transactional ids")
		}
	case "set-epoch":
		lines = append(lines, h.setEpoch(a.str("id"), int16(a.int("epoch", 0)))...)
	case "prepare":
		lines = append(lines, h.prepare(a.str("id"), a.has("commit"), a.version(4) >= 5)...)
	case "marker":
		tp := parseTP(a.word(0))
		part := h.b.Partition(tp.Topic, tp.Partition)
		if part == nil {
			panic(cmdError("no partition " + a.word(0)))
		}
		res := part.AppendMarker(int64(a.int("pid", 0)), int16(a.int("epoch", 0)), a.has("commit"), h.clk.Now().UnixMilli())
		if res.Err != nil {
			p("error: %s", res.Err.Message)
		} else {
			p("ok offset=%d", res.BaseOffset)
		}
	case "orphan":
		tp := parseTP(a.word(0))
		part := h.b.Partition(tp.Topic, tp.Partition)
		if part == nil {
			panic(cmdError("no partition " + a.word(0)))
		}
		pid, epoch := int64(a.int("pid", 0)), int16(a.int("epoch", 0))
		batch, hdr := h.txnBatch(a.str("id"), pid, epoch, tp)
		res := <-part.Append(batch, hdr)
		if res.Err != nil {
			p("error: %s", res.Err.Message)
			break
		}
		h.seqs[seqKey{pid, epoch, tp}]++
		p("ok offset=%d", res.BaseOffset)
	default:
		panic(cmdError("unknown command"))
	}
	lines = append(lines, h.settle(where)...)
	lines = append(lines, h.changes()...)
	return strings.Join(lines, "\n")
}

func okOr(err *kerr.Error) string {
	if err != nil {
		return "error: " + err.Message
	}
	return "ok"
}

// produce verifies and appends one transactional batch per partition, the
// way the Produce handler does: the appends are queued inside
// VerifyAndEnqueue's callback, then waited for.
func (h *harness) produce(a args) []string {
	v := a.version(11)
	id, pid, epoch := a.str("id"), int64(a.int("pid", 0)), int16(a.int("epoch", 0))
	tps := a.tps()
	notAdded := kerr.InvalidTxnState
	if v >= 11 {
		notAdded = kerr.TransactionAbortable
	}
	waits := map[TopicPartition]<-chan partition.AppendResult{}
	errs := h.c.VerifyAndEnqueue(id, pid, epoch, tps, v >= 12, notAdded, func(tp TopicPartition) {
		p := h.b.Partition(tp.Topic, tp.Partition)
		if p == nil {
			panic(cmdError("no partition " + tp.Topic))
		}
		batch, hdr := h.txnBatch(id, pid, epoch, tp)
		waits[tp] = p.Append(batch, hdr)
	})
	var lines []string
	for _, tp := range tps {
		if err := errs[tp]; err != nil {
			lines = append(lines, fmt.Sprintf("%s: error: %s", tp, err.Message))
			continue
		}
		w, ok := waits[tp]
		if !ok {
			lines = append(lines, fmt.Sprintf("%s: neither refused nor enqueued", tp))
			continue
		}
		res := <-w
		if res.Err != nil {
			lines = append(lines, fmt.Sprintf("%s: append error: %s", tp, res.Err.Message))
			continue
		}
		h.seqs[seqKey{pid, epoch, tp}]++
		lines = append(lines, fmt.Sprintf("%s: offset=%d", tp, res.BaseOffset))
	}
	return lines
}

// txnBatch builds the next transactional batch of (pid, epoch) for tp: one
// record whose value is the transactional id.
func (h *harness) txnBatch(id string, pid int64, epoch int16, tp TopicPartition) ([]byte, recordbatch.Header) {
	ts := h.clk.Now().UnixMilli()
	rec := recordbatch.AppendRecord(nil, recordbatch.Record{Value: []byte(id)})
	batch := recordbatch.Build(recordbatch.Header{
		PartitionLeaderEpoch: -1,
		Attributes:           recordbatch.AttrTransactional,
		BaseTimestamp:        ts,
		MaxTimestamp:         ts,
		ProducerID:           pid,
		ProducerEpoch:        epoch,
		BaseSequence:         h.seqs[seqKey{pid, epoch, tp}],
	}, [][]byte{rec})
	hdr, err := recordbatch.Check(batch)
	if err != nil {
		panic(cmdError(err.Error()))
	}
	return batch, hdr
}

func (tp TopicPartition) String() string { return tp.Topic + "/" + strconv.Itoa(int(tp.Partition)) }

// partition prints one partition: its bounds, every batch of its log, the
// aborted-transaction index and the producer table.
func (h *harness) partition(tp TopicPartition) []string {
	p := h.b.Partition(tp.Topic, tp.Partition)
	if p == nil {
		return []string{"no such partition"}
	}
	off := p.Offsets()
	lines := []string{fmt.Sprintf("%s hw=%d lso=%d", tp, off.HighWatermark, off.LastStableOffset)}
	for _, b := range h.batches(p) {
		h := b.h
		switch {
		case h.IsControl():
			commit, _, err := recordbatch.ParseControl(b.raw)
			kind := "abort"
			if err != nil {
				kind = "bad-control"
			} else if commit {
				kind = "commit"
			}
			lines = append(lines, fmt.Sprintf("  %d %s pid=%d epoch=%d", h.BaseOffset, kind, h.ProducerID, h.ProducerEpoch))
		default:
			lines = append(lines, fmt.Sprintf("  %d data pid=%d epoch=%d seq=%d", h.BaseOffset, h.ProducerID, h.ProducerEpoch, h.BaseSequence))
		}
	}
	for _, a := range p.AbortedTxns() {
		lines = append(lines, fmt.Sprintf("  aborted pid=%d %d-%d", a.ProducerID, a.FirstOffset, a.LastOffset))
	}
	for _, e := range p.Producers() {
		lines = append(lines, fmt.Sprintf("  producer pid=%d epoch=%d txn-first=%d", e.ProducerID, e.ProducerEpoch, e.CurrentTxnFirstOffset))
	}
	return lines
}

type rawBatch struct {
	h   recordbatch.Header
	raw []byte
}

func (h *harness) batches(p *partition.Partition) []rawBatch {
	var out []rawBatch
	off := p.Offsets().LogStartOffset
	for {
		res := p.Fetch(off, 1<<20, false)
		if res.Err != nil {
			panic(cmdError(fmt.Sprintf("fetch %s-%d at %d: %v", p.Topic, p.Index, off, res.Err)))
		}
		if len(res.Records) == 0 {
			return out
		}
		err := recordbatch.Split(res.Records, func(b []byte) error {
			hdr, err := recordbatch.ParseHeader(b)
			if err != nil {
				return err
			}
			out = append(out, rawBatch{hdr, append([]byte(nil), b...)})
			off = hdr.LastOffset() + 1
			return nil
		})
		if err != nil {
			panic(cmdError(err.Error()))
		}
	}
}

// durable reads the coordinator's state as a restart would load it.
func (h *harness) durable() map[string]Metadata {
	out := map[string]Metadata{}
	t := h.b.Topic(StateTopic)
	if t == nil {
		return out
	}
	for _, p := range t.Partitions {
		for _, b := range h.batches(p) {
			if b.h.IsControl() {
				continue
			}
			err := recordbatch.Records(b.raw, func(r recordbatch.Record) error {
				if r.Value == nil {
					delete(out, string(r.Key))
					return nil
				}
				var m Metadata
				if err := json.Unmarshal(r.Value, &m); err != nil {
					return err
				}
				out[string(r.Key)] = m
				return nil
			})
			if err != nil {
				panic(cmdError(err.Error()))
			}
		}
	}
	return out
}

func (h *harness) memory() map[string]Metadata {
	out := map[string]Metadata{}
	for _, m := range h.c.List(ListFilter{}, h.clk.Now()) {
		out[m.TransactionalID] = m
	}
	return out
}

func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// completesTo reports whether the durable Prepare state d becomes the
// in-memory Complete state m when recovery re-drives it.
func completesTo(d, m Metadata) bool {
	want := map[State]State{PrepareCommit: CompleteCommit, PrepareAbort: CompleteAbort}[d.State]
	if d.State != PrepareCommit && d.State != PrepareAbort || m.State != want {
		return false
	}
	return d.ProducerID == m.ProducerID && d.ProducerEpoch == m.ProducerEpoch &&
		d.LastProducerEpoch == m.LastProducerEpoch && d.PrevProducerID == m.PrevProducerID &&
		d.MarkerProducerID == m.MarkerProducerID && d.MarkerEpoch == m.MarkerEpoch &&
		d.TimeoutMs == m.TimeoutMs && d.TV2 == m.TV2
}

// registersTo reports whether the in-memory state m is the durable state d
// with partitions registered by Produce v12+: that registration is written
// without an fsync of its own (EndTxn's Prepare record syncs it), and one a
// crash loses has its batches aborted at the next start (findUnregistered).
func registersTo(d, m Metadata) bool {
	if m.State != Ongoing || !m.TV2 || d.ProducerID != m.ProducerID || d.ProducerEpoch != m.ProducerEpoch || d.TimeoutMs != m.TimeoutMs {
		return false
	}
	switch d.State {
	case Ongoing:
		for _, tp := range d.Partitions {
			if !m.hasPartition(tp) {
				return false
			}
		}
		return true
	case Empty, CompleteCommit, CompleteAbort, PrepareCommit, PrepareAbort:
		return true
	}
	return false
}

// settle waits until the durable state equals the coordinator's memory. If
// it never does, the difference is part of the output (and the test fails
// even with -rewrite).
func (h *harness) settle(where string) []string {
	deadline := time.Now().Add(2 * time.Second)
	// EndTxn answers once Prepare is durable and writes the markers
	// after; wait for them, unless a partition was made to fail (its
	// marker is retried until the next restart).
	h.faults.Lock()
	faulty := len(h.faults.dirs) > 0
	h.faults.Unlock()
	for !faulty && h.anyBusy() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	for {
		mem, dur := h.memory(), h.durable()
		for id, d := range dur {
			// The completion record is written without an fsync of its
			// own (AckDeferred): until the next write syncs it, the
			// durable state is the Prepare record, which a restart
			// completes to exactly this.
			if m, ok := mem[id]; ok && (completesTo(d, m) || registersTo(d, m)) {
				dur[id] = m
			}
		}
		if jsonOf(mem) == jsonOf(dur) {
			return nil
		}
		if time.Now().After(deadline) {
			var lines []string
			for id, m := range mem {
				if d, ok := dur[id]; !ok || jsonOf(d) != jsonOf(m) {
					lines = append(lines, "! in memory, not durable: "+summary(m))
				}
			}
			for id, d := range dur {
				if _, ok := mem[id]; !ok {
					lines = append(lines, "! durable, not in memory: "+summary(d))
				}
			}
			sort.Strings(lines)
			h.t.Errorf("%s: the coordinator's memory and __transaction_state disagree:\n%s", where, strings.Join(lines, "\n"))
			return lines
		}
		time.Sleep(time.Millisecond)
	}
}

// anyBusy reports whether a change of some transactional id is in flight.
func (h *harness) anyBusy() bool {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	for _, e := range h.c.mu.txns {
		if e.busy {
			return true
		}
	}
	return false
}

// changes reports the transactional ids whose summary changed.
func (h *harness) changes() []string {
	now := map[string]string{}
	for id, m := range h.memory() {
		now[id] = summary(m)
	}
	var ids []string
	for id := range now {
		ids = append(ids, id)
	}
	for id := range h.summaries {
		if _, ok := now[id]; !ok {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	var lines []string
	for _, id := range ids {
		s, ok := now[id]
		switch {
		case !ok:
			lines = append(lines, "~ "+id+" gone")
		case s != h.summaries[id]:
			lines = append(lines, "~ "+s)
		}
	}
	h.summaries = now
	return lines
}

func tpList(tps []TopicPartition) string {
	s := make([]string, len(tps))
	for i, tp := range tps {
		s[i] = tp.String()
	}
	return "[" + strings.Join(s, " ") + "]"
}

func summary(m Metadata) string {
	s := fmt.Sprintf("%s pid=%d epoch=%d last=%d %s %s", m.TransactionalID, m.ProducerID, m.ProducerEpoch, m.LastProducerEpoch, m.State, tpList(m.Partitions))
	if m.PrevProducerID >= 0 {
		s += fmt.Sprintf(" prev-pid=%d", m.PrevProducerID)
	}
	if m.TV2 {
		s += " tv2"
	}
	return s
}

func rel(ms int64) string {
	if ms < 0 {
		return "-"
	}
	return "+" + time.UnixMilli(ms).Sub(goldenStart).String()
}

func describe(m Metadata) []string {
	return []string{
		summary(m),
		fmt.Sprintf("  timeout=%s started=%s updated=%s marker=%d/%d", time.Duration(m.TimeoutMs)*time.Millisecond, rel(m.StartMs), rel(m.UpdateMs), m.MarkerProducerID, m.MarkerEpoch),
	}
}

// setEpoch durably sets the epoch of an idle transactional id, so that a
// script can start near the epoch limit.
func (h *harness) setEpoch(id string, epoch int16) []string {
	c := h.c
	c.mu.Lock()
	e := c.mu.txns[id]
	if e == nil || e.busy {
		c.mu.Unlock()
		panic(cmdError("set-epoch needs an idle, known id"))
	}
	e.setBusy()
	next := e.meta.clone()
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		e.clearBusy()
		c.mu.Unlock()
	}()
	next.ProducerEpoch, next.LastProducerEpoch = epoch, -1
	if err := c.commitTransition(e, next); err != nil {
		return []string{"error: " + err.Error()}
	}
	return []string{"ok"}
}

// prepare writes the Prepare record of id's open transaction as a
// protocol v1 EndTxn does, and stops there, as a crash would.
func (h *harness) prepare(id string, commit, tv2 bool) []string {
	c := h.c
	c.mu.Lock()
	e := c.mu.txns[id]
	if e == nil || e.busy || e.meta.State != Ongoing {
		c.mu.Unlock()
		panic(cmdError("prepare needs an idle id with an open transaction"))
	}
	e.setBusy()
	next := e.meta.clone()
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		e.clearBusy()
		c.mu.Unlock()
	}()
	next, err := c.prepared(&next, commit, tv2)
	if err != nil {
		return []string{"error: " + err.Error()}
	}
	next.UpdateMs = h.clk.Now().UnixMilli()
	if err := c.commitTransition(e, next); err != nil {
		return []string{"error: " + err.Error()}
	}
	return []string{"ok"}
}

func (a args) has(word string) bool {
	for _, w := range a.words {
		if w == word {
			return true
		}
	}
	return false
}

func (a args) word(i int) string {
	if i >= len(a.words) {
		panic(cmdError(fmt.Sprintf("missing argument %d", i+1)))
	}
	return a.words[i]
}

func (a args) str(k string) string {
	v, ok := a.kv[k]
	if !ok {
		panic(cmdError("missing " + k + "="))
	}
	return v
}

func (a args) int(k string, def int) int {
	v, ok := a.kv[k]
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		panic(cmdError(fmt.Sprintf("%s=%s: %v", k, v, err)))
	}
	return n
}

func (a args) dur(k string) time.Duration {
	d, err := time.ParseDuration(a.str(k))
	if err != nil {
		panic(cmdError(err.Error()))
	}
	return d
}

// version is the [vN] word, or def.
func (a args) version(def int) int {
	for _, w := range a.words {
		if strings.HasPrefix(w, "[v") && strings.HasSuffix(w, "]") {
			n, err := strconv.Atoi(w[2 : len(w)-1])
			if err != nil {
				panic(cmdError("bad version " + w))
			}
			return n
		}
	}
	return def
}

func (a args) tps() []TopicPartition {
	var out []TopicPartition
	for _, s := range strings.Split(a.str("tps"), ",") {
		out = append(out, parseTP(s))
	}
	return out
}

func parseTP(s string) TopicPartition {
	topic, ps, ok := strings.Cut(s, "/")
	if !ok {
		panic(cmdError("want topic/partition, got " + s))
	}
	n, err := strconv.Atoi(ps)
	if err != nil {
		panic(cmdError("want topic/partition, got " + s))
	}
	return TopicPartition{Topic: topic, Partition: int32(n)}
}
