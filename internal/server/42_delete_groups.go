package server

// DeleteGroups (key 42), versions 0-2.
//
// Behaviour: deletes groups that have no members, with their committed
// offsets (tombstones in __consumer_offsets). A group with members gets
// NON_EMPTY_GROUP; an unknown group GROUP_ID_NOT_FOUND.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(42, 0, 2, handleDeleteGroups) }

func handleDeleteGroups(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.DeleteGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, id := range req.Groups {
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group = id
		if c.s.Groups == nil {
			rg.ErrorCode = kerr.CoordinatorNotAvailable.Code
		} else if err := c.s.Groups.DeleteGroup(id); err != nil {
			rg.ErrorCode = err.Code
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return now(resp)
}
