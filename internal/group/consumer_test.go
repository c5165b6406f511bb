package group

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/oncelog/oncelog/internal/clock"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type fakeTopics map[string]int32

func (f fakeTopics) Partitions(t string) (int32, bool) { n, ok := f[t]; return n, ok }
func (f fakeTopics) Names() []string {
	var out []string
	for t := range f {
		out = append(out, t)
	}
	return out
}

func TestAssignRange(t *testing.T) {
	in := assignInput{partitions: map[string]int32{"a": 5, "b": 2}, members: []assignMember{
		{id: "m1", subscribed: map[string]bool{"a": true, "b": true}},
		{id: "m2", subscribed: map[string]bool{"a": true, "b": true}},
	}}
	got := assign(AssignorRange, in)
	want := map[string]assignmentMap{"m1": {"a": {0, 1, 2}, "b": {0}}, "m2": {"a": {3, 4}, "b": {1}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("range: %v, want %v", got, want)
	}
}

func TestAssignUniformBalancedAndSticky(t *testing.T) {
	sub := map[string]bool{"t": true}
	in := assignInput{partitions: map[string]int32{"t": 12}, members: []assignMember{{id: "a", subscribed: sub}, {id: "b", subscribed: sub}, {id: "c", subscribed: sub}}}
	first := assign(AssignorUniform, in)
	for id, a := range first {
		if len(a["t"]) != 4 {
			t.Fatalf("member %s got %v, want 4 partitions", id, a)
		}
	}
	// c leaves: a and b keep theirs and split c's.
	in2 := assignInput{partitions: in.partitions, members: []assignMember{{id: "a", subscribed: sub, previous: first["a"]}, {id: "b", subscribed: sub, previous: first["b"]}}}
	second := assign(AssignorUniform, in2)
	for _, id := range []string{"a", "b"} {
		if len(second[id]["t"]) != 6 {
			t.Fatalf("member %s got %v, want 6", id, second[id])
		}
		for _, p := range first[id]["t"] {
			if !contains32(second[id]["t"], p) {
				t.Fatalf("member %s lost partition %d (%v -> %v)", id, p, first[id], second[id])
			}
		}
	}
}

func contains32(s []int32, v int32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

type cgHarness struct {
	t   *testing.T
	g   *ConsumerGroup
	md  fakeTopics
	clk *clock.Manual
}

func newCGHarness(t *testing.T) *cgHarness {
	clk := clock.NewManual(time.Unix(1000, 0))
	return &cgHarness{t: t, g: newConsumerGroup("g", DefaultConsumerSettings(), clk.Now()), md: fakeTopics{"t": 4}, clk: clk}
}

// hb sends a heartbeat; owned nil means "unchanged".
func (h *cgHarness) hb(member string, epoch int32, owned assignmentMap) ConsumerHeartbeatResult {
	h.t.Helper()
	req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	req.Version, req.Group, req.MemberID, req.MemberEpoch = 1, "g", member, epoch
	if epoch == 0 {
		req.RebalanceTimeoutMillis = 60000
		req.SubscribedTopicNames = []string{"t"}
		owned = assignmentMap{}
	}
	return h.g.Heartbeat(ConsumerHeartbeat{Req: req, Owned: owned}, h.md, h.clk.Now())
}

func (h *cgHarness) ok(r ConsumerHeartbeatResult) ConsumerHeartbeatResult {
	h.t.Helper()
	if r.Err != nil {
		h.t.Fatalf("heartbeat failed: %v %s", r.Err, r.Message)
	}
	return r
}

// TestConsumerReconciliation: a partition moves to a new member only after
// its old owner has revoked it, and the old owner stays at its epoch until
// then.
func TestConsumerReconciliation(t *testing.T) {
	h := newCGHarness(t)
	a := h.ok(h.hb("A", 0, nil))
	if a.MemberEpoch != 1 || len(a.Assignment["t"]) != 4 {
		t.Fatalf("A joined: %+v", a)
	}
	b := h.ok(h.hb("B", 0, nil))
	if b.MemberEpoch != 2 || len(b.Assignment["t"]) != 0 {
		t.Fatalf("B must wait for A to release: %+v", b)
	}
	if st := h.g.State(); st != ConsumerReconciling {
		t.Fatalf("state %v", st)
	}
	a = h.ok(h.hb("A", 1, assignmentMap{"t": {0, 1, 2, 3}}))
	if a.MemberEpoch != 1 || len(a.Assignment["t"]) != 2 || h.g.members["A"].State != MemberUnrevokedPartitions {
		t.Fatalf("A must revoke at epoch 1: %+v", a)
	}
	kept := a.Assignment["t"]
	revoked := []int32{}
	for p := int32(0); p < 4; p++ {
		if !contains32(kept, p) {
			revoked = append(revoked, p)
		}
	}
	// A commits the revoked partitions at its epoch before releasing them.
	if top, rej := h.g.ValidateCommit("A", 1, 9, false, []TopicPartition{{"t", revoked[0]}}); top != nil || rej != nil {
		t.Fatalf("commit before release: %v %v", top, rej)
	}
	// B still gets nothing: A has not released.
	if b = h.ok(h.hb("B", 2, assignmentMap{})); len(b.Assignment["t"]) != 0 {
		t.Fatalf("B got partitions A still holds: %+v", b)
	}
	// A releases (Topics without the revoked ones): it moves to epoch 2.
	a = h.ok(h.hb("A", 1, assignmentMap{"t": kept}))
	if a.MemberEpoch != 2 || h.g.members["A"].State != MemberStable {
		t.Fatalf("A after release: %+v state %v", a, h.g.members["A"].State)
	}
	b = h.ok(h.hb("B", 2, assignmentMap{}))
	if !reflect.DeepEqual(b.Assignment["t"], revoked) {
		t.Fatalf("B got %v, want %v", b.Assignment, revoked)
	}
	if st := h.g.State(); st != ConsumerStable {
		t.Fatalf("state %v", st)
	}
	// A zombie commit of a released partition is fenced, at any epoch.
	if _, rej := h.g.ValidateCommit("A", 2, 9, false, []TopicPartition{{"t", revoked[0]}}); rej[TopicPartition{"t", revoked[0]}] != kerr.StaleMemberEpoch {
		t.Fatalf("commit after release: %v", rej)
	}
	// KIP-1251: A's commit at epoch 1 for a partition it has held since
	// epoch 1 is fine; B's at epoch 1 for a partition it got at 2 is not;
	// a future epoch is never fine.
	if top, rej := h.g.ValidateCommit("A", 1, 9, false, []TopicPartition{{"t", kept[0]}}); top != nil || rej != nil {
		t.Fatalf("older epoch, partition held since then: %v %v", top, rej)
	}
	if _, rej := h.g.ValidateCommit("B", 1, 9, false, []TopicPartition{{"t", revoked[0]}}); rej == nil {
		t.Fatal("B committed at an epoch before it was assigned the partition")
	}
	if top, _ := h.g.ValidateCommit("B", 3, 9, false, nil); top != kerr.StaleMemberEpoch {
		t.Fatalf("future epoch: %v", top)
	}
	if top, _ := h.g.ValidateCommit("C", 2, 9, false, nil); top != kerr.UnknownMemberID {
		t.Fatalf("unknown member: %v", top)
	}
	if err := h.g.ValidateFetch(ptr("A"), 1); err != kerr.StaleMemberEpoch {
		t.Fatalf("fetch at old epoch: %v", err)
	}
	// Fencing: an epoch ahead of the member's.
	if r := h.hb("A", 5, nil); r.Err != kerr.FencedMemberEpoch {
		t.Fatalf("heartbeat ahead: %v", r.Err)
	}
}

func ptr(s string) *string { return &s }

// TestConsumerSessionTimeout: a member that stops heartbeating is removed
// after group.consumer.session.timeout.ms and its partitions go to the
// others.
func TestConsumerSessionTimeout(t *testing.T) {
	h := newCGHarness(t)
	h.ok(h.hb("A", 0, nil))
	h.ok(h.hb("B", 0, nil))
	a := h.ok(h.hb("A", 1, assignmentMap{"t": {0, 1, 2, 3}}))
	h.ok(h.hb("A", 1, assignmentMap{"t": a.Assignment["t"]}))
	h.ok(h.hb("B", 2, assignmentMap{}))
	h.clk.Advance(30 * time.Second)
	h.ok(h.hb("B", 2, nil)) // B stays alive, A does not
	h.clk.Advance(20 * time.Second)
	if d := h.g.NextDeadline(); h.clk.Now().Before(d) {
		t.Fatalf("A's deadline %v is after now %v", d, h.clk.Now())
	}
	h.g.Tick(h.md, h.clk.Now())
	if _, ok := h.g.members["A"]; ok {
		t.Fatal("A outlived its session")
	}
	b := h.ok(h.hb("B", 2, nil))
	if b.MemberEpoch != 3 || len(b.Assignment["t"]) != 4 {
		t.Fatalf("B after A expired: %+v", b)
	}
}

// TestConsumerStaticRejoin: a static member that leaves with epoch -2 keeps
// its partitions; its restart takes them over without a rebalance.
func TestConsumerStaticRejoin(t *testing.T) {
	h := newCGHarness(t)
	join := func(id string) ConsumerHeartbeatResult {
		req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		req.Version, req.Group, req.MemberID, req.InstanceID = 1, "g", id, ptr("i1")
		req.RebalanceTimeoutMillis, req.SubscribedTopicNames = 60000, []string{"t"}
		return h.g.Heartbeat(ConsumerHeartbeat{Req: req, Owned: assignmentMap{}}, h.md, h.clk.Now())
	}
	a := h.ok(join("A"))
	epoch := h.g.GroupEpoch
	if r := join("A2"); r.Err != kerr.UnreleasedInstanceID {
		t.Fatalf("second instance while the first is live: %v", r.Err)
	}
	leave := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	leave.Version, leave.Group, leave.MemberID, leave.InstanceID, leave.MemberEpoch = 1, "g", "A", ptr("i1"), -2
	if r := h.g.Heartbeat(ConsumerHeartbeat{Req: leave}, h.md, h.clk.Now()); r.Err != nil || r.MemberEpoch != -2 {
		t.Fatalf("static leave: %+v", r)
	}
	r := h.ok(join("A2"))
	if !reflect.DeepEqual(r.Assignment, a.Assignment) || h.g.GroupEpoch != epoch {
		t.Fatalf("rejoin got %v at group epoch %d; want %v at %d", r.Assignment, h.g.GroupEpoch, a.Assignment, epoch)
	}
}

// TestConsumerRecordsRebuild: replaying the records gives the same state.
func TestConsumerRecordsRebuild(t *testing.T) {
	h := newCGHarness(t)
	var log [][2][]byte
	step := func(r ConsumerHeartbeatResult) ConsumerHeartbeatResult {
		h.ok(r)
		log = append(log, h.g.takeRecords()...)
		return r
	}
	step(h.hb("A", 0, nil))
	step(h.hb("B", 0, nil))
	step(h.hb("A", 1, assignmentMap{"t": {0, 1, 2, 3}}))
	g2 := newConsumerGroup("g", DefaultConsumerSettings(), h.clk.Now())
	for _, kv := range log {
		var key consumerRecordKey
		if err := json.Unmarshal(kv[0], &key); err != nil {
			t.Fatal(err)
		}
		if err := g2.applyRecord(key, kv[1], h.clk.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if g2.GroupEpoch != h.g.GroupEpoch || g2.AssignmentEpoch != h.g.AssignmentEpoch || !reflect.DeepEqual(g2.owners, h.g.owners) {
		t.Fatalf("rebuilt epochs %d/%d owners %v; live %d/%d %v", g2.GroupEpoch, g2.AssignmentEpoch, g2.owners, h.g.GroupEpoch, h.g.AssignmentEpoch, h.g.owners)
	}
	for id, m := range h.g.members {
		m2 := g2.members[id]
		if m2 == nil || m2.MemberEpoch != m.MemberEpoch || m2.State != m.State || !reflect.DeepEqual(m2.Assigned, m.Assigned) || !reflect.DeepEqual(m2.PendingRevocation, m.PendingRevocation) {
			t.Fatalf("member %s rebuilt as %+v, live %+v", id, m2, m)
		}
	}
}
