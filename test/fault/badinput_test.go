package fault

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/oncelog/oncelog/embed"
	"github.com/oncelog/oncelog/internal/recordbatch"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// testBatch is a valid, uncompressed, non-idempotent batch of values.
func testBatch(values ...string) []byte {
	now := time.Now().UnixMilli()
	var recs [][]byte
	for i, v := range values {
		recs = append(recs, recordbatch.AppendRecord(nil, recordbatch.Record{OffsetDelta: int32(i), Value: []byte(v)}))
	}
	return recordbatch.Build(recordbatch.Header{
		LastOffsetDelta: int32(len(values) - 1),
		BaseTimestamp:   now,
		MaxTimestamp:    now,
		ProducerID:      -1,
		ProducerEpoch:   -1,
		BaseSequence:    -1,
	}, recs)
}

// recrc recomputes a batch's CRC-32C after an edit.
func recrc(b []byte) {
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
}

func rawProduce(c *rawConn, topic string, partition int32, acks int16, batch []byte) kmsg.ProduceResponseTopicPartition {
	c.t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.Acks = acks
	req.TimeoutMillis = 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = partition
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := c.roundTrip(req).(*kmsg.ProduceResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		c.t.Fatalf("produce response shape: %+v", resp)
	}
	return resp.Topics[0].Partitions[0]
}

// noError stands for error code 0 in wantCode.
var noError = &kerr.Error{Message: "NONE", Code: 0}

func wantCode(t *testing.T, what string, got int16, want ...*kerr.Error) {
	t.Helper()
	for _, w := range want {
		if got == w.Code {
			return
		}
	}
	t.Fatalf("%s: error code %d (%v), want %v", what, got, kerr.ErrorForCode(got), want)
}

