package server

// Heartbeat (key 12), versions 0-4.
//
// Behaviour: refreshes the member's session; REBALANCE_IN_PROGRESS while
// the group prepares a rebalance (the member must rejoin),
// ILLEGAL_GENERATION for an older generation, UNKNOWN_MEMBER_ID for a
// member the group does not know (expired, or never joined),
// FENCED_INSTANCE_ID for a replaced static member.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(12, 0, 4, handleHeartbeat) }

func handleHeartbeat(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.HeartbeatRequest)
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	if c.s.Groups == nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return now(resp)
	}
	if err := c.s.Groups.Heartbeat(req); err != nil {
		resp.ErrorCode = err.Code
	}
	return now(resp)
}
