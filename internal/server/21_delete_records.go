package server

// DeleteRecords (key 21), versions 0-2.
//
// Behaviour:
//   - Raises each partition's log start offset to the requested offset;
//     -1 means the high watermark. The new start is written durably (a
//     checkpoint in the partition directory, before any segment goes), so
//     it survives restarts; segments wholly below it are removed.
//   - Answers the new low watermark (log start offset). An offset at or
//     below the current start changes nothing and answers the current one.
//   - An offset past the high watermark, or negative other than -1:
//     OFFSET_OUT_OF_RANGE. An unknown topic or partition:
//     UNKNOWN_TOPIC_OR_PARTITION. Both with LowWatermark -1.
//   - Internal topics: INVALID_TOPIC_EXCEPTION, as in Kafka.
//   - A partition listed twice is answered once, for its last offset, as
//     Kafka does (it collects the request into a map).
//   - The work (a checkpoint fsync) runs after the request is read, on the
//     connection's writer.
//
// Version notes: v1 is the same as v0 (throttling after the response); v2
// is flexible.
//
// Not done: TimeoutMillis is ignored (there are no followers to wait for).

import (
	"github.com/oncelog/oncelog/internal/broker"
	"github.com/oncelog/oncelog/internal/partition"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(21, 0, 2, handleDeleteRecords) }

func handleDeleteRecords(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.DeleteRecordsRequest)
	b := c.s.b

	// Collapse repeats: the last offset for a partition wins; topics and
	// partitions keep the order of their first appearance.
	type tp struct {
		topic     string
		partition int32
	}
	offsets := map[tp]int64{}
	var topics []string
	parts := map[string][]int32{}
	for _, rt := range req.Topics {
		if _, ok := parts[rt.Topic]; !ok {
			topics = append(topics, rt.Topic)
			parts[rt.Topic] = []int32{}
		}
		for _, rp := range rt.Partitions {
			k := tp{rt.Topic, rp.Partition}
			if _, ok := offsets[k]; !ok {
				parts[rt.Topic] = append(parts[rt.Topic], rp.Partition)
			}
			offsets[k] = rp.Offset
		}
	}

	return later(func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
		for _, topic := range topics {
			st := kmsg.NewDeleteRecordsResponseTopic()
			st.Topic = topic
			t := b.Topic(topic)
			for _, i := range parts[topic] {
				sp := kmsg.NewDeleteRecordsResponseTopicPartition()
				sp.Partition = i
				sp.LowWatermark = -1
				var p *partition.Partition
				if t != nil && i >= 0 && int(i) < len(t.Partitions) {
					p = t.Partitions[i]
				}
				if p == nil {
					sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
					st.Partitions = append(st.Partitions, sp)
					continue
				}
				if broker.IsInternal(topic) {
					// As Kafka: coordinator logs are trimmed by the
					// coordinators, never by clients.
					sp.ErrorCode = kerr.InvalidTopicException.Code
					st.Partitions = append(st.Partitions, sp)
					continue
				}
				start, kerrv := p.DeleteRecordsBefore(offsets[tp{topic, i}])
				if kerrv != nil {
					sp.ErrorCode = kerrv.Code
				} else {
					sp.LowWatermark = start
				}
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	})
}
