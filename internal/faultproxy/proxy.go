// Package faultproxy is a misbehaving TCP proxy that sits between Kafka
// clients and one broker on loopback, for `oncelog verify` and tests.
//
// It reads Kafka's framing (a 4-byte big-endian size, then a request header
// with API key and correlation id, or a response header with the
// correlation id) so that it can act per request:
//
//   - cut a connection when its random lifetime runs out, whatever is in
//     flight (the client sees a reset and retries);
//   - delay each frame by a random time, in order (a slow network or a busy
//     broker; requests pile up and time out);
//   - cut a connection in the middle of a request: a strict prefix of the
//     frame reaches the broker, then both sides are closed (a torn
//     request the broker must discard);
//   - drop a response: the broker served the request but the client never
//     hears of it; the connection is cut so that the client retries a
//     request that already succeeded (the case idempotent produce and
//     retried EndTxn must get right).
//
// Faults are switched with SetFaults at any time; the zero Faults forwards
// everything untouched. Only loopback targets are accepted: the proxy is a
// test tool, never a thing to put in front of a real cluster.
package faultproxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Faults says what the proxy does to the traffic. The zero value forwards
// everything untouched.
type Faults struct {
	// MeanConnLife, if positive, gives every new connection a lifetime
	// drawn uniformly from [0, 2*MeanConnLife); the proxy cuts it then.
	MeanConnLife time.Duration
	// MaxDelay, if positive, delays each frame, both ways, by a random
	// time in [0, MaxDelay). Frames of one connection stay in order.
	MaxDelay time.Duration
	// CutFrameProb is the probability that a request frame is cut: a
	// random strict prefix of it is forwarded, then the connection is cut.
	CutFrameProb float64
	// DropProb is the probability that a response is swallowed, after
	// which the connection is cut. DropKeys, if not empty, limits drops to
	// responses to requests with those API keys.
	DropProb float64
	DropKeys []int16
}

// Active reports whether f injects anything.
func (f Faults) Active() bool {
	return f.MeanConnLife > 0 || f.MaxDelay > 0 || f.CutFrameProb > 0 || f.DropProb > 0
}

// Stats counts what a proxy did since it started.
type Stats struct {
	Conns     int64 `json:"conns"`      // client connections accepted
	Frames    int64 `json:"frames"`     // frames forwarded, both ways
	Cuts      int64 `json:"cuts"`       // connections cut at the end of their lifetime
	Drops     int64 `json:"drops"`      // responses swallowed (each also cut its connection)
	Delayed   int64 `json:"delayed"`    // frames held back before forwarding
	DialFails int64 `json:"dial_fails"` // upstream dials that failed (broker down)

	MidFrameCuts  int64           `json:"mid_frame_cuts,omitempty"`  // connections cut in the middle of a request frame
	DroppedByKeys map[int16]int64 `json:"dropped_by_keys,omitempty"` // Drops by the API key of the request
}

// AllCuts is the number of connections the proxy cut for any reason: at
// the end of their lifetime, in the middle of a request or after
// swallowing a response.
func (s Stats) AllCuts() int64 { return s.Cuts + s.MidFrameCuts + s.Drops }

// maxFrameBytes bounds the frames the proxy buffers; a larger one ends the
// connection. Kafka's default socket.request.max.bytes is 100 MiB.
const maxFrameBytes = 100 << 20

// Proxy forwards one loopback listener to one loopback target.
type Proxy struct {
	target string
	ln     net.Listener
	faults atomic.Pointer[Faults]

	// rndMu protects rnd.
	rndMu sync.Mutex
	rnd   *rand.Rand

	conns, frames, cuts, midFrameCuts, drops, delayed, dialFails atomic.Int64

	// dropMu protects droppedByKey.
	dropMu       sync.Mutex
	droppedByKey map[int16]int64

	// mu protects live and closed.
	mu     sync.Mutex
	live   map[*link]struct{}
	closed bool
	wg     sync.WaitGroup
}

// New listens on a free loopback port and forwards every connection to
// target, which must be a loopback host:port. seed drives every random
// choice.
func New(target string, seed uint64) (*Proxy, error) {
	if err := checkLoopback(target); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		target: target,
		ln:     ln,
		rnd:    rand.New(rand.NewPCG(seed, seed+1)),
		live:   map[*link]struct{}{},

		droppedByKey: map[int16]int64{},
	}
	p.faults.Store(&Faults{})
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("faultproxy: %w", err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("faultproxy: %q is not a loopback address", addr)
	}
	return nil
}

// Addr is the address clients dial instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// SetFaults changes the faults from now on. A connection's lifetime is
// drawn when it is accepted.
func (p *Proxy) SetFaults(f Faults) { p.faults.Store(&f) }

// CutAll cuts every open connection now.
func (p *Proxy) CutAll() {
	for _, l := range p.links() {
		l.close()
	}
}

// Stats returns a copy of the counters. A cut or a forwarded frame is
// counted before the client can see it.
func (p *Proxy) Stats() Stats {
	s := Stats{
		Conns: p.conns.Load(), Frames: p.frames.Load(), Cuts: p.cuts.Load(),
		Drops: p.drops.Load(), Delayed: p.delayed.Load(), DialFails: p.dialFails.Load(),
		MidFrameCuts: p.midFrameCuts.Load(),
	}
	p.dropMu.Lock()
	defer p.dropMu.Unlock()
	if len(p.droppedByKey) > 0 {
		s.DroppedByKeys = make(map[int16]int64, len(p.droppedByKey))
		for k, n := range p.droppedByKey {
			s.DroppedByKeys[k] = n
		}
	}
	return s
}

