package partlog

import (
	"sync"
	"time"
)

// ZeroBudget bounds the zeros that the logs sharing it (Config.Zeros) write
// ahead of their data, in bytes per second, for a whole broker.
//
// Why a broker-wide bound: whether zeros pay is decided per log by the size
// of its Syncs (bulkSyncBytes), but their cost is the disk's: every byte of
// data is written once more. A log with small Syncs is what 10,000
// partitions at a few records each per request look like too, and there
// the zeros of every partition together doubled the write-back (the
// bench/startup load on 10,000 partitions: 173-189k records/s without
// zeros, 136-142k with them for every log). Under the bound, zeros go to
// the logs that ask first while the budget lasts; the others grow by their
// appends, each Sync an fsync, as without Preallocate.
//
// A token bucket: it holds up to burst bytes and refills at rate bytes per
// second of the clock the logs' Appends are given. Safe for concurrent use;
// a nil *ZeroBudget allows everything.
type ZeroBudget struct {
	rate, burst int64

	mu     sync.Mutex
	tokens int64
	last   time.Time
}

// NewZeroBudget returns a full budget of burst bytes, refilled at
// bytesPerSecond. burst should be at least maxExtentBytes, or the largest
// extents never fit.
func NewZeroBudget(bytesPerSecond, burst int64) *ZeroBudget {
	return &ZeroBudget{rate: bytesPerSecond, burst: burst, tokens: burst}
}

// take spends n bytes at now if the budget holds them, and reports whether
// it did.
func (z *ZeroBudget) take(n int64, now time.Time) bool {
	if z == nil {
		return true
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.last.IsZero() {
		z.last = now
	} else if d := now.Sub(z.last); d > 0 {
		z.tokens = min(z.burst, z.tokens+int64(float64(z.rate)*d.Seconds()))
		z.last = now
	}
	if z.tokens < n {
		return false
	}
	z.tokens -= n
	return true
}
