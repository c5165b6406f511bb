package server

// SyncGroup (key 14), versions 0-5.
//
// Behaviour:
//   - The leader's assignments are written to the group's offsets partition
//     and only then released to every member (so a coordinator restart
//     keeps them).
//   - A follower waits for the leader; a member of an older generation gets
//     ILLEGAL_GENERATION, an unknown one UNKNOWN_MEMBER_ID, and a sync
//     during a new rebalance REBALANCE_IN_PROGRESS.
//
// Version notes: v5 checks the protocol type and name
// (INCONSISTENT_GROUP_PROTOCOL when they differ from the group's).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(14, 0, 5, handleSyncGroup) }

func handleSyncGroup(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.SyncGroupRequest)
	if c.s.Groups == nil {
		resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return now(resp)
	}
	return awaitReply(c, func(reply func(*kmsg.SyncGroupResponse)) {
		c.s.Groups.Sync(req, reply)
	}, func() *kmsg.SyncGroupResponse {
		resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ErrorCode = kerr.RebalanceInProgress.Code
		return resp
	})
}
