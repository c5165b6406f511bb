package server

// FindCoordinator (key 10), versions 0-6.
//
// Behaviour:
//   - Key type 0 (group): this node, which coordinates every group;
//     __consumer_offsets is created on first use, so the answer works
//     before any group existed.
//   - Key type 1 (transaction): this node; __transaction_state is created
//     on first use.
//   - An empty key gets INVALID_REQUEST.
//
// Version notes: v4 batches keys (KIP-699) and answers per key.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(10, 0, 6, handleFindCoordinator) }

func handleFindCoordinator(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.FindCoordinatorRequest)
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	find := func(key string) (*kerr.Error, string) {
		if key == "" {
			return kerr.InvalidRequest, "the coordinator key is empty"
		}
		switch req.CoordinatorType {
		case 0:
			if c.s.Groups == nil {
				return kerr.CoordinatorNotAvailable, "no group coordinator"
			}
			if err := c.s.Groups.EnsureTopic(); err != nil {
				return err, "the offsets topic is not available"
			}
			return nil, ""
		case 1:
			if c.s.Txns == nil {
				return kerr.CoordinatorNotAvailable, "no transaction coordinator"
			}
			if err := c.s.Txns.EnsureTopic(); err != nil {
				return err, "the transaction state topic is not available"
			}
			return nil, ""
		default:
			return kerr.InvalidRequest, "unknown coordinator type"
		}
	}
	node, host, port := c.s.b.Config.NodeID, c.s.adv.host, c.s.adv.port
	if req.Version < 4 {
		err, msg := find(req.CoordinatorKey)
		if err != nil {
			resp.ErrorCode = err.Code
			resp.ErrorMessage = &msg
			resp.NodeID, resp.Port = -1, -1
			return now(resp)
		}
		resp.NodeID, resp.Host, resp.Port = node, host, port
		return now(resp)
	}
	for _, key := range req.CoordinatorKeys {
		rc := kmsg.NewFindCoordinatorResponseCoordinator()
		rc.Key = key
		if err, msg := find(key); err != nil {
			rc.ErrorCode = err.Code
			rc.ErrorMessage = &msg
			rc.NodeID, rc.Port = -1, -1
		} else {
			rc.NodeID, rc.Host, rc.Port = node, host, port
		}
		resp.Coordinators = append(resp.Coordinators, rc)
	}
	return now(resp)
}