// Close stops listening, cuts every connection and waits for the proxy's
// goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.CutAll()
	p.wg.Wait()
	return err
}

func (p *Proxy) links() []*link {
	p.mu.Lock()
	defer p.mu.Unlock()
	ls := make([]*link, 0, len(p.live))
	for l := range p.live {
		ls = append(ls, l)
	}
	return ls
}

func (p *Proxy) randDur(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	p.rndMu.Lock()
	defer p.rndMu.Unlock()
	return time.Duration(p.rnd.Int64N(int64(max)))
}

func (p *Proxy) chance(prob float64) bool {
	if prob <= 0 {
		return false
	}
	p.rndMu.Lock()
	defer p.rndMu.Unlock()
	return p.rnd.Float64() < prob
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			return // closed
		}
		p.conns.Add(1)
		p.wg.Add(1)
		go p.handle(c)
	}
}

// link is one client connection and its upstream connection.
type link struct {
	client, upstream net.Conn
	once             sync.Once
	done             chan struct{}

	// mu protects inflight.
	mu       sync.Mutex
	inflight map[int32]int16 // correlation id -> API key, for requests not yet answered
}

func (l *link) close() { l.cut(nil) }

// cut closes both sides. If this call is the one that closes them, it
// first runs count, so that a client that sees the close also sees the
// reason counted in Stats.
func (l *link) cut(count func()) {
	l.once.Do(func() {
		if count != nil {
			count()
		}
		close(l.done)
		l.client.Close()
		l.upstream.Close()
	})
}

func (p *Proxy) handle(c net.Conn) {
	defer p.wg.Done()
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		p.dialFails.Add(1)
		c.Close()
		return
	}
	l := &link{client: c, upstream: up, done: make(chan struct{}), inflight: map[int32]int16{}}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		l.close()
		return
	}
	p.live[l] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.live, l)
		p.mu.Unlock()
	}()

	if life := p.faults.Load().MeanConnLife; life > 0 {
		t := time.AfterFunc(p.randDur(2*life), func() {
			l.cut(func() { p.cuts.Add(1) })
		})
		defer t.Stop()
	}
	var pumps sync.WaitGroup
	pumps.Add(2)
	go func() { defer pumps.Done(); p.pumpRequests(l) }()
	go func() { defer pumps.Done(); p.pumpResponses(l) }()
	pumps.Wait()
}

func readFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(hdr[:]))
	if n < 0 || n > maxFrameBytes {
		return nil, fmt.Errorf("faultproxy: frame of %d bytes", n)
	}
	buf := make([]byte, 4+int(n))
	copy(buf, hdr[:])
	_, err := io.ReadFull(r, buf[4:])
	return buf, err
}

// wait sleeps d unless the link closes first; it reports whether to go on.
func (l *link) wait(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.done:
		return false
	}
}

func (p *Proxy) delay(l *link) bool {
	d := p.randDur(p.faults.Load().MaxDelay)
	if d > 0 {
		p.delayed.Add(1)
	}
	return l.wait(d)
}

// pumpRequests forwards client frames upstream, noting each request's API
// key by correlation id (request header v1+: int16 key, int16 version,
// int32 correlation id).
func (p *Proxy) pumpRequests(l *link) {
	defer l.close()
	for {
		f, err := readFrame(l.client)
		if err != nil {
			return
		}
		if len(f) >= 12 {
			key := int16(binary.BigEndian.Uint16(f[4:6]))
			corr := int32(binary.BigEndian.Uint32(f[8:12]))
			l.mu.Lock()
			l.inflight[corr] = key
			l.mu.Unlock()
		}
		if !p.delay(l) {
			return
		}
		if p.chance(p.faults.Load().CutFrameProb) {
			// A strict prefix, so the broker sees a torn frame.
			n := 1 + int(p.randDur(time.Duration(len(f)-1)))
			l.upstream.Write(f[:n])
			l.cut(func() { p.midFrameCuts.Add(1) })
			return
		}
		p.frames.Add(1)
		if _, err := l.upstream.Write(f); err != nil {
			return
		}
	}
}

// pumpResponses forwards broker frames to the client, swallowing some.
func (p *Proxy) pumpResponses(l *link) {
	defer l.close()
	for {
		f, err := readFrame(l.upstream)
		if err != nil {
			return
		}
		key := int16(-1)
		if len(f) >= 8 {
			corr := int32(binary.BigEndian.Uint32(f[4:8]))
			l.mu.Lock()
			if k, ok := l.inflight[corr]; ok {
				key = k
				delete(l.inflight, corr)
			}
			l.mu.Unlock()
		}
		flt := p.faults.Load()
		if matchKey(flt.DropKeys, key) && p.chance(flt.DropProb) {
			l.cut(func() {
				p.drops.Add(1)
				p.dropMu.Lock()
				p.droppedByKey[key]++
				p.dropMu.Unlock()
			})
			return
		}
		if !p.delay(l) {
			return
		}
		p.frames.Add(1)
		if _, err := l.client.Write(f); err != nil {
			return
		}
	}
}

func matchKey(keys []int16, key int16) bool {
	if len(keys) == 0 {
		return true
	}
	for _, k := range keys {
		if k == key {
			return true
		}
	}
	return false
}
