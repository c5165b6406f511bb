package server

// CreateTopics (key 19), versions 0-7.
//
// Behaviour:
//   - NumPartitions -1 (v4+) means num.partitions; ReplicationFactor must be
//     -1 or 1 (one node), else INVALID_REPLICATION_FACTOR.
//   - A manual replica assignment must place every partition on this node
//     alone and number the partitions 0..n-1, else INVALID_REPLICA_ASSIGNMENT.
//   - Configs are validated by name and value (INVALID_CONFIG); the topic is
//     recorded in the metadata log before it is answered.
//   - ValidateOnly (v1+) checks everything and creates nothing.
//   - The same topic twice in one request: INVALID_REQUEST for both.
//
// Version notes: v5 returns the resolved configs, partitions and
// replication factor; v7 the topic id (KIP-516).

import (
	"github.com/oncelog/oncelog/internal/broker"
	"github.com/oncelog/oncelog/internal/config"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(19, 0, 7, handleCreateTopics) }

func handleCreateTopics(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.CreateTopicsRequest)
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	b := c.s.b
	seen := map[string]int{}
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		st.NumPartitions, st.ReplicationFactor = -1, -1
		fail := func(code *kerr.Error, msg string) {
			st.ErrorCode = code.Code
			st.ErrorMessage = &msg
			resp.Topics = append(resp.Topics, st)
		}
		if seen[rt.Topic] > 1 {
			fail(kerr.InvalidRequest, "topic "+rt.Topic+" appears more than once in the request")
			continue
		}
		if rt.ReplicationFactor != -1 && rt.ReplicationFactor != 1 {
			fail(kerr.InvalidReplicationFactor, "replication factor must be 1 on a single-node broker")
			continue
		}
		partitions := rt.NumPartitions
		if len(rt.ReplicaAssignment) > 0 {
			if rt.NumPartitions != -1 || rt.ReplicationFactor != -1 {
				fail(kerr.InvalidRequest, "give either a replica assignment or partitions and replication factor")
				continue
			}
			ok := true
			for i, a := range rt.ReplicaAssignment {
				if a.Partition != int32(i) || len(a.Replicas) != 1 || a.Replicas[0] != b.Config.NodeID {
					ok = false
				}
			}
			if !ok {
				fail(kerr.InvalidReplicaAssignment, "every partition must be assigned to this node alone, partitions numbered from 0")
				continue
			}
			partitions = int32(len(rt.ReplicaAssignment))
		}
		overrides := map[string]string{}
		for _, cfg := range rt.Configs {
			if cfg.Value != nil {
				overrides[cfg.Name] = *cfg.Value
			}
		}
		t, perr := b.CreateTopic(rt.Topic, partitions, overrides, req.ValidateOnly)
		if perr != nil {
			fail(perr.Code, perr.Message)
			continue
		}
		if req.ValidateOnly {
			if partitions == -1 {
				partitions = b.Config.NumPartitions
			}
			st.NumPartitions = partitions
		} else {
			st.TopicID = t.ID
			st.NumPartitions = int32(len(t.Partitions))
		}
		st.ReplicationFactor = 1
		resolved, _ := config.ResolveTopic(b.Config.TopicDefaults, overrides)
		st.Configs = topicConfigEntries(&resolved, overrides)
		resp.Topics = append(resp.Topics, st)
	}
	return now(resp)
}

// topicConfigEntries renders every topic config with its source for
// CreateTopics v5+.
func topicConfigEntries(t *config.Topic, overrides map[string]string) []kmsg.CreateTopicsResponseTopicConfig {
	out := make([]kmsg.CreateTopicsResponseTopicConfig, 0, len(config.TopicKeys))
	for _, k := range config.TopicKeys {
		e := kmsg.NewCreateTopicsResponseTopicConfig()
		e.Name = k.Name
		v := k.Get(t)
		e.Value = &v
		e.Source = int8(kmsg.ConfigSourceDefaultConfig)
		if _, ok := overrides[k.Name]; ok {
			e.Source = int8(kmsg.ConfigSourceDynamicTopicConfig)
		}
		out = append(out, e)
	}
	return out
}

var _ = broker.ValidateTopicName
