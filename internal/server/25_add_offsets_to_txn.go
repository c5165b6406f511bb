package server

// AddOffsetsToTxn (key 25), versions 0-4 (v4 only adds
// TRANSACTION_ABORTABLE to the errors it may return).
//
// Behaviour: adds the group's __consumer_offsets partition to the
// producer's open transaction, durably, so that TxnOffsetCommit can write
// the group's offsets into it and the commit or abort marker reaches them.
// Errors as for AddPartitionsToTxn.

import (
	"github.com/oncelog/oncelog/internal/group"
	"github.com/oncelog/oncelog/internal/txn"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(25, 0, 4, handleAddOffsetsToTxn) }

func handleAddOffsetsToTxn(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.AddOffsetsToTxnRequest)
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	if c.s.Txns == nil || c.s.Groups == nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return now(resp)
	}
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return now(resp)
	}
	return later(func() kmsg.Response {
		if err := c.s.Groups.EnsureTopic(); err != nil {
			resp.ErrorCode = err.Code
			return resp
		}
		tp := txn.TopicPartition{Topic: group.OffsetsTopic, Partition: c.s.Groups.PartitionFor(req.Group)}
		if err := c.s.Txns.AddPartitions(req.TransactionalID, req.ProducerID, req.ProducerEpoch, []txn.TopicPartition{tp}, req.Version >= 2); err != nil {
			resp.ErrorCode = err.Code
		}
		return resp
	})
}
