// Package compat runs real Kafka clients against the real oncelog binary:
// kcat and python3-confluent-kafka (both librdkafka) from Debian, and
// franz-go's own kgo integration suite.
//
// Every test starts the oncelog binary (internal/testbroker builds it once
// per test binary) on a free loopback port with a fresh data directory,
// then stops it with SIGTERM and checks that it exited cleanly.
//
// A client tool that is missing makes a test skip locally and fail in CI
// (CI=true); scripts/install-test-deps.sh installs them.
package compat

import (
	"context"
	"testing"
	"time"

	"github.com/oncelog/oncelog/internal/testbroker"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestMain(m *testing.M) { testbroker.Main(m) }

// startBroker starts `oncelog serve` on a free loopback port and stops it
// with SIGTERM when the test ends, failing the test unless it is still
// running then and stops cleanly. settings are broker settings under
// Kafka's names, passed with --config.
func startBroker(t *testing.T, settings map[string]string) *testbroker.Broker {
	t.Helper()
	return testbroker.Start(t, testbroker.Options{Settings: settings, CleanStop: true})
}

// createTopic creates a topic with franz-go's admin client.
func createTopic(t *testing.T, addr, topic string, partitions int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}
