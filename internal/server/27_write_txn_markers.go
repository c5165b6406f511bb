package server

// WriteTxnMarkers (key 27), versions 0-1.
//
// In Kafka this is the request a transaction coordinator sends to partition
// leaders. oncelog's coordinator runs in the same process and appends its
// markers to the partitions directly (internal/txn), so this handler serves
// only the admin path of KIP-664: `kafka-transactions.sh abort`, kadm's
// WriteTxnMarkers and `oncelog txn abort --topic`, used to end a hanging
// transaction at a partition.
//
// Behaviour:
//   - For each marker and each of its partitions, a control batch (commit
//     or abort) for (ProducerID, ProducerEpoch) is appended with
//     partition.AppendMarker and is durable before the answer. The
//     partition applies it as it applies the coordinator's own markers: an
//     abort of the open transaction adds it to the aborted-transaction
//     index and the LSO moves past it; a marker for a producer with no open
//     transaction there changes nothing.
//   - Per partition answers: UNKNOWN_TOPIC_OR_PARTITION for an unknown
//     topic or partition; INVALID_PRODUCER_EPOCH when the partition already
//     knows a newer epoch of the producer (Kafka's checkProducerEpoch);
//     TRANSACTION_COORDINATOR_FENCED when the coordinator epoch is older
//     than the one of the producer's last marker; INVALID_TOPIC_EXCEPTION
//     for __transaction_state, which never holds transactional data.
//   - A marker on a __consumer_offsets partition also tells the group
//     coordinator, so offsets committed in the transaction are dropped
//     (abort) or become visible (commit), as in Kafka.
//
// NB: this path bypasses the transaction coordinator, as it does in Kafka.
// If the coordinator still tracks the producer's transaction as open (the
// producer is alive, or its transaction.timeout.ms has not passed), a
// marker written here ends the transaction at this partition only:
//   - if the producer goes on to commit, the coordinator's commit marker
//     finds nothing open here and changes nothing: the transaction is
//     committed on its other partitions and aborted on this one, and
//     atomicity is lost;
//   - if the producer writes again here in the same epoch, those batches
//     open a new transaction at the partition, ended later by the
//     coordinator's marker;
//   - if the coordinator aborts (timeout or fence), its marker changes
//     nothing here, which is harmless.
// So a transaction the coordinator knows should be aborted by the
// coordinator: fence it with InitProducerId for its transactional id (what
// `oncelog txn abort --transactional-id` does) or let it time out. This
// handler writes the marker all the same (kadm and Kafka's tool expect
// that) but logs a warning when the coordinator holds such a transaction.
//
// NB: the checks above read the producer table before the append; if the
// producer bumps its epoch in between, the partition skips the now older
// marker and the answer is still success. The marker carries the
// coordinator's own epoch (0: there is one coordinator), not the request's.
//
// Not done: authorization (CLUSTER_ACTION); v2 (KIP-1228 TransactionVersion,
// Kafka 4.2).

import (
	"time"

	"github.com/oncelog/oncelog/internal/partition"
	"github.com/oncelog/oncelog/internal/txn"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(27, 0, 1, handleWriteTxnMarkers) }

func handleWriteTxnMarkers(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.WriteTxnMarkersRequest)
	return later(func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
		for _, m := range req.Markers {
			rm := kmsg.NewWriteTxnMarkersResponseMarker()
			rm.ProducerID = m.ProducerID
			for _, t := range m.Topics {
				rt := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
				rt.Topic = t.Topic
				for _, idx := range t.Partitions {
					rp := kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
					rp.Partition = idx
					rp.ErrorCode = c.writeAdminMarker(&m, t.Topic, idx)
					rt.Partitions = append(rt.Partitions, rp)
				}
				rm.Topics = append(rm.Topics, rt)
			}
			resp.Markers = append(resp.Markers, rm)
		}
		return resp
	})
}

// writeAdminMarker writes one marker of m to topic/idx and returns the
// partition's error code.
func (c *conn) writeAdminMarker(m *kmsg.WriteTxnMarkersRequestMarker, topic string, idx int32) int16 {
	if topic == txn.StateTopic {
		return kerr.InvalidTopicException.Code
	}
	p := c.s.b.Partition(topic, idx)
	if p == nil {
		return kerr.UnknownTopicOrPartition.Code
	}
	var cur *partition.ProducerEntry
	for _, e := range p.Producers() {
		if e.ProducerID == m.ProducerID {
			cur = &e
			break
		}
	}
	if cur != nil && m.ProducerEpoch < cur.ProducerEpoch {
		return kerr.InvalidProducerEpoch.Code
	}
	if cur != nil && m.CoordinatorEpoch < cur.CoordinatorEpoch {
		return kerr.TransactionCoordinatorFenced.Code
	}
	c.warnIfCoordinatorTracks(m, topic, idx)
	res := p.AppendMarker(m.ProducerID, m.ProducerEpoch, m.Committed, time.Now().UnixMilli())
	if res.Err != nil {
		return res.Err.Code
	}
	if c.s.Groups != nil && topic == c.s.Groups.OffsetsTopic() {
		c.s.Groups.CompleteTxn(idx, m.ProducerID, m.Committed, res.BaseOffset)
	}
	action := "aborted"
	if m.Committed {
		action = "committed"
	}
	c.s.lg.Info("transaction marker written by an admin request", "action", action, "topic", topic, "partition", idx,
		"producer_id", m.ProducerID, "producer_epoch", m.ProducerEpoch, "client_id", c.clientID, "offset", res.BaseOffset)
	return 0
}

// warnIfCoordinatorTracks logs when the transaction coordinator holds an
// open transaction of the marker's producer that includes the partition:
// see the NB in the header for what the marker does to it.
func (c *conn) warnIfCoordinatorTracks(m *kmsg.WriteTxnMarkersRequestMarker, topic string, idx int32) {
	if c.s.Txns == nil {
		return
	}
	for _, md := range c.s.Txns.List(txn.ListFilter{ProducerIDs: []int64{m.ProducerID}}, time.Now()) {
		if md.StartMs < 0 {
			continue
		}
		for _, tp := range md.Partitions {
			if tp.Topic == topic && tp.Partition == idx {
				c.s.lg.Warn("an admin marker ends, at one partition, a transaction the coordinator still tracks; if the producer commits, this partition stays aborted",
					"transactional_id", md.TransactionalID, "state", md.State.String(), "topic", topic, "partition", idx, "producer_id", m.ProducerID)
				return
			}
		}
	}
}
