package server

// OffsetForLeaderEpoch (key 23), versions 0-4.
//
// Behaviour (KIP-101, KIP-279, KIP-320), after Kafka's leader-epoch cache
// with one entry: epoch 0 starting at the log start offset. Every batch is
// stamped with epoch 0 and this node has led every partition since it was
// created, so that entry is the whole history.
//   - CurrentLeaderEpoch (v2+; -1 = not given) is checked first: above 0
//     is UNKNOWN_LEADER_EPOCH (the client has newer metadata than we do),
//     below 0 is FENCED_LEADER_EPOCH.
//   - Requested epoch 0, the current one: epoch 0 and the log end offset.
//     We answer the high watermark: on one node it equals the log end once
//     a round is synced, and a consumer validating its position must not be
//     told about records it cannot fetch yet.
//   - An epoch above 0 (not known yet) or -1 (undefined): epoch -1, offset
//     -1, no error (UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET).
//   - An epoch below -1 lies before the first known epoch: Kafka answers the
//     requested epoch and the start offset of the first epoch (here the log
//     start offset), and so do we.
//   - An unknown topic or partition: UNKNOWN_TOPIC_OR_PARTITION with epoch
//     -1 and offset -1.
//   - ReplicaID (v3+) is ignored: there are no followers.
//
// Version notes: v1 adds LeaderEpoch to the response; v2
// CurrentLeaderEpoch (KIP-320); v3 ReplicaID (KIP-392); v4 is flexible.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(23, 0, 4, handleOffsetForLeaderEpoch) }

// partitionLeaderEpoch is the leader epoch of every partition on this
// single node: the broker opens partitions with epoch 0 and stamps it on
// every batch. Replication will make it per partition.
const partitionLeaderEpoch int32 = 0

func handleOffsetForLeaderEpoch(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.OffsetForLeaderEpochRequest)
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	b := c.s.b
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		t := b.Topic(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LeaderEpoch, sp.EndOffset = -1, -1
			switch {
			case t == nil || rp.Partition < 0 || int(rp.Partition) >= len(t.Partitions):
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case req.Version >= 2 && rp.CurrentLeaderEpoch != -1 && rp.CurrentLeaderEpoch > partitionLeaderEpoch:
				sp.ErrorCode = kerr.UnknownLeaderEpoch.Code
			case req.Version >= 2 && rp.CurrentLeaderEpoch != -1 && rp.CurrentLeaderEpoch < partitionLeaderEpoch:
				sp.ErrorCode = kerr.FencedLeaderEpoch.Code
			case rp.LeaderEpoch == partitionLeaderEpoch:
				sp.LeaderEpoch = partitionLeaderEpoch
				sp.EndOffset = t.Partitions[rp.Partition].Offsets().HighWatermark
			case rp.LeaderEpoch < -1:
				sp.LeaderEpoch = rp.LeaderEpoch
				sp.EndOffset = t.Partitions[rp.Partition].Offsets().LogStartOffset
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return now(resp)
}
