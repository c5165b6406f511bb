package server

// InitProducerId (key 22), versions 0-5.
//
// Behaviour:
//   - Without a transactional id: a fresh producer id, never used before on
//     this broker even across restarts, with epoch 0. A producer that sends
//     its old id and epoch (v3+, KIP-360) also gets a fresh id: it is
//     idempotent only, so nothing needs to be fenced.
//
//   - With a transactional id (internal/txn): a new producer id for a new
//     id; otherwise the epoch is bumped, fencing the previous instance,
//     after its open transaction is aborted. KIP-360: a client naming its
//     current producer id and epoch gets the bump; naming the previous
//     epoch (a retry) gets the current one; anything else is fenced.
//   - TransactionTimeoutMillis above transaction.max.timeout.ms (or not
//     positive) gets INVALID_TRANSACTION_TIMEOUT.
//
// Version notes: v4 answers PRODUCER_FENCED where older versions get
// INVALID_PRODUCER_EPOCH.

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
		if c.s.Txns == nil {
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
			return now(resp)
		}
		id, timeout, pid, epoch, knowsFenced := *req.TransactionalID, req.TransactionTimeoutMillis, req.ProducerID, req.ProducerEpoch, req.Version >= 4
		return later(func() kmsg.Response {
			r := c.s.Txns.InitProducerID(id, timeout, pid, epoch, knowsFenced)
			resp.ProducerID, resp.ProducerEpoch = r.ProducerID, r.ProducerEpoch
			if r.Err != nil {
				resp.ErrorCode = r.Err.Code
			}
			return resp
		})
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
