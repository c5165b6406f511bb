package server

// JoinGroup (key 11), versions 0-9, the classic group protocol.
//
// Behaviour (internal/group has the state machine):
//   - v4+ (KIP-394): a member without an id gets MEMBER_ID_REQUIRED and a
//     new id, and joins again with it.
//   - Static members (v5+, group.instance.id, KIP-345): a restarted
//     instance replaces its old member id (the old one is fenced with
//     FENCED_INSTANCE_ID) and, when the group is stable and its
//     subscription unchanged, keeps its assignment without a rebalance.
//   - Session timeouts outside group.min/max.session.timeout.ms get
//     INVALID_SESSION_TIMEOUT; a protocol type or protocol set that does not
//     match the group gets INCONSISTENT_GROUP_PROTOCOL; more members than
//     group.max.size gets GROUP_MAX_SIZE_REACHED.
//   - The answer waits until the rebalance completes (every member rejoined,
//     or the rebalance timeout passed; the first rebalance of an empty group
//     also waits group.initial.rebalance.delay.ms). The leader gets every
//     member's metadata for the chosen protocol.
//
// Version notes: v7 returns the protocol type; v8 carries a reason; v9's
// SkipAssignment is always false (no server-side assignment here).

import (
	"net"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(11, 0, 9, handleJoinGroup) }

func clientHost(c *conn) string {
	host, _, err := net.SplitHostPort(c.nc.RemoteAddr().String())
	if err != nil {
		return "/" + c.nc.RemoteAddr().String()
	}
	return "/" + host
}

func handleJoinGroup(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.JoinGroupRequest)
	if c.s.Groups == nil {
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return now(resp)
	}
	return awaitReply(c, func(reply func(*kmsg.JoinGroupResponse)) {
		c.s.Groups.Join(req, c.clientID, clientHost(c), reply)
	}, func() *kmsg.JoinGroupResponse {
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode = kerr.RebalanceInProgress.Code
		return resp
	})
}
