package server

// CreatePartitions (key 37), versions 0-3.
//
// Behaviour:
//   - Count is the topic's new total; it must be larger than the current
//     count, else INVALID_PARTITIONS. The new partitions are recorded in the
//     metadata log before the answer.
//   - A manual assignment must list exactly one entry per new partition,
//     each naming this node alone (the topic's replication factor is 1),
//     else INVALID_REPLICA_ASSIGNMENT.
//   - An unknown topic: UNKNOWN_TOPIC_OR_PARTITION.
//   - The same topic twice in one request: one INVALID_REQUEST answer, as
//     Kafka's controller gives, and nothing is created for it.
//   - Internal topics keep their partition count (a group or transactional
//     id is mapped to a partition by hashing modulo the count): INVALID_REQUEST.
//     Kafka allows it and the coordinators lose track of their state.
//   - ValidateOnly checks everything and creates nothing.
//
// Version notes: v2 is flexible; v3 is the same as v2 (KIP-599 throttling
// returns THROTTLING_QUOTA_EXCEEDED, which we never do).
//
// Not done: TimeoutMillis is ignored (creation is synchronous).

import (
	"fmt"

	"github.com/oncelog/oncelog/internal/broker"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(37, 0, 3, handleCreatePartitions) }

func handleCreatePartitions(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.CreatePartitionsRequest)
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	b := c.s.b
	node := b.Config.NodeID
	answer := func(topic string, code *kerr.Error, msg string) {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = topic
		if code != nil {
			st.ErrorCode = code.Code
			st.ErrorMessage = &msg
		}
		resp.Topics = append(resp.Topics, st)
	}
	count := map[string]int{}
	for _, rt := range req.Topics {
		count[rt.Topic]++
	}
	for _, rt := range req.Topics {
		switch n := count[rt.Topic]; {
		case n > 1:
			answer(rt.Topic, kerr.InvalidRequest, "topic "+rt.Topic+" appears more than once in the request")
			count[rt.Topic] = -1 // answered once
			continue
		case n < 0:
			continue
		}
		t := b.Topic(rt.Topic)
		if t == nil {
			answer(rt.Topic, kerr.UnknownTopicOrPartition, "topic "+rt.Topic+" does not exist")
			continue
		}
		if broker.IsInternal(rt.Topic) {
			answer(rt.Topic, kerr.InvalidRequest, "topic "+rt.Topic+" is internal: its partition count decides where coordinator state lives and cannot change")
			continue
		}
		// The count check first, as Kafka orders them.
		if perr := b.CreatePartitions(rt.Topic, rt.Count, true); perr != nil {
			answer(rt.Topic, perr.Code, perr.Message)
			continue
		}
		if rt.Assignment != nil {
			if msg := checkPartitionAssignment(rt.Assignment, rt.Count-int32(len(t.Partitions)), node); msg != "" {
				answer(rt.Topic, kerr.InvalidReplicaAssignment, msg)
				continue
			}
		}
		if !req.ValidateOnly {
			if perr := b.CreatePartitions(rt.Topic, rt.Count, false); perr != nil {
				answer(rt.Topic, perr.Code, perr.Message)
				continue
			}
		}
		answer(rt.Topic, nil, "")
	}
	return now(resp)
}

// checkPartitionAssignment returns why a manual assignment of the added
// partitions is not acceptable on this single node, or "".
func checkPartitionAssignment(as []kmsg.CreatePartitionsRequestTopicAssignment, added, node int32) string {
	if int32(len(as)) != added {
		return fmt.Sprintf("%d partitions are being added, but %d assignments were given", added, len(as))
	}
	for i, a := range as {
		if len(a.Replicas) != 1 || a.Replicas[0] != node {
			return fmt.Sprintf("assignment %d lists replicas %v; every new partition must be assigned to this node (%d) alone", i, a.Replicas, node)
		}
	}
	return ""
}
