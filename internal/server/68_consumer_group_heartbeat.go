package server

// ConsumerGroupHeartbeat (key 68), versions 0-1.
//
// Behaviour (KIP-848):
//   - Joins (member epoch 0), heartbeats, and leaves (-1; -2 for a static
//     member that will be back) a "consumer" group. The coordinator
//     computes the target assignment with the member's ServerAssignor
//     ("uniform", the default, or "range") and answers each member with
//     its current assignment as it reconciles: revoked partitions first,
//     new ones once their previous owner has released them.
//   - The answer waits until the change is durable in __consumer_offsets.
//   - A group id held by a classic group with members is
//     GROUP_ID_NOT_FOUND ("not a consumer group"); an empty classic group
//     (offsets only) becomes a consumer group and keeps its offsets.
//   - Errors: INVALID_REQUEST for malformed joins, UNKNOWN_MEMBER_ID,
//     FENCED_MEMBER_EPOCH, UNRELEASED_INSTANCE_ID, FENCED_INSTANCE_ID,
//     UNSUPPORTED_ASSIGNOR, INVALID_REGULAR_EXPRESSION,
//     GROUP_MAX_SIZE_REACHED.
//
// Version notes: v1 (Kafka 4.0) requires a client-generated member id
// and adds SubscribedTopicRegex (matched against whole topic names, RE2
// syntax); v0 lets the coordinator name the member.
//
// Not done: client-side assignors, rack-aware assignment, migration of a
// live classic group (mixed groups).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(68, 0, 1, handleConsumerGroupHeartbeat) }

func handleConsumerGroupHeartbeat(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.ConsumerGroupHeartbeatRequest)
	if c.s.Groups == nil {
		resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return now(resp)
	}
	wait := c.s.Groups.ConsumerHeartbeat(req, c.clientID, clientHost(c))
	return later(func() kmsg.Response { return wait() })
}
