// Package compaction is the policy shared by the coordinators that compact
// their internal topics by re-append (internal/group for
// __consumer_offsets, internal/txn for __transaction_state): when a
// partition is due, which one goes first, and the bounds of one pass. How a
// coordinator copies its live records, and why a copy never overrides a
// newer record, is in each coordinator's compact.go.
package compaction

import (
	"time"

	"github.com/oncelog/oncelog/internal/broker"
	"github.com/oncelog/oncelog/internal/partition"
)

// Bounds of compaction.
const (
	// DefaultMinRecords is the smallest number of records from the log
	// start at which a partition is compacted (some 16-20 MiB of
	// coordinator records).
	DefaultMinRecords = 1 << 16
	// LiveRatio: a partition is compacted once it holds more than this
	// many records per live key, so at most 1/(LiveRatio-1) of what is
	// appended is copied again.
	LiveRatio = 4
	// MaxBatchBytes bounds one batch of copies (keys and values).
	MaxBatchBytes = 512 << 10
	// CheckInterval is how often a coordinator looks for a partition due.
	CheckInterval = 10 * time.Second
)

// Candidate returns the partition of t furthest past its threshold (more
// than max(minRecords, LiveRatio * live keys) records from its log start),
// or nil when none is. stuckAt reports the log end offset of a partition
// whose last compaction could not move its log start: it is not tried again
// before it grew by minRecords more. live, called at most once and only
// when some partition is past minRecords, counts the live keys per
// partition.
func Candidate(t *broker.Topic, minRecords int64, stuckAt func(partition int32) (int64, bool), live func() map[int32]int64) *partition.Partition {
	if t == nil {
		return nil
	}
	var counts map[int32]int64
	var best *partition.Partition
	var bestOver int64
	for _, p := range t.Partitions {
		end := p.Log().NextOffset()
		region := end - p.Offsets().LogStartOffset
		if region <= minRecords {
			continue
		}
		if at, stuck := stuckAt(p.Index); stuck && end-at < minRecords {
			continue
		}
		if counts == nil {
			counts = live()
		}
		if over := region - max(minRecords, LiveRatio*counts[p.Index]); over > bestOver {
			best, bestOver = p, over
		}
	}
	return best
}

// TopicSize is the bytes and the records from the log start of every
// partition of t, summed (tests, and the coordinators' reports).
func TopicSize(t *broker.Topic) (bytes, records int64) {
	for _, p := range t.Partitions {
		bytes += p.Log().Size()
		records += p.Log().NextOffset() - p.Offsets().LogStartOffset
	}
	return bytes, records
}
