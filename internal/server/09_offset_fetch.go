package server

// OffsetFetch (key 9), versions 0-8.
//
// Behaviour:
//   - Returns each requested partition's committed offset, leader epoch and
//     metadata; a partition (or a whole group) that never committed gets
//     offset -1 and no error, never GROUP_ID_NOT_FOUND.
//   - Topics null (v2+) returns every committed offset of the group.
//   - Offsets are read after they are durable, so the answer is correct
//     right after a coordinator restart.
//
// Version notes: v7 adds RequireStable (KIP-447): no transactional offset
// commits exist yet, so no offset is ever unstable. v8 batches groups.
//
// Not done: v9+ (KIP-848 member id and epoch).

import (
	"sort"

	"github.com/oncelog/oncelog/internal/group"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(9, 0, 8, handleOffsetFetch) }

type fetchedTopic struct {
	topic string
	parts []fetchedPartition
}

type fetchedPartition struct {
	partition int32
	off       group.Offset
	found     bool
}

// offsetsFor resolves one group's request; topics nil means all.
func offsetsFor(c *conn, groupID string, topics map[string][]int32, order []string) []fetchedTopic {
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
	var out []fetchedTopic
	if topics == nil {
		byTopic := map[string][]fetchedPartition{}
		for tp, o := range got {
			byTopic[tp.Topic] = append(byTopic[tp.Topic], fetchedPartition{tp.Partition, o, true})
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
			ft.parts = append(ft.parts, fetchedPartition{p, o, ok})
		}
		out = append(out, ft)
	}
	return out
}

func handleOffsetFetch(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.OffsetFetchRequest)
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if c.s.Groups == nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return now(resp)
	}
	if req.Version < 8 {
		var topics map[string][]int32
		var order []string
		if req.Topics != nil || req.Version < 2 {
			topics = map[string][]int32{}
			for _, t := range req.Topics {
				if _, dup := topics[t.Topic]; !dup {
					order = append(order, t.Topic)
				}
				topics[t.Topic] = append(topics[t.Topic], t.Partitions...)
			}
		}
		for _, ft := range offsetsFor(c, req.Group, topics, order) {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = ft.topic
			for _, fp := range ft.parts {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition = fp.partition
				rp.Offset, rp.LeaderEpoch = -1, -1
				if fp.found {
					rp.Offset, rp.LeaderEpoch = fp.off.Offset, fp.off.LeaderEpoch
					md := fp.off.Metadata
					rp.Metadata = &md
				} else {
					empty := ""
					rp.Metadata = &empty
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return now(resp)
	}
	for _, g := range req.Groups {
		rg := kmsg.NewOffsetFetchResponseGroup()
		rg.Group = g.Group
		var topics map[string][]int32
		var order []string
		if g.Topics != nil {
			topics = map[string][]int32{}
			for _, t := range g.Topics {
				if _, dup := topics[t.Topic]; !dup {
					order = append(order, t.Topic)
				}
				topics[t.Topic] = append(topics[t.Topic], t.Partitions...)
			}
		}
		for _, ft := range offsetsFor(c, g.Group, topics, order) {
			rt := kmsg.NewOffsetFetchResponseGroupTopic()
			rt.Topic = ft.topic
			for _, fp := range ft.parts {
				rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
				rp.Partition = fp.partition
				rp.Offset, rp.LeaderEpoch = -1, -1
				if fp.found {
					rp.Offset, rp.LeaderEpoch = fp.off.Offset, fp.off.LeaderEpoch
					md := fp.off.Metadata
					rp.Metadata = &md
				} else {
					empty := ""
					rp.Metadata = &empty
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			rg.Topics = append(rg.Topics, rt)
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return now(resp)
}
