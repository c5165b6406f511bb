package test

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/oncelog/oncelog/embed"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	dto "github.com/prometheus/client_model/go"
)

// scrape reads the broker's /metrics over HTTP and parses it.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// metricValue finds the sample of family name whose labels include want
// (label=value pairs); a histogram's value is its sample count. ok is false
// if there is none.
func metricValue(fams map[string]*dto.MetricFamily, name string, want ...string) (v float64, ok bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		for _, kv := range want {
			k, val, _ := strings.Cut(kv, "=")
			if labels[k] != val {
				continue next
			}
		}
		switch {
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

func mustMetric(t *testing.T, fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	v, ok := metricValue(fams, name, want...)
	if !ok {
		t.Fatalf("no %s%v in /metrics", name, want)
	}
	return v
}

// TestMetricsEndpoint: with metrics.listen set, /metrics reports what the
// broker did and holds — produce requests and their fsyncs, a partition's
// high watermark, an open transaction and the LSO lag it causes, a group's
// lag — read over HTTP with Prometheus' own parser; after the commit the
// transaction and the lag are gone.
func TestMetricsEndpoint(t *testing.T) {
	b, err := embed.Start(embed.Options{DataDir: t.TempDir(), MetricsListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := testCtx(t)
	_, adm := adminClients(t, b.Addr())
	createTopic(t, ctx, adm, "m", 1)
	createTopic(t, ctx, adm, "m-txn", 1)
	producePlain(t, b.Addr(), "m", 0, "a", "b", "c")
	txn := openTxn(t, b.Addr(), "metrics-txn", "m-txn", map[int32][]string{0: {"x", "y"}})
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "m", Partition: 0, At: 1, LeaderEpoch: -1})
	if r, err := adm.CommitOffsets(ctx, "g", offs); err != nil || r.Error() != nil {
		t.Fatalf("commit: %v %v", err, r.Error())
	}

	if got := readAll(t, b.Addr(), false, "m"); len(got) != 3 {
		t.Fatalf("read back %v", got)
	}

	fams := scrape(t, b.MetricsAddr())
	produced := mustMetric(t, fams, "oncelog_produced_bytes_total")
	if fetched := mustMetric(t, fams, "oncelog_fetched_bytes_total"); fetched <= 0 || fetched > produced {
		t.Errorf("fetched %v record bytes after reading 3 of the %v bytes produced", fetched, produced)
	}
	if n := mustMetric(t, fams, "oncelog_request_duration_seconds", "api=Fetch"); n < 1 {
		t.Errorf("Fetch requests observed: %v", n)
	}
	if n := mustMetric(t, fams, "oncelog_request_duration_seconds", "api=Produce"); n < 5 {
		t.Errorf("Produce requests observed: %v, want at least 5", n)
	}
	if n := mustMetric(t, fams, "oncelog_log_sync_duration_seconds"); n < 5 {
		t.Errorf("log syncs observed: %v, want at least one per acks=all produce (5)", n)
	}
	if n := mustMetric(t, fams, "oncelog_produced_records_total"); n != 5 {
		t.Errorf("produced records %v, want 5", n)
	}
	for _, c := range []struct {
		name  string
		want  float64
		label []string
	}{
		{"oncelog_partition_high_watermark", 3, []string{"topic=m", "partition=0"}},
		{"oncelog_partition_lso_lag_records", 0, []string{"topic=m", "partition=0"}},
		{"oncelog_partition_high_watermark", 2, []string{"topic=m-txn", "partition=0"}},
		{"oncelog_partition_last_stable_offset", 0, []string{"topic=m-txn", "partition=0"}},
		{"oncelog_partition_lso_lag_records", 2, []string{"topic=m-txn", "partition=0"}},
		{"oncelog_transactions_open", 1, nil},
		{"oncelog_transactional_ids", 1, []string{"state=Ongoing"}},
		{"oncelog_group_lag_records", 2, []string{"group=g", "topic=m", "partition=0"}},
		{"oncelog_groups", 1, []string{"state=Empty"}},
	} {
		if got := mustMetric(t, fams, c.name, c.label...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.label, got, c.want)
		}
	}
	if age := mustMetric(t, fams, "oncelog_transaction_oldest_open_seconds"); age < 0 || age > 60 {
		t.Errorf("oldest open transaction %v s old", age)
	}
	if _, ok := metricValue(fams, "go_goroutines"); !ok {
		t.Error("no Go runtime metrics")
	}

	if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	// The markers are written after EndTxn's answer: wait for the LSO.
	deadline := time.Now().Add(10 * time.Second)
	for {
		fams = scrape(t, b.MetricsAddr())
		open := mustMetric(t, fams, "oncelog_transactions_open")
		lag := mustMetric(t, fams, "oncelog_partition_lso_lag_records", "topic=m-txn", "partition=0")
		if open == 0 && lag == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the commit: %v open transactions, LSO lag %v", open, lag)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := mustMetric(t, fams, "oncelog_partition_high_watermark", "topic=m-txn", "partition=0"); got != 3 {
		t.Errorf("m-txn high watermark after the commit marker: %v, want 3", got)
	}
}

// TestMetricsListenTaken: a metrics address that cannot be listened on
// fails the start with an error naming the setting, and leaves nothing
// behind (the data directory can be opened right after).
func TestMetricsListenTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	_, err = embed.Start(embed.Options{DataDir: dir, Settings: map[string]string{"metrics.listen": ln.Addr().String()}})
	if err == nil || !strings.Contains(err.Error(), "metrics.listen") {
		t.Fatalf("start with a taken metrics port: %v", err)
	}
	b, err := embed.Start(embed.Options{DataDir: dir})
	if err != nil {
		t.Fatalf("start after the failed one: %v", err)
	}
	b.Close()
}
