package metrics

import (
	"time"

	"github.com/oncelog/oncelog/internal/broker"
	"github.com/oncelog/oncelog/internal/group"
	"github.com/oncelog/oncelog/internal/txn"
	"github.com/prometheus/client_golang/prometheus"
)

// State is a collector of what the broker holds, read at each scrape: a
// scrape costs one pass over the partitions, transactional ids and groups,
// under each one's own lock, and nothing between scrapes.
type State struct {
	Broker *broker.Broker
	Groups *group.Coordinator // may be nil
	Txns   *txn.Coordinator   // may be nil
	// Now is the clock transaction ages are measured against.
	Now func() time.Time
}

var (
	partLabels    = []string{"topic", "partition"}
	descLogStart  = prometheus.NewDesc("oncelog_partition_log_start_offset", "First offset a fetch can read.", partLabels, nil)
	descHW        = prometheus.NewDesc("oncelog_partition_high_watermark", "Offset after the last durable record (what read_uncommitted consumers see).", partLabels, nil)
	descLSO       = prometheus.NewDesc("oncelog_partition_last_stable_offset", "First offset of the oldest open transaction, or the high watermark (what read_committed consumers see).", partLabels, nil)
	descLSOLag    = prometheus.NewDesc("oncelog_partition_lso_lag_records", "High watermark minus last stable offset: records read_committed consumers wait for because a transaction is open.", partLabels, nil)
	descOpenTxns  = prometheus.NewDesc("oncelog_transactions_open", "Transactions begun and not yet completed (Ongoing, PrepareCommit, PrepareAbort).", nil, nil)
	descOldestTxn = prometheus.NewDesc("oncelog_transaction_oldest_open_seconds", "Age of the oldest open transaction; 0 when none is open.", nil, nil)
	descTxnIDs    = prometheus.NewDesc("oncelog_transactional_ids", "Transactional ids the coordinator holds, by state.", []string{"state"}, nil)
	descGroups    = prometheus.NewDesc("oncelog_groups", "Consumer groups, by state.", []string{"state"}, nil)
	descGroupLag  = prometheus.NewDesc("oncelog_group_lag_records", "High watermark minus the group's committed offset, per partition it committed.", []string{"group", "topic", "partition"}, nil)
	txnStates     = []string{"Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort", "Dead", "PrepareEpochFence"}
	openTxnStates = map[string]bool{"Ongoing": true, "PrepareCommit": true, "PrepareAbort": true}
	stateDescs    = []*prometheus.Desc{descLogStart, descHW, descLSO, descLSOLag, descOpenTxns, descOldestTxn, descTxnIDs, descGroups, descGroupLag}
)

// Describe sends every metric's description.
func (s *State) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range stateDescs {
		ch <- d
	}
}

// Collect reads the state.
func (s *State) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	hw := map[group.TopicPartition]int64{}
	for _, t := range s.Broker.Topics() {
		for i, p := range t.Partitions {
			if p == nil {
				continue
			}
			o := p.Offsets()
			l := partitionLabel(int32(i))
			gauge(descLogStart, float64(o.LogStartOffset), t.Name, l)
			gauge(descHW, float64(o.HighWatermark), t.Name, l)
			gauge(descLSO, float64(o.LastStableOffset), t.Name, l)
			gauge(descLSOLag, float64(max(0, o.HighWatermark-o.LastStableOffset)), t.Name, l)
			hw[group.TopicPartition{Topic: t.Name, Partition: int32(i)}] = o.HighWatermark
		}
	}
	if s.Txns != nil {
		now := s.Now()
		byState := map[string]int{}
		open, oldest := 0, time.Duration(0)
		for _, m := range s.Txns.List(txn.ListFilter{}, now) {
			st := m.State.String()
			byState[st]++
			if openTxnStates[st] && m.StartMs >= 0 {
				open++
				oldest = max(oldest, now.Sub(time.UnixMilli(m.StartMs)))
			}
		}
		gauge(descOpenTxns, float64(open))
		gauge(descOldestTxn, oldest.Seconds())
		for _, st := range txnStates {
			gauge(descTxnIDs, float64(byState[st]), st)
		}
	}
	if s.Groups != nil {
		byState := map[string]int{}
		for _, g := range s.Groups.List() {
			byState[g.State]++
			for tp, o := range s.Groups.FetchOffsets(g.ID, nil) {
				if end, ok := hw[tp]; ok && o.Offset >= 0 {
					gauge(descGroupLag, float64(max(0, end-o.Offset)), g.ID, tp.Topic, partitionLabel(tp.Partition))
				}
			}
		}
		for st, n := range byState {
			gauge(descGroups, float64(n), st)
		}
	}
}
