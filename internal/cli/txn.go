package cli

// The txn commands: KIP-664's tooling to find and end hanging transactions,
// in the spirit of kafka-transactions.sh.
//
//	txn list       ListTransactions (+ DescribeTransactions for durations)
//	txn describe   DescribeTransactions
//	txn producers  DescribeProducers
//	txn abort      WriteTxnMarkers at one partition, or, for a transaction
//	               the coordinator knows, InitProducerId (fence and abort)
//
// Aborting, two cases. A transaction the coordinator tracks (the producer
// vanished but its transaction.timeout.ms has not run out, or it is long)
// must be ended by the coordinator, so that every partition gets the same
// outcome: `txn abort --transactional-id ID` sends InitProducerId for ID, as
// a new instance of the producer would; the coordinator bumps the epoch
// (fencing the old producer, which gets PRODUCER_FENCED if it comes back)
// and aborts the open transaction on all its partitions. kadm has no helper
// for this; a raw request does it. A transaction the coordinator does not
// know (its state was lost, or a coordinator bug left a partition open) is
// ended at the partition: `txn abort --topic T --partition P ...` writes an
// abort marker with WriteTxnMarkers, as kafka-transactions.sh abort does.
// Writing such a marker for a transaction the coordinator still tracks ends
// it at that partition only (if the producer then commits, that partition
// stays aborted), so the command refuses unless --force.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnStates are the transaction states as Kafka spells them.
var txnStates = []string{"Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort", "PrepareEpochFence", "Dead"}

// openTxnStates are the states in which a transaction holds partitions
// open (or is about to release them).
var openTxnStates = []string{"Ongoing", "PrepareCommit", "PrepareAbort", "PrepareEpochFence"}

