// Package server speaks the Kafka wire protocol: it accepts TCP
// connections, reads size-prefixed frames under a cap, decodes request
// headers and bodies with kmsg, dispatches each request to the handler of
// its API key (one file per key, named NN_name.go), and writes responses in
// request order.
//
// Per connection, a reader goroutine decodes requests and runs the first,
// ordered part of each handler (a produce is queued to its partitions in
// the order it arrived, so a producer's pipelined requests keep their
// sequence order), and a writer goroutine waits for each response in turn
// and writes it. At most MaxInflightPerConn requests wait per connection;
// past that the reader stops reading (TCP backpressure).
package server

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/oncelog/oncelog/internal/broker"
	"github.com/oncelog/oncelog/internal/group"
	"github.com/oncelog/oncelog/internal/metrics"
	"github.com/oncelog/oncelog/internal/txn"
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handlerFunc serves one decoded request. It runs on the connection's reader
// goroutine, in request order; work that waits (fsync, long polls) goes
// into the returned reply's wait function, which runs on the writer.
type handlerFunc func(c *conn, req kmsg.Request) reply

// reply is a handler's answer: either a response now, a function that
// produces it later, or nothing at all (produce with acks=0).
type reply struct {
	resp       kmsg.Response
	wait       func() kmsg.Response
	noResponse bool
	// release, if set, runs once the response is encoded into its frame
	// (or dropped): the response may alias buffers (a fetch's record
	// arena) that go back to their pool then. With a fetch whose
	// records are sent from their files (fetch.ranged), it runs once
	// the frame is sent instead.
	release func()
	// fetch is a fetch's arena, set by the fetch handler: its ranged
	// partitions carry placeholders that the writer replaces by their
	// records, sent from the files (zerocopy.go).
	fetch *arena
}

func now(r kmsg.Response) reply          { return reply{resp: r} }
func later(f func() kmsg.Response) reply { return reply{wait: f} }
func noReply() reply                     { return reply{noResponse: true} }

type handler struct {
	key      int16
	min, max int16
	fn       handlerFunc
}

// handlers is the registry; each NN_name.go file registers itself in init.
// ApiVersions is derived from it so the two cannot drift.
var handlers = map[int16]handler{}

func register(key, min, max int16, fn handlerFunc) {
	if _, dup := handlers[key]; dup {
		panic(fmt.Sprintf("server: API key %d registered twice", key))
	}
	if probe := kmsg.RequestForKey(key); probe == nil || max > probe.MaxVersion() {
		panic(fmt.Sprintf("server: API key %d registered past kmsg's max version", key))
	}
	handlers[key] = handler{key: key, min: min, max: max, fn: fn}
}

