package server

// LeaveGroup (key 13), versions 0-5.
//
// Behaviour: removes the members and starts a rebalance of the rest. Before
// v3 one member by id; from v3 (KIP-345) a batch, each by member id or by
// group.instance.id, with an error per member.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(13, 0, 5, handleLeaveGroup) }

func handleLeaveGroup(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.LeaveGroupRequest)
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	if c.s.Groups == nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return now(resp)
	}
	members := req.Members
	if req.Version < 3 {
		members = []kmsg.LeaveGroupRequestMember{{MemberID: req.MemberID}}
	}
	topErr, errs := c.s.Groups.Leave(req.Group, members)
	if req.Version < 3 {
		if errs[0] != nil {
			resp.ErrorCode = errs[0].Code
		}
		return now(resp)
	}
	if topErr != nil && len(members) == 0 {
		resp.ErrorCode = topErr.Code
	}
	for i, m := range members {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID = m.MemberID, m.InstanceID
		if errs[i] != nil {
			rm.ErrorCode = errs[i].Code
		}
		resp.Members = append(resp.Members, rm)
	}
	return now(resp)
}
