package group

// Golden-file tests of the classic group state machine (STYLE habit 14).
//
// Each file in testdata/ is a script: blocks of one command, a "----" line
// and the output the command must produce, separated by blank lines. Lines
// starting with '#' before a command are comments and are kept on rewrite.
// `go test ./internal/group -run TestGolden -rewrite` regenerates the
// expectations from the current behaviour; read the diff before committing.
//
// The harness owns everything the state machine does not:
//
//   - Time. The clock starts at t=0 and moves only with `advance D`, which
//     steps it in tickInterval steps and, like the coordinator's driver,
//     calls Tick only when NextDeadline is due. Output produced by a tick is
//     printed under a "@T" line giving the time it fired at.
//   - Delivery. Every request gets a reply callback that records the
//     answer when the machine calls it (immediately or during a later
//     command) and fails the test if it is called twice. Requests still
//     waiting show up in `state`.
//   - Persistence. The persist callback is held, never acknowledged on its
//     own: it prints a "persist #N" line and waits for `persist-ok` or
//     `persist-fail`, which complete the oldest held write. This is how a
//     slow or failing write of the assignment is scripted.
//   - Member ids. newMemberID is replaced by clientID-N, N counting per
//     client id from 1 in each file.
//
// After every command (and every tick) a line starting with "~" shows the
// group's summary if it changed: state, generation, protocol, leader and
// members.
//
// Commands (durations in Go syntax):
//
//	settings [min-session=D] [max-session=D] [initial-delay=D] [max-size=N]
//	    start a fresh group with these settings (default: Kafka's defaults
//	    with initial-delay=0, so that only the files about the delay need it)
//	join [member=ID] [client=C] [instance=I] [session=D] [rebalance=D]
//	     [protocols=name:meta,...] [type=consumer] [version=N]
//	    JoinGroup (v5 by default: MEMBER_ID_REQUIRED applies); client
//	    defaults to the member id up to its last '-', else "c"
//	sync member=ID gen=N [instance=I] [assign=ID:bytes,...] [version=N]
//	heartbeat member=ID gen=N [instance=I]
//	leave [member=ID,...] [instance=I,...]
//	commit [member=ID] [gen=N] [instance=I]
//	    ValidateCommit (gen defaults to -1: a simple commit)
//	advance D
//	tick
//	    Tick at the current time, whether or not NextDeadline is due
//	persist-ok | persist-fail [err=NAME]
//	state

import (
	"fmt"
	"github.com/oncelog/oncelog/internal/golden"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestGolden(t *testing.T) {
	for _, f := range golden.Files(t) {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runGoldenFile(t, f) })
	}
}

func runGoldenFile(t *testing.T, path string) {
	h := newHarness(t)
	defer h.restore()
	golden.Run(t, path, func(path string, line int, cmd string) string { return h.run(path, line, cmd) })
}

var goldenStart = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// harness drives one Group for one golden file.
type harness struct {
	t       *testing.T
	g       *Group
	now     time.Time
	out     []string
	summary string

	savedNewMemberID func(string) string
	ids              map[string]int // next member id number per client

	nextReq int
	waiting map[int]string // requests whose reply has not come, by id

	nextPersist int
	held        []heldPersist
}

type heldPersist struct {
	n    int
	then func(*kerr.Error)
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, now: goldenStart, ids: map[string]int{}, waiting: map[int]string{}, savedNewMemberID: newMemberID}
	newMemberID = func(clientID string) string {
		h.ids[clientID]++
		return fmt.Sprintf("%s-%d", clientID, h.ids[clientID])
	}
	s := DefaultSettings()
	s.InitialRebalanceDelay = 0
	h.reset(s)
	return h
}

func (h *harness) restore() { newMemberID = h.savedNewMemberID }

func (h *harness) reset(s Settings) {
	h.g = newGroup("g", s, h.now)
	h.g.persist = h.persist
	h.summary = h.summarize()
}

func (h *harness) printf(format string, args ...any) {
	h.out = append(h.out, fmt.Sprintf(format, args...))
}

// since prints a time as the offset from the start of the file.
func (h *harness) since(at time.Time) string {
	if at.IsZero() {
		return "-"
	}
	return at.Sub(goldenStart).String()
}

