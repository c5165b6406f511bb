package group

import (
	"testing"
	"time"

	"github.com/oncelog/oncelog/internal/broker"
	"github.com/oncelog/oncelog/internal/clock"
	"github.com/oncelog/oncelog/internal/config"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func newTestCoordinator(t *testing.T, clk *clock.Manual) (*Coordinator, *broker.Broker) {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	b, err := broker.Open(broker.Options{Config: cfg, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if _, perr := b.CreateTopic("in", 2, nil, false); perr != nil {
		t.Fatal(perr)
	}
	s := DefaultSettings()
	s.OffsetsRetention = time.Hour
	c, err := New(Options{Broker: b, Clock: clk, Settings: s, Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); b.Close() })
	return c, b
}

func simpleCommit(t *testing.T, c *Coordinator, group string, offset int64) {
	t.Helper()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.Generation = group, -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = "in"
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset = 0, offset
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	topErr, wait := c.Commit(req)
	if topErr != nil {
		t.Fatal(topErr)
	}
	for tp, err := range wait() {
		if err != nil {
			t.Fatalf("%v: %v", tp, err)
		}
	}
}

// TestOffsetsRetentionOfEmptyGroups: the offsets of a group that has been
// empty longer than offsets.retention.minutes are removed; younger ones
// stay.
func TestOffsetsRetentionOfEmptyGroups(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	c, _ := newTestCoordinator(t, clk)
	simpleCommit(t, c, "old", 5)
	clk.Advance(50 * time.Minute)
	simpleCommit(t, c, "young", 7)
	clk.Advance(20 * time.Minute)
	c.expireOffsets(clk.Now())
	tp := TopicPartition{"in", 0}
	if got := c.FetchOffsets("old", nil); len(got) != 0 {
		t.Fatalf("old group's offsets survived retention: %v", got)
	}
	if got := c.FetchOffsets("young", nil); got[tp].Offset != 7 {
		t.Fatalf("young group's offsets: %v", got)
	}
}

// TestCommitsSurviveCoordinatorRestart: committed offsets are rebuilt from
// the offsets log alone, the last commit winning.
func TestCommitsSurviveCoordinatorRestart(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	c, b := newTestCoordinator(t, clk)
	for i := int64(1); i <= 5; i++ {
		simpleCommit(t, c, "g", i*10)
	}
	c2, err := New(Options{Broker: b, Clock: clk, Settings: DefaultSettings(), Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got := c2.FetchOffsets("g", nil)[TopicPartition{"in", 0}]; got.Offset != 50 {
		t.Fatalf("after reload: %+v", got)
	}
	if got := c2.FetchOffsets("never", nil); len(got) != 0 {
		t.Fatalf("a group that never committed has offsets: %v", got)
	}
}
