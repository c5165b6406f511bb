package server

// Metadata (key 3), versions 0-13.
//
// Behaviour:
//   - One broker (this node), which is the controller and the leader of
//     every partition, with replicas and ISR [this node].
//   - Topics null (v1+) or empty (v0) lists every topic.
//   - A missing topic is created when auto.create.topics.enable is on and
//     the request allows it (v4+: AllowAutoTopicCreation; before v4 always);
//     otherwise it gets UNKNOWN_TOPIC_OR_PARTITION.
//   - Topics requested by id (v10+) that do not exist get UNKNOWN_TOPIC_ID.
//
// Version notes: v10 adds topic ids (KIP-516); v13 a top-level error code
// (KIP-1102), always 0 here.
//
// Not done: authorized operations (no ACLs yet; answered as "not
// computed").

import (
	"github.com/oncelog/oncelog/internal/broker"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(3, 0, 13, handleMetadata) }

func handleMetadata(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	b := c.s.b
	br := kmsg.NewMetadataResponseBroker()
	br.NodeID, br.Host, br.Port = b.Config.NodeID, c.s.adv.host, c.s.adv.port
	resp.Brokers = []kmsg.MetadataResponseBroker{br}
	resp.ClusterID = &b.ClusterID
	resp.ControllerID = b.Config.NodeID

	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		for _, t := range b.Topics() {
			resp.Topics = append(resp.Topics, topicMetadata(c, t))
		}
		return now(resp)
	}
	autoCreate := b.Config.AutoCreateTopics && (req.Version < 4 || req.AllowAutoTopicCreation)
	for _, rt := range req.Topics {
		var t *broker.Topic
		switch {
		case rt.Topic != nil:
			t = b.Topic(*rt.Topic)
			if t == nil && autoCreate && !broker.IsInternal(*rt.Topic) {
				var perr *broker.Error
				t, perr = b.CreateTopic(*rt.Topic, -1, nil, false)
				if perr != nil && perr.Code == kerr.TopicAlreadyExists {
					t, perr = b.Topic(*rt.Topic), nil
				}
				if perr != nil {
					st := kmsg.NewMetadataResponseTopic()
					st.Topic = rt.Topic
					st.ErrorCode = perr.Code.Code
					resp.Topics = append(resp.Topics, st)
					continue
				}
			}
			if t == nil {
				st := kmsg.NewMetadataResponseTopic()
				st.Topic = rt.Topic
				st.ErrorCode = kerr.UnknownTopicOrPartition.Code
				if broker.ValidateTopicName(*rt.Topic) != nil {
					st.ErrorCode = kerr.InvalidTopicException.Code
				}
				resp.Topics = append(resp.Topics, st)
				continue
			}
		default:
			t = b.TopicByID(rt.TopicID)
			if t == nil {
				st := kmsg.NewMetadataResponseTopic()
				st.TopicID = rt.TopicID
				st.ErrorCode = kerr.UnknownTopicID.Code
				resp.Topics = append(resp.Topics, st)
				continue
			}
		}
		resp.Topics = append(resp.Topics, topicMetadata(c, t))
	}
	return now(resp)
}

func topicMetadata(c *conn, t *broker.Topic) kmsg.MetadataResponseTopic {
	node := c.s.b.Config.NodeID
	st := kmsg.NewMetadataResponseTopic()
	name := t.Name
	st.Topic = &name
	st.TopicID = t.ID
	st.IsInternal = broker.IsInternal(t.Name)
	st.Partitions = make([]kmsg.MetadataResponseTopicPartition, len(t.Partitions))
	for i := range t.Partitions {
		sp := kmsg.NewMetadataResponseTopicPartition()
		sp.Partition = int32(i)
		sp.Leader = node
		sp.LeaderEpoch = 0
		sp.Replicas = []int32{node}
		sp.ISR = []int32{node}
		st.Partitions[i] = sp
	}
	return st
}
