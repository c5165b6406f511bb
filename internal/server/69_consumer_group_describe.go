package server

// ConsumerGroupDescribe (key 69), versions 0-1.
//
// Behaviour (KIP-848): per group its state (Empty, Assigning,
// Reconciling, Stable), group epoch, target assignment epoch, the
// assignor the group uses, and each member with its epoch, subscription,
// current assignment and target assignment. An id that is not a consumer
// group is GROUP_ID_NOT_FOUND, with "Group ... is not a consumer group."
// when a classic group holds it.
//
// Version notes: v1 adds MemberType (1: consumer protocol; this
// coordinator has no classic members in consumer groups).
//
// Not done: authorized operations (no ACLs).

import (
	"fmt"
	"slices"

	"github.com/oncelog/oncelog/internal/group"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(69, 0, 1, handleConsumerGroupDescribe) }

func describeAssignment(c *conn, a map[string][]int32) kmsg.Assignment {
	out := kmsg.NewAssignment()
	names := make([]string, 0, len(a))
	for n := range a {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		t := c.s.b.Topic(n)
		if t == nil || len(a[n]) == 0 {
			continue
		}
		tp := kmsg.NewAssignmentTopicPartition()
		tp.TopicID, tp.Topic, tp.Partitions = t.ID, n, a[n]
		out.TopicPartitions = append(out.TopicPartitions, tp)
	}
	return out
}

func handleConsumerGroupDescribe(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.ConsumerGroupDescribeRequest)
	resp := req.ResponseKind().(*kmsg.ConsumerGroupDescribeResponse)
	for _, id := range req.Groups {
		rg := kmsg.NewConsumerGroupDescribeResponseGroup()
		rg.Group = id
		fail := func(err *kerr.Error, msg string) {
			rg.ErrorCode = err.Code
			if msg != "" {
				rg.ErrorMessage = &msg
			}
			resp.Groups = append(resp.Groups, rg)
		}
		if c.s.Groups == nil {
			fail(kerr.CoordinatorNotAvailable, "")
			continue
		}
		if id == "" {
			fail(kerr.InvalidGroupID, "")
			continue
		}
		info, ok := c.s.Groups.DescribeConsumerGroup(id)
		if !ok {
			if c.s.Groups.IsClassicGroup(id) {
				fail(kerr.GroupIDNotFound, fmt.Sprintf("Group %s is not a consumer group.", id))
			} else {
				fail(kerr.GroupIDNotFound, fmt.Sprintf("Group %s not found.", id))
			}
			continue
		}
		rg.State, rg.Epoch, rg.AssignmentEpoch, rg.AssignorName = info.State, info.GroupEpoch, info.AssignmentEpoch, info.Assignor
		for _, m := range info.Members {
			rg.Members = append(rg.Members, describeMember(c, m))
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return now(resp)
}

func describeMember(c *conn, m group.ConsumerMemberInfo) kmsg.ConsumerGroupDescribeResponseGroupMember {
	rm := kmsg.NewConsumerGroupDescribeResponseGroupMember()
	rm.MemberID, rm.InstanceID, rm.RackID = m.ID, m.InstanceID, m.RackID
	rm.MemberEpoch, rm.ClientID, rm.ClientHost = m.MemberEpoch, m.ClientID, m.ClientHost
	rm.SubscribedTopics = m.SubscribedTopicNames
	if rm.SubscribedTopics == nil {
		rm.SubscribedTopics = []string{}
	}
	if m.SubscribedTopicRegex != "" {
		re := m.SubscribedTopicRegex
		rm.SubscribedTopicRegex = &re
	}
	rm.Assignment = describeAssignment(c, m.AssignedPartitions)
	rm.TargetAssignment = describeAssignment(c, m.Target)
	rm.MemberType = 1
	return rm
}
