package partition

import (
	"testing"
	"time"

	"github.com/oncelog/oncelog/internal/recordbatch"
	"github.com/oncelog/oncelog/internal/vfs"
	"github.com/twmb/franz-go/pkg/kerr"
)

// txnBatch makes a transactional batch of one record.
func txnBatch(pid int64, epoch int16, seq int32) ([]byte, recordbatch.Header) {
	rec := recordbatch.AppendRecord(nil, recordbatch.Record{Value: []byte("x")})
	h := recordbatch.Header{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, Attributes: recordbatch.AttrTransactional, BaseTimestamp: t0.UnixMilli(), MaxTimestamp: t0.UnixMilli()}
	b := recordbatch.Build(h, [][]byte{rec})
	hh, err := recordbatch.Check(b)
	if err != nil {
		panic(err)
	}
	return b, hh
}

// TestMarkerEarlyAnsweredBeforeSync: AppendMarkerEarly returns once the
// marker is in the log while every fsync is held, its durable answer comes
// only after an fsync, and the marker is invisible (high watermark) until
// then.
func TestMarkerEarlyAnsweredBeforeSync(t *testing.T) {
	g := newSyncGate()
	p := openFS(t, g.fs())
	defer p.Close()
	b, h := txnBatch(7, 0, 0)
	if r := <-p.Append(b, h); r.Err != nil {
		t.Fatal(r.Err)
	}
	g.held.Store(true)
	written, durable := p.AppendMarkerEarly(7, 1, true, t0.UnixMilli())
	if written.Err != nil || written.BaseOffset != 1 {
		t.Fatalf("written answer %+v, want offset 1", written)
	}
	<-g.entered // the lazy sync started, and is held
	select {
	case r := <-durable:
		t.Fatalf("durable answer %+v before any fsync returned", r)
	case <-time.After(20 * time.Millisecond):
	}
	if hw := p.Offsets().HighWatermark; hw != 1 {
		t.Fatalf("high watermark %d while the marker's fsync is held, want 1", hw)
	}
	g.held.Store(false)
	close(g.release)
	if r := <-durable; r.Err != nil || r.BaseOffset != 1 {
		t.Fatalf("durable answer %+v, want offset 1", r)
	}
	if hw := p.Offsets().HighWatermark; hw != 2 {
		t.Fatalf("high watermark %d after the marker's fsync, want 2", hw)
	}
}

// TestMarkerEarlyDurableWithNextBatch: a batch appended behind an early
// marker is never durable before the marker: by the time the batch's
// answer comes, the marker's durable answer is there too (one fsync covers
// both when the batch comes first; the lazy sync otherwise).
func TestMarkerEarlyDurableWithNextBatch(t *testing.T) {
	p := openFS(t, vfs.OS)
	defer p.Close()
	for i := 0; i < 50; i++ {
		b, h := txnBatch(7, int16(i), 0)
		if r := <-p.Append(b, h); r.Err != nil {
			t.Fatal(r.Err)
		}
		written, durable := p.AppendMarkerEarly(7, int16(i+1), true, t0.UnixMilli())
		if written.Err != nil {
			t.Fatal(written.Err)
		}
		nb, nh := batch(-1, -1, -1, 1, t0.UnixMilli())
		if r := <-p.Append(nb, nh); r.Err != nil {
			t.Fatal(r.Err)
		}
		select {
		case r := <-durable:
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		default:
			t.Fatalf("round %d: a batch behind the marker was answered durable before the marker", i)
		}
	}
}

// TestMarkerEarlyFailedSync: a marker written but not synced because the
// fsync failed gets KAFKA_STORAGE_ERROR as its durable answer, and the
// partition refuses what follows.
func TestMarkerEarlyFailedSync(t *testing.T) {
	fs, fail := failingSyncFS()
	p := openFS(t, fs)
	defer p.Close()
	b, h := txnBatch(7, 0, 0)
	if r := <-p.Append(b, h); r.Err != nil {
		t.Fatal(r.Err)
	}
	fail.Store(true)
	written, durable := p.AppendMarkerEarly(7, 1, true, t0.UnixMilli())
	if written.Err != nil {
		t.Fatalf("written answer: %v", written.Err)
	}
	if r := <-durable; r.Err != kerr.KafkaStorageError {
		t.Fatalf("durable answer %+v after a failed fsync, want KAFKA_STORAGE_ERROR", r)
	}
	nb, nh := batch(-1, -1, -1, 1, t0.UnixMilli())
	if r := <-p.Append(nb, nh); r.Err == nil {
		t.Fatal("append after a failed fsync succeeded")
	}
}

// TestMarkerEarlyAnsweredAtClose: a lazy marker still waiting for its sync
// when the partition closes is synced and answered by Close.
func TestMarkerEarlyAnsweredAtClose(t *testing.T) {
	g := newSyncGate()
	p := openFS(t, g.fs())
	b, h := txnBatch(7, 0, 0)
	if r := <-p.Append(b, h); r.Err != nil {
		t.Fatal(r.Err)
	}
	written, durable := p.AppendMarkerEarly(7, 1, true, t0.UnixMilli())
	if written.Err != nil {
		t.Fatal(written.Err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-durable:
		if r.Err != nil {
			t.Fatalf("durable answer at close: %v", r.Err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("lazy marker not answered by Close")
	}
}
