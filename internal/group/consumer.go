package group

// KIP-848 "consumer" groups: the next generation rebalance protocol, where
// the coordinator assigns partitions and each member converges on its
// target assignment one heartbeat at a time.
//
// Epochs.
//   - GroupEpoch advances whenever the group needs a new assignment: a
//     member joins or leaves, a subscription or the chosen assignor
//     changes, or the partition counts of the subscribed topics change.
//   - AssignmentEpoch is the group epoch the target assignment was
//     computed for. The target is recomputed at once whenever GroupEpoch
//     moves ahead of it, so here the two differ only inside one call
//     (Kafka may defer; we never do).
//   - A member's MemberEpoch is the target epoch it has reconciled to.
//     It moves to AssignmentEpoch only once the member has given up every
//     partition it must revoke.
//
// Reconciliation (KIP-848, "Member reconciliation"), per member:
//   - Stable at an older epoch: keep current ∩ target. If something must
//     be revoked, the member stays at its epoch in UnrevokedPartitions and
//     is told its new, smaller assignment; it must commit and drop the
//     revoked partitions and say so by leaving them out of Topics.
//   - Otherwise it moves to the target epoch and gets each new partition
//     only once no other member holds it (assigned or pending
//     revocation); until then it is in UnreleasedPartitions and picks the
//     rest up on later heartbeats.
//   - A member that does not revoke within its rebalance timeout, or does
//     not heartbeat within group.consumer.session.timeout.ms, is removed
//     and its partitions become free.
//
// Invariant: a partition is held (assigned or pending revocation) by at
// most one member at any time; owners records who, and every change of a
// member's partitions goes through setPartitions, which asserts it.
//
// The machine never reads the clock: every call takes now. It records the
// members and group fields it changed; the coordinator writes those as
// records to __consumer_offsets before it answers (takeRecords).
//
// Offset commits (KIP-848 with KIP-1251's relaxation): a commit carrying
// the member's current epoch, or an older epoch no older than the epoch at
// which the partition was assigned to it, is accepted for a partition the
// member holds; anything else is STALE_MEMBER_EPOCH.

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"time"

	"github.com/oncelog/oncelog/internal/broker"
	"github.com/oncelog/oncelog/internal/partition"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ConsumerSettings are the broker's settings for consumer groups.
type ConsumerSettings struct {
	SessionTimeout    time.Duration // group.consumer.session.timeout.ms
	HeartbeatInterval time.Duration // group.consumer.heartbeat.interval.ms
	MaxSize           int           // group.consumer.max.size
}

// DefaultConsumerSettings are Kafka's defaults.
func DefaultConsumerSettings() ConsumerSettings {
	return ConsumerSettings{SessionTimeout: 45 * time.Second, HeartbeatInterval: 5 * time.Second, MaxSize: math.MaxInt32}
}

// ConsumerGroupState is a consumer group's state, named as Kafka names it.
type ConsumerGroupState int

// The consumer group states.
const (
	ConsumerEmpty ConsumerGroupState = iota
	ConsumerAssigning
	ConsumerReconciling
	ConsumerStable
	ConsumerDead
)

func (s ConsumerGroupState) String() string {
	return [...]string{"Empty", "Assigning", "Reconciling", "Stable", "Dead"}[s]
}

// MemberState is where a member is in its reconciliation.
type MemberState int8

// Member states (Kafka's MemberState).
const (
	MemberStable MemberState = iota
	MemberUnrevokedPartitions
	MemberUnreleasedPartitions
)

// Special member epochs in ConsumerGroupHeartbeat.
const (
	leaveEpoch       = -1
	staticLeaveEpoch = -2
)

// partitionEpochs is topic -> partition -> the epoch at which the member
// was given the partition (KIP-1251's assignment epoch).
type partitionEpochs map[string]map[int32]int32

func (pe partitionEpochs) has(tp TopicPartition) (int32, bool) {
	e, ok := pe[tp.Topic][tp.Partition]
	return e, ok
}

func (pe partitionEpochs) plain() assignmentMap {
	out := assignmentMap{}
	for t, ps := range pe {
		if len(ps) == 0 {
			continue
		}
		for p := range ps {
			out[t] = append(out[t], p)
		}
		slices.Sort(out[t])
	}
	return out
}

func (pe partitionEpochs) size() int {
	n := 0
	for _, ps := range pe {
		n += len(ps)
	}
	return n
}

// ConsumerMember is one member of a consumer group. Exported fields are
// persisted.
type ConsumerMember struct {
	ID                   string        `json:"id"`
	InstanceID           *string       `json:"instance_id,omitempty"`
	RackID               *string       `json:"rack_id,omitempty"`
	ClientID             string        `json:"client_id"`
	ClientHost           string        `json:"client_host"`
	SubscribedTopicNames []string      `json:"subscribed_topic_names"`
	SubscribedTopicRegex string        `json:"subscribed_topic_regex,omitempty"`
	ServerAssignor       string        `json:"server_assignor,omitempty"`
	RebalanceTimeout     time.Duration `json:"rebalance_timeout"`
	MemberEpoch          int32         `json:"member_epoch"`
	PreviousMemberEpoch  int32         `json:"previous_member_epoch"`
	State                MemberState   `json:"state"`
	// Assigned are the partitions the member may use now.
	Assigned partitionEpochs `json:"assigned"`
	// PendingRevocation are partitions the member must give up; it still
	// holds them until it reports they are gone.
	PendingRevocation partitionEpochs `json:"pending_revocation"`
	// Target is the member's share of the group's target assignment
	// (computed at the group's AssignmentEpoch).
	Target assignmentMap `json:"target"`

	// deadline is the session expiry; revokeDeadline bounds
	// UnrevokedPartitions (the rebalance timeout).
	deadline       time.Time
	revokeDeadline time.Time
	re             *regexp.Regexp
}

