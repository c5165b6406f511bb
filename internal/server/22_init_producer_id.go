package server

// InitProducerId (key 22), versions 0-5.
//
// Behaviour:
//   - Without a transactional id: a fresh producer id, never used before on
//     this broker even across restarts, with epoch 0. A producer that sends
//     its old id and epoch (v3+, KIP-360) also gets a fresh id: it is
//     idempotent only, so nothing needs to be fenced.
//
// Not done: transactional ids (the transaction coordinator) are answered
// with TRANSACTIONAL_ID_AUTHORIZATION_FAILED, a fatal error for the client,
// until transactions are served.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(22, 0, 5, handleInitProducerID) }

func handleInitProducerID(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return now(resp)
	}
	id, err := c.s.b.AllocateProducerID()
	if err != nil {
		c.s.lg.Error("allocating producer id failed", "err", err)
		resp.ErrorCode = kerr.KafkaStorageError.Code
		return now(resp)
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return now(resp)
}
