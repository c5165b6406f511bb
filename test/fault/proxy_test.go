package fault

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// echoServer answers every frame with a frame holding the request's
// correlation id and the rest of its bytes, and counts the requests served.
type echoServer struct {
	ln     net.Listener
	served atomic.Int64
	wg     sync.WaitGroup
}

func startEcho(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{ln: ln}
	var mu sync.Mutex
	var conns []net.Conn
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				defer c.Close()
				for {
					f, err := readFrame(c)
					if err != nil {
						return
					}
					e.served.Add(1)
					// Response: size, correlation id, then the request body.
					resp := binary.BigEndian.AppendUint32(nil, uint32(len(f)-8))
					resp = append(resp, f[8:]...)
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		e.wg.Wait()
	})
	return e
}

// testFrame is a request frame: size, API key, version 0, correlation id,
// payload.
func testFrame(key int16, corr int32, payload string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(payload)))
	b = binary.BigEndian.AppendUint16(b, uint16(key))
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	return append(b, payload...)
}

func newTestProxy(t *testing.T, target string, cfg ProxyConfig) *Proxy {
	t.Helper()
	p, err := NewProxy(target, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dialProxy(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

func TestProxyForwards(t *testing.T) {
	e := startEcho(t)
	p := newTestProxy(t, e.ln.Addr().String(), ProxyConfig{Seed: 1, MaxDelay: time.Millisecond})
	c := dialProxy(t, p)
	for i := int32(0); i < 100; i++ {
		if _, err := c.Write(testFrame(0, i, "hello")); err != nil {
			t.Fatal(err)
		}
		f, err := readFrame(c)
		if err != nil {
			t.Fatal(err)
		}
		if corr := int32(binary.BigEndian.Uint32(f[4:])); corr != i || string(f[8:]) != "hello" {
			t.Fatalf("response %d: corr %d body %q", i, corr, f[8:])
		}
	}
	if s := p.Stats(); s.Frames != 200 || s.Cuts() != 0 || s.Conns != 1 {
		t.Fatalf("stats %v", s)
	}
}

// A dropped response is one the server did send: the request was served,
// the client sees the connection close instead of the answer.
func TestProxyDropsResponseAfterServing(t *testing.T) {
	e := startEcho(t)
	p := newTestProxy(t, e.ln.Addr().String(), ProxyConfig{Seed: 2, DropProb: 1, DropKeys: []int16{0}})
	c := dialProxy(t, p)
	// Key 3 is not in DropKeys and passes.
	if _, err := c.Write(testFrame(3, 7, "meta")); err != nil {
		t.Fatal(err)
	}
	if _, err := readFrame(c); err != nil {
		t.Fatalf("key 3 response: %v", err)
	}
	if _, err := c.Write(testFrame(0, 8, "produce")); err != nil {
		t.Fatal(err)
	}
	if f, err := readFrame(c); !errors.Is(err, io.EOF) {
		t.Fatalf("after a dropped response: frame %q, err %v; want EOF", f, err)
	}
	if got := e.served.Load(); got != 2 {
		t.Fatalf("server served %d requests, want 2 (the dropped one must have reached it)", got)
	}
	if s := p.Stats(); s.Drops != 1 || s.DroppedByKeys[0] != 1 {
		t.Fatalf("stats %v", s)
	}
}

func TestProxyCutsConnections(t *testing.T) {
	e := startEcho(t)
	p := newTestProxy(t, e.ln.Addr().String(), ProxyConfig{Seed: 3, MeanConnLife: 20 * time.Millisecond})
	for i := 0; i < 5; i++ {
		c := dialProxy(t, p)
		start := time.Now()
		// Keep talking until the proxy cuts; bounded by the deadline.
		var err error
		for corr := int32(0); err == nil; corr++ {
			if _, err = c.Write(testFrame(0, corr, "x")); err == nil {
				_, err = readFrame(c)
			}
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("connection %d cut only after %v", i, time.Since(start))
		}
	}
	if s := p.Stats(); s.TimedCuts != 5 {
		t.Fatalf("stats %v, want 5 timed cuts", s)
	}

	// Mid-frame cuts: the server never sees a whole frame.
	e = startEcho(t)
	p = newTestProxy(t, e.ln.Addr().String(), ProxyConfig{Seed: 5, CutFrameProb: 1})
	c := dialProxy(t, p)
	c.Write(testFrame(0, 1, "a longer payload to cut somewhere"))
	if _, err := readFrame(c); err == nil {
		t.Fatal("got a response to a frame that should have been cut")
	}
	time.Sleep(50 * time.Millisecond)
	if e.served.Load() != 0 {
		t.Fatal("server served a frame that was cut in the middle")
	}
	if s := p.Stats(); s.MidFrameCuts != 1 {
		t.Fatalf("stats %v, want 1 mid-frame cut", s)
	}
}

func TestProxyLoopbackOnlyAndBounded(t *testing.T) {
	if _, err := NewProxy("192.0.2.1:9092", ProxyConfig{}); err == nil {
		t.Fatal("proxy accepted a non-loopback target")
	}
	before := runtime.NumGoroutine()
	e := startEcho(t)
	p, err := NewProxy(e.ln.Addr().String(), ProxyConfig{Seed: 4, MaxDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var cs []net.Conn
	for i := 0; i < 10; i++ {
		c := dialProxy(t, p)
		c.Write(testFrame(0, 1, "stuck in an hour-long delay"))
		cs = append(cs, c)
	}
	closed := make(chan struct{})
	go func() {
		p.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the proxy's goroutines")
	}
	for _, c := range cs {
		if _, err := readFrame(c); err == nil {
			t.Fatal("connection survived Close")
		}
		c.Close()
	}
	// Allow the echo server's own goroutines; the proxy's must be gone.
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before+2+10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2+10 {
		t.Fatalf("%d goroutines after Close, %d before", n, before)
	}
}