// TopicMetadata is the view of the topics a consumer group needs.
type TopicMetadata interface {
	// Partitions is the partition count of topic, ok=false if it does
	// not exist.
	Partitions(topic string) (n int32, ok bool)
	// Names lists every topic a regex may match.
	Names() []string
}

// ConsumerGroup is one consumer group's state machine. Not safe for
// concurrent use: the coordinator serialises calls.
type ConsumerGroup struct {
	ID              string
	GroupEpoch      int32
	AssignmentEpoch int32

	settings ConsumerSettings
	members  map[string]*ConsumerMember
	// static maps group.instance.id to the member id holding it.
	static map[string]string
	// subscribed is the partition count of every subscribed topic as of
	// GroupEpoch; a difference bumps the epoch (new partitions, deleted
	// or created topics).
	subscribed map[string]int32
	// owners: see the invariant in the header.
	owners map[TopicPartition]string
	// emptySince is when the group last had no members.
	emptySince time.Time
	// dirtyGroup and dirty (member ids) are what takeRecords writes.
	dirtyGroup bool
	dirty      map[string]bool
}

func newConsumerGroup(id string, s ConsumerSettings, now time.Time) *ConsumerGroup {
	return &ConsumerGroup{ID: id, settings: s, members: map[string]*ConsumerMember{}, static: map[string]string{},
		subscribed: map[string]int32{}, owners: map[TopicPartition]string{}, emptySince: now, dirty: map[string]bool{}}
}

// IsEmpty reports whether the group has no members.
func (g *ConsumerGroup) IsEmpty() bool { return len(g.members) == 0 }

// State is the group's state as ListGroups and ConsumerGroupDescribe show it.
func (g *ConsumerGroup) State() ConsumerGroupState {
	switch {
	case len(g.members) == 0:
		return ConsumerEmpty
	case g.GroupEpoch > g.AssignmentEpoch:
		return ConsumerAssigning
	}
	for _, m := range g.members {
		if m.MemberEpoch == staticLeaveEpoch {
			continue
		}
		if m.State != MemberStable || m.MemberEpoch != g.AssignmentEpoch {
			return ConsumerReconciling
		}
	}
	return ConsumerStable
}

