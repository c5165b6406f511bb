package fault

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/oncelog/oncelog/embed"
	"github.com/oncelog/oncelog/internal/faultproxy"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestIdempotentThroughCuttingProxy produces 100,000 keyed records with an
// idempotent franz-go producer through a proxy that cuts connections at
// random moments and swallows some produce responses after the broker has
// appended (and fsynced) the batch. franz-go retries the swallowed batch
// with the same producer id, epoch and sequence; the broker must answer it
// as a duplicate, with the original offsets, and store it once.
func TestIdempotentThroughCuttingProxy(t *testing.T) {
	const (
		topic = "idem"
		n     = 100_000
		seed  = 20260501
	)
	b, err := embed.Start(embed.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	createTopic(t, b.Addr(), topic, 3)

	px, err := faultproxy.New(b.Addr(), seed)
	if err != nil {
		t.Fatal(err)
	}
	px.SetFaults(faultproxy.Faults{
		MeanConnLife: 60 * time.Millisecond,
		CutFrameProb: 0.005,
		DropProb:     0.15,
		DropKeys:     []int16{0}, // Produce
		MaxDelay:     2 * time.Millisecond,
	})
	t.Cleanup(func() { px.Close() })
	t.Logf("proxy seed %d", seed)

	// The broker advertises its own address; every dial of the producer
	// goes to the proxy instead.
	var d net.Dialer
	prod := newClient(t, b.Addr(),
		kgo.DefaultProduceTopic(topic),
		kgo.Dialer(func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, px.Addr())
		}),
		kgo.ProducerBatchMaxBytes(2<<10), // many small requests, many chances to fail
		kgo.RetryBackoffFn(func(int) time.Duration { return 10 * time.Millisecond }),
		kgo.RequestTimeoutOverhead(5*time.Second),
		// A failed produce waits for a metadata refresh, which franz-go
		// rate-limits to one per MetadataMinAge (5s by default).
		kgo.MetadataMinAge(50*time.Millisecond),
	)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var (
		mu       sync.Mutex
		failed   int
		firstErr error
		acked    = make(map[int]*kgo.Record, n)
	)
	start := time.Now()
	for i := 0; i < n; i++ {
		r := &kgo.Record{Key: []byte("k" + strconv.Itoa(i%1000)), Value: []byte(strconv.Itoa(i))}
		i := i
		prod.Produce(ctx, r, func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			acked[i] = r
		})
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	produceTime := time.Since(start)
	stats := px.Stats()
	t.Logf("produced %d records in %v through the proxy: %+v", n, produceTime.Round(time.Millisecond), stats)
	mu.Lock()
	if failed > 0 {
		t.Fatalf("%d produce callbacks failed; first: %v", failed, firstErr)
	}
	if len(acked) != n {
		t.Fatalf("%d records acknowledged, want %d", len(acked), n)
	}
	mu.Unlock()
	// The test is only worth something if the broker saw retries of batches
	// it had already appended.
	if stats.DroppedByKeys[0] == 0 {
		t.Fatalf("no produce response was dropped; the test did not exercise duplicate retries: %+v", stats)
	}
	if stats.AllCuts() < 50 {
		t.Fatalf("only %d cuts: %+v", stats.AllCuts(), stats)
	}
	px.Close()

	// Read back directly, not through the proxy.
	recs := readAll(t, b.Addr(), topic, 60*time.Second)
	checkGapFree(t, recs)
	total := 0
	seen := make(map[int]bool, n)
	keyPart := map[string]int32{}
	for p, rs := range recs {
		total += len(rs)
		last := -1
		for _, r := range rs {
			v, err := strconv.Atoi(string(r.Value))
			if err != nil || v < 0 || v >= n {
				t.Fatalf("partition %d offset %d: bad value %q", p, r.Offset, r.Value)
			}
			if seen[v] {
				t.Fatalf("value %d is stored twice (second at partition %d offset %d)", v, p, r.Offset)
			}
			seen[v] = true
			if v <= last {
				t.Fatalf("partition %d: value %d at offset %d after value %d: produce order not kept", p, v, r.Offset, last)
			}
			last = v
			if kp, ok := keyPart[string(r.Key)]; ok && kp != p {
				t.Fatalf("key %s in partitions %d and %d", r.Key, kp, p)
			}
			keyPart[string(r.Key)] = p
			// Duplicates must have been answered with the original offsets.
			a := acked[v]
			if a.Partition != p || a.Offset != r.Offset {
				t.Fatalf("value %d acknowledged at %d/%d but stored at %d/%d", v, a.Partition, a.Offset, p, r.Offset)
			}
		}
	}
	if total != n {
		t.Fatalf("read %d records, want %d", total, n)
	}
	if len(recs) != 3 {
		t.Fatalf("records in %d partitions, want 3", len(recs))
	}
}
