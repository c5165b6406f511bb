package server

import "testing"

func TestBufPoolClasses(t *testing.T) {
	for _, n := range []int{0, 1, minPooledBytes - 1, minPooledBytes, minPooledBytes + 1, 3 << 20, maxPooledBytes - 1, maxPooledBytes} {
		b := getBuf(n)
		if len(b) != 0 || cap(b) < n {
			t.Fatalf("getBuf(%d): len %d cap %d", n, len(b), cap(b))
		}
		putBuf(append(b, 1))
		if b2 := getBuf(n); cap(b2) < n {
			t.Fatalf("getBuf(%d) after put: cap %d", n, cap(b2))
		}
	}
	if b := getBuf(maxPooledBytes + 1); cap(b) < maxPooledBytes+1 {
		t.Fatalf("oversized getBuf: cap %d", cap(b))
	}
	// A buffer grown past its class goes to the class it fills.
	putBuf(make([]byte, 0, 3*minPooledBytes))
	if b := getBuf(2 * minPooledBytes); cap(b) < 2*minPooledBytes {
		t.Fatalf("cap %d", cap(b))
	}
}
