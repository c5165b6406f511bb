package config

// What DescribeConfigs shows: the broker's settings with their values and
// defaults, the broker-level name of each topic default, and Kafka's type
// name of every key.

import (
	"sort"
	"strconv"
	"time"
)

// Setting is one broker setting as DescribeConfigs renders it.
type Setting struct {
	Name string
	// Value is the value in force; nil when the setting has none (an
	// unset advertised.listeners).
	Value *string
	// Default is the embedded default's value, nil when it has none.
	// A Value different from Default came from the config file (or the
	// embedding program).
	Default *string
	// Type is Kafka's type name: BOOLEAN, STRING, INT, LONG or LIST.
	Type string
}

// FromDefault reports whether the setting has its embedded default value.
//
// NB: a setting written in the config file with the default's value is
// reported as a default: the broker does not remember where a value came
// from, only what it is.
func (s Setting) FromDefault() bool {
	if s.Value == nil || s.Default == nil {
		return s.Value == nil && s.Default == nil
	}
	return *s.Value == *s.Default
}

type brokerSetting struct {
	name, typ string
	get       func(b *Broker) *string
}

func str(s string) *string { return &s }

func i64(n int64) *string { return str(strconv.FormatInt(n, 10)) }

// brokerSettings lists the broker settings that are not topic defaults.
// Aliases (log.dir, log.roll.hours, log.retention.hours, ...) are not
// listed: the canonical key shows the value they set.
//
// NB: a key added to brokerKeys must be added here too to be described.
var brokerSettings = []brokerSetting{
	{"listeners", "STRING", func(b *Broker) *string { return str("PLAINTEXT://" + b.Listen) }},
	{"advertised.listeners", "STRING", func(b *Broker) *string {
		if b.Advertise == "" {
			return nil
		}
		return str("PLAINTEXT://" + b.Advertise)
	}},
	{"metrics.listen", "STRING", func(b *Broker) *string {
		if b.MetricsListen == "" {
			return nil
		}
		return str(b.MetricsListen)
	}},
	{"log.dirs", "STRING", func(b *Broker) *string { return str(b.DataDir) }},
	{"node.id", "INT", func(b *Broker) *string { return i64(int64(b.NodeID)) }},
	{"broker.id", "INT", func(b *Broker) *string { return i64(int64(b.NodeID)) }},
	{"socket.request.max.bytes", "INT", func(b *Broker) *string { return i64(int64(b.SocketRequestMaxBytes)) }},
	{"max.connections", "INT", func(b *Broker) *string { return i64(int64(b.MaxConnections)) }},
	{"queued.max.requests", "INT", func(b *Broker) *string { return i64(int64(b.MaxInflightPerConn)) }},
	{"num.partitions", "INT", func(b *Broker) *string { return i64(int64(b.NumPartitions)) }},
	{"auto.create.topics.enable", "BOOLEAN", func(b *Broker) *string { return str(strconv.FormatBool(b.AutoCreateTopics)) }},
	{"producer.id.expiration.ms", "INT", func(b *Broker) *string { return i64(b.ProducerIDExpiration.Milliseconds()) }},
	{"group.min.session.timeout.ms", "INT", func(b *Broker) *string { return i64(b.GroupMinSessionTimeout.Milliseconds()) }},
	{"group.max.session.timeout.ms", "INT", func(b *Broker) *string { return i64(b.GroupMaxSessionTimeout.Milliseconds()) }},
	{"group.initial.rebalance.delay.ms", "INT", func(b *Broker) *string { return i64(b.GroupInitialRebalanceDelay.Milliseconds()) }},
	{"group.max.size", "INT", func(b *Broker) *string { return i64(int64(b.GroupMaxSize)) }},
	{"offsets.topic.num.partitions", "INT", func(b *Broker) *string { return i64(int64(b.OffsetsTopicPartitions)) }},
	{"offsets.retention.minutes", "INT", func(b *Broker) *string { return i64(int64(b.OffsetsRetention / time.Minute)) }},
	{"offset.metadata.max.bytes", "INT", func(b *Broker) *string { return i64(int64(b.OffsetMetadataMaxBytes)) }},
	{"group.consumer.session.timeout.ms", "INT", func(b *Broker) *string { return i64(b.ConsumerGroupSessionTimeout.Milliseconds()) }},
	{"group.consumer.heartbeat.interval.ms", "INT", func(b *Broker) *string { return i64(b.ConsumerGroupHeartbeatInterval.Milliseconds()) }},
	{"group.consumer.max.size", "INT", func(b *Broker) *string { return i64(int64(b.ConsumerGroupMaxSize)) }},
	{"transaction.max.timeout.ms", "INT", func(b *Broker) *string { return i64(b.TransactionMaxTimeout.Milliseconds()) }},
	{"transactional.id.expiration.ms", "INT", func(b *Broker) *string { return i64(b.TransactionalIDExpiration.Milliseconds()) }},
	{"transaction.state.log.num.partitions", "INT", func(b *Broker) *string { return i64(int64(b.TransactionStatePartitions)) }},
}

// topicKeyInfo gives, per topic config, the broker setting that holds its
// default and Kafka's type name.
var topicKeyInfo = map[string]struct{ brokerName, typ string }{
	"cleanup.policy":                  {"log.cleanup.policy", "LIST"},
	"compression.type":                {"compression.type", "STRING"},
	"flush.messages":                  {"log.flush.interval.messages", "LONG"},
	"flush.ms":                        {"log.flush.interval.ms", "LONG"},
	"index.interval.bytes":            {"log.index.interval.bytes", "INT"},
	"max.message.bytes":               {"message.max.bytes", "INT"},
	"message.timestamp.after.max.ms":  {"log.message.timestamp.after.max.ms", "LONG"},
	"message.timestamp.before.max.ms": {"log.message.timestamp.before.max.ms", "LONG"},
	"message.timestamp.type":          {"log.message.timestamp.type", "STRING"},
	"min.insync.replicas":             {"min.insync.replicas", "INT"},
	"preallocate":                     {"log.preallocate", "BOOLEAN"},
	"retention.bytes":                 {"log.retention.bytes", "LONG"},
	"retention.ms":                    {"log.retention.ms", "LONG"},
	"segment.bytes":                   {"log.segment.bytes", "INT"},
	"segment.ms":                      {"log.roll.ms", "LONG"},
}

// TopicKeyBrokerName returns the broker setting that gives the default of
// the topic config name (segment.bytes -> log.segment.bytes), or "" if it
// has none.
func TopicKeyBrokerName(name string) string { return topicKeyInfo[name].brokerName }

// TopicKeyType returns Kafka's type name of the topic config name (LONG,
// INT, STRING, LIST, ...), or "" for an unknown key.
func TopicKeyType(name string) string { return topicKeyInfo[name].typ }

// Settings lists the broker's settings, sorted by name: the broker-wide
// ones and every topic default under its broker name (log.segment.bytes,
// log.retention.ms, ...).
func (b *Broker) Settings() []Setting {
	def := Default()
	out := make([]Setting, 0, len(brokerSettings)+len(TopicKeys))
	for _, s := range brokerSettings {
		out = append(out, Setting{Name: s.name, Value: s.get(b), Default: s.get(&def), Type: s.typ})
	}
	for _, k := range TopicKeys {
		info, ok := topicKeyInfo[k.Name]
		if !ok || info.brokerName == "" {
			continue
		}
		out = append(out, Setting{
			Name:    info.brokerName,
			Value:   str(k.Get(&b.TopicDefaults)),
			Default: str(k.Get(&def.TopicDefaults)),
			Type:    info.typ,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
