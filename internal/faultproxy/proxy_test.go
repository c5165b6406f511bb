package faultproxy

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// echoServer answers every request frame with a response frame carrying
// the request's correlation id.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for {
					f, err := readFrame(c)
					if err != nil {
						return
					}
					resp := make([]byte, 8)
					binary.BigEndian.PutUint32(resp, 4)
					copy(resp[4:], f[8:12])
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
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
	var resp [8]byte
	_, err := io.ReadFull(c, resp[:])
	return err
}

func TestForwardAndDrop(t *testing.T) {
	p, err := New(echoServer(t), 1)
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
	p, err := New(echoServer(t), 2)
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
	for _, addr := range []string{"10.0.0.1:9092", "example.com:9092", "nonsense"} {
		if p, err := New(addr, 0); err == nil {
			p.Close()
			t.Errorf("New(%q) accepted a non-loopback target", addr)
		}
	}
}
