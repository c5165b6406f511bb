// Package group is the group coordinator: per consumer group a state
// machine of the classic protocol (Empty, PreparingRebalance,
// CompletingRebalance, Stable, Dead), and a driver that persists group
// metadata and committed offsets to the __consumer_offsets partitions and
// rebuilds everything from those logs after a restart.
//
// The state machine (this file) never reads the clock: every call takes
// now, and Tick(now) fires the timers that are due (session expiry,
// rebalance timeout, the initial rebalance delay, pending member ids). It
// answers requests through reply callbacks, which must not block; where
// several are answered at once it does so in member id order, so that a run
// is deterministic (the golden tests in testdata/ rely on it). Writes it
// needs before answering (the assignment after SyncGroup) are returned to
// the driver as a persist step.
package group

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// State is a classic group's state.
type State int

// The classic group states, as Kafka names them.
const (
	Empty State = iota
	PreparingRebalance
	CompletingRebalance
	Stable
	Dead
)

func (s State) String() string {
	return [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"}[s]
}

// Settings are the broker's group settings.
type Settings struct {
	MinSessionTimeout     time.Duration // group.min.session.timeout.ms
	MaxSessionTimeout     time.Duration // group.max.session.timeout.ms
	InitialRebalanceDelay time.Duration // group.initial.rebalance.delay.ms
	MaxSize               int           // group.max.size
	OffsetsRetention      time.Duration // offsets.retention.minutes
	MaxMetadataBytes      int           // offset.metadata.max.bytes
}

// DefaultSettings are Kafka's defaults.
func DefaultSettings() Settings {
	return Settings{
		MinSessionTimeout:     6 * time.Second,
		MaxSessionTimeout:     30 * time.Minute,
		InitialRebalanceDelay: 3 * time.Second,
		MaxSize:               1 << 20,
		OffsetsRetention:      7 * 24 * time.Hour,
		MaxMetadataBytes:      4096,
	}
}

// Protocol is one assignment protocol a member supports.
type Protocol struct {
	Name     string `json:"name"`
	Metadata []byte `json:"metadata"`
}

// Member is one member of a classic group.
type Member struct {
	ID               string        `json:"id"`
	InstanceID       *string       `json:"instance_id,omitempty"`
	ClientID         string        `json:"client_id"`
	ClientHost       string        `json:"client_host"`
	SessionTimeout   time.Duration `json:"session_timeout"`
	RebalanceTimeout time.Duration `json:"rebalance_timeout"`
	Protocols        []Protocol    `json:"protocols"`
	Assignment       []byte        `json:"assignment"`

	// deadline is when the member expires without a heartbeat.
	deadline time.Time
	// joinReply is set while the member waits in JoinGroup.
	joinReply func(*kmsg.JoinGroupResponse)
	// syncReply is set while the member waits in SyncGroup.
	syncReply func(*kmsg.SyncGroupResponse)
	// synced is set once the member sent SyncGroup in this generation.
	synced bool
}

func (m *Member) metadataFor(protocol string) []byte {
	for _, p := range m.Protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

func sameProtocols(a, b []Protocol) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].Metadata, b[i].Metadata) {
			return false
		}
	}
	return true
}

// Group is one classic group's state machine. Not safe for concurrent use:
// the coordinator serialises calls.
type Group struct {
	ID           string
	State        State
	ProtocolType string
	Protocol     string
	Generation   int32
	Leader       string

	settings Settings
	members  map[string]*Member
	// static maps group.instance.id to the current member id.
	static map[string]string
	// pending are member ids handed out with MEMBER_ID_REQUIRED (KIP-394)
	// that have not joined yet, with their expiry.
	pending map[string]time.Time
	// rebalanceDeadline ends PreparingRebalance; initialDelayEnd delays
	// the first rebalance of an empty group so members can arrive together.
	rebalanceDeadline time.Time
	initialDelayEnd   time.Time
	// newDuringDelay is set when a member joins during the initial delay;
	// the delay is then extended once it ends (Kafka's InitialDelayedJoin),
	// up to the rebalance deadline.
	newDuringDelay bool
	// syncDeadline ends CompletingRebalance: a member that has not sent
	// its SyncGroup by then (a leader that never assigns, say) is removed
	// and the group rebalances, so the others do not wait for good
	// (Kafka's pending-sync timeout, the rebalance timeout).
	syncDeadline time.Time
	// emptySince is when the group last became empty (offset retention).
	emptySince time.Time
	// persist is called when the group's metadata must be written
	// before answers are released (set by the coordinator).
	persist func(g *Group, then func(err *kerr.Error))
}

