package server

// OffsetDelete (key 47), version 0.
//
// Behaviour: deletes committed offsets of a group (KIP-496). Partitions of
// a topic that a member of a non-empty group subscribes to get
// GROUP_SUBSCRIBED_TO_TOPIC; an unknown group gets GROUP_ID_NOT_FOUND.

import (
	"slices"

	"github.com/oncelog/oncelog/internal/group"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(47, 0, 0, handleOffsetDelete) }

// subscribedTo reports whether a member of a consumer group subscribes to
// topic: for a KIP-848 group from the members' subscriptions, for a
// classic one from their consumer protocol metadata.
func subscribedTo(g *group.GroupInfo, topic string) bool {
	if g.Type == "consumer" {
		return slices.Contains(g.SubscribedTopics, topic)
	}
	if g.ProtocolType != "consumer" {
		return false
	}
	for _, m := range g.Members {
		for _, p := range m.Protocols {
			if p.Name != g.Protocol {
				continue
			}
			var md kmsg.ConsumerMemberMetadata
			if md.ReadFrom(p.Metadata) != nil {
				return true // unreadable: be safe, keep the offsets
			}
			for _, t := range md.Topics {
				if t == topic {
					return true
				}
			}
		}
	}
	return false
}

func handleOffsetDelete(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.OffsetDeleteRequest)
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	if c.s.Groups == nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return now(resp)
	}
	var tps []group.TopicPartition
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			tps = append(tps, group.TopicPartition{Topic: t.Topic, Partition: p.Partition})
		}
	}
	topErr, res := c.s.Groups.DeleteOffsets(req.Group, tps, subscribedTo)
	if topErr != nil {
		resp.ErrorCode = topErr.Code
		return now(resp)
	}
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition = p.Partition
			if err := res[group.TopicPartition{Topic: t.Topic, Partition: p.Partition}]; err != nil {
				rp.ErrorCode = err.Code
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return now(resp)
}
