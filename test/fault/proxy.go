// Package fault holds end-to-end fault tests of the oncelog broker (cut
// connections, lost responses, kill -9 of the real process, torn and
// corrupt files, bad input) and the tools they need, such as Proxy.
package fault

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

// ProxyConfig says which faults a Proxy injects. The zero value forwards
// everything untouched.
type ProxyConfig struct {
	// Seed seeds the proxy's random choices.
	Seed uint64
	// MeanConnLife, if positive, cuts every connection after a random
	// lifetime drawn uniformly from [0, 2*MeanConnLife): a cut at a random
	// moment, whatever is in flight.
	MeanConnLife time.Duration
	// CutFrameProb is the probability that a request frame is cut in the
	// middle: part of it is forwarded, then both sides are closed.
	CutFrameProb float64
	// DropProb is the probability that a response to a request whose API
	// key is in DropKeys (any key if DropKeys is empty) is swallowed: the
	// request reached the broker and was served, the client never hears of
	// it, and the connection is cut so that the client retries.
	DropProb float64
	DropKeys []int16
	// MaxDelay delays each forwarded frame by a random time in
	// [0, MaxDelay).
	MaxDelay time.Duration
}

// ProxyStats counts what a Proxy did.
type ProxyStats struct {
	Conns         int64 // connections accepted
	Frames        int64 // frames forwarded (both directions)
	TimedCuts     int64 // connections cut when their lifetime ran out
	MidFrameCuts  int64 // connections cut in the middle of a request frame
	Drops         int64 // responses swallowed (then the connection was cut)
	DroppedByKeys map[int16]int64
}

// Cuts is the number of connections the proxy cut, for any reason.
func (s ProxyStats) Cuts() int64 { return s.TimedCuts + s.MidFrameCuts + s.Drops }

func (s ProxyStats) String() string {
	return fmt.Sprintf("conns=%d frames=%d cuts=%d (timed=%d mid-frame=%d) dropped-responses=%d %v",
		s.Conns, s.Frames, s.Cuts(), s.TimedCuts, s.MidFrameCuts, s.Drops, s.DroppedByKeys)
}

// maxProxyFrame bounds the frames the proxy buffers; a larger one cuts the
// connection.
const maxProxyFrame = 64 << 20

// Proxy is a fault-injecting TCP proxy for tests, between Kafka clients and
// one broker, on loopback only. It understands Kafka framing (4-byte size,
// then a request header or response header) so that it can swallow the
// response to a chosen request. Close ends every goroutine it started.
type Proxy struct {
	target string
	ln     net.Listener

	cfg atomic.Pointer[ProxyConfig]

	rmu sync.Mutex
	rnd *rand.Rand

	mu    sync.Mutex
	conns map[*proxyConn]struct{}
	stats ProxyStats

	closed atomic.Bool
	wg     sync.WaitGroup
}

// NewProxy listens on a free loopback port and forwards to target, which
// must be a loopback address.
func NewProxy(target string, cfg ProxyConfig) (*Proxy, error) {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("proxy: target %q is not a loopback address", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		target: target,
		ln:     ln,
		rnd:    rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		conns:  map[*proxyConn]struct{}{},
	}
	p.stats.DroppedByKeys = map[int16]int64{}
	p.SetConfig(cfg)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetConfig changes the faults for frames and connections from now on (the
// seed is not changed).
func (p *Proxy) SetConfig(cfg ProxyConfig) { p.cfg.Store(&cfg) }

// Stats returns a copy of the counters.
func (p *Proxy) Stats() ProxyStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.DroppedByKeys = make(map[int16]int64, len(p.stats.DroppedByKeys))
	for k, v := range p.stats.DroppedByKeys {
		s.DroppedByKeys[k] = v
	}
	return s
}

// Close stops accepting, cuts every connection and waits for all the
// proxy's goroutines.
func (p *Proxy) Close() error {
	p.closed.Store(true)
	err := p.ln.Close()
	// NB: connections are closed outside mu: a cut counts its reason under
	// mu from inside the connection's once.
	p.mu.Lock()
	conns := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) float() float64 {
	p.rmu.Lock()
	defer p.rmu.Unlock()
	return p.rnd.Float64()
}

func (p *Proxy) duration(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	p.rmu.Lock()
	defer p.rmu.Unlock()
	return time.Duration(p.rnd.Int64N(int64(max)))
}

func (p *Proxy) count(f func(s *ProxyStats)) {
	p.mu.Lock()
	f(&p.stats)
	p.mu.Unlock()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		cc, err := p.ln.Accept()
		if err != nil {
			if p.closed.Load() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return
		}
		p.serve(cc)
	}
}