// Members returns the members sorted by id.
func (g *ConsumerGroup) Members() []*ConsumerMember {
	out := make([]*ConsumerMember, 0, len(g.members))
	for _, m := range g.members {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// ConsumerHeartbeat is a decoded ConsumerGroupHeartbeat.
type ConsumerHeartbeat struct {
	Req *kmsg.ConsumerGroupHeartbeatRequest
	// Owned is Req.Topics resolved to names; nil when Req.Topics is nil
	// ("unchanged"). Unknown topic ids are dropped.
	Owned                assignmentMap
	ClientID, ClientHost string
}

// ConsumerHeartbeatResult is the answer to a heartbeat.
type ConsumerHeartbeatResult struct {
	Err               *kerr.Error
	Message           string
	MemberID          string
	MemberEpoch       int32
	HeartbeatInterval time.Duration
	// Assignment is sent when not nil.
	Assignment assignmentMap
}

func hbError(err *kerr.Error, format string, args ...any) ConsumerHeartbeatResult {
	return ConsumerHeartbeatResult{Err: err, Message: fmt.Sprintf(format, args...), MemberEpoch: -1}
}

func newConsumerMemberID() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// compileSubscription compiles a KIP-848 topic regex. Kafka matches it
// against the whole topic name with RE2/J, whose syntax Go's regexp
// shares.
func compileSubscription(re string) (*regexp.Regexp, error) {
	if re == "" {
		return nil, nil
	}
	return regexp.Compile("^(?:" + re + ")$")
}

// Heartbeat handles one ConsumerGroupHeartbeat.
func (g *ConsumerGroup) Heartbeat(hb ConsumerHeartbeat, md TopicMetadata, now time.Time) ConsumerHeartbeatResult {
	req := hb.Req
	memberID := req.MemberID
	switch {
	case req.MemberEpoch < staticLeaveEpoch:
		return hbError(kerr.InvalidRequest, "MemberEpoch %d is invalid.", req.MemberEpoch)
	case req.InstanceID != nil && *req.InstanceID == "":
		return hbError(kerr.InvalidRequest, "InstanceId can't be empty.")
	case req.MemberEpoch == staticLeaveEpoch && req.InstanceID == nil:
		return hbError(kerr.InvalidRequest, "InstanceId can't be null.")
	case memberID == "" && (req.Version >= 1 || req.MemberEpoch != 0):
		return hbError(kerr.InvalidRequest, "MemberId can't be empty.")
	}
	if req.MemberEpoch < 0 {
		return g.leave(req, now)
	}
	if req.MemberEpoch == 0 {
		switch {
		case req.RebalanceTimeoutMillis == -1:
			return hbError(kerr.InvalidRequest, "RebalanceTimeoutMs must be provided in first request.")
		case hb.Owned == nil || len(hb.Owned) > 0:
			return hbError(kerr.InvalidRequest, "TopicPartitions must be empty when (re-)joining.")
		case req.SubscribedTopicNames == nil && req.SubscribedTopicRegex == nil:
			return hbError(kerr.InvalidRequest, "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.")
		}
	}
	if req.ServerAssignor != nil && !knownAssignor(*req.ServerAssignor) {
		return hbError(kerr.UnsupportedAssignor, "ServerAssignor %s is not supported. Supported assignors: %s, %s.", *req.ServerAssignor, AssignorUniform, AssignorRange)
	}
	var re *regexp.Regexp
	if req.SubscribedTopicRegex != nil {
		var err error
		if re, err = compileSubscription(*req.SubscribedTopicRegex); err != nil {
			return hbError(kerr.InvalidRegularExpression, "SubscribedTopicRegex %q is not a valid regular expression: %v", *req.SubscribedTopicRegex, err)
		}
	}

	m, joined, res := g.lookupMember(req, now)
	if res != nil {
		return *res
	}
	if memberID == "" {
		memberID = m.ID
	}
	if req.MemberEpoch > 0 {
		// A member may come back with its previous epoch if it lost the
		// answer that moved it, as long as it claims nothing new.
		switch {
		case req.MemberEpoch > m.MemberEpoch:
			return hbError(kerr.FencedMemberEpoch, "The consumer group member has a greater member epoch (%d) than the one known by the group coordinator (%d). The member must abandon all its partitions and rejoin.", req.MemberEpoch, m.MemberEpoch)
		case req.MemberEpoch < m.MemberEpoch && (req.MemberEpoch != m.PreviousMemberEpoch || !ownedSubsetOf(hb.Owned, m.Assigned)):
			return hbError(kerr.FencedMemberEpoch, "The consumer group member has a smaller member epoch (%d) than the one known by the group coordinator (%d). The member must abandon all its partitions and rejoin.", req.MemberEpoch, m.MemberEpoch)
		}
	}

	// Update the member's fields; any change of what it consumes needs a
	// new target assignment.
	changed := joined
	m.ClientID, m.ClientHost = hb.ClientID, hb.ClientHost
	if req.RebalanceTimeoutMillis != -1 {
		m.RebalanceTimeout = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	}
	if req.RackID != nil {
		rack := *req.RackID
		m.RackID = &rack
	}
	if req.SubscribedTopicNames != nil {
		names := slices.Clone(req.SubscribedTopicNames)
		slices.Sort(names)
		names = slices.Compact(names)
		if !slices.Equal(names, m.SubscribedTopicNames) {
			m.SubscribedTopicNames = names
			changed = true
		}
	}
	if req.SubscribedTopicRegex != nil && *req.SubscribedTopicRegex != m.SubscribedTopicRegex {
		m.SubscribedTopicRegex, m.re = *req.SubscribedTopicRegex, re
		changed = true
	}
	if req.ServerAssignor != nil && *req.ServerAssignor != m.ServerAssignor {
		m.ServerAssignor = *req.ServerAssignor
		changed = true
	}
	m.deadline = now.Add(g.settings.SessionTimeout)
	g.dirty[m.ID] = true

	if g.refreshSubscribed(md) || changed {
		g.bumpEpoch()
	}
	g.maybeComputeTarget(md)

	before := m.Assigned.plain()
	g.reconcile(m, hb.Owned, now)
	after := m.Assigned.plain()

	res2 := ConsumerHeartbeatResult{MemberID: memberID, MemberEpoch: m.MemberEpoch, HeartbeatInterval: g.settings.HeartbeatInterval}
	if req.MemberEpoch == 0 || hb.Owned != nil || !sameAssignment(before, after) {
		res2.Assignment = after
	}
	return res2
}

// lookupMember finds or creates the member of a heartbeat with epoch >= 0.
func (g *ConsumerGroup) lookupMember(req *kmsg.ConsumerGroupHeartbeatRequest, now time.Time) (m *ConsumerMember, joined bool, res *ConsumerHeartbeatResult) {
	fail := func(err *kerr.Error, format string, args ...any) (*ConsumerMember, bool, *ConsumerHeartbeatResult) {
		r := hbError(err, format, args...)
		return nil, false, &r
	}
	if req.InstanceID != nil {
		inst := *req.InstanceID
		cur, known := g.static[inst]
		if req.MemberEpoch > 0 {
			if !known {
				return fail(kerr.UnknownMemberID, "Member %s is not a member of group %s.", req.MemberID, g.ID)
			}
			if cur != req.MemberID {
				return fail(kerr.FencedInstanceID, "Static member %s with instance id %s is fenced by member %s.", req.MemberID, inst, cur)
			}
			return g.members[cur], false, nil
		}
		if known && cur == req.MemberID {
			return g.members[cur], false, nil // rejoin in place
		}
		if known {
			old := g.members[cur]
			if old.MemberEpoch != staticLeaveEpoch {
				return fail(kerr.UnreleasedInstanceID, "Static member %s with instance id %s cannot join the group because the instance id is owned by member %s.", req.MemberID, inst, cur)
			}
			// KIP-345 in KIP-848: the restarted instance takes over
			// the old member's assignment without a rebalance. It
			// rejoins with nothing owned, so partitions the old one
			// was revoking are released now.
			if _, taken := g.members[req.MemberID]; taken {
				return fail(kerr.InvalidRequest, "MemberId %s is already in use.", req.MemberID)
			}
			nm := *old
			nm.ID = req.MemberID
			nm.InstanceID = &inst
			nm.MemberEpoch = old.PreviousMemberEpoch
			nm.State = MemberStable
			assigned := old.Assigned
			g.setPartitions(old, nil, nil)
			g.deleteMember(old)
			g.members[nm.ID] = &nm
			g.static[inst] = nm.ID
			nm.Assigned, nm.PendingRevocation = nil, nil
			g.setPartitions(&nm, assigned, nil)
			g.dirty[nm.ID] = true
			return &nm, false, nil
		}
		if len(g.members) >= g.settings.MaxSize {
			return fail(kerr.GroupMaxSizeReached, "The consumer group has reached its maximum capacity of %d members.", g.settings.MaxSize)
		}
		m = g.addMember(req.MemberID, &inst)
		return m, true, nil
	}
	m = g.members[req.MemberID]
	if m != nil {
		// NB: heartbeats leave unchanged fields null (KIP-848), the
		// instance id included, so a static member's later heartbeats
		// may omit it.
		return m, false, nil
	}
	if req.MemberEpoch > 0 {
		return fail(kerr.UnknownMemberID, "Member %s is not a member of group %s.", req.MemberID, g.ID)
	}
	if len(g.members) >= g.settings.MaxSize {
		return fail(kerr.GroupMaxSizeReached, "The consumer group has reached its maximum capacity of %d members.", g.settings.MaxSize)
	}
	id := req.MemberID
	if id == "" {
		id = newConsumerMemberID() // v0: the coordinator names the member
	}
	return g.addMember(id, nil), true, nil
}

func (g *ConsumerGroup) addMember(id string, instance *string) *ConsumerMember {
	m := &ConsumerMember{ID: id, InstanceID: instance, ServerAssignor: "", Assigned: partitionEpochs{}, PendingRevocation: partitionEpochs{}, Target: assignmentMap{}}
	g.members[id] = m
	if instance != nil {
		g.static[*instance] = id
	}
	g.dirty[id] = true
	return m
}

// deleteMember drops m from the maps; its partitions must be released.
func (g *ConsumerGroup) deleteMember(m *ConsumerMember) {
	delete(g.members, m.ID)
	if m.InstanceID != nil && g.static[*m.InstanceID] == m.ID {
		delete(g.static, *m.InstanceID)
	}
	g.dirty[m.ID] = true
}

// removeMember takes m out of the group and releases its partitions; the
// others get a new target assignment.
func (g *ConsumerGroup) removeMember(m *ConsumerMember, md TopicMetadata, now time.Time) {
	g.setPartitions(m, nil, nil)
	g.deleteMember(m)
	if len(g.members) == 0 {
		g.emptySince = now
	}
	g.bumpEpoch()
	if md != nil {
		g.refreshSubscribed(md)
	}
	g.maybeComputeTarget(md)
}

func (g *ConsumerGroup) leave(req *kmsg.ConsumerGroupHeartbeatRequest, now time.Time) ConsumerHeartbeatResult {
	id := req.MemberID
	if req.InstanceID != nil {
		cur, ok := g.static[*req.InstanceID]
		if !ok {
			return hbError(kerr.UnknownMemberID, "Instance id %s is unknown.", *req.InstanceID)
		}
		if cur != id {
			return hbError(kerr.FencedInstanceID, "Static member %s with instance id %s is fenced by member %s.", id, *req.InstanceID, cur)
		}
	}
	m := g.members[id]
	if m == nil {
		return hbError(kerr.UnknownMemberID, "Member %s is not a member of group %s.", id, g.ID)
	}
	if req.MemberEpoch == staticLeaveEpoch {
		// The instance will be back: keep its partitions, so no one
		// else is given them, until it rejoins or its session ends.
		if m.MemberEpoch != staticLeaveEpoch {
			m.PreviousMemberEpoch = m.MemberEpoch
		}
		m.MemberEpoch = staticLeaveEpoch
		m.deadline = now.Add(g.settings.SessionTimeout)
		g.dirty[m.ID] = true
	} else {
		g.removeMember(m, nil, now)
	}
	return ConsumerHeartbeatResult{MemberID: id, MemberEpoch: req.MemberEpoch}
}

func (g *ConsumerGroup) bumpEpoch() {
	g.GroupEpoch++
	g.dirtyGroup = true
}

// subscribedTopics resolves m's subscription against md.
func (m *ConsumerMember) subscribedTopics(md TopicMetadata, names []string) map[string]bool {
	out := map[string]bool{}
	for _, t := range m.SubscribedTopicNames {
		out[t] = true
	}
	if m.re != nil {
		for _, t := range names {
			if m.re.MatchString(t) {
				out[t] = true
			}
		}
	}
	return out
}

// refreshSubscribed recomputes the partition counts of the subscribed
// topics and reports whether they changed.
func (g *ConsumerGroup) refreshSubscribed(md TopicMetadata) bool {
	if md == nil {
		return false
	}
	var names []string
	for _, m := range g.members {
		if m.re != nil {
			names = md.Names()
			break
		}
	}
	now := map[string]int32{}
	for _, m := range g.members {
		for t := range m.subscribedTopics(md, names) {
			if n, ok := md.Partitions(t); ok {
				now[t] = n
			}
		}
	}
	if mapsEqual(now, g.subscribed) {
		return false
	}
	g.subscribed = now
	g.dirtyGroup = true
	return true
}

func mapsEqual(a, b map[string]int32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// groupAssignor picks the assignor most members ask for (Kafka's rule),
// the default when none asks.
func (g *ConsumerGroup) groupAssignor() string {
	votes := map[string]int{}
	for _, m := range g.members {
		if m.ServerAssignor != "" {
			votes[m.ServerAssignor]++
		}
	}
	best, n := defaultAssignor, 0
	for _, name := range []string{AssignorUniform, AssignorRange} {
		if votes[name] > n {
			best, n = name, votes[name]
		}
	}
	return best
}

// maybeComputeTarget computes the target assignment if the group epoch
// moved past it.
func (g *ConsumerGroup) maybeComputeTarget(md TopicMetadata) {
	if g.GroupEpoch <= g.AssignmentEpoch {
		return
	}
	var names []string
	if md != nil {
		names = md.Names()
	}
	in := assignInput{partitions: g.subscribed}
	for _, m := range g.Members() {
		sub := map[string]bool{}
		if md != nil {
			sub = m.subscribedTopics(md, names)
		} else {
			for _, t := range m.SubscribedTopicNames {
				sub[t] = true
			}
		}
		in.members = append(in.members, assignMember{id: m.ID, subscribed: sub, previous: m.Target})
	}
	out := assign(g.groupAssignor(), in)
	for _, m := range g.members {
		m.Target = out[m.ID]
		g.dirty[m.ID] = true
	}
	g.AssignmentEpoch = g.GroupEpoch
	g.dirtyGroup = true
}

// setPartitions replaces m's assigned and pending partitions, keeping
// owners exact.
func (g *ConsumerGroup) setPartitions(m *ConsumerMember, assigned, pending partitionEpochs) {
	for _, pe := range []partitionEpochs{m.Assigned, m.PendingRevocation} {
		for t, ps := range pe {
			for p := range ps {
				tp := TopicPartition{t, p}
				if g.owners[tp] == m.ID {
					delete(g.owners, tp)
				}
			}
		}
	}
	if assigned == nil {
		assigned = partitionEpochs{}
	}
	if pending == nil {
		pending = partitionEpochs{}
	}
	for _, pe := range []partitionEpochs{assigned, pending} {
		for t, ps := range pe {
			for p := range ps {
				tp := TopicPartition{t, p}
				if o, ok := g.owners[tp]; ok && o != m.ID {
					panic(fmt.Sprintf("group %s: partition %s-%d given to %s while %s holds it", g.ID, t, p, m.ID, o))
				}
				g.owners[tp] = m.ID
			}
		}
	}
	m.Assigned, m.PendingRevocation = assigned, pending
	g.dirty[m.ID] = true
}

// ownsAny reports whether owned (nil = unknown, assumed yes) still holds
// any of pe.
func ownsAny(owned assignmentMap, pe partitionEpochs) bool {
	if owned == nil {
		return true
	}
	for t, ps := range owned {
		for _, p := range ps {
			if _, ok := pe[t][p]; ok {
				return true
			}
		}
	}
	return false
}

func ownedSubsetOf(owned assignmentMap, pe partitionEpochs) bool {
	if owned == nil {
		return true
	}
	for t, ps := range owned {
		for _, p := range ps {
			if _, ok := pe[t][p]; !ok {
				return false
			}
		}
	}
	return true
}

func sameAssignment(a, b assignmentMap) bool {
	if len(a) != len(b) {
		return false
	}
	for t, ps := range a {
		if !slices.Equal(ps, b[t]) {
			return false
		}
	}
	return true
}

// reconcile moves m towards its target (CurrentAssignmentBuilder in
// Kafka); owned is what the member reported (nil = unchanged).
func (g *ConsumerGroup) reconcile(m *ConsumerMember, owned assignmentMap, now time.Time) {
	if m.MemberEpoch == staticLeaveEpoch {
		return
	}
	switch m.State {
	case MemberStable:
		if m.MemberEpoch == g.AssignmentEpoch {
			return
		}
	case MemberUnrevokedPartitions:
		if ownsAny(owned, m.PendingRevocation) {
			return
		}
	}
	g.computeNext(m, owned, now)
}

func (g *ConsumerGroup) computeNext(m *ConsumerMember, owned assignmentMap, now time.Time) {
	target := m.Target
	newAssigned := partitionEpochs{}
	revoke := partitionEpochs{}
	for t, ps := range m.Assigned {
		for p, e := range ps {
			if slices.Contains(target[t], p) {
				put(newAssigned, t, p, e)
			} else {
				put(revoke, t, p, e)
			}
		}
	}
	if len(revoke) > 0 && ownsAny(owned, revoke) {
		g.setPartitions(m, newAssigned, revoke)
		m.State = MemberUnrevokedPartitions
		m.revokeDeadline = now.Add(m.RebalanceTimeout)
		return
	}
	unreleased := false
	for t, ps := range target {
		for _, p := range ps {
			if _, ok := newAssigned[t][p]; ok {
				continue
			}
			tp := TopicPartition{t, p}
			if o, held := g.owners[tp]; held && o != m.ID {
				unreleased = true
				continue
			}
			put(newAssigned, t, p, g.AssignmentEpoch)
		}
	}
	g.setPartitions(m, newAssigned, nil)
	if m.MemberEpoch != g.AssignmentEpoch {
		m.PreviousMemberEpoch = m.MemberEpoch
		m.MemberEpoch = g.AssignmentEpoch
	}
	m.State = MemberStable
	if unreleased {
		m.State = MemberUnreleasedPartitions
	}
	m.revokeDeadline = time.Time{}
}

func put(pe partitionEpochs, t string, p, e int32) {
	ps := pe[t]
	if ps == nil {
		ps = map[int32]int32{}
		pe[t] = ps
	}
	ps[p] = e
}

// Tick removes members whose session or revocation time ran out.
func (g *ConsumerGroup) Tick(md TopicMetadata, now time.Time) {
	for _, m := range g.Members() {
		expired := !now.Before(m.deadline)
		stuck := m.State == MemberUnrevokedPartitions && !m.revokeDeadline.IsZero() && !now.Before(m.revokeDeadline)
		if expired || stuck {
			g.removeMember(m, md, now)
		}
	}
}

// NextDeadline is the earliest time Tick has something to do, or zero.
func (g *ConsumerGroup) NextDeadline() time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, m := range g.members {
		consider(m.deadline)
		if m.State == MemberUnrevokedPartitions {
			consider(m.revokeDeadline)
		}
	}
	return next
}

// ValidateCommit checks an OffsetCommit (v9+: Generation is the member
// epoch) or a TxnOffsetCommit against the group. It returns a top-level
// error, or the partitions it rejects.
//
//   - Epoch < 0 from no member: a "simple" commit, allowed while the group
//     is empty (admin tools, manual assignment).
//   - An unknown member is UNKNOWN_MEMBER_ID; a classic OffsetCommit below
//     v9 from a consumer member is UNSUPPORTED_VERSION (as Kafka).
//   - An epoch newer than the member's is STALE_MEMBER_EPOCH.
//   - Per partition: it must be held by the member (assigned or pending
//     revocation), and an older epoch must be no older than the epoch at
//     which the partition was assigned (KIP-1251); else
//     STALE_MEMBER_EPOCH. NB: Kafka accepts a commit at the exact current
//     epoch for any partition; we also require ownership, which fences a
//     member that committed after releasing a partition.
func (g *ConsumerGroup) ValidateCommit(memberID string, epoch int32, version int16, transactional bool, tps []TopicPartition) (*kerr.Error, map[TopicPartition]*kerr.Error) {
	if epoch < 0 && len(g.members) == 0 {
		return nil, nil
	}
	if transactional && epoch < 0 && memberID == "" {
		return nil, nil
	}
	m := g.members[memberID]
	if m == nil {
		return kerr.UnknownMemberID, nil
	}
	if !transactional && version < 9 {
		return kerr.UnsupportedVersion, nil
	}
	current := m.MemberEpoch
	if current == staticLeaveEpoch {
		current = m.PreviousMemberEpoch // its commits while shutting down
	}
	if epoch > current {
		return kerr.StaleMemberEpoch, nil
	}
	var rejected map[TopicPartition]*kerr.Error
	for _, tp := range tps {
		e, ok := m.Assigned.has(tp)
		if !ok {
			e, ok = m.PendingRevocation.has(tp)
		}
		if !ok || e > epoch {
			if rejected == nil {
				rejected = map[TopicPartition]*kerr.Error{}
			}
			rejected[tp] = kerr.StaleMemberEpoch
		}
	}
	return nil, rejected
}

// ValidateFetch checks OffsetFetch v9+'s member id and epoch: no member
// id and a negative epoch is an outsider (admin) and always allowed.
func (g *ConsumerGroup) ValidateFetch(memberID *string, epoch int32) *kerr.Error {
	if memberID == nil && epoch < 0 {
		return nil
	}
	id := ""
	if memberID != nil {
		id = *memberID
	}
	m := g.members[id]
	if m == nil {
		return kerr.UnknownMemberID
	}
	if epoch != m.MemberEpoch {
		return kerr.StaleMemberEpoch
	}
	return nil
}

// Persistence: one record for the group's epochs and one per member, keyed
// like the classic records (JSON), types "cg" and "cm".

type consumerRecordKey struct {
	Type   string `json:"t"` // "cg" group, "cm" member
	Group  string `json:"g"`
	Member string `json:"m,omitempty"`
}

type consumerGroupValue struct {
	GroupEpoch      int32            `json:"group_epoch"`
	AssignmentEpoch int32            `json:"assignment_epoch"`
	Subscribed      map[string]int32 `json:"subscribed"`
}

func consumerGroupRecordKey(group string) []byte {
	return mustJSON(consumerRecordKey{Type: "cg", Group: group})
}

// takeRecords returns the records of everything changed since the last
// call, group first, members by id; a removed member is a tombstone.
func (g *ConsumerGroup) takeRecords() [][2][]byte {
	var kvs [][2][]byte
	if g.dirtyGroup {
		kvs = append(kvs, [2][]byte{consumerGroupRecordKey(g.ID), mustJSON(consumerGroupValue{g.GroupEpoch, g.AssignmentEpoch, g.subscribed})})
	}
	ids := make([]string, 0, len(g.dirty))
	for id := range g.dirty {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		k := mustJSON(consumerRecordKey{Type: "cm", Group: g.ID, Member: id})
		if m := g.members[id]; m != nil {
			kvs = append(kvs, [2][]byte{k, mustJSON(m)})
		} else {
			kvs = append(kvs, [2][]byte{k, nil})
		}
	}
	g.dirtyGroup = false
	g.dirty = map[string]bool{}
	return kvs
}

// tombstones are the records that delete the group.
func (g *ConsumerGroup) tombstones() [][2][]byte {
	kvs := [][2][]byte{{consumerGroupRecordKey(g.ID), nil}}
	for _, m := range g.Members() {
		kvs = append(kvs, [2][]byte{mustJSON(consumerRecordKey{Type: "cm", Group: g.ID, Member: m.ID}), nil})
	}
	return kvs
}

// applyRecord rebuilds state from one record at load; members get a full
// session to find the restarted coordinator.
func (g *ConsumerGroup) applyRecord(key consumerRecordKey, v []byte, now time.Time) error {
	switch key.Type {
	case "cg":
		var gv consumerGroupValue
		if err := json.Unmarshal(v, &gv); err != nil {
			return err
		}
		g.GroupEpoch, g.AssignmentEpoch, g.subscribed = gv.GroupEpoch, gv.AssignmentEpoch, gv.Subscribed
		if g.subscribed == nil {
			g.subscribed = map[string]int32{}
		}
	case "cm":
		if old := g.members[key.Member]; old != nil {
			g.setPartitions(old, nil, nil)
			g.deleteMember(old)
		}
		if v == nil {
			if len(g.members) == 0 {
				g.emptySince = now
			}
			break
		}
		var m ConsumerMember
		if err := json.Unmarshal(v, &m); err != nil {
			return err
		}
		var err error
		if m.re, err = compileSubscription(m.SubscribedTopicRegex); err != nil {
			return err
		}
		assigned, pending := m.Assigned, m.PendingRevocation
		m.Assigned, m.PendingRevocation = nil, nil
		m.deadline = now.Add(g.settings.SessionTimeout)
		if m.State == MemberUnrevokedPartitions {
			m.revokeDeadline = now.Add(m.RebalanceTimeout)
		}
		g.members[m.ID] = &m
		if m.InstanceID != nil {
			g.static[*m.InstanceID] = m.ID
		}
		// NB: records are applied in log order and each holds the
		// member's whole state, so replaying them can momentarily hand
		// a partition to its new holder before the old holder's
		// release record is applied; drop the stale claim instead of
		// asserting.
		for _, pe := range []partitionEpochs{assigned, pending} {
			for t, ps := range pe {
				for p := range ps {
					if o, ok := g.owners[TopicPartition{t, p}]; ok && o != m.ID {
						if om := g.members[o]; om != nil {
							delete(om.Assigned[t], p)
							delete(om.PendingRevocation[t], p)
						}
						delete(g.owners, TopicPartition{t, p})
					}
				}
			}
		}
		g.setPartitions(&m, assigned, pending)
	}
	g.dirty = map[string]bool{}
	g.dirtyGroup = false
	return nil
}

// ConsumerGroupInfo is a snapshot for ConsumerGroupDescribe.
type ConsumerGroupInfo struct {
	ID              string
	State           string
	GroupEpoch      int32
	AssignmentEpoch int32
	Assignor        string
	Members         []ConsumerMemberInfo
}

// ConsumerMemberInfo is one member in a ConsumerGroupInfo.
type ConsumerMemberInfo struct {
	ConsumerMember
	AssignedPartitions map[string][]int32
}

func (g *ConsumerGroup) info() ConsumerGroupInfo {
	info := ConsumerGroupInfo{ID: g.ID, State: g.State().String(), GroupEpoch: g.GroupEpoch, AssignmentEpoch: g.AssignmentEpoch, Assignor: g.groupAssignor()}
	for _, m := range g.Members() {
		info.Members = append(info.Members, ConsumerMemberInfo{ConsumerMember: *m, AssignedPartitions: m.Assigned.plain()})
	}
	return info
}

// The driver side of consumer groups: the Coordinator's methods for them.
//
// Locking: as for classic groups, c.mu guards c.mu.consumers and every
// call into a ConsumerGroup. brokerTopics reads the broker's topic table
// under c.mu; the broker never calls into the coordinator, so the order
// is always c.mu, then the broker's lock.

// brokerTopics is the broker's topic table as TopicMetadata.
type brokerTopics struct{ b *broker.Broker }

func (bt brokerTopics) Partitions(topic string) (int32, bool) {
	t := bt.b.Topic(topic)
	if t == nil {
		return 0, false
	}
	return int32(len(t.Partitions)), true
}

// Names lists every topic a regex subscription is matched against.
// NB: internal topics included: Kafka resolves KIP-848 regexes against the
// whole topic image, so a pattern that names __consumer_offsets gets it
// (franz-go's Test848RegexBrokerResolves relies on this).
func (bt brokerTopics) Names() []string {
	var out []string
	for _, t := range bt.b.Topics() {
		out = append(out, t.Name)
	}
	sort.Strings(out)
	return out
}

func (c *Coordinator) consumerSettings() ConsumerSettings {
	s := c.settingsConsumer
	d := DefaultConsumerSettings()
	if s.SessionTimeout <= 0 {
		s.SessionTimeout = d.SessionTimeout
	}
	if s.HeartbeatInterval <= 0 {
		s.HeartbeatInterval = d.HeartbeatInterval
	}
	if s.MaxSize <= 0 {
		s.MaxSize = d.MaxSize
	}
	return s
}

// appendLocked enqueues records to the group's offsets partition; the
// returned channel reports durability. Called with mu held, so records
// enter the log in the order the state changed.
func (c *Coordinator) appendLocked(group string, kvs [][2][]byte, now time.Time) (<-chan partition.AppendResult, *kerr.Error) {
	p := c.offsetsPartition(group)
	if p == nil {
		return nil, kerr.CoordinatorNotAvailable
	}
	wait, _ := c.enqueueLocked(p, kvs, nil, now)
	return wait, nil
}

// ConsumerHeartbeat handles ConsumerGroupHeartbeat. The returned function
// waits until the state change is durable and gives the response.
func (c *Coordinator) ConsumerHeartbeat(req *kmsg.ConsumerGroupHeartbeatRequest, clientID, clientHost string) func() *kmsg.ConsumerGroupHeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
	fail := func(err *kerr.Error, msg string) func() *kmsg.ConsumerGroupHeartbeatResponse {
		resp.ErrorCode = err.Code
		if msg != "" {
			resp.ErrorMessage = &msg
		}
		return func() *kmsg.ConsumerGroupHeartbeatResponse { return resp }
	}
	if req.Group == "" {
		return fail(kerr.InvalidRequest, "GroupId can't be empty.")
	}
	if err := c.EnsureTopic(); err != nil {
		return fail(err, "")
	}
	now := c.clk.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	var pre [][2][]byte
	g := c.mu.consumers[req.Group]
	fresh := g == nil
	if fresh {
		if cl := c.mu.groups[req.Group]; cl != nil && (!cl.IsEmpty() || req.MemberEpoch != 0) {
			// No online migration of a live classic group (KIP-848's
			// upgrade path) yet.
			return fail(kerr.GroupIDNotFound, fmt.Sprintf("Group %s is not a consumer group.", req.Group))
		}
		if c.mu.groups[req.Group] == nil && req.MemberEpoch != 0 {
			return fail(kerr.GroupIDNotFound, fmt.Sprintf("Consumer group %s not found.", req.Group))
		}
		g = newConsumerGroup(req.Group, c.consumerSettings(), now)
	}
	var owned assignmentMap
	if req.Topics != nil {
		owned = assignmentMap{}
		for _, t := range req.Topics {
			if tp := c.b.TopicByID(t.TopicID); tp != nil {
				owned[tp.Name] = append(owned[tp.Name], t.Partitions...)
			}
		}
	}
	res := g.Heartbeat(ConsumerHeartbeat{Req: req, Owned: owned, ClientID: clientID, ClientHost: clientHost}, brokerTopics{c.b}, now)
	if res.Err != nil {
		return fail(res.Err, res.Message)
	}
	if fresh {
		// An empty classic group (one that only holds offsets) becomes a
		// consumer group, keeping its offsets, as in Kafka.
		if c.mu.groups[req.Group] != nil {
			delete(c.mu.groups, req.Group)
			pre = append(pre, [2][]byte{mustJSON(recordKey{Type: "g", Group: req.Group}), nil})
		}
		c.mu.consumers[req.Group] = g
	}
	resp.MemberID = &res.MemberID
	resp.MemberEpoch = res.MemberEpoch
	resp.HeartbeatIntervalMillis = int32(res.HeartbeatInterval.Milliseconds())
	if res.Assignment != nil {
		a := kmsg.NewConsumerGroupHeartbeatResponseAssignment()
		for _, name := range sortedKeys(res.Assignment) {
			t := c.b.Topic(name)
			if t == nil {
				continue
			}
			at := kmsg.NewConsumerGroupHeartbeatResponseAssignmentTopic()
			at.TopicID, at.Partitions = t.ID, res.Assignment[name]
			a.Topics = append(a.Topics, at)
		}
		resp.Assignment = &a
	}
	kvs := append(pre, g.takeRecords()...)
	if len(kvs) == 0 {
		return func() *kmsg.ConsumerGroupHeartbeatResponse { return resp }
	}
	wait, perr := c.appendLocked(req.Group, kvs, now)
	if perr != nil {
		return fail(perr, "")
	}
	return func() *kmsg.ConsumerGroupHeartbeatResponse {
		if r := <-wait; r.Err != nil {
			// NB: the in-memory state already moved; the write error is
			// sticky on the partition, so every later change fails too
			// and a restart rebuilds the state from the log.
			c.lg.Warn("writing consumer group state failed", "group", req.Group, "err", r.Err)
			out := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
			out.ErrorCode = kerr.CoordinatorNotAvailable.Code
			return out
		}
		return resp
	}
}

func sortedKeys(a assignmentMap) []string {
	ks := make([]string, 0, len(a))
	for k := range a {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// tickConsumersLocked fires the due timers of every consumer group.
func (c *Coordinator) tickConsumersLocked(now time.Time) {
	for id, g := range c.mu.consumers {
		if d := g.NextDeadline(); d.IsZero() || now.Before(d) {
			continue
		}
		g.Tick(brokerTopics{c.b}, now)
		if kvs := g.takeRecords(); len(kvs) > 0 {
			if _, err := c.appendLocked(id, kvs, now); err != nil {
				c.lg.Warn("writing consumer group state failed", "group", id, "err", err)
			}
		}
	}
}

// applyConsumerRecordLocked replays a "cg" or "cm" record at load.
func (c *Coordinator) applyConsumerRecordLocked(k, v []byte, logOffset int64, now time.Time) {
	var key consumerRecordKey
	if err := json.Unmarshal(k, &key); err != nil {
		c.lg.Warn("skipping unreadable offsets record", "offset", logOffset, "err", err)
		return
	}
	if key.Type == "cg" && v == nil {
		delete(c.mu.consumers, key.Group)
		return
	}
	g := c.mu.consumers[key.Group]
	if g == nil {
		g = newConsumerGroup(key.Group, c.consumerSettings(), now)
		c.mu.consumers[key.Group] = g
	}
	// The later record decides a group id's type.
	delete(c.mu.groups, key.Group)
	if err := g.applyRecord(key, v, now); err != nil {
		c.lg.Warn("skipping unreadable consumer group record", "offset", logOffset, "group", key.Group, "err", err)
	}
}

// validateConsumerCommitLocked applies the consumer group rules to an
// OffsetCommit; isConsumer is false when the group is not a consumer group.
func (c *Coordinator) validateConsumerCommitLocked(req *kmsg.OffsetCommitRequest) (isConsumer bool, top *kerr.Error, rejected map[TopicPartition]*kerr.Error) {
	g := c.mu.consumers[req.Group]
	if g == nil {
		return false, nil, nil
	}
	var tps []TopicPartition
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			tps = append(tps, TopicPartition{t.Topic, p.Partition})
		}
	}
	top, rejected = g.ValidateCommit(req.MemberID, req.Generation, req.Version, false, tps)
	return true, top, rejected
}

// ValidateOffsetFetch checks OffsetFetch v9+'s member id and epoch
// against a consumer group; other groups accept any.
func (c *Coordinator) ValidateOffsetFetch(group string, memberID *string, epoch int32) *kerr.Error {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.mu.consumers[group]
	if g == nil {
		return nil
	}
	return g.ValidateFetch(memberID, epoch)
}

// joinConsumerGroupLocked is the classic JoinGroup's check: a consumer
// group with members cannot take classic members (no mixed groups yet:
// INCONSISTENT_GROUP_PROTOCOL, Kafka's answer when it cannot), and an
// empty one is dropped so that the id becomes a classic group.
func (c *Coordinator) joinConsumerGroupLocked(group string) *kerr.Error {
	g := c.mu.consumers[group]
	if g == nil {
		return nil
	}
	if !g.IsEmpty() {
		return kerr.InconsistentGroupProtocol
	}
	if _, err := c.appendLocked(group, g.tombstones(), c.clk.Now()); err != nil {
		return err
	}
	delete(c.mu.consumers, group)
	return nil
}

// describeConsumerLocked is the ListGroups view of a consumer group.
func (c *Coordinator) describeConsumerLocked(group string) (GroupInfo, bool) {
	g := c.mu.consumers[group]
	if g == nil {
		return GroupInfo{}, false
	}
	info := GroupInfo{ID: group, State: g.State().String(), ProtocolType: "consumer", Type: "consumer"}
	topics := map[string]bool{}
	for t := range g.subscribed {
		topics[t] = true
	}
	for _, m := range g.members {
		for _, t := range m.SubscribedTopicNames {
			topics[t] = true
		}
	}
	for t := range topics {
		info.SubscribedTopics = append(info.SubscribedTopics, t)
	}
	sort.Strings(info.SubscribedTopics)
	return info, true
}

// consumerDeleteLocked is DeleteGroups' part for a consumer group: its
// tombstones, whether it exists, and whether it still has members.
func (c *Coordinator) consumerDeleteLocked(group string) (kvs [][2][]byte, exists, nonEmpty bool) {
	g := c.mu.consumers[group]
	if g == nil {
		return nil, false, false
	}
	return g.tombstones(), true, !g.IsEmpty()
}

// consumerActiveLocked reports whether group is a consumer group with
// members (its offsets do not expire).
func (c *Coordinator) consumerActiveLocked(group string) bool {
	g := c.mu.consumers[group]
	return g != nil && !g.IsEmpty()
}

// DescribeConsumerGroup is ConsumerGroupDescribe's view; ok=false if the
// id is not a consumer group.
func (c *Coordinator) DescribeConsumerGroup(group string) (info ConsumerGroupInfo, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.mu.consumers[group]
	if g == nil {
		return ConsumerGroupInfo{}, false
	}
	return g.info(), true
}

// IsClassicGroup reports whether a classic group (or offsets of a group
// that is no consumer group) exists under id.
func (c *Coordinator) IsClassicGroup(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.mu.consumers[id]; ok {
		return false
	}
	_, g := c.mu.groups[id]
	_, o := c.mu.offsets[id]
	return g || o
}
