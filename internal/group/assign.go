package group

// Server-side assignors of KIP-848 consumer groups.
//
// An assignor maps the group's members to partitions of the topics they
// subscribe to. It is a pure function of its input: the members sorted by
// id, their subscriptions, the partition counts of the subscribed topics,
// and the previous target assignment (for stickiness). Two coordinators
// given the same input compute the same assignment, which is what lets a
// restarted coordinator continue from the persisted target.
//
//   - "uniform" (Kafka's default): balanced (member partition counts differ
//     by at most one when subscriptions are equal) and sticky (a partition
//     stays with its previous owner whenever balance allows, so a rebalance
//     moves as few partitions as it can).
//   - "range": per topic, the subscribed members sorted by id each take a
//     contiguous range of partitions, the first members one more when the
//     count does not divide; members subscribed to the same topics get the
//     same partition numbers of each (co-partitioning).
//
// Not done: rack awareness (RackID is recorded but not used) and the
// sticky variant of range that Kafka 3.7+ applies.

import (
	"sort"
)

// Assignor names, as clients send them in ServerAssignor.
const (
	AssignorUniform = "uniform"
	AssignorRange   = "range"
)

// defaultAssignor is group.consumer.assignors' first entry in Kafka.
const defaultAssignor = AssignorUniform

// assignmentMap is topic -> sorted partitions.
type assignmentMap map[string][]int32

// assignInput is what an assignor sees.
type assignInput struct {
	// members sorted by id; subscribed is each member's resolved topics.
	members []assignMember
	// partitions is the partition count of every subscribed topic that
	// exists.
	partitions map[string]int32
}

type assignMember struct {
	id         string
	subscribed map[string]bool
	// previous is the member's previous target assignment.
	previous assignmentMap
}

func knownAssignor(name string) bool { return name == AssignorUniform || name == AssignorRange }

// assign runs the named assignor; the result has an entry for every member.
func assign(name string, in assignInput) map[string]assignmentMap {
	if name == AssignorRange {
		return assignRange(in)
	}
	return assignUniform(in)
}

func sortedTopics(partitions map[string]int32) []string {
	ts := make([]string, 0, len(partitions))
	for t := range partitions {
		ts = append(ts, t)
	}
	sort.Strings(ts)
	return ts
}

func assignRange(in assignInput) map[string]assignmentMap {
	out := make(map[string]assignmentMap, len(in.members))
	for _, m := range in.members {
		out[m.id] = assignmentMap{}
	}
	for _, t := range sortedTopics(in.partitions) {
		var subs []string
		for _, m := range in.members {
			if m.subscribed[t] {
				subs = append(subs, m.id)
			}
		}
		if len(subs) == 0 {
			continue
		}
		n := in.partitions[t]
		quota, extra := n/int32(len(subs)), n%int32(len(subs))
		next := int32(0)
		for i, id := range subs {
			k := quota
			if int32(i) < extra {
				k++
			}
			for p := next; p < next+k; p++ {
				out[id][t] = append(out[id][t], p)
			}
			next += k
		}
	}
	return out
}

type topicPartition = TopicPartition

func assignUniform(in assignInput) map[string]assignmentMap {
	owner := map[topicPartition]string{}
	count := map[string]int{}
	for _, m := range in.members {
		count[m.id] = 0
	}
	// 1. Keep every previous assignment that is still valid.
	for _, m := range in.members {
		for t, ps := range m.previous {
			n, ok := in.partitions[t]
			if !ok || !m.subscribed[t] {
				continue
			}
			for _, p := range ps {
				tp := topicPartition{t, p}
				if p >= n {
					continue
				}
				if _, taken := owner[tp]; taken {
					continue // invariant: previous targets are disjoint; be safe anyway
				}
				owner[tp] = m.id
				count[m.id]++
			}
		}
	}
	// 2. Hand out the rest, each to the least loaded eligible member.
	for _, t := range sortedTopics(in.partitions) {
		for p := int32(0); p < in.partitions[t]; p++ {
			tp := topicPartition{t, p}
			if _, ok := owner[tp]; ok {
				continue
			}
			best := ""
			for _, m := range in.members {
				if m.subscribed[t] && (best == "" || count[m.id] < count[best]) {
					best = m.id
				}
			}
			if best == "" {
				continue
			}
			owner[tp] = best
			count[best]++
		}
	}
	// 3. Balance: move a partition from a member to an eligible one with
	// at least two fewer, until no such move exists. Each move lowers the
	// sum of squared counts, so this ends. Partitions are tried in sorted
	// order so the result is deterministic.
	tps := make([]topicPartition, 0, len(owner))
	for tp := range owner {
		tps = append(tps, tp)
	}
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].Topic != tps[j].Topic {
			return tps[i].Topic < tps[j].Topic
		}
		return tps[i].Partition > tps[j].Partition // move high partitions first
	})
	for moved := true; moved; {
		moved = false
		for _, tp := range tps {
			from := owner[tp]
			best := ""
			for _, m := range in.members {
				if m.id == from || !m.subscribed[tp.Topic] {
					continue
				}
				if count[m.id]+1 < count[from] && (best == "" || count[m.id] < count[best]) {
					best = m.id
				}
			}
			if best != "" {
				owner[tp] = best
				count[from]--
				count[best]++
				moved = true
			}
		}
	}
	out := make(map[string]assignmentMap, len(in.members))
	for _, m := range in.members {
		out[m.id] = assignmentMap{}
	}
	for _, tp := range tps {
		id := owner[tp]
		out[id][tp.Topic] = append(out[id][tp.Topic], tp.Partition)
	}
	for _, a := range out {
		for t := range a {
			sort.Slice(a[t], func(i, j int) bool { return a[t][i] < a[t][j] })
		}
	}
	return out
}
