package server

// DeleteTopics (key 20), versions 0-6.
//
// Behaviour:
//   - Each topic is removed from the metadata log (durably) before it is
//     answered, then its partitions are closed and their files removed. A
//     topic created again under the same name starts empty.
//   - A name that does not exist: UNKNOWN_TOPIC_OR_PARTITION. An id (v6+)
//     that does not exist: UNKNOWN_TOPIC_ID.
//   - As Kafka's controller does: a name (or id) given more than once gets
//     one INVALID_REQUEST answer and is not deleted; an entry with both a
//     name and an id, or neither, is INVALID_REQUEST; a name that resolves
//     to an id also given in the request is INVALID_REQUEST.
//   - Internal topics (__consumer_offsets, __transaction_state) hold the
//     coordinators' state and are not deleted: INVALID_REQUEST. (Kafka lets
//     an admin delete them, with predictable damage.)
//
// Version notes: v5 adds error messages (KIP-482 era); v6 names topics by
// id (KIP-516) and answers both the name and the id.
//
// Not done: TimeoutMillis is ignored (deletion is synchronous, so it never
// times out); there is no delete.topic.enable switch.

import (
	"github.com/oncelog/oncelog/internal/broker"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(20, 0, 6, handleDeleteTopics) }

func handleDeleteTopics(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.DeleteTopicsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	b := c.s.b
	answer := func(name *string, id [16]byte, code *kerr.Error, msg string) {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID = name, id
		if code != nil {
			st.ErrorCode = code.Code
			st.ErrorMessage = &msg
		}
		resp.Topics = append(resp.Topics, st)
	}

	// Gather names and ids in request order, counting repeats.
	var names []string
	var ids [][16]byte
	nameCount := map[string]int{}
	idCount := map[[16]byte]int{}
	addName := func(n string) {
		if nameCount[n] == 0 {
			names = append(names, n)
		}
		nameCount[n]++
	}
	for _, n := range req.TopicNames {
		addName(n)
	}
	for _, rt := range req.Topics {
		hasID := rt.TopicID != [16]byte{}
		switch {
		case rt.Topic == nil && !hasID:
			answer(nil, rt.TopicID, kerr.InvalidRequest, "neither a topic name nor a topic id was given")
		case rt.Topic != nil && hasID:
			answer(rt.Topic, rt.TopicID, kerr.InvalidRequest, "give a topic name or a topic id, not both")
		case rt.Topic != nil:
			addName(*rt.Topic)
		default:
			if idCount[rt.TopicID] == 0 {
				ids = append(ids, rt.TopicID)
			}
			idCount[rt.TopicID]++
		}
	}

	// Resolve everything to names before deleting anything, so that a
	// topic named both ways is caught.
	toDelete := map[string][16]byte{}
	var order []string
	for _, id := range ids {
		if idCount[id] > 1 {
			answer(nil, id, kerr.InvalidRequest, "topic id appears more than once in the request")
			continue
		}
		t := b.TopicByID(id)
		if t == nil {
			answer(nil, id, kerr.UnknownTopicID, "no topic has this id")
			continue
		}
		if broker.IsInternal(t.Name) {
			name := t.Name
			answer(&name, id, kerr.InvalidRequest, "topic "+name+" is internal: it holds coordinator state and cannot be deleted")
			continue
		}
		toDelete[t.Name] = id
		order = append(order, t.Name)
	}
	for _, n := range names {
		name := n
		if nameCount[n] > 1 {
			answer(&name, [16]byte{}, kerr.InvalidRequest, "topic "+n+" appears more than once in the request")
			continue
		}
		t := b.Topic(n)
		if t == nil {
			answer(&name, [16]byte{}, kerr.UnknownTopicOrPartition, "topic "+n+" does not exist")
			continue
		}
		if broker.IsInternal(n) {
			answer(&name, t.ID, kerr.InvalidRequest, "topic "+n+" is internal: it holds coordinator state and cannot be deleted")
			continue
		}
		if _, dup := toDelete[n]; dup {
			answer(&name, t.ID, kerr.InvalidRequest, "topic "+n+" is also named by its id in the request")
			continue
		}
		toDelete[n] = t.ID
		order = append(order, n)
	}

	for _, n := range order {
		name, id := n, toDelete[n]
		if t := b.Topic(n); t == nil || t.ID != id {
			// Deleted (or deleted and re-created) since we resolved it.
			answer(&name, id, kerr.UnknownTopicOrPartition, "topic "+n+" does not exist")
			continue
		}
		if perr := b.DeleteTopic(n); perr != nil {
			answer(&name, id, perr.Code, perr.Message)
			continue
		}
		answer(&name, id, nil, "")
	}
	return now(resp)
}
