package server

// OffsetCommit (key 8), versions 0-9.
//
// Behaviour:
//   - Generation -1 with no member id is a "simple" commit, accepted only
//     while the group has no members (UNKNOWN_MEMBER_ID otherwise); an
//     unknown group is created for it.
//   - Otherwise the member and generation are checked: UNKNOWN_MEMBER_ID,
//     ILLEGAL_GENERATION (for example a member whose partitions were revoked
//     in a later generation), REBALANCE_IN_PROGRESS while the group awaits
//     its assignment, FENCED_INSTANCE_ID for a replaced static member.
//   - Commits to partitions that do not exist get UNKNOWN_TOPIC_OR_PARTITION;
//     metadata over offset.metadata.max.bytes gets OFFSET_METADATA_TOO_LARGE.
//   - The answer waits until the commit is durable in __consumer_offsets;
//     OffsetFetch sees it from then on.
//   - For a KIP-848 consumer group Generation is the member epoch:
//     UNKNOWN_MEMBER_ID for an unknown member, STALE_MEMBER_EPOCH for an
//     epoch newer than the member's, and per partition STALE_MEMBER_EPOCH
//     for a partition the member does not hold or held only from a later
//     epoch (KIP-1251's relaxed check; see group.ConsumerGroup.ValidateCommit).
//     A consumer member must use v9+ (UNSUPPORTED_VERSION below, as Kafka).
//
// Version notes: v9 (KIP-848) has v8's format.
//
// Not done: v10 (topic ids); RetentionTimeMillis (v2-4) is ignored, as
// in Kafka 2.1+.

import (
	"github.com/oncelog/oncelog/internal/group"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(8, 0, 9, handleOffsetCommit) }

func handleOffsetCommit(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.OffsetCommitRequest)
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	fill := func(per func(tp group.TopicPartition) *kerr.Error) {
		for _, t := range req.Topics {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition = p.Partition
				if err := per(group.TopicPartition{Topic: t.Topic, Partition: p.Partition}); err != nil {
					rp.ErrorCode = err.Code
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
	}
	if c.s.Groups == nil {
		fill(func(group.TopicPartition) *kerr.Error { return kerr.CoordinatorNotAvailable })
		return now(resp)
	}
	if req.Version == 0 {
		req.Generation = -1
	}
	topErr, wait := c.s.Groups.Commit(req)
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