var txnListCmd = command{
	name:    "txn list",
	summary: "list transactional ids with their state and how long they are open",
	help: "Filters combine (all must hold). --state and --producer-id repeat.\n" +
		"--min-duration keeps transactions open longer than the duration (broker\n" +
		"ListTransactions v1+); --pattern is an RE2 expression the whole\n" +
		"transactional id must match (v2+, Kafka 4.1+).\n\n" +
		"Columns: DURATION is how long the open transaction has run (- if none is\n" +
		"open); PARTITIONS how many partitions it holds. States: " + strings.Join(txnStates[:7], ", ") + ".",
	flags: func(fs *flag.FlagSet) func(*env, *connFlags, []string) error {
		var states, pids listFlag
		fs.Var(&states, "state", "only transactions in this `state`, repeatable (e.g. Ongoing)")
		fs.Var(&pids, "producer-id", "only transactions of this producer `id`, repeatable")
		minDur := fs.Duration("min-duration", -1, "only transactions open longer than this `duration` (e.g. 5m)")
		pattern := fs.String("pattern", "", "only transactional ids fully matching this RE2 `regexp`")
		return func(e *env, c *connFlags, _ []string) error {
			for _, s := range states {
				if !slices.Contains(txnStates, s) {
					return usagef("--state %q: want one of %s", s, strings.Join(txnStates, ", "))
				}
			}
			var pidList []int64
			for _, s := range pids {
				n, err := strconv.ParseInt(s, 10, 64)
				if err != nil || n < 0 {
					return usagef("--producer-id %q: want a producer id (a number, 0 or more)", s)
				}
				pidList = append(pidList, n)
			}
			set := setFlags(fs)
			if set["min-duration"] && *minDur < 0 {
				return usagef("--min-duration %v: want 0 or more", *minDur)
			}
			if *pattern != "" {
				if _, err := regexp.Compile(*pattern); err != nil {
					return usagef("--pattern %q: %v", *pattern, err)
				}
			}
			cl, err := c.connect(e.ctx)
			if err != nil {
				return err
			}
			defer cl.Close()
			req := kmsg.NewPtrListTransactionsRequest()
			req.StateFilters = states
			req.ProducerIDFilters = pidList
			req.DurationFilterMillis = -1
			if set["min-duration"] {
				req.DurationFilterMillis = minDur.Milliseconds()
			}
			if *pattern != "" {
				req.TransactionalIDPattern = pattern
			}
			listed, err := listTransactions(e, cl, req)
			if err != nil {
				return err
			}
			ids := make([]string, 0, len(listed))
			for _, l := range listed {
				ids = append(ids, l.TransactionalID)
			}
			described := kadm.DescribedTransactions{}
			if len(ids) > 0 {
				described, err = kadm.NewClient(cl).DescribeTransactions(e.ctx, ids...)
				if err != nil && described == nil {
					return fmt.Errorf("describe transactions: %w", err)
				}
			}
			now := time.Now()
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TRANSACTIONAL-ID\tPRODUCER-ID\tSTATE\tDURATION\tPARTITIONS")
			for _, l := range listed {
				dur, parts := "-", "-"
				if d, ok := described[l.TransactionalID]; ok && d.Err == nil {
					if d.StartTimestamp >= 0 {
						dur = now.Sub(time.UnixMilli(d.StartTimestamp)).Round(time.Millisecond).String()
					}
					parts = strconv.Itoa(countPartitions(d.Topics))
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", l.TransactionalID, l.ProducerID, l.TransactionState, dur, parts)
			}
			return tw.Flush()
		}
	},
}

// listTransactions sends req to every broker and merges the answers,
// failing when a broker cannot apply a filter that was asked for (older
// versions do not carry it, which would silently list too much).
func listTransactions(e *env, cl *kgo.Client, req *kmsg.ListTransactionsRequest) ([]kmsg.ListTransactionsResponseTransactionState, error) {
	var out []kmsg.ListTransactionsResponseTransactionState
	unknown := map[string]bool{}
	for _, sh := range cl.RequestSharded(e.ctx, req) {
		if sh.Err != nil {
			return nil, fmt.Errorf("list transactions (broker %d): %w", sh.Meta.NodeID, sh.Err)
		}
		resp := sh.Resp.(*kmsg.ListTransactionsResponse)
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			if errors.Is(err, kerr.InvalidRegularExpression) {
				return nil, fmt.Errorf("list transactions: the broker refused --pattern %q: %w", *req.TransactionalIDPattern, err)
			}
			return nil, fmt.Errorf("list transactions (broker %d): %w", sh.Meta.NodeID, err)
		}
		if req.DurationFilterMillis >= 0 && resp.Version < 1 {
			return nil, fmt.Errorf("broker %d does not support --min-duration (ListTransactions v1, Kafka 3.8+)", sh.Meta.NodeID)
		}
		if req.TransactionalIDPattern != nil && resp.Version < 2 {
			return nil, fmt.Errorf("broker %d does not support --pattern (ListTransactions v2, Kafka 4.1+)", sh.Meta.NodeID)
		}
		for _, s := range resp.UnknownStateFilters {
			unknown[s] = true
		}
		out = append(out, resp.TransactionStates...)
	}
	for s := range unknown {
		fmt.Fprintf(e.stderr, "oncelog: the broker does not know state %q; it matches nothing\n", s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TransactionalID < out[j].TransactionalID })
	return out, nil
}

func countPartitions(ts kadm.TopicsSet) int {
	n := 0
	for _, ps := range ts {
		n += len(ps)
	}
	return n
}

var txnDescribeCmd = command{
	name:    "txn describe",
	args:    " TRANSACTIONAL-ID",
	summary: "show a transactional id's state, producer, timeout and partitions",
	npos:    1,
	flags: func(fs *flag.FlagSet) func(*env, *connFlags, []string) error {
		return func(e *env, c *connFlags, pos []string) error {
			id := pos[0]
			adm, err := c.admin(e.ctx)
			if err != nil {
				return err
			}
			defer adm.Close()
			d, err := describeTxn(e.ctx, adm, id)
			if err != nil {
				return err
			}
			printTxn(e.stdout, d, time.Now())
			return nil
		}
	},
}

// describeTxn describes one transactional id, wording its errors.
func describeTxn(ctx context.Context, adm *kadm.Client, id string) (kadm.DescribedTransaction, error) {
	ds, err := adm.DescribeTransactions(ctx, id)
	if err != nil && ds == nil {
		return kadm.DescribedTransaction{}, fmt.Errorf("describe transaction %q: %w", id, err)
	}
	d, err := ds.On(id, nil)
	if err == nil {
		err = d.Err
	}
	switch {
	case err == nil:
		return d, nil
	case errors.Is(err, kerr.TransactionalIDNotFound):
		return d, fmt.Errorf("transactional id %q not found", id)
	default:
		return d, fmt.Errorf("describe transaction %q: %w", id, err)
	}
}

