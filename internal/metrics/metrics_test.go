package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestRequestSeriesOnlyForUsedAPIs: an API key gets its latency series at
// its first request, keys outside kmsg's range share "unknown", and a nil
// *Metrics records nothing without failing.
func TestRequestSeriesOnlyForUsedAPIs(t *testing.T) {
	var off *Metrics
	off.ObserveRequest(0, time.Millisecond)
	off.ObserveSync(time.Millisecond)
	off.AddProduced(1, 1)
	off.AddFetched(1)

	m := New()
	m.ObserveRequest(0, time.Millisecond) // Produce
	m.ObserveRequest(0, 3*time.Millisecond)
	m.ObserveRequest(-5, time.Millisecond)
	m.ObserveRequest(30000, time.Millisecond)
	m.ObserveSync(200 * time.Microsecond)
	m.AddProduced(10, 1000)
	m.AddFetched(4096)
	m.AddFetched(0)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	text := string(body)
	for _, want := range []string{
		`oncelog_request_duration_seconds_count{api="Produce"} 2`,
		`oncelog_request_duration_seconds_count{api="unknown"} 2`,
		`oncelog_log_sync_duration_seconds_count 1`,
		`oncelog_produced_records_total 10`,
		`oncelog_produced_bytes_total 1000`,
		`oncelog_fetched_bytes_total 4096`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(text, `api="Fetch"`) {
		t.Error("a series for Fetch, which had no request")
	}
}
