// Package verify checks the exactly-once claims of a Kafka-compatible
// broker from the outside, as a client, while faults are injected. It is
// the engine of `oncelog verify`.
//
// It has three parts:
//
//   - Workloads that drive the broker with franz-go clients. The copy
//     workload is Kafka's own transactions system test: seed records with
//     an idempotent producer, move them with transactional copiers (one
//     transactional id per input partition, or a consumer group with
//     KIP-447 offset commits), read the output with read_committed. The
//     queue workload is Jepsen's Kafka queue test: clients send unique
//     values inside and outside transactions, abort some on purpose, and
//     poll with assign and subscribe, recording every operation.
//   - Faults injected while a workload runs: SIGKILL, SIGTERM and
//     SIGSTOP of a broker process the package started itself, "kills" of
//     copier clients (their connections cut, nothing more sent, as a
//     SIGKILL'd process would), and internal/faultproxy between clients and
//     broker, which cuts connections, delays frames and drops responses.
//   - Checkers. Check reads a history (see Op) and reports every anomaly
//     of the checklist in docs/VERIFY.md: lost and unseen writes,
//     duplicates, inconsistent offsets, aborted reads, reads of open
//     transactions, torn transactions, poll skips, non-monotonic sends and
//     polls; write cycles between transactions (G0) are information, as
//     Kafka's model allows them. CheckCopy compares the copy workload's
//     output with its input: same multiset, no duplicates, same order per
//     partition.
//
// The checkers never trust the client's word for more than it said: an
// operation whose outcome is unknown (a timeout, a cut connection) is "info"
// and may or may not have happened; only definite outcomes constrain the
// broker.
package verify