func (h *harness) persist(g *Group, then func(*kerr.Error)) {
	h.nextPersist++
	n := h.nextPersist
	var ms []string
	for _, m := range g.Members() {
		ms = append(ms, m.ID+":"+string(m.Assignment))
	}
	h.printf("persist #%d: state=%s gen=%d leader=%s members=[%s]", n, g.State, g.Generation, g.Leader, strings.Join(ms, " "))
	h.held = append(h.held, heldPersist{n: n, then: then})
}

// request registers a request; done must be called exactly once when its
// answer arrives.
func (h *harness) request(label string) (done func()) {
	h.nextReq++
	id := h.nextReq
	h.waiting[id] = label
	return func() {
		if _, ok := h.waiting[id]; !ok {
			h.t.Errorf("%s answered twice", label)
			h.printf("BUG: %s answered twice", label)
		}
		delete(h.waiting, id)
	}
}

func errName(code int16) string {
	if code == 0 {
		return "ok"
	}
	return kerr.ErrorForCode(code).(*kerr.Error).Message
}

func kerrName(e *kerr.Error) string {
	if e == nil {
		return "ok"
	}
	return e.Message
}

func (h *harness) summarize() string {
	g := h.g
	var ids []string
	for _, m := range g.Members() {
		ids = append(ids, m.ID)
	}
	s := fmt.Sprintf("~ %s gen=%d", g.State, g.Generation)
	if g.Protocol != "" {
		s += " protocol=" + g.Protocol
	}
	if g.Leader != "" {
		s += " leader=" + g.Leader
	}
	return s + " members=[" + strings.Join(ids, " ") + "]"
}

// flush appends the summary line if the group changed.
func (h *harness) flush() {
	if s := h.summarize(); s != h.summary {
		h.summary = s
		h.out = append(h.out, s)
	}
}

