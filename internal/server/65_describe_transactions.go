package server

// DescribeTransactions (key 65), version 0.
//
// Behaviour (KIP-664):
//   - Per transactional id, the coordinator's view: the state as Kafka
//     spells it (Empty, Ongoing, PrepareCommit, PrepareAbort,
//     CompleteCommit, CompleteAbort, PrepareEpochFence), the transaction
//     timeout, the start time of the open transaction (-1 if none), the
//     producer id and epoch, and the partitions of the open transaction
//     grouped by topic. During PrepareCommit/PrepareAbort the partitions
//     are all of the transaction's until every marker is written (Kafka
//     lists only those still waiting for one).
//   - An id the coordinator does not know, or one being expired (Dead):
//     TRANSACTIONAL_ID_NOT_FOUND. An empty id: INVALID_REQUEST. Both as
//     Kafka's TransactionCoordinator.handleDescribeTransactions.
//   - Ids are answered in request order, each carrying its id.
//
// Not done: authorization (DESCRIBE on the id, topics filtered by DESCRIBE).

import (
	"github.com/oncelog/oncelog/internal/txn"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(65, 0, 0, handleDescribeTransactions) }

func handleDescribeTransactions(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.DescribeTransactionsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	for _, id := range req.TransactionalIDs {
		st := kmsg.NewDescribeTransactionsResponseTransactionState()
		st.TransactionalID = id
		st.StartTimestamp, st.ProducerID, st.ProducerEpoch = -1, -1, -1
		switch {
		case c.s.Txns == nil:
			st.ErrorCode = kerr.CoordinatorNotAvailable.Code
		case id == "":
			st.ErrorCode = kerr.InvalidRequest.Code
		default:
			m, ok := c.s.Txns.Describe(id)
			if !ok || m.State == txn.Dead {
				st.ErrorCode = kerr.TransactionalIDNotFound.Code
				break
			}
			fillDescribedTxn(&st, &m)
		}
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return now(resp)
}

func fillDescribedTxn(st *kmsg.DescribeTransactionsResponseTransactionState, m *txn.Metadata) {
	st.State = m.State.String()
	st.TimeoutMillis = m.TimeoutMs
	st.StartTimestamp = m.StartMs
	st.ProducerID = m.ProducerID
	st.ProducerEpoch = m.ProducerEpoch
	// m.Partitions is sorted by topic, then partition.
	for _, tp := range m.Partitions {
		if n := len(st.Topics); n == 0 || st.Topics[n-1].Topic != tp.Topic {
			t := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
			t.Topic = tp.Topic
			st.Topics = append(st.Topics, t)
		}
		last := &st.Topics[len(st.Topics)-1]
		last.Partitions = append(last.Partitions, tp.Partition)
	}
}
