package server

// DescribeProducers (key 61), version 0.
//
// Behaviour (KIP-664):
//   - For each requested partition, every producer the partition keeps
//     state for: idempotent producers as well as transactional ones, with
//     or without an open transaction. Per producer: the producer id and
//     epoch, the last sequence it wrote in that epoch (-1 when none is
//     cached, e.g. right after a marker bumped the epoch), the max
//     timestamp of its last batch or marker, the coordinator epoch of the
//     last marker written for it, and the first offset of its transaction
//     open on this partition (-1 if none).
//   - A producer whose CurrentTxnStartOffset stays put while the LSO lags
//     is what an operator looks for: a hanging transaction. Abort it with
//     WriteTxnMarkers (27_write_txn_markers.go).
//   - An unknown topic or partition: UNKNOWN_TOPIC_OR_PARTITION, per
//     partition. Partitions are answered in request order.
//
// Not done: authorization (READ on the topic) and throttling; there are no
// followers, so NOT_LEADER_OR_FOLLOWER never happens.

import (
	"github.com/oncelog/oncelog/internal/partition"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(61, 0, 0, handleDescribeProducers) }

func handleDescribeProducers(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.DescribeProducersRequest)
	b := c.s.b
	// The producer table is read on each partition's owner goroutine,
	// which may be busy with an fsync; wait for it off the reader.
	return later(func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewDescribeProducersResponseTopic()
			st.Topic = rt.Topic
			for _, idx := range rt.Partitions {
				sp := kmsg.NewDescribeProducersResponseTopicPartition()
				sp.Partition = idx
				p := b.Partition(rt.Topic, idx)
				if p == nil {
					sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
					st.Partitions = append(st.Partitions, sp)
					continue
				}
				for _, e := range p.Producers() {
					sp.ActiveProducers = append(sp.ActiveProducers, describedProducer(e))
				}
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	})
}

func describedProducer(e partition.ProducerEntry) kmsg.DescribeProducersResponseTopicPartitionActiveProducer {
	ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
	ap.ProducerID = e.ProducerID
	ap.ProducerEpoch = int32(e.ProducerEpoch)
	ap.LastSequence = -1
	if n := len(e.Batches); n > 0 {
		ap.LastSequence = e.Batches[n-1].LastSeq
	}
	ap.LastTimestamp = e.LastTimestamp
	ap.CoordinatorEpoch = e.CoordinatorEpoch
	ap.CurrentTxnStartOffset = e.CurrentTxnFirstOffset
	return ap
}
