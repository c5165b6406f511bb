// Package txn is the transaction coordinator: per transactional.id a state
// machine (Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit,
// CompleteAbort, PrepareEpochFence, Dead) whose every transition is written
// to the __transaction_state partition of the id before it is acted on, and
// a driver that writes the commit or abort markers to every partition of a
// transaction, retries them until all are durable, and completes it. After
// a restart the driver re-drives every transaction left in a Prepare state
// and aborts the ones that timed out.
//
// This file is the pure part: the metadata, the transitions and their
// rules. It never reads the clock; callers pass now.
package txn

import (
	"math"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
)

// State is a transaction's state, as Kafka names them.
type State int

// Transaction states.
const (
	Empty State = iota
	Ongoing
	PrepareCommit
	PrepareAbort
	CompleteCommit
	CompleteAbort
	Dead
	PrepareEpochFence
)

var stateNames = [...]string{"Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort", "Dead", "PrepareEpochFence"}

func (s State) String() string { return stateNames[s] }

// ParseState maps Kafka's state name to a State.
func ParseState(name string) (State, bool) {
	for i, n := range stateNames {
		if n == name {
			return State(i), true
		}
	}
	return 0, false
}

// validPrevious lists, per state, the states a transaction may come from
// (Kafka's TransactionState.validPreviousStates).
var validPrevious = map[State][]State{
	Empty:             {Empty, CompleteCommit, CompleteAbort},
	Ongoing:           {Ongoing, Empty, CompleteCommit, CompleteAbort},
	PrepareCommit:     {Ongoing},
	PrepareAbort:      {Ongoing, PrepareEpochFence, Empty, CompleteCommit, CompleteAbort},
	CompleteCommit:    {PrepareCommit},
	CompleteAbort:     {PrepareAbort},
	Dead:              {Empty, CompleteAbort, CompleteCommit},
	PrepareEpochFence: {Ongoing},
}

func canTransition(from, to State) bool {
	for _, s := range validPrevious[to] {
		if s == from {
			return true
		}
	}
	return false
}

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

// Metadata is the durable state of one transactional id; one record of the
// __transaction_state log holds one Metadata.
type Metadata struct {
	TransactionalID string `json:"transactional_id"`
	ProducerID      int64  `json:"producer_id"`
	// PrevProducerID is the producer id before the last rollover (epoch
	// exhaustion), for recognising retries; -1 if none.
	PrevProducerID int64 `json:"prev_producer_id"`
	ProducerEpoch  int16 `json:"producer_epoch"`
	// LastProducerEpoch is the epoch before the last bump (KIP-360: a
	// retried InitProducerId or TV2 EndTxn carries it); -1 if none.
	LastProducerEpoch int16 `json:"last_producer_epoch"`
	TimeoutMs         int32 `json:"timeout_ms"`
	State             State `json:"state"`
	// Partitions of the open transaction, sorted; empty when none is open.
	Partitions []TopicPartition `json:"partitions"`
	// StartMs is when the open transaction started (-1 if none).
	StartMs int64 `json:"start_ms"`
	// UpdateMs is the time of the last transition.
	UpdateMs int64 `json:"update_ms"`
	// MarkerProducerID and MarkerEpoch are what the markers of a
	// prepared transaction carry: the transaction's producer id with the
	// bumped epoch under TV2 or after a fence, so that the partition itself
	// refuses the old epoch afterwards.
	MarkerProducerID int64 `json:"marker_producer_id"`
	MarkerEpoch      int16 `json:"marker_epoch"`
	// TV2 is set when the transaction uses transaction protocol v2
	// (KIP-890 part 2): partitions added by Produce v12+, epoch bumped at
	// every end.
	TV2 bool `json:"tv2"`
}

func (m *Metadata) clone() Metadata {
	c := *m
	c.Partitions = append([]TopicPartition(nil), m.Partitions...)
	return c
}

// hasPartition reports whether tp is in the transaction.
func (m *Metadata) hasPartition(tp TopicPartition) bool {
	i := sort.Search(len(m.Partitions), func(i int) bool { return !lessTP(m.Partitions[i], tp) })
	return i < len(m.Partitions) && m.Partitions[i] == tp
}

func lessTP(a, b TopicPartition) bool {
	if a.Topic != b.Topic {
		return a.Topic < b.Topic
	}
	return a.Partition < b.Partition
}

func (m *Metadata) addPartitions(tps []TopicPartition) {
	for _, tp := range tps {
		if !m.hasPartition(tp) {
			m.Partitions = append(m.Partitions, tp)
			sort.Slice(m.Partitions, func(i, j int) bool { return lessTP(m.Partitions[i], m.Partitions[j]) })
		}
	}
}

// epochExhausted reports whether the epoch cannot be bumped again; the
// producer then gets a new producer id (KAFKA-5283).
func epochExhausted(e int16) bool { return e >= math.MaxInt16-1 }

// fencedError is the error for an older epoch: PRODUCER_FENCED where the
// request version knows it, INVALID_PRODUCER_EPOCH before.
func fencedError(knowsFenced bool) *kerr.Error {
	if knowsFenced {
		return kerr.ProducerFenced
	}
	return kerr.InvalidProducerEpoch
}
