package compat

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oncelog/oncelog/internal/testbroker"
)

// roundTripSummary is the JSON line testdata/idempotent_roundtrip.py prints.
type roundTripSummary struct {
	Produced       int            `json:"produced"`
	Delivered      int            `json:"delivered"`
	DeliveryErrors int            `json:"delivery_errors"`
	DeliverySample []string       `json:"delivery_error_samples"`
	Unflushed      int            `json:"unflushed"`
	Consumed       int            `json:"consumed"`
	ConsumeErrors  int            `json:"consume_errors"`
	ConsumeSample  []string       `json:"consume_error_samples"`
	Duplicates     int            `json:"duplicates"`
	Missing        int            `json:"missing"`
	Unknown        int            `json:"unknown"`
	WrongKey       int            `json:"wrong_key"`
	OrderOK        bool           `json:"order_ok"`
	Partitions     map[string]int `json:"partitions"`
	ProduceSeconds float64        `json:"produce_seconds"`
	ConsumeSeconds float64        `json:"consume_seconds"`
}

// TestConfluentKafkaIdempotentRoundTrip produces 10,000 keyed records with
// librdkafka's idempotent producer (acks=all) to three partitions and reads
// them back by partition assignment: exactly once each, in delivery-report
// offset order per partition.
func TestConfluentKafkaIdempotentRoundTrip(t *testing.T) {
	py := testbroker.Python(t)
	b := startBroker(t, nil)
	const (
		topic      = "confluent-idem"
		partitions = 3
		n          = 10000
	)
	createTopic(t, b.Addr, topic, partitions)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	script := filepath.Join("testdata", "idempotent_roundtrip.py")
	cmd := exec.CommandContext(ctx, py, script, b.Addr, topic, strconv.Itoa(partitions), strconv.Itoa(n))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s timed out\nstderr:\n%s", script, tail(stderr.String(), 30))
	}
	if err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", script, err, stdout.String(), tail(stderr.String(), 30))
	}
	// librdkafka logs protocol errors and retries: the records may all
	// arrive and still the broker said something the client could not parse.
	if bad := librdkafkaErrors(stderr.String()); len(bad) > 0 {
		t.Errorf("librdkafka logged errors:\n%s", strings.Join(bad, "\n"))
	}

	var s roundTripSummary
	line := strings.TrimSpace(stdout.String())
	if i := strings.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	if err := json.Unmarshal([]byte(line), &s); err != nil {
		t.Fatalf("summary %q: %v", line, err)
	}
	t.Logf("summary: %s", line)

	if s.Produced != n || s.Delivered != n || s.DeliveryErrors != 0 || s.Unflushed != 0 {
		t.Errorf("produce: want %d delivered, no errors; got delivered=%d errors=%d unflushed=%d %q",
			n, s.Delivered, s.DeliveryErrors, s.Unflushed, s.DeliverySample)
	}
	if s.Consumed != n || s.Missing != 0 || s.Duplicates != 0 || s.Unknown != 0 {
		t.Errorf("consume: want exactly %d; got consumed=%d missing=%d duplicates=%d unknown=%d",
			n, s.Consumed, s.Missing, s.Duplicates, s.Unknown)
	}
	if s.ConsumeErrors != 0 {
		t.Errorf("consume errors: %d %q", s.ConsumeErrors, s.ConsumeSample)
	}
	if s.WrongKey != 0 {
		t.Errorf("%d records came back with another key", s.WrongKey)
	}
	if !s.OrderOK {
		t.Errorf("per-partition order differs from the delivery reports' offsets")
	}
	if len(s.Partitions) != partitions {
		t.Errorf("records on %d partitions, want %d: %v", len(s.Partitions), partitions, s.Partitions)
	}
}
