// Package metrics exports the broker's Prometheus metrics: request rates and
// latencies per API, fsync latency, produced records and bytes and fetched
// bytes (counted as they happen), and, read from the broker's state at each
// scrape, every partition's offsets and last-stable-offset lag, the open
// transactions and the oldest one's age, transactional ids and groups by
// state, and each group's lag per partition.
//
// A nil *Metrics is valid and records nothing, so the hot paths call it
// unconditionally.
package metrics

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// maxAPIKey bounds the API keys that get a latency series of their own; a
// key past it (or unknown to kmsg) is counted under "unknown".
const maxAPIKey = 127

// Metrics holds the broker's metrics and their registry.
type Metrics struct {
	reg *prometheus.Registry

	// requests[key] observes the seconds from a request's frame being read
	// to its response being written, for each Kafka API key; made at the
	// key's first request, so that only the APIs clients use have series.
	reqVec          *prometheus.HistogramVec
	requests        [maxAPIKey + 2]atomic.Pointer[prometheus.Observer]
	syncSeconds     prometheus.Histogram
	producedRecords prometheus.Counter
	producedBytes   prometheus.Counter
	fetchedBytes    prometheus.Counter
}

// New makes the metrics, with the Go runtime's and the process's own.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	reqs := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "oncelog_request_duration_seconds",
		Help: "Time from a request's frame being read to its response being written (acks=all produce: includes the fsync), by Kafka API.",
		// 50 µs to ~26 s: loopback answers and long-polled fetches.
		Buckets: prometheus.ExponentialBuckets(50e-6, 2, 20),
	}, []string{"api"})
	m.reqVec = reqs
	m.syncSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "oncelog_log_sync_duration_seconds",
		Help:    "Duration of each partition log sync (fsync or fdatasync of a group-commit round).",
		Buckets: prometheus.ExponentialBuckets(25e-6, 2, 18),
	})
	m.producedRecords = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "oncelog_produced_records_total",
		Help: "Records in produce requests' batches that passed validation (a batch refused after that, e.g. a fenced producer's, counts too).",
	})
	m.producedBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "oncelog_produced_bytes_total",
		Help: "Bytes of the record batches counted in oncelog_produced_records_total.",
	})
	m.fetchedBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "oncelog_fetched_bytes_total",
		Help: "Bytes of record batches in fetch responses (sent from the page cache or copied).",
	})
	m.reg.MustRegister(reqs, m.syncSeconds, m.producedRecords, m.producedBytes, m.fetchedBytes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveRequest records one answered request of API key.
func (m *Metrics) ObserveRequest(key int16, d time.Duration) {
	if m == nil {
		return
	}
	i := int(key)
	if i < 0 || i > maxAPIKey {
		i = maxAPIKey + 1
	}
	o := m.requests[i].Load()
	if o == nil {
		name := "unknown"
		if i <= maxAPIKey {
			if n := kmsg.NameForKey(int16(i)); n != "Unknown" && n != "" {
				name = n
			}
		}
		// Two first requests may both get here; WithLabelValues returns
		// the same child to both.
		h := m.reqVec.WithLabelValues(name)
		o = &h
		m.requests[i].Store(o)
	}
	(*o).Observe(d.Seconds())
}

// ObserveSync records one log sync.
func (m *Metrics) ObserveSync(d time.Duration) {
	if m == nil {
		return
	}
	m.syncSeconds.Observe(d.Seconds())
}

// AddProduced counts one batch of records bytes long, queued for append.
func (m *Metrics) AddProduced(records, bytes int) {
	if m == nil {
		return
	}
	m.producedRecords.Add(float64(records))
	m.producedBytes.Add(float64(bytes))
}

// AddFetched counts the record bytes of one fetch response.
func (m *Metrics) AddFetched(bytes int) {
	if m == nil || bytes <= 0 {
		return
	}
	m.fetchedBytes.Add(float64(bytes))
}

// AddState adds the collector of the broker's state, read at each scrape.
// Call it once: its metrics' names are fixed, so a second call is a
// programming error and panics.
func (m *Metrics) AddState(s *State) { m.reg.MustRegister(s) }

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// partitionLabel formats a partition index for a label.
func partitionLabel(p int32) string { return strconv.FormatInt(int64(p), 10) }
