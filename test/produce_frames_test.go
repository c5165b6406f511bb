package test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"

	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestProduceFramesReused: large produce requests are read into pooled
// buffers that are reused once the produce is answered (internal/server
// readLoop). If a buffer went back to the pool while a partition could
// still read a batch from it, a later request's bytes would be written in
// its place: here every record carries a digest of its own content, so
// any record that is not exactly what was sent is found. Several
// producers (acks=all and acks=1) send ~256 KiB requests at once over
// separate connections, so buffers are handed from one to another.
func TestProduceFramesReused(t *testing.T) {
	b := startBroker(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	adm, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if _, err := kadm.NewClient(adm).CreateTopic(ctx, 4, 1, nil, "frames"); err != nil {
		t.Fatal(err)
	}
	const producers, perProducer, valueBytes = 4, 600, 8 << 10
	errs := make(chan error, producers)
	for pi := 0; pi < producers; pi++ {
		go func(pi int) {
			acks := kgo.AllISRAcks()
			opts := []kgo.Opt{kgo.SeedBrokers(b.Addr()), kgo.DefaultProduceTopic("frames"), kgo.ProducerBatchMaxBytes(256 << 10)}
			if pi%2 == 1 {
				acks = kgo.LeaderAck()
				opts = append(opts, kgo.DisableIdempotentWrite())
			}
			cl, err := kgo.NewClient(append(opts, kgo.RequiredAcks(acks))...)
			if err != nil {
				errs <- err
				return
			}
			defer cl.Close()
			for i := 0; i < perProducer; i++ {
				cl.Produce(ctx, &kgo.Record{Value: digestValue(pi, i, valueBytes)}, func(_ *kgo.Record, err error) {
					if err != nil {
						t.Error(err)
					}
				})
			}
			errs <- cl.Flush(ctx)
		}(pi)
	}
	for i := 0; i < producers; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumeTopics("frames"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	seen := map[[2]uint32]bool{}
	for len(seen) < producers*perProducer {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("after %d records: %v", len(seen), err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			id, ok := checkDigestValue(r.Value)
			if !ok {
				t.Fatalf("record at %s/%d offset %d is not what any producer sent", r.Topic, r.Partition, r.Offset)
			}
			if seen[id] {
				t.Fatalf("record %v twice", id)
			}
			seen[id] = true
		})
	}
}

// digestValue is n bytes: producer and index, filler derived from them,
// and the SHA-256 of everything before it.
func digestValue(producer, i, n int) []byte {
	v := make([]byte, n)
	binary.BigEndian.PutUint32(v[0:], uint32(producer))
	binary.BigEndian.PutUint32(v[4:], uint32(i))
	for j := 8; j < n-sha256.Size; j++ {
		v[j] = byte(producer*31 + i*7 + j)
	}
	sum := sha256.Sum256(v[:n-sha256.Size])
	copy(v[n-sha256.Size:], sum[:])
	return v
}

func checkDigestValue(v []byte) ([2]uint32, bool) {
	if len(v) < 8+sha256.Size {
		return [2]uint32{}, false
	}
	n := len(v)
	sum := sha256.Sum256(v[:n-sha256.Size])
	if string(sum[:]) != string(v[n-sha256.Size:]) {
		return [2]uint32{}, false
	}
	return [2]uint32{binary.BigEndian.Uint32(v[0:]), binary.BigEndian.Uint32(v[4:])}, true
}
