package server

// TxnOffsetCommit (key 28), versions 0-5.
//
// Behaviour:
//   - Writes the offsets into the group's __consumer_offsets partition as
//     part of the producer's transaction; they become committed offsets
//     when the commit marker is written and vanish on abort. Until then
//     OffsetFetch with RequireStable answers UNSTABLE_OFFSET_COMMIT.
//   - The group's offsets partition must be in the transaction
//     (AddOffsetsToTxn first), else INVALID_TXN_STATE; an older producer
//     epoch gets PRODUCER_FENCED (v2+) or INVALID_PRODUCER_EPOCH.
//   - v3 (KIP-447): a member id and generation are checked against the
//     group (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID), so a
//     zombie whose partitions moved cannot commit; generation -1 with no
//     member id skips the check, as clients that do not know their group
//     (sarama) send it.
//
// Version notes: v4 answers TRANSACTION_ABORTABLE for an offsets partition
// not in the transaction; v5 (transaction protocol v2) adds it itself, so
// clients skip AddOffsetsToTxn.

import (
	"github.com/oncelog/oncelog/internal/group"
	"github.com/oncelog/oncelog/internal/txn"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(28, 0, 5, handleTxnOffsetCommit) }

func handleTxnOffsetCommit(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.TxnOffsetCommitRequest)
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	fill := func(per func(tp group.TopicPartition) *kerr.Error) {
		for _, t := range req.Topics {
			rt := kmsg.NewTxnOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				rp.Partition = p.Partition
				if err := per(group.TopicPartition{Topic: t.Topic, Partition: p.Partition}); err != nil {
					rp.ErrorCode = err.Code
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
	}
	if c.s.Txns == nil || c.s.Groups == nil {
		fill(func(group.TopicPartition) *kerr.Error { return kerr.CoordinatorNotAvailable })
		return now(resp)
	}
	if req.Version < 3 {
		req.Generation, req.MemberID, req.InstanceID = -1, "", nil
	}
	implicit := req.Version >= 5
	notAdded := kerr.InvalidTxnState
	if req.Version >= 4 {
		notAdded = kerr.TransactionAbortable
	}
	verify := func(offsetsPartition int32, enqueue func()) *kerr.Error {
		tp := txn.TopicPartition{Topic: group.OffsetsTopic, Partition: offsetsPartition}
		errs := c.s.Txns.VerifyAndEnqueue(req.TransactionalID, req.ProducerID, req.ProducerEpoch, []txn.TopicPartition{tp}, implicit, notAdded, func(txn.TopicPartition) { enqueue() })
		if err := errs[tp]; err != nil {
			if err == kerr.InvalidProducerEpoch && req.Version >= 2 {
				err = kerr.ProducerFenced
			}
			return err
		}
		return nil
	}
	// NB: verification and the append run on the connection's reader, in
	// request order, so the offsets are queued before an EndTxn sent
	// after this request can queue its marker.
	topErr, wait := c.s.Groups.TxnCommit(req, verify)
	if topErr != nil {
		fill(func(group.TopicPartition) *kerr.Error { return topErr })
		return now(resp)
	}
	return later(func() kmsg.Response {
		res := wait()
		fill(func(tp group.TopicPartition) *kerr.Error { return res[tp] })
		return resp
	})
}
