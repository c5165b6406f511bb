package server

// DescribeGroups (key 15), versions 0-5.
//
// Behaviour: state, protocol type, protocol and members (with their
// metadata for the chosen protocol and their assignment) of each group. A
// group that does not exist is answered as Kafka does: state "Dead" and no
// error. A KIP-848 consumer group is not a classic group and is answered
// the same way, as Kafka does below v6 (ConsumerGroupDescribe describes it).
//
// Not done: authorized operations (no ACLs).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(15, 0, 5, handleDescribeGroups) }

func handleDescribeGroups(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.DescribeGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, id := range req.Groups {
		rg := kmsg.NewDescribeGroupsResponseGroup()
		rg.Group = id
		if c.s.Groups == nil {
			rg.ErrorCode = kerr.CoordinatorNotAvailable.Code
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		info, ok := c.s.Groups.Describe(id)
		if !ok || info.Type == "consumer" {
			rg.State = "Dead"
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		rg.State, rg.ProtocolType, rg.Protocol = info.State, info.ProtocolType, info.Protocol
		for _, m := range info.Members {
			rm := kmsg.NewDescribeGroupsResponseGroupMember()
			rm.MemberID, rm.InstanceID, rm.ClientID, rm.ClientHost = m.ID, m.InstanceID, m.ClientID, m.ClientHost
			for _, p := range m.Protocols {
				if p.Name == info.Protocol {
					rm.ProtocolMetadata = p.Metadata
				}
			}
			rm.MemberAssignment = m.Assignment
			rg.Members = append(rg.Members, rm)
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return now(resp)
}
