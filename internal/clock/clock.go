// Package clock is the injectable source of time: the broker reads time only
// through a Clock, so timeouts and expiry are tested deterministically with
// Manual.
package clock

import (
	"sync"
	"time"
)

// Clock tells the time and makes timers.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

// Real is the wall clock.
var Real Clock = realClock{}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Manual is a clock that moves only when told to. Safe for concurrent use.
type Manual struct {
	mu struct {
		sync.Mutex
		now     time.Time
		waiters []manualWaiter
	}
}

type manualWaiter struct {
	at time.Time
	ch chan time.Time
}

// NewManual returns a manual clock set to start.
func NewManual(start time.Time) *Manual {
	m := &Manual{}
	m.mu.now = start
	return m
}

// Now returns the clock's current time.
func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.now
}

// After returns a channel that fires when Advance passes now+d.
func (m *Manual) After(d time.Duration) <-chan time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch := make(chan time.Time, 1)
	at := m.mu.now.Add(d)
	if d <= 0 {
		ch <- m.mu.now
		return ch
	}
	m.mu.waiters = append(m.mu.waiters, manualWaiter{at: at, ch: ch})
	return ch
}

// Advance moves the clock forward by d and fires the timers that are due.
func (m *Manual) Advance(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.now = m.mu.now.Add(d)
	kept := m.mu.waiters[:0]
	for _, w := range m.mu.waiters {
		if !w.at.After(m.mu.now) {
			w.ch <- m.mu.now
		} else {
			kept = append(kept, w)
		}
	}
	m.mu.waiters = kept
}

// Still is a clock moved only by Advance whose timers never fire: a test
// that uses it runs the loops a timer would wake (timeout sweeps,
// compaction checks) itself, at the time it chooses, so their output does
// not depend on scheduling (with Manual, Advance would fire them
// concurrently with the test).
type Still struct {
	mu  sync.Mutex
	now time.Time
}

// NewStill returns a Still clock at start.
func NewStill(start time.Time) *Still { return &Still{now: start} }

// Now returns the clock's time.
func (c *Still) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After returns a channel that never receives.
func (c *Still) After(time.Duration) <-chan time.Time { return nil }

// Advance moves the clock by d.
func (c *Still) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
