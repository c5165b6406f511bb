package server

import (
	"bufio"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/oncelog/oncelog/internal/broker"
	"github.com/oncelog/oncelog/internal/config"
	"github.com/oncelog/oncelog/internal/recordbatch"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// BenchmarkFetch measures the broker's side of a consumer's fetch over a
// real loopback connection: a Fetch v12 for 6 partitions of 1 KiB records,
// 1 MiB per partition, read from the page cache, encoded and written;
// the client only reads the response frame. bytes/op is the response size.
func BenchmarkFetch(b *testing.B) {
	const parts = 6
	cfg := config.Default()
	cfg.DataDir = b.TempDir()
	cfg.AutoCreateTopics = false
	lg := slog.New(slog.DiscardHandler)
	br, err := broker.Open(broker.Options{Config: cfg, Logger: lg})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	t, perr := br.CreateTopic("bench", parts, nil, false)
	if perr != nil {
		b.Fatal(perr)
	}
	val := make([]byte, 1024)
	var recs [][]byte
	for i := 0; i < 16; i++ {
		recs = append(recs, recordbatch.AppendRecord(nil, recordbatch.Record{OffsetDelta: int32(i), Value: val}))
	}
	for _, p := range t.Partitions {
		for i := 0; i < 128; i++ { // 2 MiB per partition
			bt := recordbatch.Build(recordbatch.Header{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, LastOffsetDelta: 15}, recs)
			h, err := recordbatch.Check(bt)
			if err != nil {
				b.Fatal(err)
			}
			if r := <-p.Append(bt, h); r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(br, ln, lg)
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve()
	defer s.Close()

	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(12)
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 500, 1, 50<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "bench"
	for i := int32(0); i < parts; i++ {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.PartitionMaxBytes, rp.FetchOffset = i, 1<<20, 0
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	frame := fuzzFrame(req, 1)
	frame = append(binary.BigEndian.AppendUint32(nil, uint32(len(frame))), frame...)

	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	r := bufio.NewReaderSize(nc, 1<<20)
	var size [4]byte
	var resp []byte
	fetch := func() int {
		if _, err := nc.Write(frame); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(r, size[:]); err != nil {
			b.Fatal(err)
		}
		n := int(binary.BigEndian.Uint32(size[:]))
		if cap(resp) < n {
			resp = make([]byte, n)
		}
		if _, err := io.ReadFull(r, resp[:n]); err != nil {
			b.Fatal(err)
		}
		return n
	}
	n := fetch()
	if n < parts<<20-parts*20<<10 {
		b.Fatalf("response of %d bytes, want about %d", n, parts<<20)
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fetch()
	}
}