func printTxn(w io.Writer, d kadm.DescribedTransaction, now time.Time) {
	fmt.Fprintf(w, "transactional id: %s\n", d.TxnID)
	fmt.Fprintf(w, "coordinator: %d\n", d.Coordinator)
	fmt.Fprintf(w, "state: %s\n", d.State)
	fmt.Fprintf(w, "producer id: %d\n", d.ProducerID)
	fmt.Fprintf(w, "producer epoch: %d\n", d.ProducerEpoch)
	fmt.Fprintf(w, "timeout: %v\n", time.Duration(d.TimeoutMillis)*time.Millisecond)
	if d.StartTimestamp >= 0 {
		start := time.UnixMilli(d.StartTimestamp)
		fmt.Fprintf(w, "started: %s (open %v)\n", start.UTC().Format(time.RFC3339Nano), now.Sub(start).Round(time.Millisecond))
	} else {
		fmt.Fprintf(w, "started: - (no open transaction)\n")
	}
	fmt.Fprintf(w, "partitions: %d\n", countPartitions(d.Topics))
	if len(d.Topics) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION")
	for _, tp := range d.Topics.Sorted() {
		for _, p := range tp.Partitions {
			fmt.Fprintf(tw, "%s\t%d\n", tp.Topic, p)
		}
	}
	tw.Flush()
}

var txnProducersCmd = command{
	name:    "txn producers",
	summary: "show the producer state of a topic's partitions (DescribeProducers)",
	help: "Lists every producer a partition keeps state for, idempotent and\n" +
		"transactional. TXN-START-OFFSET is the first offset of the producer's open\n" +
		"transaction on the partition (- if none): one that stays while the\n" +
		"partition's last stable offset lags is a hanging transaction (see\n" +
		"'oncelog txn abort --help').",
	flags: func(fs *flag.FlagSet) func(*env, *connFlags, []string) error {
		topic := fs.String("topic", "", "`topic` to describe (required)")
		partition := fs.Int("partition", -1, "only this `partition` (default: all)")
		return func(e *env, c *connFlags, _ []string) error {
			if *topic == "" {
				return usagef("--topic is required")
			}
			set := setFlags(fs)
			if set["partition"] && (*partition < 0 || *partition > 1<<31-1) {
				return usagef("--partition %d: want 0 or more", *partition)
			}
			adm, err := c.admin(e.ctx)
			if err != nil {
				return err
			}
			defer adm.Close()
			parts, err := requireTopic(e.ctx, adm, *topic)
			if err != nil {
				return err
			}
			var want []int32
			if set["partition"] {
				if _, ok := parts[int32(*partition)]; !ok {
					return fmt.Errorf("topic %q has no partition %d (it has %d)", *topic, *partition, len(parts))
				}
				want = []int32{int32(*partition)}
			} else {
				want = parts.Numbers()
				slices.Sort(want)
			}
			described, err := describeProducers(e.ctx, adm, *topic, want)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PARTITION\tPRODUCER-ID\tEPOCH\tLAST-SEQUENCE\tLAST-TIMESTAMP\tCOORDINATOR-EPOCH\tTXN-START-OFFSET")
			for _, p := range want {
				for _, pr := range described[p].ActiveProducers.Sorted() {
					start := "-"
					if pr.CurrentTxnStartOffset >= 0 {
						start = strconv.FormatInt(pr.CurrentTxnStartOffset, 10)
					}
					fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\t%d\t%s\n", p, pr.ProducerID, pr.ProducerEpoch, pr.LastSequence,
						fmtMillis(pr.LastTimestamp), pr.CoordinatorEpoch, start)
				}
			}
			return tw.Flush()
		}
	},
}

func fmtMillis(ms int64) string {
	if ms < 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
}