func (h *harness) run(path string, line int, cmdline string) string {
	h.out = nil
	fields := strings.Fields(cmdline)
	cmd, args := fields[0], map[string]string{}
	var pos []string
	for _, f := range fields[1:] {
		if k, v, ok := strings.Cut(f, "="); ok {
			args[k] = v
		} else {
			pos = append(pos, f)
		}
	}
	fatal := func(format string, a ...any) {
		h.t.Fatalf("%s:%d: %s: %s", path, line, cmdline, fmt.Sprintf(format, a...))
	}
	used := map[string]bool{}
	str := func(k, def string) string {
		used[k] = true
		if v, ok := args[k]; ok {
			return v
		}
		return def
	}
	optStr := func(k string) *string {
		used[k] = true
		if v, ok := args[k]; ok {
			return &v
		}
		return nil
	}
	dur := func(k string, def time.Duration) time.Duration {
		used[k] = true
		v, ok := args[k]
		if !ok {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			fatal("%s: %v", k, err)
		}
		return d
	}
	num := func(k string, def int) int {
		used[k] = true
		v, ok := args[k]
		if !ok {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			fatal("%s: %v", k, err)
		}
		return n
	}
	list := func(k string) []string {
		used[k] = true
		if v, ok := args[k]; ok && v != "" {
			return strings.Split(v, ",")
		}
		return nil
	}

	switch cmd {
	case "settings":
		s := DefaultSettings()
		s.InitialRebalanceDelay = 0
		s.MinSessionTimeout = dur("min-session", s.MinSessionTimeout)
		s.MaxSessionTimeout = dur("max-session", s.MaxSessionTimeout)
		s.InitialRebalanceDelay = dur("initial-delay", s.InitialRebalanceDelay)
		s.MaxSize = num("max-size", s.MaxSize)
		h.reset(s)
		h.printf("%s", h.summary)

	case "join":
		req := kmsg.NewPtrJoinGroupRequest()
		req.Version = int16(num("version", 5))
		req.Group = h.g.ID
		req.MemberID = str("member", "")
		req.InstanceID = optStr("instance")
		req.SessionTimeoutMillis = int32(dur("session", 10*time.Second).Milliseconds())
		req.RebalanceTimeoutMillis = int32(dur("rebalance", 30*time.Second).Milliseconds())
		req.ProtocolType = str("type", "consumer")
		for _, p := range list("protocols") {
			name, meta, _ := strings.Cut(p, ":")
			jp := kmsg.NewJoinGroupRequestProtocol()
			jp.Name, jp.Metadata = name, []byte(meta)
			req.Protocols = append(req.Protocols, jp)
		}
		if _, ok := args["protocols"]; !ok {
			jp := kmsg.NewJoinGroupRequestProtocol()
			jp.Name, jp.Metadata = "range", []byte("AAA")
			req.Protocols = append(req.Protocols, jp)
		}
		client := "c"
		if i := strings.LastIndex(req.MemberID, "-"); i > 0 {
			client = req.MemberID[:i]
		}
		client = str("client", client)
		who := req.MemberID
		if who == "" {
			who = client
		}
		if req.InstanceID != nil {
			who += "/" + *req.InstanceID
		}
		label := "join(" + who + ")"
		done := h.request(label)
		h.checkArgs(fatal, args, used)
		h.g.Join(JoinRequest{Req: req, ClientID: client, ClientHost: "/127.0.0.1", Reply: func(r *kmsg.JoinGroupResponse) {
			done()
			h.printf("%s -> %s", label, h.joinString(r))
		}}, h.now)

	case "sync":
		req := kmsg.NewPtrSyncGroupRequest()
		req.Version = int16(num("version", 3))
		req.Group = h.g.ID
		req.MemberID = str("member", "")
		req.InstanceID = optStr("instance")
		req.Generation = int32(num("gen", -1))
		for _, a := range list("assign") {
			id, v, _ := strings.Cut(a, ":")
			sa := kmsg.NewSyncGroupRequestGroupAssignment()
			sa.MemberID, sa.MemberAssignment = id, []byte(v)
			req.GroupAssignment = append(req.GroupAssignment, sa)
		}
		label := "sync(" + req.MemberID + ")"
		done := h.request(label)
		h.checkArgs(fatal, args, used)
		h.g.Sync(SyncRequest{Req: req, Reply: func(r *kmsg.SyncGroupResponse) {
			done()
			if r.ErrorCode != 0 {
				h.printf("%s -> %s", label, errName(r.ErrorCode))
				return
			}
			h.printf("%s -> assignment=%q", label, r.MemberAssignment)
		}}, h.now)

	case "heartbeat":
		req := kmsg.NewPtrHeartbeatRequest()
		req.Version = 3
		req.Group = h.g.ID
		req.MemberID = str("member", "")
		req.InstanceID = optStr("instance")
		req.Generation = int32(num("gen", -1))
		h.checkArgs(fatal, args, used)
		h.printf("heartbeat(%s) -> %s", req.MemberID, kerrName(h.g.Heartbeat(req, h.now)))

	case "leave":
		var ms []kmsg.LeaveGroupRequestMember
		for _, id := range list("member") {
			m := kmsg.NewLeaveGroupRequestMember()
			m.MemberID = id
			ms = append(ms, m)
		}
		for _, inst := range list("instance") {
			m := kmsg.NewLeaveGroupRequestMember()
			m.InstanceID = &inst
			ms = append(ms, m)
		}
		h.checkArgs(fatal, args, used)
		errs := h.g.Leave(ms, h.now)
		var parts []string
		for i, m := range ms {
			who := m.MemberID
			if m.InstanceID != nil {
				who = "instance " + *m.InstanceID
			}
			parts = append(parts, who+"="+kerrName(errs[i]))
		}
		h.printf("leave -> %s", strings.Join(parts, " "))

	case "commit":
		member := str("member", "")
		instance := optStr("instance")
		gen := int32(num("gen", -1))
		h.checkArgs(fatal, args, used)
		h.printf("commit(%s gen=%d) -> %s", member, gen, kerrName(h.g.ValidateCommit(member, instance, gen, h.now)))

	case "advance":
		if len(pos) != 1 {
			fatal("want one duration")
		}
		d, err := time.ParseDuration(pos[0])
		if err != nil || d <= 0 {
			fatal("bad duration %q", pos[0])
		}
		h.checkArgs(fatal, args, used)
		end := h.now.Add(d)
		for h.now.Before(end) {
			step := min(tickInterval, end.Sub(h.now))
			h.now = h.now.Add(step)
			if next := h.g.NextDeadline(); next.IsZero() || h.now.Before(next) {
				continue
			}
			before := len(h.out)
			h.out = append(h.out, "@"+h.since(h.now))
			h.g.Tick(h.now)
			h.flush()
			if len(h.out) == before+1 {
				h.out = h.out[:before] // the tick did nothing visible
			}
		}

	case "tick":
		h.checkArgs(fatal, args, used)
		h.g.Tick(h.now)

	case "persist-ok", "persist-fail":
		var perr *kerr.Error
		if cmd == "persist-fail" {
			name := str("err", "COORDINATOR_NOT_AVAILABLE")
			e := kerr.ErrorForCode(codeFor(name))
			ke, ok := e.(*kerr.Error)
			if !ok || ke.Message != name {
				fatal("unknown error %q", name)
			}
			perr = ke
		}
		h.checkArgs(fatal, args, used)
		if len(h.held) == 0 {
			h.printf("%s: no write is held", cmd)
			break
		}
		p := h.held[0]
		h.held = h.held[1:]
		h.printf("persist #%d -> %s", p.n, kerrName(perr))
		p.then(perr)

	case "state":
		h.checkArgs(fatal, args, used)
		h.printState()

	default:
		fatal("unknown command %q", cmd)
	}
	h.flush()
	if len(h.out) == 0 {
		return "ok"
	}
	return strings.Join(h.out, "\n")
}