// TestBadInput sends malformed frames and bad batches over raw TCP. Frames
// the broker cannot parse close the connection (as Kafka does) and nothing
// else; bad batches are per-partition errors that store nothing. Earlier
// data stays readable and new clients work afterwards.
func TestBadInput(t *testing.T) {
	const topic = "bad"
	b, err := embed.Start(embed.Options{DataDir: t.TempDir(), Settings: map[string]string{
		"socket.request.max.bytes": strconv.Itoa(1 << 20),
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	addr := b.Addr()
	createTopic(t, addr, topic, 3)

	// The earlier set, produced by a real client.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	earlier := map[string]bool{}
	{
		cl := newClient(t, addr, kgo.DefaultProduceTopic(topic))
		for i := 0; i < 300; i++ {
			v := "early-" + strconv.Itoa(i)
			earlier[v] = true
			if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		cl.Close()
	}

	// A bystander connection that must be unaffected by everything below.
	bystander := dialRaw(t, addr)
	bystander.apiVersions()

	t.Run("garbage", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.write([]byte("GET / HTTP/1.1\r\nHost: oncelog\r\n\r\n")) // size 0x47455420: over the cap
		c.expectClosed(5*time.Second, "HTTP request")

		c = dialRaw(t, addr)
		g := binary.BigEndian.AppendUint32(nil, 16)
		for i := 0; i < 16; i++ {
			g = append(g, 0xff) // API key -1
		}
		c.write(g)
		c.expectClosed(5*time.Second, "frame of 0xff")

		c = dialRaw(t, addr)
		// A Produce v9 header followed by a body that is not a Produce.
		c.write(requestFrame(0, 9, 1, true, []byte{0xff, 0xff, 0xff, 0xff, 0x01, 0x02}))
		c.expectClosed(5*time.Second, "Produce with a garbage body")

		c = dialRaw(t, addr)
		c.write([]byte{0, 0, 0, 3, 1, 2, 3}) // below the 8-byte header minimum
		c.expectClosed(5*time.Second, "3-byte frame")

		bystander.apiVersions()
	})

	t.Run("oversized frame", func(t *testing.T) {
		c := dialRaw(t, addr)
		// Only the size is sent: a broker that waited for 2 MiB would not
		// close the connection.
		c.write(binary.BigEndian.AppendUint32(nil, 2<<20))
		c.expectClosed(5*time.Second, "2 MiB frame with a 1 MiB cap")

		// A broker that allocated what the size claims would show ~2 GiB
		// more allocated bytes (it runs in this process).
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for _, size := range []uint32{0x7fffffff, 0xffffffff, 1<<20 + 1} {
			c = dialRaw(t, addr)
			c.write(binary.BigEndian.AppendUint32(nil, size))
			c.expectClosed(5*time.Second, "frame size "+strconv.FormatUint(uint64(size), 16))
		}
		runtime.ReadMemStats(&after)
		if d := after.TotalAlloc - before.TotalAlloc; d > 256<<20 {
			t.Fatalf("%d MiB allocated while refusing oversized frames", d>>20)
		}
		bystander.apiVersions()
	})

	t.Run("unknown API key", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.write(requestFrame(9999, 0, 1, false, nil))
		c.expectClosed(5*time.Second, "API key 9999")
		c = dialRaw(t, addr)
		c.write(requestFrame(17, 0, 1, false, nil)) // SaslHandshake: known to Kafka, not served
		c.expectClosed(5*time.Second, "API key 17")
		bystander.apiVersions()
	})

	t.Run("unsupported ApiVersions version", func(t *testing.T) {
		c := dialRaw(t, addr)
		body := kmsg.NewPtrApiVersionsRequest()
		body.SetVersion(4)
		c.write(requestFrame(18, 99, 42, true, body.AppendTo(nil)))
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.SetVersion(0)
		c.readResponse(42, resp, false)
		wantCode(t, "ApiVersions v99", resp.ErrorCode, kerr.UnsupportedVersion)
		found := map[int16]kmsg.ApiVersionsResponseApiKey{}
		for _, k := range resp.ApiKeys {
			found[k.ApiKey] = k
		}
		if k, ok := found[18]; !ok || k.MaxVersion < 3 {
			t.Fatalf("ApiVersions list lacks ApiVersions v3+: %+v", resp.ApiKeys)
		}
		if k, ok := found[0]; !ok || k.MinVersion > 3 || k.MaxVersion < 9 {
			t.Fatalf("ApiVersions list lacks Produce 3-9: %+v", resp.ApiKeys)
		}
		// The connection stays usable: the client retries with a version
		// we serve.
		c.apiVersions()
	})

	// From here on, bad produce requests on one connection; each is a
	// per-partition error and the connection stays open.
	c := dialRaw(t, addr)
	hw := func() int64 { return endOffsets(t, addr, topic)[0] }
	base := hw()
	good := rawProduce(c, topic, 0, -1, testBatch("raw-0", "raw-1"))
	wantCode(t, "control produce", good.ErrorCode, noError)
	if good.BaseOffset != base || hw() != base+2 {
		t.Fatalf("control produce: base offset %d, high watermark %d; want %d and %d", good.BaseOffset, hw(), base, base+2)
	}
	base += 2

	t.Run("missing partition", func(t *testing.T) {
		r := rawProduce(c, topic, 99, -1, testBatch("p99"))
		wantCode(t, "partition 99", r.ErrorCode, kerr.UnknownTopicOrPartition)
		r = rawProduce(c, topic, -1, -1, testBatch("p-1"))
		wantCode(t, "partition -1", r.ErrorCode, kerr.UnknownTopicOrPartition)
	})

	t.Run("wrong CRC", func(t *testing.T) {
		bad := testBatch("crc")
		bad[len(bad)-1] ^= 0x01 // a value byte: the CRC no longer matches
		r := rawProduce(c, topic, 0, -1, bad)
		wantCode(t, "bad CRC", r.ErrorCode, kerr.CorruptMessage)
		bad = testBatch("crc")
		bad[17] ^= 0x80 // the CRC itself
		r = rawProduce(c, topic, 0, -1, bad)
		wantCode(t, "bad CRC field", r.ErrorCode, kerr.CorruptMessage)
		if got := hw(); got != base {
			t.Fatalf("high watermark %d after a corrupt batch, want %d", got, base)
		}
	})

	t.Run("truncated and miscounted", func(t *testing.T) {
		full := testBatch("t-0", "t-1", "t-2")
		r := rawProduce(c, topic, 0, -1, full[:len(full)-4])
		wantCode(t, "truncated batch", r.ErrorCode, kerr.CorruptMessage)
		r = rawProduce(c, topic, 0, -1, full[:30])
		wantCode(t, "batch cut inside its header", r.ErrorCode, kerr.CorruptMessage)
		r = rawProduce(c, topic, 0, -1, append(append([]byte{}, full...), full[:20]...))
		wantCode(t, "batch with trailing bytes", r.ErrorCode, kerr.CorruptMessage)

		for _, count := range []uint32{5, 2, 0, 0x7fffffff} {
			bad := testBatch("c-0", "c-1", "c-2")
			binary.BigEndian.PutUint32(bad[57:], count)
			recrc(bad)
			r = rawProduce(c, topic, 0, -1, bad)
			wantCode(t, "record count "+strconv.Itoa(int(count)), r.ErrorCode, kerr.InvalidRecord, kerr.CorruptMessage)
		}
		bad := testBatch("d-0", "d-1")
		binary.BigEndian.PutUint32(bad[23:], 7) // lastOffsetDelta 7 for 2 records
		recrc(bad)
		r = rawProduce(c, topic, 0, -1, bad)
		wantCode(t, "last offset delta", r.ErrorCode, kerr.InvalidRecord, kerr.CorruptMessage)
		if got := hw(); got != base {
			t.Fatalf("high watermark %d after bad batches, want %d", got, base)
		}
	})

	t.Run("acks=5", func(t *testing.T) {
		r := rawProduce(c, topic, 0, 5, testBatch("acks5"))
		wantCode(t, "acks=5", r.ErrorCode, kerr.InvalidRequiredAcks)
		if got := hw(); got != base {
			t.Fatalf("high watermark %d after acks=5, want %d", got, base)
		}
	})

	// The same connection still serves a good batch.
	good = rawProduce(c, topic, 0, -1, testBatch("raw-2"))
	wantCode(t, "produce after bad batches", good.ErrorCode, noError)
	if good.BaseOffset != base {
		t.Fatalf("base offset %d after bad batches, want %d", good.BaseOffset, base)
	}
	bystander.apiVersions()

	// Everything produced is readable, nothing else is there.
	recs := readAll(t, addr, topic, 30*time.Second)
	checkGapFree(t, recs)
	want := map[string]bool{"raw-0": true, "raw-1": true, "raw-2": true}
	for v := range earlier {
		want[v] = true
	}
	n := 0
	for _, rs := range recs {
		for _, r := range rs {
			if !want[string(r.Value)] {
				t.Fatalf("unexpected record %q at %d/%d", r.Value, r.Partition, r.Offset)
			}
			delete(want, string(r.Value))
			n++
		}
	}
	if len(want) != 0 {
		t.Fatalf("%d records missing after bad input, e.g. %v", len(want), want)
	}

	// A new client produces fine.
	cl := newClient(t, addr, kgo.DefaultProduceTopic(topic))
	for i := 0; i < 10; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("late-" + strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatalf("produce after bad input: %v", err)
		}
	}
	t.Logf("%d records readable after bad input; new client produced 10", n)
}
