package server

// OffsetFetch (key 9), versions 0-9.
//
// Behaviour:
//   - Returns each requested partition's committed offset, leader epoch and
//     metadata; a partition (or a whole group) that never committed gets
//     offset -1 and no error, never GROUP_ID_NOT_FOUND.
//   - Topics null (v2+) returns every committed offset of the group.
//   - Offsets are read after they are durable, so the answer is correct
//     right after a coordinator restart.
//
// Version notes: v7 adds RequireStable (KIP-447): a partition with a
// transactional commit still pending gets UNSTABLE_OFFSET_COMMIT (the
// client retries), so a new owner never starts from an offset that is about
// to change. Without it, the committed offset is returned. v8 batches groups.
//
// v9 (KIP-848) carries the member id and epoch of a consumer group member:
// an unknown member is UNKNOWN_MEMBER_ID and any epoch but the member's
// current one STALE_MEMBER_EPOCH (group-level errors); no member id and
// epoch -1 (admin tools) is always allowed, as is any fetch from a classic
// group.
//
// Not done: v10 (topic ids).

import (
	"sort"

	"github.com/oncelog/oncelog/internal/group"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(9, 0, 9, handleOffsetFetch) }

type fetchedTopic struct {
	topic string
	parts []fetchedPartition
}

type fetchedPartition struct {
	partition int32
	off       group.Offset
	found     bool
	// unstable: a transactional commit for it is pending and the request
	// asked for stable offsets (KIP-447).
	unstable bool
}

// offsetsFor resolves one group's request; topics nil means all.
func offsetsFor(c *conn, groupID string, topics map[string][]int32, order []string, requireStable bool) (out []fetchedTopic) {
	defer func() {
		if !requireStable {
			return
		}
		for i := range out {
			for j := range out[i].parts {
				fp := &out[i].parts[j]
				fp.unstable = c.s.Groups.HasPending(groupID, group.TopicPartition{Topic: out[i].topic, Partition: fp.partition})
			}
		}
	}()
	var tps []group.TopicPartition
	if topics != nil {
		tps = []group.TopicPartition{}
		for _, t := range order {
			for _, p := range topics[t] {
				tps = append(tps, group.TopicPartition{Topic: t, Partition: p})
			}
		}
	}
	got := c.s.Groups.FetchOffsets(groupID, tps)
	if topics == nil {
		byTopic := map[string][]fetchedPartition{}
		for tp, o := range got {
			byTopic[tp.Topic] = append(byTopic[tp.Topic], fetchedPartition{partition: tp.Partition, off: o, found: true})
		}
		names := make([]string, 0, len(byTopic))
		for n := range byTopic {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			ps := byTopic[n]
			sort.Slice(ps, func(i, j int) bool { return ps[i].partition < ps[j].partition })
			out = append(out, fetchedTopic{n, ps})
		}
		return out
	}
	for _, t := range order {
		ft := fetchedTopic{topic: t}
		for _, p := range topics[t] {
			o, ok := got[group.TopicPartition{Topic: t, Partition: p}]
			ft.parts = append(ft.parts, fetchedPartition{partition: p, off: o, found: ok})
		}
		out = append(out, ft)
	}
	return out
}

// groupOffsets answers one group of an OffsetFetch; topics nil means every
// committed offset of the group.
func groupOffsets(c *conn, groupID string, reqTopics []kmsg.OffsetFetchRequestGroupTopic, requireStable bool) kmsg.OffsetFetchResponseGroup {
	rg := kmsg.NewOffsetFetchResponseGroup()
	rg.Group = groupID
	var topics map[string][]int32
	var order []string
	if reqTopics != nil {
		topics = map[string][]int32{}
		for _, t := range reqTopics {
			if _, dup := topics[t.Topic]; !dup {
				order = append(order, t.Topic)
			}
			topics[t.Topic] = append(topics[t.Topic], t.Partitions...)
		}
	}
	for _, ft := range offsetsFor(c, groupID, topics, order, requireStable) {
		rt := kmsg.NewOffsetFetchResponseGroupTopic()
		rt.Topic = ft.topic
		for _, fp := range ft.parts {
			rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
			rp.Partition = fp.partition
			rp.Offset, rp.LeaderEpoch = -1, -1
			md := ""
			switch {
			case fp.unstable:
				rp.ErrorCode = kerr.UnstableOffsetCommit.Code
			case fp.found:
				rp.Offset, rp.LeaderEpoch = fp.off.Offset, fp.off.LeaderEpoch
				md = fp.off.Metadata
			}
			rp.Metadata = &md
			rt.Partitions = append(rt.Partitions, rp)
		}
		rg.Topics = append(rg.Topics, rt)
	}
	return rg
}

func handleOffsetFetch(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.OffsetFetchRequest)
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if c.s.Groups == nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return now(resp)
	}
	if req.Version < 8 {
		// One group: answered as the batched form, then moved into the
		// old fields.
		rt := make([]kmsg.OffsetFetchRequestGroupTopic, len(req.Topics))
		for i, t := range req.Topics {
			rt[i] = kmsg.OffsetFetchRequestGroupTopic{Topic: t.Topic, Partitions: t.Partitions}
		}
		if req.Topics == nil && req.Version < 2 {
			rt = []kmsg.OffsetFetchRequestGroupTopic{}
		} else if req.Topics == nil {
			rt = nil
		}
		rg := groupOffsets(c, req.Group, rt, req.RequireStable)
		for _, gt := range rg.Topics {
			t := kmsg.NewOffsetFetchResponseTopic()
			t.Topic = gt.Topic
			for _, gp := range gt.Partitions {
				t.Partitions = append(t.Partitions, kmsg.OffsetFetchResponseTopicPartition{
					Partition: gp.Partition, Offset: gp.Offset, LeaderEpoch: gp.LeaderEpoch,
					Metadata: gp.Metadata, ErrorCode: gp.ErrorCode,
				})
			}
			resp.Topics = append(resp.Topics, t)
		}
		return now(resp)
	}
	for _, g := range req.Groups {
		if req.Version >= 9 {
			if err := c.s.Groups.ValidateOffsetFetch(g.Group, g.MemberID, g.MemberEpoch); err != nil {
				rg := kmsg.NewOffsetFetchResponseGroup()
				rg.Group, rg.ErrorCode = g.Group, err.Code
				resp.Groups = append(resp.Groups, rg)
				continue
			}
		}
		resp.Groups = append(resp.Groups, groupOffsets(c, g.Group, g.Topics, req.RequireStable))
	}
	return now(resp)
}