// describeProducers describes the partitions of one topic, failing on any
// partition's error.
func describeProducers(ctx context.Context, adm *kadm.Client, topic string, parts []int32) (kadm.DescribedProducersPartitions, error) {
	dts, err := adm.DescribeProducers(ctx, kadm.TopicsSet{topic: setOf(parts)})
	if err != nil {
		return nil, fmt.Errorf("describe producers of topic %q: %w", topic, err)
	}
	dt := dts[topic]
	for _, p := range parts {
		dp, ok := dt.Partitions[p]
		switch {
		case !ok:
			return nil, fmt.Errorf("describe producers of %s/%d: no answer from the broker", topic, p)
		case dp.Err != nil:
			return nil, fmt.Errorf("describe producers of %s/%d: %w", topic, p, topicErr(topic, dp.Err, dp.ErrMessage))
		}
	}
	return dt.Partitions, nil
}

func setOf(parts []int32) map[int32]struct{} {
	m := make(map[int32]struct{}, len(parts))
	for _, p := range parts {
		m[p] = struct{}{}
	}
	return m
}

var txnAbortCmd = command{
	name:    "txn abort",
	summary: "abort a hanging transaction (at a partition, or through its coordinator)",
	help: "Two forms.\n\n" +
		"  --transactional-id ID\n" +
		"      For a transaction the coordinator knows (see 'txn list'). Sends\n" +
		"      InitProducerId for ID, as a new producer instance would: the\n" +
		"      coordinator bumps the epoch, which fences the old producer (it gets\n" +
		"      PRODUCER_FENCED if it comes back), and aborts the open transaction\n" +
		"      on every partition. Fails if nothing is open.\n\n" +
		"  --topic T --partition P (--producer-id N --producer-epoch E | --start-offset O)\n" +
		"      For a transaction the coordinator does not know, that still holds a\n" +
		"      partition open (see 'txn producers'). Writes an abort marker for the\n" +
		"      producer at that one partition (WriteTxnMarkers), so the last stable\n" +
		"      offset can advance. --start-offset picks the producer whose open\n" +
		"      transaction starts at that offset. If the coordinator still tracks\n" +
		"      the transaction, this refuses: a marker here ends it at this\n" +
		"      partition only, and if the producer then commits, this partition\n" +
		"      stays aborted while the others commit. --force writes it anyway.",
	flags: func(fs *flag.FlagSet) func(*env, *connFlags, []string) error {
		id := fs.String("transactional-id", "", "abort this `transactional id`'s open transaction through its coordinator")
		topic := fs.String("topic", "", "`topic` of the partition holding the transaction open")
		partition := fs.Int("partition", -1, "`partition` holding the transaction open")
		pid := fs.Int64("producer-id", -1, "producer `id` whose transaction to abort")
		epoch := fs.Int("producer-epoch", -1, "producer `epoch` of that transaction")
		coordEpoch := fs.Int("coordinator-epoch", -1, "coordinator `epoch` for the marker (default: the partition's, from DescribeProducers)")
		startOffset := fs.Int64("start-offset", -1, "abort the transaction whose first `offset` on the partition is this")
		force := fs.Bool("force", false, "write the marker even though the coordinator still tracks the transaction")
		return func(e *env, c *connFlags, _ []string) error {
			set := setFlags(fs)
			partFlags := []string{"topic", "partition", "producer-id", "producer-epoch", "coordinator-epoch", "start-offset", "force"}
			if set["transactional-id"] {
				for _, f := range partFlags {
					if set[f] {
						return usagef("--transactional-id and --%s do not go together (two forms; see --help)", f)
					}
				}
				if *id == "" {
					return usagef("--transactional-id is empty")
				}
				return abortByID(e, c, *id)
			}
			switch {
			case *topic == "":
				return usagef("want --transactional-id, or --topic and --partition (see --help)")
			case !set["partition"]:
				return usagef("--partition is required with --topic")
			case *partition < 0 || *partition > 1<<31-1:
				return usagef("--partition %d: want 0 or more", *partition)
			case set["start-offset"] && (set["producer-id"] || set["producer-epoch"]):
				return usagef("--start-offset and --producer-id/--producer-epoch do not go together")
			case set["start-offset"] && *startOffset < 0:
				return usagef("--start-offset %d: want 0 or more", *startOffset)
			case !set["start-offset"] && (!set["producer-id"] || !set["producer-epoch"]):
				return usagef("want --producer-id and --producer-epoch, or --start-offset")
			case set["producer-id"] && *pid < 0:
				return usagef("--producer-id %d: want 0 or more", *pid)
			case set["producer-epoch"] && (*epoch < 0 || *epoch > 1<<15-1):
				return usagef("--producer-epoch %d: want 0..32767", *epoch)
			case set["coordinator-epoch"] && (*coordEpoch < 0 || *coordEpoch > 1<<31-1):
				return usagef("--coordinator-epoch %d: want 0 or more", *coordEpoch)
			}
			spec := abortSpec{topic: *topic, partition: int32(*partition), producerID: *pid, epoch: int16(*epoch),
				coordinatorEpoch: int32(*coordEpoch), startOffset: *startOffset, force: *force}
			return abortAtPartition(e, c, spec)
		}
	},
}

