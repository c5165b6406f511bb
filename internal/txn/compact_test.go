package txn

import (
	"encoding/json"
	"fmt"
	"github.com/oncelog/oncelog/internal/clock"
	"github.com/oncelog/oncelog/internal/compaction"
	"math/rand"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/oncelog/oncelog/internal/broker"
	"github.com/oncelog/oncelog/internal/config"
	"github.com/oncelog/oncelog/internal/group"
	"github.com/oncelog/oncelog/internal/vfs"
	"github.com/twmb/franz-go/pkg/kerr"
)

const compactTestPartitions = 2

// compactEnv is a broker, a group coordinator and a transaction
// coordinator on a MemFS, on a clock whose timers never fire (the test
// calls what the timer loop would).
type compactEnv struct {
	t   *testing.T
	fs  *vfs.MemFS
	clk *clock.Still
	b   *broker.Broker
	g   *group.Coordinator
	c   *Coordinator
}

func openTxnCompactEnv(t *testing.T, fs *vfs.MemFS, clk *clock.Still) *compactEnv {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = "/data"
	if err := fs.MkdirAll(cfg.DataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := fs.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	b, err := broker.Open(broker.Options{Config: cfg, FS: fs, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if b.Topic("in") == nil {
		if _, perr := b.CreateTopic("in", 2, nil, false); perr != nil {
			t.Fatal(perr)
		}
		// Small segments, so that compaction deletes some.
		if _, perr := b.CreateInternalTopic(StateTopic, compactTestPartitions, map[string]string{"retention.ms": "-1", "retention.bytes": "-1", "segment.bytes": "8192"}); perr != nil {
			t.Fatal(perr)
		}
	}
	g, err := group.New(group.Options{Broker: b, Clock: clk, Partitions: 1, Compaction: group.CompactSettings{MinRecords: -1}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{Broker: b, Groups: g, Clock: clk,
		Settings: Settings{MaxTimeout: time.Hour, IDExpiration: 200 * time.Second, Partitions: compactTestPartitions}})
	if err != nil {
		t.Fatal(err)
	}
	return &compactEnv{t: t, fs: fs, clk: clk, b: b, g: g, c: c}
}

func (e *compactEnv) close() {
	e.c.Close()
	e.g.Close()
	if err := e.b.Close(); err != nil {
		e.t.Fatal(err)
	}
}

// settle waits until no transaction is busy (EndTxn completes in the
// background).
func (e *compactEnv) settle() {
	e.t.Helper()
	for i := 0; ; i++ {
		e.c.mu.Lock()
		busy := false
		for _, en := range e.c.mu.txns {
			busy = busy || en.busy
		}
		e.c.mu.Unlock()
		if !busy {
			return
		}
		if i == 5000 {
			e.t.Fatal("transactions stay busy")
		}
		time.Sleep(time.Millisecond)
	}
}

// dump is every transactional id's metadata, canonically.
func (c *Coordinator) dump() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var lines []string
	for id, e := range c.mu.txns {
		b, _ := json.Marshal(&e.meta)
		lines = append(lines, id+" "+string(b))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// workload drives a seeded mix of InitProducerId, AddPartitionsToTxn,
// EndTxn (commit and abort) and id expiry over 40 ids, calling between
// after each step.
func (e *compactEnv) workload(seed int64, steps int, between func(int)) {
	rng := rand.New(rand.NewSource(seed))
	type prod struct {
		pid   int64
		epoch int16
	}
	prods := map[string]prod{}
	for i := 0; i < steps; i++ {
		e.clk.Advance(time.Second)
		id := fmt.Sprintf("t%02d", rng.Intn(40))
		p, known := prods[id]
		switch r := rng.Intn(100); {
		case !known || r < 10:
			res := e.c.InitProducerID(id, 60000, -1, -1, true)
			if res.Err != nil {
				e.t.Fatalf("init %s: %v", id, res.Err)
			}
			prods[id] = prod{res.ProducerID, res.ProducerEpoch}
		case r < 55:
			tp := TopicPartition{"in", int32(rng.Intn(2))}
			if err := e.c.AddPartitions(id, p.pid, p.epoch, []TopicPartition{tp}, true); err != nil && err != kerr.InvalidProducerIDMapping {
				e.t.Fatalf("add %s: %v", id, err)
			}
		case r < 95:
			res := e.c.EndTxn(id, p.pid, p.epoch, rng.Intn(3) > 0, false, true)
			if res.Err != nil && res.Err != kerr.InvalidTxnState && res.Err != kerr.InvalidProducerIDMapping {
				e.t.Fatalf("end %s: %v", id, res.Err)
			}
		default:
			e.settle()
			e.c.ExpireIDs(e.clk.Now())
			for id := range prods {
				if _, ok := e.c.Describe(id); !ok {
					delete(prods, id)
				}
			}
		}
		e.settle()
		if between != nil {
			between(i)
		}
	}
}

func (e *compactEnv) compactAll() []CompactResult {
	e.t.Helper()
	var out []CompactResult
	for i := int32(0); i < compactTestPartitions; i++ {
		r, err := e.c.compactPartition(e.b.Partition(StateTopic, i))
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// TestCompactTxnStateKeepsState: the same seeded workload on two brokers,
// one compacting __transaction_state every 50 steps and one never; after a
// clean restart and from a crash image, both load the same metadata for
// every id, the state before the restart, from a much smaller log.
func TestCompactTxnStateKeepsState(t *testing.T) {
	const steps = 1500
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	fsA, fsB := vfs.NewMemFS(), vfs.NewMemFS()
	a := openTxnCompactEnv(t, fsA, clock.NewStill(start))
	b := openTxnCompactEnv(t, fsB, clock.NewStill(start))
	moved := 0
	a.workload(5, steps, func(i int) {
		if i%50 == 49 {
			for _, r := range a.compactAll() {
				if r.NewStart > r.OldStart {
					moved++
				}
			}
		}
	})
	b.workload(5, steps, nil)
	before := a.c.dump()
	if got := b.c.dump(); got != before {
		t.Fatalf("live states differ:\n%s\n---\n%s", before, got)
	}
	if moved == 0 {
		t.Fatal("no compaction moved a log start")
	}
	if !strings.Contains(before, `"state":1`) {
		t.Fatalf("no transaction left open:\n%s", before)
	}
	sizeA, recsA := compaction.TopicSize(a.b.Topic(StateTopic))
	sizeB, recsB := compaction.TopicSize(b.b.Topic(StateTopic))
	t.Logf("transaction state log: compacted %d bytes, %d records from log start; never compacted %d bytes, %d records", sizeA, recsA, sizeB, recsB)
	if sizeA*2 > sizeB || recsA*2 > recsB {
		t.Fatalf("compaction did not shrink the log: %d bytes / %d records vs %d / %d", sizeA, recsA, sizeB, recsB)
	}
	crashA := fsA.CrashClone(nil)
	a.close()
	b.close()
	later := clock.NewStill(start.Add(steps * time.Second))
	want := openTxnCompactEnv(t, fsB, later)
	defer want.close()
	for name, fs := range map[string]*vfs.MemFS{"clean": fsA, "crash": crashA} {
		got := openTxnCompactEnv(t, fs, later)
		if g, w := got.c.dump(), want.c.dump(); g != w {
			t.Fatalf("%s restart: compacted log loads\n%s\nnever-compacted log loads\n%s", name, g, w)
		}
		if g := got.c.dump(); g != before {
			t.Fatalf("%s restart: loaded\n%s\nbefore\n%s", name, g, before)
		}
		got.close()
	}
}

// TestCompactTxnStateBusyID: an id whose transition is in flight (written,
// not yet in memory) while the compaction runs is copied only once it is
// free, so the old state in memory does not override the new record, which
// survives a restart although the log start moved past it.
func TestCompactTxnStateBusyID(t *testing.T) {
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	fs := vfs.NewMemFS()
	e := openTxnCompactEnv(t, fs, clock.NewStill(start))
	e.workload(9, 300, nil)
	id := ""
	e.c.mu.Lock()
	for x := range e.c.mu.txns {
		if id == "" || x < id {
			id = x
		}
	}
	en := e.c.mu.txns[id]
	en.setBusy()
	next := en.meta.clone()
	next.TimeoutMs = 1234
	e.c.mu.Unlock()
	// The new record is in the log before the compaction starts; memory
	// learns it 50 ms later, as commitTransition does after its write.
	if err := e.c.write(id, &next); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		e.c.mu.Lock()
		en.meta = next
		en.clearBusy()
		e.c.mu.Unlock()
	}()
	rs := e.compactAll()
	p := e.c.partitionFor(id)
	if r := rs[p]; r.NewStart <= r.OldStart {
		t.Fatalf("the log start of %d did not move: %+v", p, r)
	}
	want := e.c.dump()
	e.close()
	e2 := openTxnCompactEnv(t, fs, clock.NewStill(start.Add(time.Hour)))
	defer e2.close()
	m, ok := e2.c.Describe(id)
	if !ok || m.TimeoutMs != 1234 {
		t.Fatalf("%s after restart: %+v, %v", id, m, ok)
	}
	if got := e2.c.dump(); got != want {
		t.Fatalf("loaded\n%s\nwant\n%s", got, want)
	}
}

// TestCompactTxnStateCrashMidway: crash images taken after each batch of
// copies and just before the log start moves all load the same state.
func TestCompactTxnStateCrashMidway(t *testing.T) {
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	fs := vfs.NewMemFS()
	e := openTxnCompactEnv(t, fs, clock.NewStill(start))
	e.workload(13, 600, nil)
	want := e.c.dump()
	var images []*vfs.MemFS
	compactTestHook = func(string) { images = append(images, fs.CrashClone(nil)) }
	e.compactAll()
	compactTestHook = nil
	e.close()
	if len(images) < 2 {
		t.Fatalf("%d crash images", len(images))
	}
	for i, im := range images {
		e2 := openTxnCompactEnv(t, im, clock.NewStill(start.Add(time.Hour)))
		if got := e2.c.dump(); got != want {
			t.Fatalf("crash image %d loads\n%s\nwant\n%s", i, got, want)
		}
		e2.close()
	}
}

// TestCompactTrigger: Compact starts a compaction only past the floor and
// the ratio, at most every compaction.CheckInterval.
func TestCompactTrigger(t *testing.T) {
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	e := openTxnCompactEnv(t, vfs.NewMemFS(), clock.NewStill(start))
	defer e.close()
	e.workload(3, 800, nil)
	if p := e.c.compactCandidate(1 << 20); p != nil {
		t.Fatalf("partition %d is a candidate below the floor", p.Index)
	}
	p := e.c.compactCandidate(50)
	if p == nil {
		t.Fatal("no candidate past the floor")
	}
	if _, err := e.c.compactPartition(p); err != nil {
		t.Fatal(err)
	}
	if q := e.c.compactCandidate(50); q != nil && q.Index == p.Index {
		t.Fatalf("partition %d is a candidate right after its compaction", p.Index)
	}
	// The timer loop's entry point runs without blocking and waits its
	// interval.
	e.c.Compact(start)
	e.c.wg.Wait()
	e.c.Compact(start.Add(time.Second))
	e.c.wg.Wait()
}
