package server

// EndTxn (key 26), versions 0-5.
//
// Behaviour:
//   - Commits or aborts the producer's open transaction: PrepareCommit (or
//     PrepareAbort) is made durable in __transaction_state, then a marker
//     is written to every partition of the transaction (data partitions and
//     the groups' offsets partitions), and the answer is sent once all
//     markers are durable, so the next transaction can start at once.
//   - A retry of an EndTxn that already finished with the same outcome
//     succeeds; with the other outcome it gets INVALID_TXN_STATE. Ending a
//     transaction that was never started gets INVALID_TXN_STATE; a
//     transactional id the coordinator never saw gets
//     INVALID_PRODUCER_ID_MAPPING (it does not succeed).
//   - An older epoch gets PRODUCER_FENCED (v2+) or INVALID_PRODUCER_EPOCH.
//
// Version notes: v5 (transaction protocol v2, KIP-890 part 2) ends every
// transaction by bumping the producer epoch: the markers carry the new
// epoch, so a delayed produce of the ended transaction is fenced at the
// partition, and the response returns the producer id and epoch for the
// next transaction (a new producer id when the epoch is exhausted). A retry
// with the old epoch gets the same answer.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(26, 0, 5, handleEndTxn) }

func handleEndTxn(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.EndTxnRequest)
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	if c.s.Txns == nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return now(resp)
	}
	return later(func() kmsg.Response {
		r := c.s.Txns.EndTxn(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit, req.Version >= 5, req.Version >= 2)
		if r.Err != nil {
			resp.ErrorCode = r.Err.Code
			resp.ProducerID, resp.ProducerEpoch = -1, -1
			return resp
		}
		resp.ProducerID, resp.ProducerEpoch = r.ProducerID, r.ProducerEpoch
		return resp
	})
}