// abortByID aborts id's open transaction through the coordinator.
func abortByID(e *env, c *connFlags, id string) error {
	cl, err := c.connect(e.ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	d, err := describeTxn(e.ctx, adm, id)
	if err != nil {
		return err
	}
	switch d.State {
	case "Ongoing":
	case "PrepareCommit", "PrepareAbort", "PrepareEpochFence":
		return fmt.Errorf("transaction %q is in %s: its coordinator is already ending it (writing markers); nothing to abort", id, d.State)
	default:
		return fmt.Errorf("transactional id %q has no open transaction (state %s); nothing to abort", id, d.State)
	}
	// InitProducerId for the id, as a new instance of the producer: the
	// coordinator fences the old epoch and aborts the open transaction
	// before it answers. Kafka answers CONCURRENT_TRANSACTIONS while the
	// abort completes, and the client retries, as producers do.
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID = &id
	req.TransactionTimeoutMillis = d.TimeoutMillis
	req.ProducerID, req.ProducerEpoch = -1, -1
	var resp *kmsg.InitProducerIDResponse
	for attempt := 0; ; attempt++ {
		resp, err = req.RequestWith(e.ctx, cl)
		if err != nil {
			return fmt.Errorf("abort transaction %q: InitProducerId: %w", id, err)
		}
		kerrv := kerr.ErrorForCode(resp.ErrorCode)
		if kerrv == nil {
			break
		}
		if attempt < 20 && (errors.Is(kerrv, kerr.ConcurrentTransactions) || errors.Is(kerrv, kerr.CoordinatorLoadInProgress) || errors.Is(kerrv, kerr.CoordinatorNotAvailable) || errors.Is(kerrv, kerr.NotCoordinator)) {
			select {
			case <-e.ctx.Done():
				return e.ctx.Err()
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		return fmt.Errorf("abort transaction %q: InitProducerId: %w", id, kerrv)
	}
	after, err := describeTxn(e.ctx, adm, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "aborted the open transaction of %q through its coordinator: producer %d epoch %d fenced (now epoch %d), state %s\n",
		id, d.ProducerID, d.ProducerEpoch, resp.ProducerEpoch, after.State)
	for _, tp := range d.Topics.Sorted() {
		for _, p := range tp.Partitions {
			fmt.Fprintf(e.stdout, "  %s/%d\n", tp.Topic, p)
		}
	}
	return nil
}

type abortSpec struct {
	topic            string
	partition        int32
	producerID       int64 // -1 with startOffset
	epoch            int16
	coordinatorEpoch int32 // -1: take the partition's
	startOffset      int64 // -1 unless the producer is found by it
	force            bool
}

// abortAtPartition writes an abort marker at one partition.
func abortAtPartition(e *env, c *connFlags, s abortSpec) error {
	cl, err := c.connect(e.ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	parts, err := requireTopic(e.ctx, adm, s.topic)
	if err != nil {
		return err
	}
	if _, ok := parts[s.partition]; !ok {
		return fmt.Errorf("topic %q has no partition %d (it has %d)", s.topic, s.partition, len(parts))
	}
	described, err := describeProducers(e.ctx, adm, s.topic, []int32{s.partition})
	if err != nil {
		return err
	}
	where := fmt.Sprintf("%s/%d", s.topic, s.partition)
	producers := described[s.partition].ActiveProducers
	var cur kadm.DescribedProducer
	found := false
	if s.startOffset >= 0 {
		for _, p := range producers.Sorted() {
			if p.CurrentTxnStartOffset == s.startOffset {
				cur, found = p, true
				break
			}
		}
		if !found {
			return fmt.Errorf("no open transaction on %s starts at offset %d (see 'oncelog txn producers --topic %s --partition %d')", where, s.startOffset, s.topic, s.partition)
		}
		s.producerID, s.epoch = cur.ProducerID, cur.ProducerEpoch
	} else {
		cur, found = producers[s.producerID]
		if !found || cur.CurrentTxnStartOffset < 0 {
			return fmt.Errorf("producer %d has no open transaction on %s; nothing to abort", s.producerID, where)
		}
		if cur.ProducerEpoch != s.epoch {
			return fmt.Errorf("producer %d is at epoch %d on %s, not %d; nothing to abort for epoch %d", s.producerID, cur.ProducerEpoch, where, s.epoch, s.epoch)
		}
	}
	if s.coordinatorEpoch < 0 {
		s.coordinatorEpoch = cur.CoordinatorEpoch
	}
	if tracked, err := trackingTxn(e.ctx, cl, adm, s); err != nil {
		return err
	} else if tracked != "" && !s.force {
		return fmt.Errorf("the coordinator still tracks transactional id %q of producer %d, open on %s: aborting here alone would leave this partition aborted if the producer commits; run 'oncelog txn abort --transactional-id %s' to abort it on all its partitions, or add --force", tracked, s.producerID, where, tracked)
	}
	rs, err := adm.WriteTxnMarkers(e.ctx, kadm.TxnMarkers{
		ProducerID:       s.producerID,
		ProducerEpoch:    s.epoch,
		Commit:           false,
		CoordinatorEpoch: s.coordinatorEpoch,
		Topics:           kadm.TopicsSet{s.topic: setOf([]int32{s.partition})},
	})
	if err != nil {
		return fmt.Errorf("write abort marker to %s: %w", where, err)
	}
	answered := false
	for _, r := range rs.SortedPartitions() {
		if r.Topic != s.topic || r.Partition != s.partition {
			continue
		}
		answered = true
		if r.Err != nil {
			return fmt.Errorf("write abort marker to %s: %w", where, r.Err)
		}
	}
	if !answered {
		return fmt.Errorf("write abort marker to %s: no answer for the partition", where)
	}
	fmt.Fprintf(e.stdout, "aborted the transaction of producer %d (epoch %d) on %s; it started at offset %d\n",
		s.producerID, s.epoch, where, cur.CurrentTxnStartOffset)
	return nil
}

// trackingTxn returns the transactional id whose open transaction, as the
// coordinator sees it, belongs to the producer and includes the partition,
// or "".
func trackingTxn(ctx context.Context, cl *kgo.Client, adm *kadm.Client, s abortSpec) (string, error) {
	listed, err := adm.ListTransactions(ctx, []int64{s.producerID}, openTxnStates)
	if err != nil && listed == nil {
		return "", fmt.Errorf("list transactions of producer %d: %w", s.producerID, err)
	}
	ids := listed.TransactionalIDs()
	if len(ids) == 0 {
		return "", nil
	}
	ds, err := adm.DescribeTransactions(ctx, ids...)
	if err != nil && ds == nil {
		return "", fmt.Errorf("describe transactions of producer %d: %w", s.producerID, err)
	}
	for _, id := range ids {
		d, ok := ds[id]
		if !ok || d.Err != nil || d.ProducerID != s.producerID || !slices.Contains(openTxnStates, d.State) {
			continue
		}
		if _, in := d.Topics[s.topic][s.partition]; in {
			return id, nil
		}
	}
	return "", nil
}

// setFlags names the flags given on the command line.
func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// txnUsage lists the txn commands (for "oncelog txn" alone or with --help).
func txnUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: oncelog txn <list|describe|producers|abort> [flags]\n\n")
	for _, c := range commands {
		if strings.HasPrefix(c.name, "txn ") {
			fmt.Fprintf(w, "  %-20s %s\n", c.name, c.summary)
		}
	}
}

// txnGroup answers "oncelog txn" with no or an unknown subcommand.
func txnGroup(e *env, args []string) int {
	if len(args) == 1 || isHelp(args[1]) {
		if len(args) > 1 {
			txnUsage(e.stdout)
			return ExitOK
		}
		txnUsage(e.stderr)
		return ExitUsage
	}
	fmt.Fprintf(e.stderr, "oncelog: unknown command \"txn %s\"\n", args[1])
	txnUsage(e.stderr)
	return ExitUsage
}