func newGroup(id string, s Settings, now time.Time) *Group {
	return &Group{
		ID: id, settings: s, State: Empty,
		members: map[string]*Member{}, static: map[string]string{}, pending: map[string]time.Time{},
		emptySince: now,
	}
}

// Members returns the members sorted by id.
func (g *Group) Members() []*Member {
	out := make([]*Member, 0, len(g.members))
	for _, m := range g.members {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// IsEmpty reports whether the group has no members.
func (g *Group) IsEmpty() bool { return len(g.members) == 0 }

// newMemberID makes a member id: the client id and 16 random bytes, as
// Kafka does. A variable so that the golden tests can make ids
// deterministic.
var newMemberID = func(clientID string) string {
	var b [16]byte
	rand.Read(b[:])
	return clientID + "-" + hex.EncodeToString(b[:])
}

// JoinRequest is a decoded JoinGroup.
type JoinRequest struct {
	Req        *kmsg.JoinGroupRequest
	ClientID   string
	ClientHost string
	Reply      func(*kmsg.JoinGroupResponse)
}

func joinError(req *kmsg.JoinGroupRequest, code *kerr.Error, memberID string) *kmsg.JoinGroupResponse {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.ErrorCode = code.Code
	resp.Generation = -1
	resp.MemberID = memberID
	return resp
}

// Join handles a JoinGroup request.
func (g *Group) Join(j JoinRequest, now time.Time) {
	req := j.Req
	session := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	rebalance := time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	if req.Version == 0 {
		rebalance = session
	}
	if session < g.settings.MinSessionTimeout || session > g.settings.MaxSessionTimeout {
		j.Reply(joinError(req, kerr.InvalidSessionTimeout, req.MemberID))
		return
	}
	if req.ProtocolType == "" || len(req.Protocols) == 0 {
		j.Reply(joinError(req, kerr.InconsistentGroupProtocol, req.MemberID))
		return
	}
	protos := make([]Protocol, len(req.Protocols))
	for i, p := range req.Protocols {
		protos[i] = Protocol{Name: p.Name, Metadata: append([]byte(nil), p.Metadata...)}
	}
	if !g.IsEmpty() {
		if req.ProtocolType != g.ProtocolType || !g.supportsAny(protos, req.MemberID) {
			j.Reply(joinError(req, kerr.InconsistentGroupProtocol, req.MemberID))
			return
		}
	}
	if g.State == Dead {
		j.Reply(joinError(req, kerr.CoordinatorNotAvailable, req.MemberID))
		return
	}
	instance := req.InstanceID
	if req.MemberID == "" {
		if instance != nil {
			g.joinStaticUnknownID(j, *instance, protos, session, rebalance, now)
			return
		}
		if len(g.members)+len(g.pending) >= g.settings.MaxSize {
			j.Reply(joinError(req, kerr.GroupMaxSizeReached, ""))
			return
		}
		id := newMemberID(j.ClientID)
		if req.Version >= 4 {
			// KIP-394: the member must rejoin with this id, so that a
			// client that times out before seeing the answer does not
			// leave a ghost member behind.
			g.pending[id] = now.Add(session)
			j.Reply(joinError(req, kerr.MemberIDRequired, id))
			return
		}
		g.addMember(j, id, nil, protos, session, rebalance, now)
		return
	}
	// A known (or pending) member id.
	if instance != nil {
		if cur, ok := g.static[*instance]; ok && cur != req.MemberID {
			j.Reply(joinError(req, kerr.FencedInstanceID, req.MemberID))
			return
		}
	}
	if _, ok := g.pending[req.MemberID]; ok {
		delete(g.pending, req.MemberID)
		g.addMember(j, req.MemberID, instance, protos, session, rebalance, now)
		return
	}
	m := g.members[req.MemberID]
	if m == nil {
		j.Reply(joinError(req, kerr.UnknownMemberID, req.MemberID))
		return
	}
	m.ClientID, m.ClientHost = j.ClientID, j.ClientHost
	switch g.State {
	case PreparingRebalance:
		g.updateMember(m, j.Reply, protos, session, rebalance, now)
		g.tryCompleteJoin(now)
	case CompletingRebalance:
		if sameProtocols(m.Protocols, protos) {
			// The member missed our join answer: send it again.
			j.Reply(g.joinResponse(req, m))
			m.deadline = now.Add(m.SessionTimeout)
			return
		}
		g.updateMember(m, j.Reply, protos, session, rebalance, now)
		g.prepareRebalance(now)
	case Stable:
		if m.ID == g.Leader || !sameProtocols(m.Protocols, protos) {
			// The leader rejoining, or new subscriptions: rebalance.
			g.updateMember(m, j.Reply, protos, session, rebalance, now)
			g.prepareRebalance(now)
			return
		}
		j.Reply(g.joinResponse(req, m))
		m.deadline = now.Add(m.SessionTimeout)
	default:
		j.Reply(joinError(req, kerr.UnknownMemberID, req.MemberID))
	}
}

// joinStaticUnknownID handles a static member joining without a member id:
// a new instance, or a restart of a known one that replaces (fences) the
// old member id.
func (g *Group) joinStaticUnknownID(j JoinRequest, instance string, protos []Protocol, session, rebalance time.Duration, now time.Time) {
	req := j.Req
	oldID, known := g.static[instance]
	if !known {
		if len(g.members)+len(g.pending) >= g.settings.MaxSize {
			j.Reply(joinError(req, kerr.GroupMaxSizeReached, ""))
			return
		}
		inst := instance
		g.addMember(j, newMemberID(j.ClientID), &inst, protos, session, rebalance, now)
		return
	}
	old := g.members[oldID]
	newID := newMemberID(j.ClientID)
	// Fence the old id: its pending answers fail.
	if old.joinReply != nil {
		old.joinReply(joinError(req, kerr.FencedInstanceID, oldID))
		old.joinReply = nil
	}
	if old.syncReply != nil {
		old.syncReply(&kmsg.SyncGroupResponse{Version: req.Version, ErrorCode: kerr.FencedInstanceID.Code})
		old.syncReply = nil
	}
	delete(g.members, oldID)
	old.ID = newID
	old.ClientID, old.ClientHost = j.ClientID, j.ClientHost
	g.members[newID] = old
	g.static[instance] = newID
	wasLeader := g.Leader == oldID
	if wasLeader {
		g.Leader = newID
	}
	if g.State == Stable && !wasLeader && sameProtocols(old.Protocols, protos) {
		// A restarted static member with the same subscription takes
		// over its old assignment without a rebalance (KIP-345).
		old.SessionTimeout, old.RebalanceTimeout = session, rebalance
		old.deadline = now.Add(session)
		resp := g.joinResponse(req, old)
		if g.persist == nil {
			j.Reply(resp)
			return
		}
		// NB: the new member id is persisted before the answer, as
		// Kafka does: a coordinator restarted from the old record would
		// map the instance to the old id and fence the live member with
		// FENCED_INSTANCE_ID. If the write fails the member gets the
		// error and joins again, which replaces the id once more.
		g.persist(g, func(perr *kerr.Error) {
			if perr != nil {
				j.Reply(joinError(req, perr, ""))
				return
			}
			j.Reply(resp)
		})
		return
	}
	g.updateMember(old, j.Reply, protos, session, rebalance, now)
	if g.State == PreparingRebalance {
		g.tryCompleteJoin(now)
	} else {
		g.prepareRebalance(now)
	}
}

func (g *Group) supportsAny(protos []Protocol, memberID string) bool {
	// The new member must share at least one protocol with every other
	// member.
	for _, p := range protos {
		all := true
		for id, m := range g.members {
			if id == memberID {
				continue
			}
			if m.metadataFor(p.Name) == nil && !hasProtocol(m.Protocols, p.Name) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

func hasProtocol(ps []Protocol, name string) bool {
	for _, p := range ps {
		if p.Name == name {
			return true
		}
	}
	return false
}

func (g *Group) addMember(j JoinRequest, id string, instance *string, protos []Protocol, session, rebalance time.Duration, now time.Time) {
	if g.IsEmpty() {
		g.ProtocolType = j.Req.ProtocolType
	}
	m := &Member{ID: id, InstanceID: instance, ClientID: j.ClientID, ClientHost: j.ClientHost}
	g.members[id] = m
	if instance != nil {
		g.static[*instance] = id
	}
	g.updateMember(m, j.Reply, protos, session, rebalance, now)
	if g.State == PreparingRebalance {
		if now.Before(g.initialDelayEnd) {
			g.newDuringDelay = true
		}
		g.tryCompleteJoin(now)
	} else {
		g.prepareRebalance(now)
	}
}

func (g *Group) updateMember(m *Member, reply func(*kmsg.JoinGroupResponse), protos []Protocol, session, rebalance time.Duration, now time.Time) {
	if m.joinReply != nil && reply != nil {
		// A second join while the first waits: the first is answered
		// as superseded, as Kafka does.
		m.joinReply(&kmsg.JoinGroupResponse{ErrorCode: kerr.UnknownMemberID.Code, Generation: -1})
	}
	m.Protocols = protos
	m.SessionTimeout, m.RebalanceTimeout = session, rebalance
	m.joinReply = reply
	m.deadline = now.Add(session)
}

// prepareRebalance moves the group to PreparingRebalance.
func (g *Group) prepareRebalance(now time.Time) {
	if g.State == CompletingRebalance {
		// Members waiting for their assignment must rejoin.
		for _, m := range g.Members() {
			if m.syncReply != nil {
				m.syncReply(&kmsg.SyncGroupResponse{ErrorCode: kerr.RebalanceInProgress.Code})
				m.syncReply = nil
			}
		}
	}
	wasEmpty := g.State == Empty
	g.State = PreparingRebalance
	var maxRebalance time.Duration
	for _, m := range g.members {
		if m.RebalanceTimeout > maxRebalance {
			maxRebalance = m.RebalanceTimeout
		}
	}
	g.rebalanceDeadline = now.Add(maxRebalance)
	if wasEmpty {
		delay := g.settings.InitialRebalanceDelay
		if delay > maxRebalance {
			delay = maxRebalance
		}
		g.initialDelayEnd = now.Add(delay)
	}
	g.tryCompleteJoin(now)
}

// tryCompleteJoin completes the join phase once every member has rejoined
// and the initial delay (if any) is over.
func (g *Group) tryCompleteJoin(now time.Time) {
	if g.State != PreparingRebalance {
		return
	}
	if now.Before(g.initialDelayEnd) {
		return
	}
	if g.newDuringDelay {
		// Members arrived during the delay: wait one more delay for
		// the rest of them, within the rebalance deadline.
		g.newDuringDelay = false
		if remaining := g.rebalanceDeadline.Sub(now); remaining > 0 {
			g.initialDelayEnd = now.Add(min(g.settings.InitialRebalanceDelay, remaining))
			return
		}
	}
	for _, m := range g.members {
		if m.joinReply == nil {
			return
		}
	}
	if len(g.pending) > 0 && now.Before(g.rebalanceDeadline) {
		return
	}
	g.completeJoin(now)
}

// completeJoin ends PreparingRebalance: members that did not rejoin are
// removed, the generation advances and every waiting member is answered;
// the leader gets the member list.
func (g *Group) completeJoin(now time.Time) {
	for id, m := range g.members {
		if m.joinReply == nil {
			g.removeMemberLocked(id)
		}
	}
	g.Generation++
	g.initialDelayEnd = time.Time{}
	g.newDuringDelay = false
	if g.IsEmpty() {
		g.State = Empty
		g.Protocol = ""
		g.Leader = ""
		g.emptySince = now
		if g.persist != nil {
			g.persist(g, func(*kerr.Error) {})
		}
		return
	}
	g.Protocol = g.selectProtocol()
	if _, ok := g.members[g.Leader]; !ok {
		g.Leader = g.Members()[0].ID
	}
	g.State = CompletingRebalance
	var maxRebalance time.Duration
	for _, m := range g.members {
		m.Assignment = nil
		m.synced = false
		maxRebalance = max(maxRebalance, m.RebalanceTimeout)
	}
	g.syncDeadline = now.Add(maxRebalance)
	for _, m := range g.Members() {
		reply := m.joinReply
		m.joinReply = nil
		m.deadline = now.Add(m.SessionTimeout)
		reply(g.joinResponse(&kmsg.JoinGroupRequest{Version: -1}, m))
	}
}

// joinResponse is the answer of a completed join for member m. The
// response version is set by the server when it writes the response.
func (g *Group) joinResponse(req *kmsg.JoinGroupRequest, m *Member) *kmsg.JoinGroupResponse {
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.Generation = g.Generation
	pt, p := g.ProtocolType, g.Protocol
	resp.ProtocolType, resp.Protocol = &pt, &p
	resp.LeaderID = g.Leader
	resp.MemberID = m.ID
	if m.ID == g.Leader {
		for _, o := range g.Members() {
			jm := kmsg.NewJoinGroupResponseMember()
			jm.MemberID = o.ID
			jm.InstanceID = o.InstanceID
			jm.ProtocolMetadata = o.metadataFor(g.Protocol)
			resp.Members = append(resp.Members, jm)
		}
	}
	return resp
}

// selectProtocol picks the protocol every member supports that most
// members prefer (each member votes for its first supported candidate).
func (g *Group) selectProtocol() string {
	var candidates []string
	first := true
	for _, m := range g.Members() {
		var names []string
		for _, p := range m.Protocols {
			names = append(names, p.Name)
		}
		if first {
			candidates = names
			first = false
			continue
		}
		var keep []string
		for _, c := range candidates {
			if hasProtocol(m.Protocols, c) {
				keep = append(keep, c)
			}
		}
		candidates = keep
	}
	if len(candidates) == 0 {
		return ""
	}
	votes := map[string]int{}
	for _, m := range g.Members() {
		for _, p := range m.Protocols {
			if contains(candidates, p.Name) {
				votes[p.Name]++
				break
			}
		}
	}
	best := candidates[0]
	for _, c := range candidates {
		if votes[c] > votes[best] {
			best = c
		}
	}
	return best
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func (g *Group) removeMemberLocked(id string) {
	m := g.members[id]
	if m == nil {
		return
	}
	if m.InstanceID != nil && g.static[*m.InstanceID] == id {
		delete(g.static, *m.InstanceID)
	}
	delete(g.members, id)
	if g.Leader == id {
		g.Leader = ""
		for _, o := range g.Members() {
			g.Leader = o.ID
			break
		}
	}
}

// validateMember checks a request's member, instance and generation.
func (g *Group) validateMember(memberID string, instance *string, generation int32) (*Member, *kerr.Error) {
	if instance != nil {
		if cur, ok := g.static[*instance]; ok && cur != memberID {
			return nil, kerr.FencedInstanceID
		}
	}
	m := g.members[memberID]
	if m == nil {
		return nil, kerr.UnknownMemberID
	}
	if generation != g.Generation {
		return m, kerr.IllegalGeneration
	}
	return m, nil
}

// SyncRequest is a decoded SyncGroup.
type SyncRequest struct {
	Req   *kmsg.SyncGroupRequest
	Reply func(*kmsg.SyncGroupResponse)
}

// Sync handles a SyncGroup request.
func (g *Group) Sync(s SyncRequest, now time.Time) {
	req := s.Req
	fail := func(code *kerr.Error) {
		s.Reply(&kmsg.SyncGroupResponse{Version: req.Version, ErrorCode: code.Code})
	}
	if g.State == Dead {
		fail(kerr.CoordinatorNotAvailable)
		return
	}
	m, err := g.validateMember(req.MemberID, req.InstanceID, req.Generation)
	if err != nil {
		fail(err)
		return
	}
	if (req.ProtocolType != nil && *req.ProtocolType != g.ProtocolType) || (req.Protocol != nil && *req.Protocol != g.Protocol) {
		fail(kerr.InconsistentGroupProtocol)
		return
	}
	m.deadline = now.Add(m.SessionTimeout)
	switch g.State {
	case Empty:
		fail(kerr.UnknownMemberID)
	case PreparingRebalance:
		fail(kerr.RebalanceInProgress)
	case CompletingRebalance:
		m.syncReply = s.Reply
		m.synced = true
		if m.ID != g.Leader {
			return
		}
		assign := map[string][]byte{}
		for _, a := range req.GroupAssignment {
			assign[a.MemberID] = append([]byte(nil), a.MemberAssignment...)
		}
		for id, o := range g.members {
			o.Assignment = assign[id]
		}
		gen := g.Generation
		finish := func(perr *kerr.Error) {
			// The group may have moved on while the write was in
			// flight; only the same generation is released.
			if g.Generation != gen || g.State != CompletingRebalance {
				return
			}
			if perr != nil {
				for _, o := range g.Members() {
					o.Assignment = nil
					if o.syncReply != nil {
						o.syncReply(&kmsg.SyncGroupResponse{ErrorCode: perr.Code})
						o.syncReply = nil
					}
				}
				g.prepareRebalance(now)
				return
			}
			g.State = Stable
			for _, o := range g.Members() {
				if o.syncReply != nil {
					o.syncReply(g.syncResponse(o))
					o.syncReply = nil
				}
			}
		}
		if g.persist != nil {
			g.persist(g, finish)
		} else {
			finish(nil)
		}
	case Stable:
		s.Reply(g.syncResponse(m))
	}
}

func (g *Group) syncResponse(m *Member) *kmsg.SyncGroupResponse {
	resp := kmsg.NewPtrSyncGroupResponse()
	pt, p := g.ProtocolType, g.Protocol
	resp.ProtocolType, resp.Protocol = &pt, &p
	resp.MemberAssignment = m.Assignment
	if resp.MemberAssignment == nil {
		resp.MemberAssignment = []byte{}
	}
	return resp
}

// Heartbeat handles a Heartbeat request and returns its error code.
func (g *Group) Heartbeat(req *kmsg.HeartbeatRequest, now time.Time) *kerr.Error {
	if g.State == Dead {
		return kerr.CoordinatorNotAvailable
	}
	m, err := g.validateMember(req.MemberID, req.InstanceID, req.Generation)
	if m != nil {
		m.deadline = now.Add(m.SessionTimeout)
	}
	if err != nil {
		return err
	}
	switch g.State {
	case PreparingRebalance:
		return kerr.RebalanceInProgress
	case Empty:
		return kerr.UnknownMemberID
	}
	return nil
}

// Leave removes members (LeaveGroup); it returns an error per member.
func (g *Group) Leave(members []kmsg.LeaveGroupRequestMember, now time.Time) []*kerr.Error {
	errs := make([]*kerr.Error, len(members))
	removed := false
	for i, lm := range members {
		id := lm.MemberID
		if lm.InstanceID != nil {
			cur, ok := g.static[*lm.InstanceID]
			if !ok {
				errs[i] = kerr.UnknownMemberID
				continue
			}
			if id != "" && id != cur {
				errs[i] = kerr.FencedInstanceID
				continue
			}
			id = cur
		}
		m := g.members[id]
		if m == nil {
			if _, ok := g.pending[id]; ok {
				delete(g.pending, id)
				continue
			}
			errs[i] = kerr.UnknownMemberID
			continue
		}
		if m.joinReply != nil {
			m.joinReply(&kmsg.JoinGroupResponse{ErrorCode: kerr.UnknownMemberID.Code, Generation: -1})
			m.joinReply = nil
		}
		if m.syncReply != nil {
			m.syncReply(&kmsg.SyncGroupResponse{ErrorCode: kerr.UnknownMemberID.Code})
			m.syncReply = nil
		}
		g.removeMemberLocked(id)
		removed = true
	}
	if removed {
		g.membershipChanged(now)
	}
	return errs
}

func (g *Group) membershipChanged(now time.Time) {
	switch g.State {
	case Stable, CompletingRebalance:
		g.prepareRebalance(now)
	case PreparingRebalance:
		g.tryCompleteJoin(now)
	}
}

// Tick fires every timer due at now.
func (g *Group) Tick(now time.Time) {
	for id, exp := range g.pending {
		if !now.Before(exp) {
			delete(g.pending, id)
		}
	}
	expired := false
	for _, m := range g.Members() {
		id := m.ID
		// A member parked in JoinGroup is bounded by the rebalance
		// timeout instead of its session.
		if m.joinReply == nil && !now.Before(m.deadline) {
			if m.syncReply != nil {
				m.syncReply(&kmsg.SyncGroupResponse{ErrorCode: kerr.UnknownMemberID.Code})
				m.syncReply = nil
			}
			g.removeMemberLocked(id)
			expired = true
		}
	}
	if g.State == CompletingRebalance && !now.Before(g.syncDeadline) {
		for _, m := range g.Members() {
			if !m.synced {
				g.removeMemberLocked(m.ID)
				expired = true
			}
		}
	}
	if expired {
		g.membershipChanged(now)
	}
	if g.State == PreparingRebalance {
		if !now.Before(g.rebalanceDeadline) {
			g.completeJoin(now)
		} else {
			g.tryCompleteJoin(now)
		}
	}
}

// NextDeadline is the earliest time Tick has something to do, or zero.
func (g *Group) NextDeadline() time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, exp := range g.pending {
		consider(exp)
	}
	for _, m := range g.members {
		if m.joinReply == nil {
			consider(m.deadline)
		}
	}
	if g.State == CompletingRebalance {
		consider(g.syncDeadline)
	}
	if g.State == PreparingRebalance {
		consider(g.rebalanceDeadline)
		if now := g.initialDelayEnd; !now.IsZero() {
			consider(now)
		}
	}
	return next
}

// ValidateCommit applies Kafka's rules for an offset commit from
// (memberID, instance, generation): generation -1 with no member is a
// "simple" commit, allowed only while the group has no members.
func (g *Group) ValidateCommit(memberID string, instance *string, generation int32, now time.Time) *kerr.Error {
	switch {
	case g.State == Dead:
		return kerr.CoordinatorNotAvailable
	case generation < 0 && g.State == Empty:
		return nil
	case generation >= 0 || memberID != "" || instance != nil:
		m, err := g.validateMember(memberID, instance, generation)
		if m != nil {
			m.deadline = now.Add(m.SessionTimeout)
		}
		if err != nil {
			if err == kerr.IllegalGeneration && g.State == CompletingRebalance {
				return kerr.RebalanceInProgress
			}
			return err
		}
		if g.State == CompletingRebalance {
			return kerr.RebalanceInProgress
		}
		return nil
	default:
		return kerr.UnknownMemberID
	}
}