func (h *harness) checkArgs(fatal func(string, ...any), args map[string]string, used map[string]bool) {
	for k := range args {
		if !used[k] {
			fatal("unknown argument %q", k)
		}
	}
}

// codeFor finds the code of a Kafka error name.
func codeFor(name string) int16 {
	for c := int16(-1); c < 200; c++ {
		if e, ok := kerr.ErrorForCode(c).(*kerr.Error); ok && e.Message == name {
			return c
		}
	}
	return -2
}

func (h *harness) joinString(r *kmsg.JoinGroupResponse) string {
	if r.ErrorCode != 0 {
		s := errName(r.ErrorCode)
		if r.MemberID != "" {
			s += " member=" + r.MemberID
		}
		return s
	}
	s := fmt.Sprintf("gen=%d member=%s leader=%s", r.Generation, r.MemberID, r.LeaderID)
	if r.Protocol != nil {
		s += " protocol=" + *r.Protocol
	}
	if len(r.Members) > 0 {
		var ms []string
		for _, m := range r.Members {
			id := m.MemberID
			if m.InstanceID != nil {
				id += "/" + *m.InstanceID
			}
			ms = append(ms, id+":"+string(m.ProtocolMetadata))
		}
		s += " members=[" + strings.Join(ms, " ") + "]"
	}
	return s
}

func (h *harness) printState() {
	g := h.g
	h.printf("t=%s state=%s gen=%d type=%s protocol=%s leader=%s", h.since(h.now), g.State, g.Generation, g.ProtocolType, g.Protocol, g.Leader)
	for _, m := range g.Members() {
		inst := ""
		if m.InstanceID != nil {
			inst = " instance=" + *m.InstanceID
		}
		var ps []string
		for _, p := range m.Protocols {
			ps = append(ps, p.Name+":"+string(p.Metadata))
		}
		dl := h.since(m.deadline)
		if m.joinReply != nil {
			dl = "(in join)"
		}
		h.printf("  member %s client=%s%s session=%s rebalance=%s deadline=%s protocols=%s assignment=%q",
			m.ID, m.ClientID, inst, m.SessionTimeout, m.RebalanceTimeout, dl, strings.Join(ps, ","), m.Assignment)
	}
	var pend []string
	for id, exp := range g.pending {
		pend = append(pend, id+"@"+h.since(exp))
	}
	sort.Strings(pend)
	for _, p := range pend {
		h.printf("  pending %s", p)
	}
	var static []string
	for inst, id := range g.static {
		static = append(static, inst+"->"+id)
	}
	sort.Strings(static)
	for _, s := range static {
		h.printf("  static %s", s)
	}
	if g.State == PreparingRebalance {
		h.printf("  rebalance-deadline=%s initial-delay-end=%s", h.since(g.rebalanceDeadline), h.since(g.initialDelayEnd))
	}
	var ids []int
	for id := range h.waiting {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		h.printf("  waiting %s", h.waiting[id])
	}
	for _, p := range h.held {
		h.printf("  held persist #%d", p.n)
	}
	h.printf("  next-deadline=%s", h.since(g.NextDeadline()))
}
