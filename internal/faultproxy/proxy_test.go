package faultproxy

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

// echo is a stand-in broker: it answers every request frame with a
// response frame carrying the request's correlation id followed by the
// rest of the request, and counts the requests it served.
type echo struct {
	addr   string
	served atomic.Int64
}

func startEcho(t *testing.T) *echo {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echo{addr: ln.Addr().String()}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				for {
					f, err := readFrame(c)
					if err != nil || len(f) < 12 {
						return
					}
					e.served.Add(1)
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
		wg.Wait()
	})
	return e
}

// frame is a request frame: size, API key, version 0, correlation id,
// payload.
func frame(key int16, corr int32, payload string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(payload)))
	b = binary.BigEndian.AppendUint16(b, uint16(key))
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	return append(b, payload...)
}

func newProxy(t *testing.T, target string, seed uint64, f Faults) *Proxy {
	t.Helper()
	p, err := New(target, seed)
	if err != nil {
		t.Fatal(err)
	}
	p.SetFaults(f)
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

func request(key int16, corr int32) []byte {
	f := make([]byte, 14)
	binary.BigEndian.PutUint32(f, 10)
	binary.BigEndian.PutUint16(f[4:], uint16(key))
	binary.BigEndian.PutUint32(f[8:], uint32(corr))
	return f
}

func roundTrip(c net.Conn, key int16, corr int32) error {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(request(key, corr)); err != nil {
		return err
	}
	_, err := readFrame(c)
	return err
}

func TestForwardAndDrop(t *testing.T) {
	p, err := New(startEcho(t).addr, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range int32(10) {
		if err := roundTrip(c, 0, i); err != nil {
			t.Fatalf("round trip %d without faults: %v", i, err)
		}
	}
	// Drop every response to key 26 (EndTxn) but none to key 0.
	p.SetFaults(Faults{DropProb: 1, DropKeys: []int16{26}})
	if err := roundTrip(c, 0, 11); err != nil {
		t.Fatalf("key 0 must pass: %v", err)
	}
	if err := roundTrip(c, 26, 12); err == nil {
		t.Fatal("key 26's response must be dropped and the connection cut")
	}
	if s := p.Stats(); s.Drops != 1 || s.Conns != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestConnLifeAndDelay(t *testing.T) {
	p, err := New(startEcho(t).addr, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.SetFaults(Faults{MeanConnLife: 20 * time.Millisecond, MaxDelay: time.Millisecond})
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var failed bool
	for i := range int32(1000) {
		if err := roundTrip(c, 1, i); err != nil {
			failed = true
			break
		}
	}
	if !failed {
		t.Fatal("connection outlived 1000 round trips with a 20ms mean life")
	}
	if s := p.Stats(); s.Cuts != 1 || s.Delayed == 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"10.0.0.1:9092", "192.0.2.1:9092", "example.com:9092", "nonsense"} {
		if p, err := New(addr, 0); err == nil {
			p.Close()
			t.Errorf("New(%q) accepted a non-loopback target", addr)
		}
	}
}

func TestForwardsInOrder(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.addr, 1, Faults{MaxDelay: time.Millisecond})
	c := dial(t, p)
	for i := range int32(100) {
		if _, err := c.Write(frame(0, i, "hello")); err != nil {
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
	if s := p.Stats(); s.Frames != 200 || s.AllCuts() != 0 || s.Conns != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// A dropped response is one the broker did send: the request was served,
// the client sees the connection close instead of the answer.
func TestDropsResponseAfterServing(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.addr, 2, Faults{DropProb: 1, DropKeys: []int16{0}})
	c := dial(t, p)
	// Key 3 is not in DropKeys and passes.
	if _, err := c.Write(frame(3, 7, "meta")); err != nil {
		t.Fatal(err)
	}
	if _, err := readFrame(c); err != nil {
		t.Fatalf("key 3 response: %v", err)
	}
	if _, err := c.Write(frame(0, 8, "produce")); err != nil {
		t.Fatal(err)
	}
	if f, err := readFrame(c); !errors.Is(err, io.EOF) {
		t.Fatalf("after a dropped response: frame %q, err %v; want EOF", f, err)
	}
	if got := e.served.Load(); got != 2 {
		t.Fatalf("broker served %d requests, want 2 (the dropped one must have reached it)", got)
	}
	if s := p.Stats(); s.Drops != 1 || s.DroppedByKeys[0] != 1 || s.DroppedByKeys[3] != 0 || s.AllCuts() != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestTimedCuts(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.addr, 3, Faults{MeanConnLife: 20 * time.Millisecond})
	for i := range 5 {
		c := dial(t, p)
		start := time.Now()
		// Keep talking until the proxy cuts; bounded by the deadline.
		var err error
		for corr := int32(0); err == nil; corr++ {
			if _, err = c.Write(frame(0, corr, "x")); err == nil {
				_, err = readFrame(c)
			}
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("connection %d cut only after %v", i, d)
		}
	}
	if s := p.Stats(); s.Cuts != 5 || s.AllCuts() != 5 {
		t.Fatalf("stats %+v, want 5 timed cuts", s)
	}
}

// A mid-frame cut forwards part of a request: the broker never sees a
// whole frame, so it serves nothing.
func TestMidFrameCut(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.addr, 5, Faults{CutFrameProb: 1})
	c := dial(t, p)
	c.Write(frame(0, 1, "a longer payload to cut somewhere"))
	if _, err := readFrame(c); err == nil {
		t.Fatal("got a response to a frame that should have been cut")
	}
	time.Sleep(50 * time.Millisecond)
	if n := e.served.Load(); n != 0 {
		t.Fatalf("broker served %d frames cut in the middle", n)
	}
	if s := p.Stats(); s.MidFrameCuts != 1 || s.Frames != 0 || s.AllCuts() != 1 {
		t.Fatalf("stats %+v, want 1 mid-frame cut", s)
	}
}

// Close cuts connections stuck in a delay and ends every goroutine the
// proxy started.
func TestCloseIsBounded(t *testing.T) {
	e := startEcho(t)
	before := runtime.NumGoroutine()
	p, err := New(e.addr, 4)
	if err != nil {
		t.Fatal(err)
	}
	p.SetFaults(Faults{MaxDelay: time.Hour})
	var cs []net.Conn
	for range 10 {
		c := dial(t, p)
		c.Write(frame(0, 1, "stuck in an hour-long delay"))
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
	// Allow the echo server's goroutines, one a connection; the proxy's
	// must be gone.
	limit := before + 10
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > limit && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > limit {
		t.Fatalf("%d goroutines after Close, %d before", n, before)
	}
}
