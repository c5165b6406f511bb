package partition

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/oncelog/oncelog/internal/clock"
	"github.com/oncelog/oncelog/internal/config"
	"github.com/oncelog/oncelog/internal/recordbatch"
	"github.com/oncelog/oncelog/internal/vfs"
	"github.com/twmb/franz-go/pkg/kerr"
)

var t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func openTest(t *testing.T, dir string, clk clock.Clock) *Partition {
	t.Helper()
	p, err := Open(Options{
		FS: vfs.OS, Dir: dir, Topic: "t", Index: 0,
		Config: config.Default().TopicDefaults, Clock: clk,
		ProducerIDExpiration: time.Hour, MaxProducers: 1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// batch makes an idempotent batch of n records starting at seq.
func batch(pid int64, epoch int16, seq int32, n int, ts int64) ([]byte, recordbatch.Header) {
	var recs [][]byte
	for i := 0; i < n; i++ {
		recs = append(recs, recordbatch.AppendRecord(nil, recordbatch.Record{OffsetDelta: int32(i), Value: []byte(fmt.Sprintf("v%d", seq+int32(i)))}))
	}
	h := recordbatch.Header{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, LastOffsetDelta: int32(n - 1), BaseTimestamp: ts, MaxTimestamp: ts}
	b := recordbatch.Build(h, recs)
	hh, err := recordbatch.Check(b)
	if err != nil {
		panic(err)
	}
	return b, hh
}

func appendWait(p *Partition, pid int64, epoch int16, seq int32, n int) AppendResult {
	b, h := batch(pid, epoch, seq, n, t0.UnixMilli())
	return <-p.Append(b, h)
}

func TestIdempotentProduceRules(t *testing.T) {
	p := openTest(t, t.TempDir(), clock.NewManual(t0))
	defer p.Close()
	must := func(r AppendResult, wantOffset int64) {
		t.Helper()
		if r.Err != nil {
			t.Fatalf("unexpected error %v (%s)", r.Err, r.ErrMessage)
		}
		if r.BaseOffset != wantOffset {
			t.Fatalf("base offset %d, want %d", r.BaseOffset, wantOffset)
		}
	}
	fails := func(r AppendResult, want *kerr.Error) {
		t.Helper()
		if r.Err != want {
			t.Fatalf("got %v, want %v", r.Err, want)
		}
	}
	must(appendWait(p, 7, 0, 0, 10), 0)
	must(appendWait(p, 7, 0, 10, 5), 10)
	// A retried duplicate gets its original offsets and no error, and
	// appends nothing.
	must(appendWait(p, 7, 0, 0, 10), 0)
	must(appendWait(p, 7, 0, 10, 5), 10)
	if hw := p.Offsets().HighWatermark; hw != 15 {
		t.Fatalf("high watermark %d after duplicates, want 15", hw)
	}
	// A gap is out of order.
	fails(appendWait(p, 7, 0, 20, 1), kerr.OutOfOrderSequenceNumber)
	// An older epoch is fenced once a newer one wrote.
	must(appendWait(p, 7, 1, 0, 1), 15)
	fails(appendWait(p, 7, 0, 15, 1), kerr.InvalidProducerEpoch)
	// A newer epoch must start at sequence 0.
	fails(appendWait(p, 7, 2, 5, 1), kerr.OutOfOrderSequenceNumber)
	// Only the last 5 batches are remembered: the retry of an older one
	// cannot be recognised and is out of order.
	for i := int32(1); i <= 6; i++ {
		must(appendWait(p, 7, 1, i, 1), 15+int64(i))
	}
	fails(appendWait(p, 7, 1, 1, 1), kerr.OutOfOrderSequenceNumber)
	must(appendWait(p, 7, 1, 2, 1), 17)
	// Non-idempotent batches are never checked.
	must(appendWait(p, -1, -1, -1, 3), 22)
	must(appendWait(p, -1, -1, -1, 3), 25)
	// An unknown producer may start at any sequence (its state may have
	// expired).
	must(appendWait(p, 8, 0, 1000, 1), 28)
}

func TestSequenceWraparound(t *testing.T) {
	p := openTest(t, t.TempDir(), clock.NewManual(t0))
	defer p.Close()
	const max = int32(1<<31 - 1)
	if r := appendWait(p, 3, 0, max-1, 2); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := appendWait(p, 3, 0, 0, 1); r.Err != nil || r.BaseOffset != 2 {
		t.Fatalf("after wrap: %+v", r)
	}
	if r := appendWait(p, 3, 0, max-1, 2); r.Err != nil || r.BaseOffset != 0 {
		t.Fatalf("duplicate across the wrap: %+v", r)
	}
}

// TestStateRebuiltFromLogEqualsLive checks the apply step's determinism:
// the producer state and aborted index rebuilt from the log alone (no
// snapshot) equal the live state, and equal the state loaded from the
// snapshot written at clean close.
func TestStateRebuiltFromLogEqualsLive(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewManual(t0)
	p := openTest(t, dir, clk)
	for pid := int64(0); pid < 20; pid++ {
		for s := int32(0); s < 7; s++ {
			if r := appendWait(p, pid, int16(pid%3), s*3, 3); r.Err != nil {
				t.Fatal(r.Err)
			}
		}
	}
	// A transactional producer that aborts and one left open.
	for _, pid := range []int64{100, 101} {
		b, h := batch(pid, 0, 0, 2, t0.UnixMilli())
		b[22] |= recordbatch.AttrTransactional
		h.Attributes |= recordbatch.AttrTransactional
		fixCRC(b)
		if r := <-p.Append(b, h); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	ctl := recordbatch.BuildControlBatch(100, 0, false, 0, t0.UnixMilli())
	h, _ := recordbatch.Check(ctl)
	if r := <-p.Append(ctl, h); r.Err != nil {
		t.Fatal(r.Err)
	}
	live, liveAborted := p.Producers(), p.AbortedTxns()
	liveOffsets := p.Offsets()
	if len(liveAborted) != 1 || liveOffsets.LastStableOffset == liveOffsets.HighWatermark {
		t.Fatalf("expected one aborted txn and an open one holding the LSO: %+v %+v", liveAborted, liveOffsets)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	// From the snapshot.
	p2 := openTest(t, dir, clk)
	if got := p2.Producers(); !reflect.DeepEqual(got, live) {
		t.Fatalf("state from snapshot differs:\n got %+v\nwant %+v", got, live)
	}
	if got := p2.Offsets(); got != liveOffsets {
		t.Fatalf("offsets from snapshot %+v, want %+v", got, liveOffsets)
	}
	p2.Close()

	// From the log alone.
	if err := os.Remove(filepath.Join(dir, snapshotName)); err != nil {
		t.Fatal(err)
	}
	p3 := openTest(t, dir, clk)
	defer p3.Close()
	if got := p3.Producers(); !reflect.DeepEqual(got, live) {
		t.Fatalf("state from log differs:\n got %+v\nwant %+v", got, live)
	}
	if got := p3.AbortedTxns(); !reflect.DeepEqual(got, liveAborted) {
		t.Fatalf("aborted from log %+v, want %+v", got, liveAborted)
	}
	if got := p3.Offsets(); got != liveOffsets {
		t.Fatalf("offsets from log %+v, want %+v", got, liveOffsets)
	}
}

func fixCRC(b []byte) {
	// Rebuild through Build to recompute the CRC after editing attributes.
	h, _ := recordbatch.ParseHeader(b)
	nb := recordbatch.Build(h, [][]byte{b[recordbatch.HeaderSize:]})
	copy(b, nb)
}

// TestProducerStateSurvivesDeleteRecords: after DeleteRecords removes every
// batch of a producer, its state still detects a retried duplicate, also
// after a restart (the snapshot keeps it; KAFKA-7190).
func TestProducerStateSurvivesDeleteRecords(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewManual(t0)
	p := openTest(t, dir, clk)
	for s := int32(0); s < 4; s++ {
		if r := appendWait(p, 9, 0, s*2, 2); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if start, err := p.DeleteRecordsBefore(-1); err != nil || start != 8 {
		t.Fatalf("delete records: %d %v", start, err)
	}
	p.Close()
	p = openTest(t, dir, clk)
	defer p.Close()
	if o := p.Offsets(); o.LogStartOffset != 8 || o.HighWatermark != 8 {
		t.Fatalf("offsets after restart %+v", o)
	}
	if r := appendWait(p, 9, 0, 6, 2); r.Err != nil || r.BaseOffset != 6 {
		t.Fatalf("retry of the last batch after DeleteRecords: %+v", r)
	}
	if r := appendWait(p, 9, 0, 9, 1); r.Err != kerr.OutOfOrderSequenceNumber {
		t.Fatalf("gap after DeleteRecords: %+v", r)
	}
}

func TestProducerExpiry(t *testing.T) {
	clk := clock.NewManual(t0)
	p := openTest(t, t.TempDir(), clk)
	defer p.Close()
	if r := appendWait(p, 5, 0, 0, 1); r.Err != nil {
		t.Fatal(r.Err)
	}
	if n := len(p.Producers()); n != 1 {
		t.Fatalf("%d producers", n)
	}
	// Past producer.id.expiration.ms (one hour here) the next maintenance
	// tick forgets the producer.
	clk.Advance(2 * time.Hour)
	for i := 0; i < 100 && len(p.Producers()) != 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(p.Producers()); n != 0 {
		t.Fatalf("%d producers after expiry", n)
	}
}

func TestFetchBounds(t *testing.T) {
	p := openTest(t, t.TempDir(), clock.NewManual(t0))
	defer p.Close()
	for i := 0; i < 5; i++ {
		appendWait(p, -1, -1, -1, 4)
	}
	r := p.Fetch(6, 1, false) // inside the second batch, tiny budget
	if r.Err != nil || len(r.Records) == 0 {
		t.Fatalf("fetch inside a batch: %+v", r)
	}
	h, _ := recordbatch.ParseHeader(r.Records)
	if h.BaseOffset != 4 || h.Size() != len(r.Records) {
		t.Fatalf("got batch at %d size %d of %d bytes; want the whole batch holding offset 6", h.BaseOffset, h.Size(), len(r.Records))
	}
	if r := p.Fetch(21, 1000, false); r.Err != kerr.OffsetOutOfRange {
		t.Fatalf("past the end: %+v", r.Err)
	}
	if r := p.Fetch(20, 1000, false); r.Err != nil || len(r.Records) != 0 {
		t.Fatalf("at the end: %+v", r)
	}
}

// TestRetentionKeepsProducerState: segments past retention.ms go, the
// log start moves, and producer state of the deleted data still detects a
// retried duplicate after a restart (the snapshot taken before deletion).
func TestRetentionKeepsProducerState(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewManual(t0)
	cfg := config.Default().TopicDefaults
	cfg.SegmentBytes = 200
	cfg.RetentionMs = time.Hour
	open := func() *Partition {
		p, err := Open(Options{FS: vfs.OS, Dir: dir, Topic: "t", Config: cfg, Clock: clk, ProducerIDExpiration: 48 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := open()
	for s := int32(0); s < 10; s++ {
		if r := appendWait(p, 4, 0, s*3, 3); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	clk.Advance(2 * time.Hour) // the batches' timestamps (t0) are now past retention
	for i := 0; i < 200 && p.Offsets().LogStartOffset == 0; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	start := p.Offsets().LogStartOffset
	if start == 0 {
		t.Fatal("retention deleted nothing")
	}
	p.Close()
	p = open()
	defer p.Close()
	if got := p.Offsets().LogStartOffset; got != start {
		t.Fatalf("log start %d after restart, want %d", got, start)
	}
	if r := appendWait(p, 4, 0, 27, 3); r.Err != nil || r.BaseOffset != 27 {
		t.Fatalf("retry of the last batch after retention: %+v", r)
	}
}

// TestHighWatermarkIsFsyncedEnd: a deferred append (no fsync of its own) is
// answered but stays invisible to fetches until a later append's fsync
// covers it; consumers never see data a crash could take back.
func TestHighWatermarkIsFsyncedEnd(t *testing.T) {
	p := openTest(t, t.TempDir(), clock.NewManual(t0))
	defer p.Close()
	b, h := batch(-1, -1, -1, 3, t0.UnixMilli())
	if r := <-p.AppendAck(b, h, AckDeferred); r.Err != nil || r.BaseOffset != 0 {
		t.Fatalf("deferred append: %+v", r)
	}
	if o := p.Offsets(); o.HighWatermark != 0 {
		t.Fatalf("high watermark %d after an unsynced append, want 0", o.HighWatermark)
	}
	if r := p.Fetch(0, 1<<20, false); len(r.Records) != 0 {
		t.Fatalf("fetch returned %d bytes of unsynced data", len(r.Records))
	}
	if r := appendWait(p, -1, -1, -1, 2); r.Err != nil || r.BaseOffset != 3 {
		t.Fatalf("durable append: %+v", r)
	}
	if o := p.Offsets(); o.HighWatermark != 5 {
		t.Fatalf("high watermark %d after the covering fsync, want 5", o.HighWatermark)
	}
}
