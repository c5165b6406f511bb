package clock

import (
	"testing"
	"time"
)

func TestStillMovesOnlyWithAdvance(t *testing.T) {
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewStill(start)
	if c.After(time.Nanosecond) != nil {
		t.Fatal("a Still timer can fire")
	}
	if !c.Now().Equal(start) {
		t.Fatalf("Now %v, want %v", c.Now(), start)
	}
	c.Advance(3 * time.Second)
	if got := c.Now().Sub(start); got != 3*time.Second {
		t.Fatalf("after Advance(3s): moved %v", got)
	}
}
