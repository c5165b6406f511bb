package config

import (
	"strings"
	"testing"
)

// TestEveryBrokerKeyIsDescribed keeps DescribeConfigs in step with the
// settings the broker accepts: a key that can be set must be shown.
func TestEveryBrokerKeyIsDescribed(t *testing.T) {
	described := map[string]bool{}
	for _, s := range brokerSettings {
		described[s.name] = true
	}
	for _, info := range topicKeyInfo {
		described[info.brokerName] = true
	}
	aliases := map[string]bool{"log.dir": true, "log.roll.hours": true, "log.retention.minutes": true, "log.retention.hours": true}
	for k := range brokerKeys {
		if !described[k] && !aliases[k] {
			t.Errorf("broker setting %s can be set but is not described", k)
		}
	}
}

func TestLoadRejectsUnknownAndBadValues(t *testing.T) {
	b := Default()
	if err := b.Load(strings.NewReader("# comment\nlog.segment.bytes=16384\nnum.partitions = 3\n")); err != nil {
		t.Fatal(err)
	}
	if b.TopicDefaults.SegmentBytes != 16384 || b.NumPartitions != 3 {
		t.Fatalf("loaded %+v", b)
	}
	for _, bad := range []string{"no.such.key=1", "num.partitions=zero", "num.partitions=0", "justakey"} {
		b := Default()
		if err := b.Load(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		} else if !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%q: error %q does not name the line", bad, err)
		}
	}
}

func TestResolveTopic(t *testing.T) {
	d := Default().TopicDefaults
	got, err := ResolveTopic(d, map[string]string{"retention.ms": "-1", "message.timestamp.type": "LogAppendTime"})
	if err != nil {
		t.Fatal(err)
	}
	if got.RetentionMs >= 0 || got.MessageTimestampType != "LogAppendTime" {
		t.Fatalf("resolved %+v", got)
	}
	for _, bad := range []map[string]string{{"retention.ms": "x"}, {"nope": "1"}, {"message.timestamp.type": "Other"}} {
		if _, err := ResolveTopic(d, bad); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}
