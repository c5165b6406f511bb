package partition

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oncelog/oncelog/internal/clock"
	"github.com/oncelog/oncelog/internal/config"
	"github.com/oncelog/oncelog/internal/vfs"
)

// syncGate is a filesystem whose segment fsyncs block while the gate is
// held, so a test can look at a partition between an append round's write
// and its fsync.
type syncGate struct {
	held    atomic.Bool
	release chan struct{}
	entered chan struct{}
}

func newSyncGate() *syncGate {
	return &syncGate{release: make(chan struct{}), entered: make(chan struct{}, 16)}
}

func (g *syncGate) fs() vfs.FS {
	return vfs.NewFaultFS(vfs.OS, func(op, path string) error {
		if op == vfs.OpSync && strings.HasSuffix(path, ".log") && g.held.Load() {
			g.entered <- struct{}{}
			<-g.release
		}
		return nil
	})
}

// failingSyncFS is a filesystem whose segment fsyncs fail once fail is set.
func failingSyncFS() (fs vfs.FS, fail *atomic.Bool) {
	fail = new(atomic.Bool)
	fs = vfs.NewFaultFS(vfs.OS, func(op, path string) error {
		if op == vfs.OpSync && strings.HasSuffix(path, ".log") && fail.Load() {
			return vfs.ErrInjected
		}
		return nil
	})
	return fs, fail
}

func openFS(t testing.TB, fs vfs.FS) *Partition {
	t.Helper()
	p, err := Open(Options{
		FS: fs, Dir: t.TempDir(), Topic: "t", Index: 0,
		Config: config.Default().TopicDefaults, Clock: clock.NewManual(t0),
		ProducerIDExpiration: time.Hour, MaxProducers: 1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAckWrittenAnswersBeforeSyncAndHidesData: an acks=1 append is
// answered while its round's fsync is still running, an acks=all append of
// the same round is not, and neither is visible to fetches (the high
// watermark stays at the last fsynced offset) until the fsync returns.
func TestAckWrittenAnswersBeforeSyncAndHidesData(t *testing.T) {
	g := newSyncGate()
	p := openFS(t, g.fs())
	defer p.Close()

	g.held.Store(true)
	b1, h1 := batch(-1, -1, -1, 3, t0.UnixMilli())
	written := p.AppendAck(b1, h1, AckWritten)
	var r AppendResult
	select {
	case r = <-written:
	case <-time.After(10 * time.Second):
		t.Fatal("acks=1 append not answered while its fsync is pending")
	}
	if r.Err != nil || r.BaseOffset != 0 {
		t.Fatalf("acks=1 result %+v, want offset 0 and no error", r)
	}
	<-g.entered // the owner is inside the fsync of that round
	if hw := p.Offsets().HighWatermark; hw != 0 {
		t.Fatalf("high watermark %d before the fsync returned, want 0", hw)
	}
	if f := p.Fetch(0, 1<<20, false); len(f.Records) != 0 {
		t.Fatalf("fetch returned %d bytes of unsynced data", len(f.Records))
	}

	// An acks=all append queued behind waits for its own fsync.
	b2, h2 := batch(-1, -1, -1, 2, t0.UnixMilli())
	durable := p.Append(b2, h2)
	select {
	case r := <-durable:
		t.Fatalf("acks=all append answered before any fsync covered it: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
	g.held.Store(false)
	close(g.release)
	if r := <-durable; r.Err != nil || r.BaseOffset != 3 {
		t.Fatalf("acks=all result %+v, want offset 3", r)
	}
	if hw := p.Offsets().HighWatermark; hw != 5 {
		t.Fatalf("high watermark %d after both fsyncs, want 5", hw)
	}
}

// TestAckWrittenFailedSyncIsSticky: when the fsync after an acks=1 answer
// fails, the answer stands (acks=1 gives that up) but the data never
// becomes visible and the partition refuses further appends.
func TestAckWrittenFailedSyncIsSticky(t *testing.T) {
	fs, fail := failingSyncFS()
	p := openFS(t, fs)
	defer p.Close()
	fail.Store(true)
	b1, h1 := batch(-1, -1, -1, 1, t0.UnixMilli())
	if r := <-p.AppendAck(b1, h1, AckWritten); r.Err != nil {
		t.Fatalf("acks=1 append: %v", r.Err)
	}
	b2, h2 := batch(-1, -1, -1, 1, t0.UnixMilli())
	r := <-p.Append(b2, h2)
	if r.Err == nil {
		t.Fatal("append after a failed fsync succeeded")
	}
	if hw := p.Offsets().HighWatermark; hw != 0 {
		t.Fatalf("high watermark %d after a failed fsync, want 0", hw)
	}
}
