package server

// ListGroups (key 16), versions 0-5.
//
// Behaviour: every group this node coordinates, with its protocol type;
// v4 filters by state (KIP-518, case-insensitive), v5 by type (KIP-848):
// "classic", or "consumer" for a KIP-848 group (protocol type "consumer",
// states Empty, Assigning, Reconciling, Stable).

import (
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(16, 0, 5, handleListGroups) }

func handleListGroups(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.ListGroupsRequest)
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	if c.s.Groups == nil {
		return now(resp)
	}
	match := func(filter []string, v string) bool {
		if len(filter) == 0 {
			return true
		}
		for _, f := range filter {
			if strings.EqualFold(f, v) {
				return true
			}
		}
		return false
	}
	for _, g := range c.s.Groups.List() {
		typ := "classic"
		if g.Type != "" {
			typ = g.Type
		}
		if !match(req.StatesFilter, g.State) || !match(req.TypesFilter, typ) {
			continue
		}
		rg := kmsg.NewListGroupsResponseGroup()
		rg.Group, rg.ProtocolType, rg.GroupState, rg.GroupType = g.ID, g.ProtocolType, g.State, typ
		resp.Groups = append(resp.Groups, rg)
	}
	return now(resp)
}