func sortedHandlers() []handler {
	out := make([]handler, 0, len(handlers))
	for _, h := range handlers {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// Server accepts and serves connections.
type Server struct {
	// Groups is the group coordinator; set before Serve.
	Groups *group.Coordinator
	// Txns is the transaction coordinator; set before Serve.
	Txns *txn.Coordinator
	// Metrics records request latencies and produced records; nil: none.
	Metrics *metrics.Metrics

	b   *broker.Broker
	lg  *slog.Logger
	ln  net.Listener
	adv struct {
		host string
		port int32
	}
	maxFrame    int32
	maxInflight int
	connSlots   chan struct{}
	fetchSlots  chan struct{}

	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[*conn]struct{}
	closed atomic.Bool
}

// New makes a server for b listening on ln.
func New(b *broker.Broker, ln net.Listener, lg *slog.Logger) (*Server, error) {
	if lg == nil {
		lg = slog.Default()
	}
	s := &Server{
		b:           b,
		lg:          lg,
		ln:          ln,
		maxFrame:    b.Config.SocketRequestMaxBytes,
		maxInflight: b.Config.MaxInflightPerConn,
		connSlots:   make(chan struct{}, b.Config.MaxConnections),
		fetchSlots:  make(chan struct{}, b.Config.MaxFetchWaiters),
		conns:       make(map[*conn]struct{}),
	}
	adv := b.Config.Advertise
	if adv == "" {
		adv = ln.Addr().String()
	}
	host, portStr, err := net.SplitHostPort(adv)
	if err != nil {
		return nil, fmt.Errorf("advertised address %q: %w", adv, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("advertised port %q: %w", portStr, err)
	}
	s.adv.host, s.adv.port = host, int32(port)
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve accepts connections until Close.
func (s *Server) Serve() error {
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.closed.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		select {
		case s.connSlots <- struct{}{}:
		default:
			s.lg.Warn("max.connections reached; closing new connection", "remote", nc.RemoteAddr().String())
			nc.Close()
			continue
		}
		c := newConn(s, nc)
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			<-s.connSlots
		}()
	}
}

// Close stops accepting, closes every connection and waits for them.
func (s *Server) Close() error {
	s.closed.Store(true)
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// conn is one client connection.
type conn struct {
	s        *Server
	nc       net.Conn
	ctx      context.Context
	cancel   context.CancelFunc
	clientID string
	pending  chan pending
	// out is the TCP socket's raw connection, for sendfile; nil (fetches
	// copy their records) for other connections or where sendfile is not
	// supported.
	out syscall.RawConn
}

type pending struct {
	corr     int32
	key      int16
	version  int16
	flexible bool
	r        reply
	// read is when the request's frame was read (for Metrics).
	read time.Time
}

func newConn(s *Server, nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{s: s, nc: nc, ctx: ctx, cancel: cancel, pending: make(chan pending, s.maxInflight)}
	if tc, ok := nc.(*net.TCPConn); ok && sendfileSupported {
		if rc, err := tc.SyscallConn(); err == nil {
			c.out = rc
		}
	}
	return c
}

func (c *conn) serve() {
	defer c.nc.Close()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()
	err := c.readLoop()
	close(c.pending)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		c.s.lg.Info("closing connection", "remote", c.nc.RemoteAddr().String(), "client_id", c.clientID, "reason", err)
	}
	// The client is gone (or misbehaved): parked long polls and group
	// joins answer at once instead of holding the connection open.
	c.cancel()
	<-writerDone
}

// errCloseConn reasons make the reader close the connection, as Kafka does
// for frames it cannot parse.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return e.msg }

func (c *conn) readLoop() error {
	r := bufio.NewReaderSize(c.nc, 64<<10)
	var sizeBuf [4]byte
	for {
		if _, err := io.ReadFull(r, sizeBuf[:]); err != nil {
			return err
		}
		size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
		// The cap is checked before anything is allocated
		// (socket.request.max.bytes).
		if size < 8 || size > c.s.maxFrame {
			return &protocolError{fmt.Sprintf("frame of %d bytes is outside 8..%d (socket.request.max.bytes)", size, c.s.maxFrame)}
		}
		// A large frame is read into a pooled buffer (reading overwrites
		// all of it, so it needs no zeroing). Only a produce gives it
		// back, once its response is encoded: its batches alias the
		// frame until every append is answered, and nothing else of it
		// is kept (kmsg copies strings). Other requests may keep aliases
		// (group member metadata, for one), so their frames are left to
		// the garbage collector.
		pooled := int(size) >= minPooledBytes
		var frame []byte
		if pooled {
			frame = getBuf(int(size))[:size]
		} else {
			frame = make([]byte, size)
		}
		if _, err := io.ReadFull(r, frame); err != nil {
			return err
		}
		p, err := c.decodeAndHandle(frame)
		if err != nil {
			return err
		}
		if pooled && p.key == produceKey && p.r.wait != nil {
			// acks=0 (noResponse) is never given back: nothing tells
			// when its appends are done. Neither is a frame whose wait
			// did not return (it panicked): appends may still read it.
			wait, prev := p.r.wait, p.r.release
			answered := false // wait and release both run on the writer
			p.r.wait = func() kmsg.Response {
				resp := wait()
				answered = true
				return resp
			}
			p.r.release = func() {
				if prev != nil {
					prev()
				}
				if answered {
					putBuf(frame)
				}
			}
		}
		select {
		case c.pending <- p:
		case <-c.ctx.Done():
			return net.ErrClosed
		}
	}
}

func (c *conn) decodeAndHandle(frame []byte) (p pending, err error) {
	key := int16(binary.BigEndian.Uint16(frame[0:]))
	version := int16(binary.BigEndian.Uint16(frame[2:]))
	corr := int32(binary.BigEndian.Uint32(frame[4:]))
	rd := kbin.Reader{Src: frame[8:]}
	clientID := rd.NullableString()
	if rd.Complete() != nil && len(frame) > 8 {
		return p, &protocolError{"truncated request header"}
	}
	if clientID != nil {
		c.clientID = *clientID
	}
	p = pending{corr: corr, key: key, version: version}
	if c.s.Metrics != nil {
		p.read = time.Now()
	}
	h, known := handlers[key]
	if !known {
		return p, &protocolError{fmt.Sprintf("unknown API key %d", key)}
	}
	req := kmsg.RequestForKey(key)
	if version < h.min || version > h.max {
		if key == apiVersionsKey {
			// KIP-511: answer an ApiVersions we cannot parse with a v0
			// response listing what we serve, so the client can pick.
			p.version = 0
			p.r = now(apiVersionsUnsupported())
			return p, nil
		}
		return p, &protocolError{fmt.Sprintf("API key %d version %d is not supported (%d..%d)", key, version, h.min, h.max)}
	}
	req.SetVersion(version)
	p.flexible = req.IsFlexible()
	if p.flexible {
		skipTags(&rd)
	}
	body := rd.Src
	if err := rd.Complete(); err != nil {
		return p, &protocolError{"bad request header tags"}
	}
	if err := req.ReadFrom(body); err != nil {
		return p, &protocolError{fmt.Sprintf("cannot decode %s v%d: %v", kmsg.NameForKey(key), version, err)}
	}
	defer func() {
		if r := recover(); r != nil {
			c.s.lg.Error("handler panicked; closing connection", "api", kmsg.NameForKey(key), "version", version, "panic", r, "stack", string(debug.Stack()))
			err = &protocolError{"internal error"}
		}
	}()
	p.r = h.fn(c, req)
	return p, nil
}

func skipTags(rd *kbin.Reader) {
	n := rd.Uvarint()
	for i := uint32(0); i < n && rd.Ok(); i++ {
		rd.Uvarint()
		rd.Span(int(rd.Uvarint()))
	}
}

func (c *conn) writeLoop() {
	w := bufio.NewWriterSize(c.nc, 64<<10)
	// small is the connection's own frame buffer; a frame past
	// maxConnFrameBytes is encoded into a pooled buffer sized for it
	// (so a fetch's megabytes are neither regrown by append nor kept
	// per connection).
	var small []byte
	// Reused by frames sent in parts (zerocopy.go).
	var (
		lens    []int64
		parts   []framePart
		scratch []byte
	)
	failed := false
	for p := range c.pending {
		resp := p.r.resp
		if p.r.wait != nil {
			resp = c.safeWait(p)
		}
		if p.r.noResponse || failed || resp == nil {
			if p.r.release != nil {
				p.r.release()
			}
			if resp == nil && !p.r.noResponse && !failed {
				// The handler failed; the connection is closed, as
				// for a request Kafka cannot process.
				failed = true
				c.nc.Close()
			}
			continue
		}
		buf := small
		if hint := responseSizeHint(resp); hint > maxConnFrameBytes {
			buf = getBuf(hint)
		}
		buf = appendFrame(buf, &p, resp)
		var err error
		if p.r.fetch != nil && len(p.r.fetch.ranged) > 0 {
			// Records left in their files: the frame goes out in
			// parts, and the segments are given back after the send.
			ranged := p.r.fetch.ranged
			lens = lens[:0]
			for _, r := range ranged {
				lens = append(lens, r.rs.Bytes)
			}
			parts, scratch, err = spliceFrame(buf, resp.IsFlexible(), lens, parts, scratch)
			if err == nil {
				err = writeParts(w, c.out, parts, ranged)
			}
			clear(parts) // no references into buf past this response
			if p.r.release != nil {
				p.r.release()
			}
		} else {
			if p.r.release != nil {
				p.r.release()
			}
			_, err = w.Write(buf)
		}
		if err == nil && len(c.pending) == 0 {
			err = w.Flush()
		}
		if c.s.Metrics != nil && err == nil {
			c.s.Metrics.ObserveRequest(p.key, time.Since(p.read))
		}
		// w holds no reference to buf once Write returns.
		if cap(buf) > maxConnFrameBytes {
			putBuf(buf)
		} else {
			small = buf
		}
		if err != nil {
			failed = true
			c.nc.Close()
		}
	}
	w.Flush()
}

// maxConnFrameBytes is the largest frame buffer a connection keeps for
// itself between responses.
const maxConnFrameBytes = 1 << 20

// responseSizeHint is a close upper bound of resp's encoded size where it is
// large and cheap to know (a fetch: its record bytes plus a margin for the
// fields around them), and 0 otherwise.
func responseSizeHint(resp kmsg.Response) int {
	fr, ok := resp.(*kmsg.FetchResponse)
	if !ok {
		return 0
	}
	n := 64
	for i := range fr.Topics {
		t := &fr.Topics[i]
		n += 64 + len(t.Topic)
		for j := range t.Partitions {
			sp := &t.Partitions[j]
			n += 96 + len(sp.RecordBatches) + 32*len(sp.AbortedTransactions)
		}
	}
	return n
}

func (c *conn) safeWait(p pending) (resp kmsg.Response) {
	defer func() {
		if r := recover(); r != nil {
			c.s.lg.Error("handler panicked; closing connection", "api", kmsg.NameForKey(p.key), "version", p.version, "panic", r, "stack", string(debug.Stack()))
			resp = nil
		}
	}()
	return p.r.wait()
}
