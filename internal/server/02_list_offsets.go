package server

// ListOffsets (key 2), versions 0-8.
//
// Behaviour:
//   - Timestamp -1 (latest): the high watermark, or the last stable offset
//     when IsolationLevel is read_committed (v2+).
//   - -2 (earliest) and -4 (earliest local, KIP-405; there is no tiered
//     storage, so the same): the log start offset.
//   - -3 (max timestamp, KIP-734, v7+): the offset of the record with the
//     largest timestamp, and that timestamp.
//   - Any other timestamp: the offset of the first record whose timestamp
//     is at or after it, or offset -1 with timestamp -1 if none is.
//   - v0 answers OldStyleOffsets with a single offset.
//
// Not done: -5 (latest tiered, v9+) is not served.

import (
	"errors"

	"github.com/oncelog/oncelog/internal/partition"
	"github.com/oncelog/oncelog/internal/recordbatch"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(2, 0, 8, handleListOffsets) }

func handleListOffsets(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.ListOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	b := c.s.b
	committed := req.IsolationLevel == 1
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		t := b.Topic(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Timestamp, sp.Offset, sp.LeaderEpoch = -1, -1, 0
			if t == nil || rp.Partition < 0 || int(rp.Partition) >= len(t.Partitions) {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			p := t.Partitions[rp.Partition]
			off, ts, kerrv := listOffset(p, rp.Timestamp, committed, req.Version)
			if kerrv != nil {
				sp.ErrorCode = kerrv.Code
			} else {
				sp.Offset, sp.Timestamp = off, ts
				if req.Version == 0 {
					sp.OldStyleOffsets = []int64{off}
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return now(resp)
}

func listOffset(p *partition.Partition, ts int64, committed bool, version int16) (int64, int64, *kerr.Error) {
	o := p.Offsets()
	switch ts {
	case -1:
		if committed {
			return o.LastStableOffset, -1, nil
		}
		return o.HighWatermark, -1, nil
	case -2, -4:
		return o.LogStartOffset, -1, nil
	case -3:
		if version < 7 {
			return 0, 0, kerr.UnsupportedVersion
		}
		mts, boff := p.Log().MaxTimestamp()
		if boff < 0 {
			return -1, -1, nil
		}
		return exactMaxTimestampOffset(p, boff, mts), mts, nil
	}
	if ts < 0 {
		return 0, 0, kerr.InvalidRequest
	}
	batch, ok, err := p.Log().FindTimestamp(ts)
	if err != nil {
		return 0, 0, kerr.KafkaStorageError
	}
	if !ok {
		return -1, -1, nil
	}
	off, rts := int64(-1), int64(-1)
	errFound := errors.New("found")
	recordbatch.Records(batch, func(r recordbatch.Record) error {
		if r.Timestamp >= ts {
			off, rts = r.Offset, r.Timestamp
			return errFound
		}
		return nil
	})
	if off < 0 || off < o.LogStartOffset || off >= o.HighWatermark {
		return -1, -1, nil
	}
	return off, rts, nil
}

// exactMaxTimestampOffset finds the record carrying the max timestamp in the
// batch at batchOffset.
func exactMaxTimestampOffset(p *partition.Partition, batchOffset, mts int64) int64 {
	data, err := p.Log().Read(batchOffset, 1, batchOffset+1)
	if err != nil || len(data) == 0 {
		return batchOffset
	}
	off := batchOffset
	errFound := errors.New("found")
	recordbatch.Split(data, func(b []byte) error {
		return recordbatch.Records(b, func(r recordbatch.Record) error {
			if r.Timestamp == mts {
				off = r.Offset
				return errFound
			}
			return nil
		})
	})
	return off
}
