package server

// AddPartitionsToTxn (key 24), versions 0-3: the client form of transaction
// protocol v1.
//
// Behaviour:
//   - Adds the partitions to the producer's open transaction (starting one
//     if none is open), durably in __transaction_state, before answering;
//     only then will a transactional produce to them be accepted (KIP-890
//     part 1 verification happens on every produce).
//   - Unknown producer id for the transactional id:
//     INVALID_PRODUCER_ID_MAPPING; an older epoch: PRODUCER_FENCED (v2+) or
//     INVALID_PRODUCER_EPOCH; a transaction being ended:
//     CONCURRENT_TRANSACTIONS (retriable).
//   - A partition that does not exist gets UNKNOWN_TOPIC_OR_PARTITION and
//     the others OPERATION_NOT_ATTEMPTED: nothing is added.
//
// Not done: v4+ (the broker-to-coordinator batch form of KIP-890); this
// node verifies produces against its own coordinator directly.

import (
	"github.com/oncelog/oncelog/internal/txn"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(24, 0, 3, handleAddPartitionsToTxn) }

func handleAddPartitionsToTxn(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.AddPartitionsToTxnRequest)
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	fill := func(per func(topic string, p int32) *kerr.Error) {
		for _, t := range req.Topics {
			rt := kmsg.NewAddPartitionsToTxnResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
				rp.Partition = p
				if err := per(t.Topic, p); err != nil {
					rp.ErrorCode = err.Code
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
	}
	if c.s.Txns == nil {
		fill(func(string, int32) *kerr.Error { return kerr.CoordinatorNotAvailable })
		return now(resp)
	}
	var tps []txn.TopicPartition
	unknown := map[txn.TopicPartition]bool{}
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			tp := txn.TopicPartition{Topic: t.Topic, Partition: p}
			if c.s.b.Partition(t.Topic, p) == nil {
				unknown[tp] = true
			}
			tps = append(tps, tp)
		}
	}
	if len(unknown) > 0 {
		fill(func(topic string, p int32) *kerr.Error {
			if unknown[txn.TopicPartition{Topic: topic, Partition: p}] {
				return kerr.UnknownTopicOrPartition
			}
			return kerr.OperationNotAttempted
		})
		return now(resp)
	}
	return later(func() kmsg.Response {
		err := c.s.Txns.AddPartitions(req.TransactionalID, req.ProducerID, req.ProducerEpoch, tps, req.Version >= 2)
		fill(func(string, int32) *kerr.Error { return err })
		return resp
	})
}
