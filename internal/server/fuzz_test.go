package server

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oncelog/oncelog/internal/broker"
	"github.com/oncelog/oncelog/internal/config"
	"github.com/oncelog/oncelog/internal/group"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// panicLog remembers the first "handler panicked" record: decodeAndHandle
// and safeWait recover panics and log them, so a fuzz target that only
// watched for crashes would miss them.
type panicLog struct {
	mu    sync.Mutex
	first string
}

func (h *panicLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (h *panicLog) Handle(_ context.Context, r slog.Record) error {
	if !strings.Contains(r.Message, "panicked") {
		return nil
	}
	var sb strings.Builder
	sb.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&sb, "\n%s: %v", a.Key, a.Value)
		return true
	})
	h.mu.Lock()
	if h.first == "" {
		h.first = sb.String()
	}
	h.mu.Unlock()
	return nil
}
func (h *panicLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *panicLog) WithGroup(string) slog.Handler      { return h }

func (h *panicLog) take() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.first
	h.first = ""
	return s
}

// fuzzFrame is a request frame without its size prefix, as readLoop hands
// it to decodeAndHandle.
func fuzzFrame(req kmsg.Request, corr int32) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, 4)
	b = append(b, "fuzz"...)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	return req.AppendTo(b)
}

// FuzzRequestFrame feeds arbitrary bytes as one request frame through the
// connection's decode path (decodeAndHandle, then the reply's wait and the
// response encoding that writeLoop does) of a server over a real broker in
// a temp dir. Properties: nothing panics, recovered or not; a waiting reply
// ends once its connection is gone; and the server still answers
// ApiVersions correctly afterwards.
//
// NB: frames are handed to decodeAndHandle directly, after the same size
// check readLoop makes, rather than written to a socket: the socket adds
// nothing but time per input.
func FuzzRequestFrame(f *testing.F) {
	cfg := config.Default()
	cfg.DataDir = f.TempDir()
	cfg.AutoCreateTopics = false
	cfg.OffsetsTopicPartitions = 1
	cfg.GroupInitialRebalanceDelay = 0
	cfg.SocketRequestMaxBytes = 1 << 20
	plog := &panicLog{}
	lg := slog.New(plog)
	b, err := broker.Open(broker.Options{Config: cfg, Logger: lg})
	if err != nil {
		f.Fatal(err)
	}
	groups, err := group.New(group.Options{
		Broker: b,
		Logger: lg,
		Settings: group.Settings{
			MinSessionTimeout:     cfg.GroupMinSessionTimeout,
			MaxSessionTimeout:     cfg.GroupMaxSessionTimeout,
			InitialRebalanceDelay: cfg.GroupInitialRebalanceDelay,
			MaxSize:               cfg.GroupMaxSize,
			OffsetsRetention:      cfg.OffsetsRetention,
			MaxMetadataBytes:      cfg.OffsetMetadataMaxBytes,
		},
		Partitions: cfg.OffsetsTopicPartitions,
	})
	if err != nil {
		f.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	s, err := New(b, ln, lg)
	if err != nil {
		f.Fatal(err)
	}
	s.Groups = groups
	f.Cleanup(func() {
		ln.Close()
		groups.Close()
		b.Close()
	})
	if _, perr := b.CreateTopic("fuzz", 2, nil, false); perr != nil {
		f.Fatal(perr)
	}

	// Seeds: every served key at every served version with default fields,
	// plus a few known-bad frames.
	for _, h := range sortedHandlers() {
		for v := h.min; v <= h.max; v++ {
			req := kmsg.RequestForKey(h.key)
			req.SetVersion(v)
			f.Add(fuzzFrame(req, int32(v)))
		}
	}
	{
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(9)
		req.Acks = -1
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "fuzz"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 49, 0, 0, 0, 0, 2}
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		f.Add(fuzzFrame(req, 7))
		fetch := kmsg.NewPtrFetchRequest()
		fetch.SetVersion(12)
		fetch.MaxWaitMillis, fetch.MinBytes = 30000, 1
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = "fuzz"
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.PartitionMaxBytes = 1 << 20
		ft.Partitions = append(ft.Partitions, fp)
		fetch.Topics = append(fetch.Topics, ft)
		f.Add(fuzzFrame(fetch, 8))
	}
	f.Add([]byte{0, 18, 0, 99, 0, 0, 0, 1, 0xff, 0xff})
	f.Add([]byte{0x27, 0x0f, 0, 0, 0, 0, 0, 1, 0, 0})
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))

	av := kmsg.NewPtrApiVersionsRequest()
	av.SetVersion(3)
	av.ClientSoftwareName, av.ClientSoftwareVersion = "fuzz", "1"
	avFrame := fuzzFrame(av, 1)

	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 8 || len(frame) > int(s.maxFrame) {
			return // readLoop closes the connection before decoding
		}
		// A fresh connection per input, as a client whose frame was bad
		// would reconnect.
		nc1, nc2 := net.Pipe()
		defer nc1.Close()
		defer nc2.Close()
		c := newConn(s, nc1)
		defer c.cancel()
		var p pending
		var err error
		handled := make(chan struct{})
		go func() {
			defer close(handled)
			p, err = c.decodeAndHandle(frame)
		}()
		select {
		case <-handled:
		case <-time.After(10 * time.Second):
			buf := make([]byte, 1<<20)
			t.Fatalf("decodeAndHandle still running after 10s on %x; goroutines:\n%s", frame, buf[:runtime.Stack(buf, true)])
		}
		if msg := plog.take(); msg != "" {
			t.Fatalf("handler panicked on %x:\n%s", frame, msg)
		}
		if err == nil {
			resp := p.r.resp
			if p.r.wait != nil {
				done := make(chan kmsg.Response, 1)
				go func() { done <- c.safeWait(p) }()
				select {
				case resp = <-done:
				case <-time.After(20 * time.Millisecond):
					// Long polls and joins wait; the connection going away
					// must end them.
					c.cancel()
					select {
					case resp = <-done:
					case <-time.After(10 * time.Second):
						t.Fatalf("%s v%d: reply still waiting 10s after its connection was cancelled", kmsg.NameForKey(p.key), p.version)
					}
				}
				if msg := plog.take(); msg != "" {
					t.Fatalf("wait panicked on %x:\n%s", frame, msg)
				}
			}
			if resp != nil && !p.r.noResponse {
				// What writeLoop does; a panic here would not be recovered.
				resp.SetVersion(p.version)
				resp.AppendTo(nil)
			}
		}

		// The broker still answers ApiVersions, fully.
		c2 := newConn(s, nc1)
		defer c2.cancel()
		p, err = c2.decodeAndHandle(avFrame)
		if err != nil {
			t.Fatalf("ApiVersions after %x: %v", frame, err)
		}
		avr, ok := p.r.resp.(*kmsg.ApiVersionsResponse)
		if !ok || avr.ErrorCode != 0 || len(avr.ApiKeys) != len(handlers) {
			t.Fatalf("ApiVersions after %x: %+v", frame, p.r.resp)
		}
	})
}