// proxyConn is one client connection and its upstream connection.
type proxyConn struct {
	p      *Proxy
	cc, uc net.Conn
	once   sync.Once
	done   chan struct{}
	timer  *time.Timer

	mu   sync.Mutex
	keys map[int32]int16 // correlation id -> API key of requests awaiting a response
}

func (c *proxyConn) close() { c.cut(nil) }

// cut closes both sides; if this call is the one that closes them, it first
// counts the cut with count, so that a client that sees the close also sees
// it in Stats.
func (c *proxyConn) cut(count func(s *ProxyStats)) {
	c.once.Do(func() {
		if count != nil {
			c.p.count(count)
		}
		close(c.done)
		c.cc.Close()
		c.uc.Close()
	})
}

func (p *Proxy) serve(cc net.Conn) {
	uc, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		cc.Close()
		return
	}
	c := &proxyConn{p: p, cc: cc, uc: uc, done: make(chan struct{}), keys: map[int32]int16{}}
	p.mu.Lock()
	if p.closed.Load() {
		p.mu.Unlock()
		c.close()
		return
	}
	p.conns[c] = struct{}{}
	p.stats.Conns++
	p.mu.Unlock()

	if life := p.cfg.Load().MeanConnLife; life > 0 {
		c.timer = time.AfterFunc(p.duration(2*life), func() {
			c.cut(func(s *ProxyStats) { s.TimedCuts++ })
		})
	}
	var pumps sync.WaitGroup
	pumps.Add(2)
	p.wg.Add(1)
	go func() {
		defer pumps.Done()
		c.requests()
	}()
	go func() {
		defer pumps.Done()
		c.responses()
	}()
	go func() {
		defer p.wg.Done()
		pumps.Wait()
		if c.timer != nil {
			c.timer.Stop()
		}
		c.close()
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()
}

func readFrame(r io.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(size[:]))
	if n < 0 || n > maxProxyFrame {
		return nil, fmt.Errorf("proxy: frame of %d bytes", n)
	}
	frame := make([]byte, 4+int(n))
	copy(frame, size[:])
	if _, err := io.ReadFull(r, frame[4:]); err != nil {
		return nil, err
	}
	return frame, nil
}

func (c *proxyConn) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.done:
		return false
	}
}

// requests forwards client frames upstream.
func (c *proxyConn) requests() {
	defer c.close()
	p := c.p
	for {
		frame, err := readFrame(c.cc)
		if err != nil {
			return
		}
		cfg := p.cfg.Load()
		if len(frame) >= 12 {
			key := int16(binary.BigEndian.Uint16(frame[4:]))
			corr := int32(binary.BigEndian.Uint32(frame[8:]))
			c.mu.Lock()
			c.keys[corr] = key
			c.mu.Unlock()
		}
		if !c.sleep(p.duration(cfg.MaxDelay)) {
			return
		}
		if cfg.CutFrameProb > 0 && p.float() < cfg.CutFrameProb {
			// Forward a strict prefix, so the broker sees a torn frame.
			n := 1 + int(p.duration(time.Duration(len(frame)-1)))
			c.uc.Write(frame[:n])
			c.cut(func(s *ProxyStats) { s.MidFrameCuts++ })
			return
		}
		p.count(func(s *ProxyStats) { s.Frames++ })
		if _, err := c.uc.Write(frame); err != nil {
			return
		}
	}
}

// responses forwards broker frames to the client, swallowing some.
func (c *proxyConn) responses() {
	defer c.close()
	p := c.p
	for {
		frame, err := readFrame(c.uc)
		if err != nil {
			return
		}
		cfg := p.cfg.Load()
		key := int16(-1)
		if len(frame) >= 8 {
			corr := int32(binary.BigEndian.Uint32(frame[4:]))
			c.mu.Lock()
			if k, ok := c.keys[corr]; ok {
				key = k
				delete(c.keys, corr)
			}
			c.mu.Unlock()
		}
		if cfg.DropProb > 0 && droppable(cfg.DropKeys, key) && p.float() < cfg.DropProb {
			c.cut(func(s *ProxyStats) {
				s.Drops++
				s.DroppedByKeys[key]++
			})
			return
		}
		if !c.sleep(p.duration(cfg.MaxDelay)) {
			return
		}
		p.count(func(s *ProxyStats) { s.Frames++ })
		if _, err := c.cc.Write(frame); err != nil {
			return
		}
	}
}

func droppable(keys []int16, key int16) bool {
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
