package verify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/oncelog/oncelog/internal/faultproxy"
)

// network decides how the workload's clients reach the brokers: straight,
// or through a fault proxy per broker address when the proxy fault is on.
// The seeding producer, the final reader and the progress monitor always
// go straight (they are the observers, not the system under test).
type network struct {
	seed     uint64
	useProxy bool

	// mu protects proxies and faults.
	mu      sync.Mutex
	proxies map[string]*faultproxy.Proxy // broker address -> its proxy
	faults  faultproxy.Faults            // what every proxy does now
}

func newNetwork(seed uint64, useProxy bool) *network {
	return &network{seed: seed, useProxy: useProxy, proxies: map[string]*faultproxy.Proxy{}}
}

// proxyFor returns the proxy in front of addr, starting it on first use.
func (n *network) proxyFor(addr string) (*faultproxy.Proxy, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p, ok := n.proxies[addr]; ok {
		return p, nil
	}
	p, err := faultproxy.New(addr, n.seed+uint64(len(n.proxies))*7919)
	if err != nil {
		return nil, err
	}
	p.SetFaults(n.faults)
	n.proxies[addr] = p
	return p, nil
}

func (n *network) all() []*faultproxy.Proxy {
	n.mu.Lock()
	defer n.mu.Unlock()
	ps := make([]*faultproxy.Proxy, 0, len(n.proxies))
	for _, p := range n.proxies {
		ps = append(ps, p)
	}
	return ps
}

// setFaults switches every proxy's faults, and those started later.
func (n *network) setFaults(f faultproxy.Faults) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.faults = f
	for _, p := range n.proxies {
		p.SetFaults(f)
	}
}

func (n *network) stats() faultproxy.Stats {
	var s faultproxy.Stats
	for _, p := range n.all() {
		x := p.Stats()
		s.Conns += x.Conns
		s.Frames += x.Frames
		s.Cuts += x.Cuts
		s.Drops += x.Drops
		s.Delayed += x.Delayed
		s.DialFails += x.DialFails
	}
	return s
}

func (n *network) close() {
	for _, p := range n.all() {
		p.Close()
	}
}

// dial is a kgo.Dialer for the system under test.
func (n *network) dial(ctx context.Context, network, host string) (net.Conn, error) {
	if n.useProxy {
		p, err := n.proxyFor(host)
		if err != nil {
			return nil, err
		}
		host = p.Addr()
	}
	var d net.Dialer
	return d.DialContext(ctx, network, host)
}

// errKilled is what a killed client's dials return.
var errKilled = errors.New("verify: client killed")

// killSwitch is one client's network: Kill cuts every connection it has
// and refuses new ones, which is all a broker sees of a SIGKILL'd client
// process. The abandoned client object can then be closed at leisure: it
// can no longer say anything to anyone.
type killSwitch struct {
	net *network

	// mu protects conns and dead.
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	dead  bool
}

func (n *network) killSwitch() *killSwitch {
	return &killSwitch{net: n, conns: map[net.Conn]struct{}{}}
}

func (k *killSwitch) dial(ctx context.Context, network, host string) (net.Conn, error) {
	c, err := k.net.dial(ctx, network, host)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.dead {
		c.Close()
		return nil, fmt.Errorf("dial %s: %w", host, errKilled)
	}
	tc := &trackedConn{Conn: c, k: k}
	k.conns[tc] = struct{}{}
	return tc, nil
}

// Kill cuts the client off for good.
func (k *killSwitch) Kill() {
	k.mu.Lock()
	k.dead = true
	conns := k.conns
	k.conns = map[net.Conn]struct{}{}
	k.mu.Unlock()
	for c := range conns {
		c.(*trackedConn).Conn.Close()
	}
}

func (k *killSwitch) Dead() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.dead
}

type trackedConn struct {
	net.Conn
	k    *killSwitch
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.k.mu.Lock()
		delete(c.k.conns, c)
		c.k.mu.Unlock()
	})
	return c.Conn.Close()
}
