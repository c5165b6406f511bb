package fault

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// produceValues produces values to partition 0 of topic with acks=all, one
// record per call of ProduceSync when sync is set (one batch each), and
// fails the test unless every one is acknowledged.
func produceValues(t *testing.T, addr, topic string, values []string, opts ...kgo.Opt) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := newClient(t, addr, append([]kgo.Opt{kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner())}, opts...)...)
	defer cl.Close()
	for _, v := range values {
		cl.Produce(ctx, &kgo.Record{Value: []byte(v)}, func(r *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce %s: %v", r.Value, err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// checkValues reads partition 0 of topic and compares it with want, in order.
func checkValues(t *testing.T, addr, topic string, want []string) {
	t.Helper()
	recs := readAll(t, addr, topic, 30*time.Second)
	checkGapFree(t, recs)
	got := recs[0]
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", topic, len(got), len(want))
	}
	for i, r := range got {
		if string(r.Value) != want[i] {
			t.Fatalf("%s offset %d: %q, want %q", topic, i, r.Value, want[i])
		}
	}
}

func valuesFrom(prefix string, from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(from+i)
	}
	return out
}

// TestTornTailRepaired kills the real broker after acknowledged writes,
// appends bytes that a torn write could leave to the end of the active
// segment, and restarts it: the broker must truncate them, serve every
// acknowledged record and accept new ones at the next offset.
func TestTornTailRepaired(t *testing.T) {
	tails := []struct {
		name string
		tail func(t *testing.T, seg []byte, rng *rand.Rand) []byte
	}{
		{"random garbage", func(_ *testing.T, _ []byte, rng *rand.Rand) []byte {
			b := make([]byte, 333)
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			return b
		}},
		{"zeros", func(*testing.T, []byte, *rand.Rand) []byte { return make([]byte, 4096) }},
		{"prefix of a real batch", func(t *testing.T, seg []byte, rng *rand.Rand) []byte {
			// The last batch again, with the next base offset, cut short:
			// what a write interrupted half way leaves.
			last := lastBatch(t, seg)
			b := append([]byte{}, last...)
			next := binary.BigEndian.Uint64(b) + uint64(binary.BigEndian.Uint32(b[23:])) + 1
			binary.BigEndian.PutUint64(b, next)
			return b[:12+rng.IntN(len(b)-13)]
		}},
		{"whole batch with a bad CRC", func(t *testing.T, seg []byte, _ *rand.Rand) []byte {
			b := append([]byte{}, lastBatch(t, seg)...)
			next := binary.BigEndian.Uint64(b) + uint64(binary.BigEndian.Uint32(b[23:])) + 1
			binary.BigEndian.PutUint64(b, next)
			b[len(b)-1] ^= 0xff
			return b
		}},
	}
	for i, tc := range tails {
		t.Run(tc.name, func(t *testing.T) {
			const topic = "torn"
			rng := rand.New(rand.NewPCG(uint64(i), 77))
			dir := t.TempDir()
			bp := newBrokerProc(t, dir)
			bp.Start()
			createTopic(t, bp.Addr, topic, 1)
			acked := valuesFrom("v", 0, 500)
			produceValues(t, bp.Addr, topic, acked[:250])
			produceValues(t, bp.Addr, topic, acked[250:], kgo.ProducerBatchMaxBytes(1<<10))
			bp.Kill()

			seg := filepath.Join(dir, topic+"-0", "00000000000000000000.log")
			data, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			// The data ends at the last whole batch; a segment grown by
			// pre-zeroed extents has zeros after it. The torn write lands
			// where the next batch would have gone.
			end := dataEnd(t, data)
			valid := data[:end]
			tail := tc.tail(t, valid, rng)
			f, err := os.OpenFile(seg, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(tail, int64(end)); err != nil {
				t.Fatal(err)
			}
			f.Close()

			bp.Start()
			t.Logf("restarted in %v after writing %d bytes at the data's end", bp.Startup, len(tail))
			got, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) < end || !bytes.Equal(got[:end], valid) || !allZero(got[end:]) {
				t.Fatalf("segment after recovery: %d bytes, want the %d valid bytes followed by nothing or zeros", len(got), end)
			}
			checkValues(t, bp.Addr, topic, acked)
			more := valuesFrom("v", 500, 50)
			produceValues(t, bp.Addr, topic, more)
			checkValues(t, bp.Addr, topic, append(acked, more...))
			// And once more through a clean stop.
			bp.Stop()
			bp.Start()
			checkValues(t, bp.Addr, topic, append(acked, more...))
		})
	}
}

// batchStarts returns the positions of the batches of a segment file, and
// fails on a broken length chain. A zero tail (the rest of a pre-zeroed
// extent) ends the file's data.
func batchStarts(t *testing.T, seg []byte) []int {
	t.Helper()
	var out []int
	for pos := 0; pos < len(seg); {
		if allZero(seg[pos:]) {
			break
		}
		if len(seg)-pos < 12 {
			t.Fatalf("segment: %d stray bytes at %d", len(seg)-pos, pos)
		}
		n := int(binary.BigEndian.Uint32(seg[pos+8:]))
		if n < 49 || pos+12+n > len(seg) {
			t.Fatalf("segment: batch at %d has length %d", pos, n)
		}
		out = append(out, pos)
		pos += 12 + n
	}
	return out
}

// dataEnd is where a segment file's batches end.
func dataEnd(t *testing.T, seg []byte) int {
	starts := batchStarts(t, seg)
	last := starts[len(starts)-1]
	return last + 12 + int(binary.BigEndian.Uint32(seg[last+8:]))
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func lastBatch(t *testing.T, seg []byte) []byte {
	starts := batchStarts(t, seg)
	return seg[starts[len(starts)-1]:dataEnd(t, seg)]
}

// TestCorruptMiddleSegmentRefused flips a byte inside a batch of the first of
// several segments: that cannot be a torn write, so the broker must refuse
// to start, exit non-zero and name the file and the batch's position and
// offset.
func TestCorruptMiddleSegmentRefused(t *testing.T) {
	const topic = "corrupt"
	dir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "broker.properties")
	if err := os.WriteFile(cfg, []byte("# small segments\nlog.segment.bytes=16384\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bp := newBrokerProc(t, dir, "--config", cfg)
	bp.Start()
	createTopic(t, bp.Addr, topic, 1)
	// Incompressible values (franz-go compresses with snappy by default).
	rng := rand.New(rand.NewPCG(5, 5))
	var values []string
	for i := 0; i < 100; i++ {
		v := make([]byte, 900)
		for j := range v {
			v[j] = 'a' + byte(rng.IntN(26))
		}
		values = append(values, fmt.Sprintf("%04d-%s", i, v))
	}
	produceValues(t, bp.Addr, topic, values, kgo.ProducerBatchMaxBytes(4<<10))
	bp.Stop()

	segs, err := filepath.Glob(filepath.Join(dir, topic+"-0", "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(segs)
	if len(segs) < 3 {
		t.Fatalf("%d segments with log.segment.bytes=16384, want at least 3: %v", len(segs), segs)
	}
	first := segs[0]
	data, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	// The batch holding the middle of the file; flip a byte in its CRC-32C
	// covered part (from the attributes on: the partition leader epoch is
	// outside the CRC, by Kafka's design).
	starts := batchStarts(t, data)
	bi := sort.Search(len(starts), func(i int) bool { return starts[i] > len(data)/2 }) - 1
	bstart := starts[bi]
	bend := len(data)
	if bi+1 < len(starts) {
		bend = starts[bi+1]
	}
	flip := bstart + 21 + (bend-bstart-21)/2
	baseOffset := int64(binary.BigEndian.Uint64(data[bstart:]))
	corrupted := bytes.Clone(data)
	corrupted[flip] ^= 0x5a
	if err := os.WriteFile(first, corrupted, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("flipped byte %d of %s (batch at position %d, offset %d; %d segments)", flip, first, bstart, baseOffset, len(segs))

	err = bp.TryStart()
	if err == nil {
		t.Fatalf("broker started on a corrupt segment; stderr:\n%s", bp.Output())
	}
	exited, exitErr := bp.WaitExit(10 * time.Second)
	if !exited {
		t.Fatalf("broker still running after refusing: %v", err)
	}
	if exitErr == nil {
		t.Fatalf("broker exited 0 on a corrupt segment; stderr:\n%s", bp.Output())
	}
	stderr := bp.Output()
	t.Logf("broker refused (%v): %s", exitErr, strings.TrimSpace(stderr))
	if !strings.Contains(stderr, first) && !strings.Contains(stderr, filepath.Base(first)) {
		t.Fatalf("stderr does not name the file %s:\n%s", first, stderr)
	}
	if !regexp.MustCompile(`position\D{0,3}` + strconv.Itoa(bstart) + `\b`).MatchString(stderr) {
		t.Fatalf("stderr does not name position %d:\n%s", bstart, stderr)
	}
	if !regexp.MustCompile(`offset\D{0,3}` + strconv.FormatInt(baseOffset, 10) + `\b`).MatchString(stderr) {
		t.Fatalf("stderr does not name offset %d:\n%s", baseOffset, stderr)
	}

	// Undo the flip: the same data directory starts and serves everything.
	if err := os.WriteFile(first, data, 0o644); err != nil {
		t.Fatal(err)
	}
	bp.Start()
	checkValues(t, bp.Addr, topic, values)
}
