package server

// ListTransactions (key 66), versions 0-2.
//
// Behaviour (KIP-664), with the filters ANDed, as Kafka's
// TransactionStateManager.listTransactionStates:
//   - StateFilters: only transactions in one of the named states (Kafka's
//     spelling, e.g. "Ongoing"). Names the coordinator does not know are
//     echoed in UnknownStateFilters and match nothing: a filter of only
//     unknown names lists nothing (it does not fall back to "all").
//   - ProducerIDFilters: only transactions of one of the producer ids.
//   - Ids being expired (Dead) are never listed.
//   - The answer is sorted by transactional id.
//
// Version notes:
//   - v1 (KIP-994): DurationFilterMillis >= 0 keeps only transactions
//     running longer than that many milliseconds (now - start > filter).
//     NB: Kafka compares with the start timestamp even for transactions
//     that are not running (its start timestamp is -1 after
//     InitProducerId, so those always pass); we keep only transactions
//     that have a start time, i.e. are open (Ongoing or being prepared),
//     which is what the KIP describes and what an operator hunting a
//     hanging transaction means.
//   - v2 (KIP-1152): TransactionalIDPattern, an RE2 regular expression the
//     whole transactional id must match (Kafka compiles it with RE2/J and
//     calls matches()); null or empty means no filter. An invalid pattern
//     answers INVALID_REGULAR_EXPRESSION, the error Kafka's message spec
//     names for it; the response has no message field, so the reason is
//     logged on the broker.
//
// Not done: authorization (DESCRIBE on each transactional id).

import (
	"regexp"
	"slices"
	"time"

	"github.com/oncelog/oncelog/internal/txn"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(66, 0, 2, handleListTransactions) }

func handleListTransactions(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.ListTransactionsRequest)
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	if c.s.Txns == nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return now(resp)
	}
	durationMs := int64(-1)
	if req.Version >= 1 {
		durationMs = req.DurationFilterMillis
	}
	var pattern *regexp.Regexp
	if req.Version >= 2 && req.TransactionalIDPattern != nil && *req.TransactionalIDPattern != "" {
		var err error
		pattern, err = regexp.Compile(`^(?:` + *req.TransactionalIDPattern + `)$`)
		if err != nil {
			c.s.lg.Info("ListTransactions with an invalid transactional id pattern", "client_id", c.clientID, "pattern", *req.TransactionalIDPattern, "err", err)
			resp.ErrorCode = kerr.InvalidRegularExpression.Code
			return now(resp)
		}
	}
	var states []txn.State
	for _, name := range req.StateFilters {
		if s, ok := txn.ParseState(name); ok {
			states = append(states, s)
		} else if !slices.Contains(resp.UnknownStateFilters, name) {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, name)
		}
	}
	nowT := time.Now()
	nowMs := nowT.UnixMilli()
	for _, m := range c.s.Txns.List(txn.ListFilter{}, nowT) {
		switch {
		case m.State == txn.Dead:
		case len(req.StateFilters) > 0 && !slices.Contains(states, m.State):
		case len(req.ProducerIDFilters) > 0 && !slices.Contains(req.ProducerIDFilters, m.ProducerID):
		case durationMs >= 0 && (m.StartMs < 0 || nowMs-m.StartMs <= durationMs):
		case pattern != nil && !pattern.MatchString(m.TransactionalID):
		default:
			ts := kmsg.NewListTransactionsResponseTransactionState()
			ts.TransactionalID = m.TransactionalID
			ts.ProducerID = m.ProducerID
			ts.TransactionState = m.State.String()
			resp.TransactionStates = append(resp.TransactionStates, ts)
		}
	}
	return now(resp)
}
