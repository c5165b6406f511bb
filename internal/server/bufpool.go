package server

import (
	"math/bits"
	"sync"
)

// Large byte buffers (fetch record arenas, response frames) are reused
// through size-classed pools instead of being allocated per request: a
// consumer's fetch moves megabytes, and allocating (and zeroing, and later
// collecting) them per request cost more than reading them.
//
// Classes are powers of two from minPooledBytes to maxPooledBytes; a buffer
// outside that range is left to the garbage collector. sync.Pool drops idle
// buffers at garbage collection, so the pool holds memory only while
// requests keep needing it.
const (
	minPoolShift   = 16 // log2(minPooledBytes)
	poolClasses    = 11 // 64 KiB, 128 KiB, ..., 64 MiB
	minPooledBytes = 1 << minPoolShift
	maxPooledBytes = minPooledBytes << (poolClasses - 1)
)

var bufPools [poolClasses]sync.Pool

// poolClass is the index of the smallest class holding n bytes, or -1 if
// n is past the largest.
func poolClass(n int) int {
	if n > maxPooledBytes {
		return -1
	}
	return bits.Len(uint(max(n, minPooledBytes)-1)) - minPoolShift
}

// getBuf returns an empty buffer with room for at least n bytes.
func getBuf(n int) []byte {
	c := poolClass(n)
	if c < 0 {
		return make([]byte, 0, n)
	}
	if b, ok := bufPools[c].Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, minPooledBytes<<c)
}

// putBuf gives b back for reuse. The caller must hold no reference into b
// afterwards. A buffer goes to the largest class it fills, so a buffer
// grown by append past its class is still reused.
func putBuf(b []byte) {
	n := cap(b)
	if n < minPooledBytes || n > maxPooledBytes {
		return
	}
	c := bits.Len(uint(n)) - 1 - minPoolShift // floor: every buffer in class c holds minPooledBytes<<c
	b = b[:0]
	bufPools[c].Put(&b)
}
