// Package config holds the broker's settings and the per-topic settings, under
// the names Apache Kafka gives them, with Kafka's defaults where they are safe.
package config

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Broker is the broker-wide configuration. Zero values are not meaningful;
// start from Default.
type Broker struct {
	// Listen is the address the broker accepts connections on.
	Listen string
	// Advertise is the address told to clients in Metadata; Listen if empty.
	Advertise string
	// DataDir holds every durable file of the broker.
	DataDir string
	// MetricsListen (metrics.listen, oncelog's own key) is the address of
	// the Prometheus endpoint, http://MetricsListen/metrics; off when empty.
	MetricsListen string

	NodeID                       int32
	SocketRequestMaxBytes        int32 // socket.request.max.bytes
	MaxConnections               int   // max.connections
	MaxInflightPerConn           int   // queued.max.requests, per connection here
	NumPartitions                int32 // num.partitions
	AutoCreateTopics             bool  // auto.create.topics.enable
	ProducerIDExpiration         time.Duration
	MaxFetchWaiters              int // fetch requests parked in long polls, broker-wide
	ProducerStateMaxPerPartition int // producer ids kept per partition before the oldest idle one is evicted

	// Group coordinator settings.
	GroupMinSessionTimeout     time.Duration // group.min.session.timeout.ms
	GroupMaxSessionTimeout     time.Duration // group.max.session.timeout.ms
	GroupInitialRebalanceDelay time.Duration // group.initial.rebalance.delay.ms
	GroupMaxSize               int           // group.max.size
	OffsetsTopicPartitions     int32         // offsets.topic.num.partitions
	OffsetsRetention           time.Duration // offsets.retention.minutes
	OffsetMetadataMaxBytes     int           // offset.metadata.max.bytes

	// KIP-848 consumer group settings.
	ConsumerGroupSessionTimeout    time.Duration // group.consumer.session.timeout.ms
	ConsumerGroupHeartbeatInterval time.Duration // group.consumer.heartbeat.interval.ms
	ConsumerGroupMaxSize           int           // group.consumer.max.size

	// Transaction coordinator settings.
	TransactionMaxTimeout      time.Duration // transaction.max.timeout.ms
	TransactionalIDExpiration  time.Duration // transactional.id.expiration.ms
	TransactionStatePartitions int32         // transaction.state.log.num.partitions

	// TopicDefaults are the broker-level defaults of every topic config
	// (log.segment.bytes becomes segment.bytes and so on).
	TopicDefaults Topic
}

// Topic is the configuration of one topic after defaults and overrides.
type Topic struct {
	CleanupPolicy        string        // cleanup.policy (only "delete" is enforced)
	RetentionMs          time.Duration // retention.ms; negative = unlimited
	RetentionBytes       int64         // retention.bytes; negative = unlimited
	SegmentBytes         int64         // segment.bytes
	SegmentMs            time.Duration // segment.ms
	IndexIntervalBytes   int           // index.interval.bytes
	MaxMessageBytes      int32         // max.message.bytes
	MessageTimestampType string        // message.timestamp.type: CreateTime or LogAppendTime
	TimestampBeforeMaxMs int64         // message.timestamp.before.max.ms
	TimestampAfterMaxMs  int64         // message.timestamp.after.max.ms
	MinInsyncReplicas    int           // min.insync.replicas (always satisfied on one node)
	FlushMessages        int64         // flush.messages: fsync after this many messages (1 = every batch)
	FlushMs              time.Duration // flush.ms
	CompressionType      string        // compression.type: only "producer" (stored as sent)
	// Preallocate (preallocate): the active segment grows by pre-zeroed
	// extents while its syncs are small, so such a sync is an fdatasync
	// that needs no journal commit (internal/partlog, bulkSyncBytes). On by
	// default, unlike Kafka (whose preallocate sizes a whole segment at
	// roll): it lowers the latency of small synced appends, and a log whose
	// syncs are large writes no zeros, so throughput does not pay for it.
	Preallocate bool
}

// Default returns the embedded defaults: a broker that needs no config file.
func Default() Broker {
	return Broker{
		Listen:                         "127.0.0.1:9092",
		DataDir:                        "./oncelog-data",
		NodeID:                         0,
		SocketRequestMaxBytes:          100 << 20,
		MaxConnections:                 10000,
		MaxInflightPerConn:             100,
		NumPartitions:                  1,
		AutoCreateTopics:               true,
		ProducerIDExpiration:           24 * time.Hour,
		MaxFetchWaiters:                10000,
		ProducerStateMaxPerPartition:   100000,
		GroupMinSessionTimeout:         6 * time.Second,
		GroupMaxSessionTimeout:         30 * time.Minute,
		GroupInitialRebalanceDelay:     3 * time.Second,
		GroupMaxSize:                   1 << 20,
		OffsetsTopicPartitions:         50,
		OffsetsRetention:               7 * 24 * time.Hour,
		OffsetMetadataMaxBytes:         4096,
		ConsumerGroupSessionTimeout:    45 * time.Second,
		ConsumerGroupHeartbeatInterval: 5 * time.Second,
		ConsumerGroupMaxSize:           1 << 20,
		TransactionMaxTimeout:          15 * time.Minute,
		TransactionalIDExpiration:      7 * 24 * time.Hour,
		TransactionStatePartitions:     50,
		TopicDefaults: Topic{
			CleanupPolicy:        "delete",
			RetentionMs:          7 * 24 * time.Hour,
			RetentionBytes:       -1,
			SegmentBytes:         1 << 30,
			SegmentMs:            7 * 24 * time.Hour,
			IndexIntervalBytes:   4096,
			MaxMessageBytes:      1048588,
			MessageTimestampType: "CreateTime",
			TimestampBeforeMaxMs: math.MaxInt64,
			TimestampAfterMaxMs:  math.MaxInt64,
			MinInsyncReplicas:    1,
			FlushMessages:        1,
			FlushMs:              0,
			CompressionType:      "producer",
			Preallocate:          true,
		},
	}
}

// Error is a configuration error naming the key.
type Error struct {
	Key, Value, Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("config %s=%q: %s", e.Key, e.Value, e.Reason)
}

// brokerKeys maps broker-level keys to setters.
var brokerKeys = map[string]func(b *Broker, v string) error{
	"listeners":                            func(b *Broker, v string) error { b.Listen = stripScheme(v); return nil },
	"advertised.listeners":                 func(b *Broker, v string) error { b.Advertise = stripScheme(v); return nil },
	"metrics.listen":                       func(b *Broker, v string) error { b.MetricsListen = stripScheme(v); return nil },
	"log.dirs":                             func(b *Broker, v string) error { b.DataDir = v; return nil },
	"log.dir":                              func(b *Broker, v string) error { b.DataDir = v; return nil },
	"node.id":                              intSetter(func(b *Broker, n int64) { b.NodeID = int32(n) }, 0, math.MaxInt32),
	"broker.id":                            intSetter(func(b *Broker, n int64) { b.NodeID = int32(n) }, 0, math.MaxInt32),
	"socket.request.max.bytes":             intSetter(func(b *Broker, n int64) { b.SocketRequestMaxBytes = int32(n) }, 1024, math.MaxInt32),
	"max.connections":                      intSetter(func(b *Broker, n int64) { b.MaxConnections = int(n) }, 1, math.MaxInt32),
	"queued.max.requests":                  intSetter(func(b *Broker, n int64) { b.MaxInflightPerConn = int(n) }, 1, 10000),
	"num.partitions":                       intSetter(func(b *Broker, n int64) { b.NumPartitions = int32(n) }, 1, 1<<20),
	"auto.create.topics.enable":            boolSetter(func(b *Broker, v bool) { b.AutoCreateTopics = v }),
	"producer.id.expiration.ms":            durSetter(func(b *Broker, d time.Duration) { b.ProducerIDExpiration = d }),
	"log.segment.bytes":                    intSetter(func(b *Broker, n int64) { b.TopicDefaults.SegmentBytes = n }, 14, math.MaxInt32),
	"log.preallocate":                      boolSetter(func(b *Broker, v bool) { b.TopicDefaults.Preallocate = v }),
	"log.roll.ms":                          durSetter(func(b *Broker, d time.Duration) { b.TopicDefaults.SegmentMs = d }),
	"log.roll.hours":                       intSetter(func(b *Broker, n int64) { b.TopicDefaults.SegmentMs = time.Duration(n) * time.Hour }, 1, math.MaxInt32),
	"log.retention.ms":                     retentionSetter(func(b *Broker, d time.Duration) { b.TopicDefaults.RetentionMs = d }),
	"log.retention.minutes":                intSetter(func(b *Broker, n int64) { b.TopicDefaults.RetentionMs = time.Duration(n) * time.Minute }, -1, math.MaxInt32),
	"log.retention.hours":                  intSetter(func(b *Broker, n int64) { b.TopicDefaults.RetentionMs = time.Duration(n) * time.Hour }, -1, math.MaxInt32),
	"log.retention.bytes":                  intSetter(func(b *Broker, n int64) { b.TopicDefaults.RetentionBytes = n }, -1, math.MaxInt64),
	"log.index.interval.bytes":             intSetter(func(b *Broker, n int64) { b.TopicDefaults.IndexIntervalBytes = int(n) }, 0, math.MaxInt32),
	"message.max.bytes":                    intSetter(func(b *Broker, n int64) { b.TopicDefaults.MaxMessageBytes = int32(n) }, 0, math.MaxInt32),
	"log.message.timestamp.type":           enumSetter(func(b *Broker, v string) { b.TopicDefaults.MessageTimestampType = v }, "CreateTime", "LogAppendTime"),
	"log.flush.interval.messages":          intSetter(func(b *Broker, n int64) { b.TopicDefaults.FlushMessages = n }, 1, math.MaxInt64),
	"log.flush.interval.ms":                durSetter(func(b *Broker, d time.Duration) { b.TopicDefaults.FlushMs = d }),
	"min.insync.replicas":                  intSetter(func(b *Broker, n int64) { b.TopicDefaults.MinInsyncReplicas = int(n) }, 1, 1),
	"group.min.session.timeout.ms":         durSetter(func(b *Broker, d time.Duration) { b.GroupMinSessionTimeout = d }),
	"group.max.session.timeout.ms":         durSetter(func(b *Broker, d time.Duration) { b.GroupMaxSessionTimeout = d }),
	"group.initial.rebalance.delay.ms":     durSetter(func(b *Broker, d time.Duration) { b.GroupInitialRebalanceDelay = d }),
	"group.max.size":                       intSetter(func(b *Broker, n int64) { b.GroupMaxSize = int(n) }, 1, math.MaxInt32),
	"offsets.topic.num.partitions":         intSetter(func(b *Broker, n int64) { b.OffsetsTopicPartitions = int32(n) }, 1, 1000),
	"offsets.retention.minutes":            intSetter(func(b *Broker, n int64) { b.OffsetsRetention = time.Duration(n) * time.Minute }, 1, math.MaxInt32),
	"offset.metadata.max.bytes":            intSetter(func(b *Broker, n int64) { b.OffsetMetadataMaxBytes = int(n) }, 0, math.MaxInt32),
	"group.consumer.session.timeout.ms":    durSetter(func(b *Broker, d time.Duration) { b.ConsumerGroupSessionTimeout = d }),
	"group.consumer.heartbeat.interval.ms": durSetter(func(b *Broker, d time.Duration) { b.ConsumerGroupHeartbeatInterval = d }),
	"group.consumer.max.size":              intSetter(func(b *Broker, n int64) { b.ConsumerGroupMaxSize = int(n) }, 1, math.MaxInt32),
	"transaction.max.timeout.ms":           durSetter(func(b *Broker, d time.Duration) { b.TransactionMaxTimeout = d }),
	"transactional.id.expiration.ms":       durSetter(func(b *Broker, d time.Duration) { b.TransactionalIDExpiration = d }),
	"transaction.state.log.num.partitions": intSetter(func(b *Broker, n int64) { b.TransactionStatePartitions = int32(n) }, 1, 1000),
	"log.message.timestamp.before.max.ms":  intSetter(func(b *Broker, n int64) { b.TopicDefaults.TimestampBeforeMaxMs = n }, 0, math.MaxInt64),
	"log.message.timestamp.after.max.ms":   intSetter(func(b *Broker, n int64) { b.TopicDefaults.TimestampAfterMaxMs = n }, 0, math.MaxInt64),
}

func stripScheme(v string) string {
	// Kafka writes listeners as NAME://host:port[,...]; we serve the first.
	v = strings.Split(v, ",")[0]
	if i := strings.Index(v, "://"); i >= 0 {
		v = v[i+3:]
	}
	return v
}

func intSetter(set func(*Broker, int64), lo, hi int64) func(*Broker, string) error {
	return func(b *Broker, v string) error {
		n, err := parseBounded(v, lo, hi)
		if err != nil {
			return err
		}
		set(b, n)
		return nil
	}
}

func durSetter(set func(*Broker, time.Duration)) func(*Broker, string) error {
	return intSetter(func(b *Broker, n int64) { set(b, time.Duration(n)*time.Millisecond) }, 0, math.MaxInt64/int64(time.Millisecond))
}

func retentionSetter(set func(*Broker, time.Duration)) func(*Broker, string) error {
	return intSetter(func(b *Broker, n int64) { set(b, time.Duration(n)*time.Millisecond) }, -1, math.MaxInt64/int64(time.Millisecond))
}

func boolSetter(set func(*Broker, bool)) func(*Broker, string) error {
	return func(b *Broker, v string) error {
		x, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("not a boolean")
		}
		set(b, x)
		return nil
	}
}

func enumSetter(set func(*Broker, string), allowed ...string) func(*Broker, string) error {
	return func(b *Broker, v string) error {
		for _, a := range allowed {
			if v == a {
				set(b, v)
				return nil
			}
		}
		return fmt.Errorf("must be one of %s", strings.Join(allowed, ", "))
	}
}

func parseBounded(v string, lo, hi int64) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not an integer")
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("must be between %d and %d", lo, hi)
	}
	return n, nil
}

// SetBroker applies one broker-level setting.
func (b *Broker) Set(key, value string) error {
	set, ok := brokerKeys[key]
	if !ok {
		return &Error{Key: key, Value: value, Reason: "unknown broker setting"}
	}
	if err := set(b, value); err != nil {
		return &Error{Key: key, Value: value, Reason: err.Error()}
	}
	return nil
}

// Load reads a Java-properties style file (key=value lines, # comments) and
// applies every setting to b.
func (b *Broker) Load(r io.Reader) error {
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' || s[0] == '!' {
			continue
		}
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return fmt.Errorf("line %d: expected key=value, got %q", line, s)
		}
		if err := b.Set(strings.TrimSpace(k), strings.TrimSpace(v)); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
	}
	return sc.Err()
}

// TopicKey describes one topic-level config key.
type TopicKey struct {
	Name      string
	Sensitive bool
	// Get renders the value of the key in t.
	Get func(t *Topic) string
	// Set parses v into t, or returns why it is invalid.
	Set func(t *Topic, v string) error
}

func topicInt(name string, get func(*Topic) int64, set func(*Topic, int64), lo, hi int64) TopicKey {
	return TopicKey{Name: name, Get: func(t *Topic) string { return strconv.FormatInt(get(t), 10) },
		Set: func(t *Topic, v string) error {
			n, err := parseBounded(v, lo, hi)
			if err != nil {
				return err
			}
			set(t, n)
			return nil
		}}
}

func topicDur(name string, get func(*Topic) time.Duration, set func(*Topic, time.Duration), lo int64) TopicKey {
	return topicInt(name, func(t *Topic) int64 { return get(t).Milliseconds() },
		func(t *Topic, n int64) { set(t, time.Duration(n)*time.Millisecond) }, lo, math.MaxInt64/int64(time.Millisecond))
}

func topicBool(name string, get func(*Topic) bool, set func(*Topic, bool)) TopicKey {
	return TopicKey{Name: name, Get: func(t *Topic) string { return strconv.FormatBool(get(t)) },
		Set: func(t *Topic, v string) error {
			x, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("not a boolean")
			}
			set(t, x)
			return nil
		}}
}

func topicEnum(name string, get func(*Topic) string, set func(*Topic, string), allowed ...string) TopicKey {
	return TopicKey{Name: name, Get: get, Set: func(t *Topic, v string) error {
		for _, a := range allowed {
			if v == a {
				set(t, v)
				return nil
			}
		}
		return fmt.Errorf("must be one of %s", strings.Join(allowed, ", "))
	}}
}

// TopicKeys lists every topic config the broker understands, sorted by name.
var TopicKeys = func() []TopicKey {
	var keys []TopicKey
	add := func(k TopicKey) { keys = append(keys, k) }
	add(topicEnum("cleanup.policy", func(t *Topic) string { return t.CleanupPolicy }, func(t *Topic, v string) { t.CleanupPolicy = v }, "delete"))
	add(topicEnum("compression.type", func(t *Topic) string { return t.CompressionType }, func(t *Topic, v string) { t.CompressionType = v }, "producer"))
	add(topicInt("flush.messages", func(t *Topic) int64 { return t.FlushMessages }, func(t *Topic, n int64) { t.FlushMessages = n }, 1, math.MaxInt64))
	add(topicDur("flush.ms", func(t *Topic) time.Duration { return t.FlushMs }, func(t *Topic, d time.Duration) { t.FlushMs = d }, 0))
	add(topicInt("index.interval.bytes", func(t *Topic) int64 { return int64(t.IndexIntervalBytes) }, func(t *Topic, n int64) { t.IndexIntervalBytes = int(n) }, 0, math.MaxInt32))
	add(topicInt("max.message.bytes", func(t *Topic) int64 { return int64(t.MaxMessageBytes) }, func(t *Topic, n int64) { t.MaxMessageBytes = int32(n) }, 0, math.MaxInt32))
	add(topicInt("message.timestamp.after.max.ms", func(t *Topic) int64 { return t.TimestampAfterMaxMs }, func(t *Topic, n int64) { t.TimestampAfterMaxMs = n }, 0, math.MaxInt64))
	add(topicInt("message.timestamp.before.max.ms", func(t *Topic) int64 { return t.TimestampBeforeMaxMs }, func(t *Topic, n int64) { t.TimestampBeforeMaxMs = n }, 0, math.MaxInt64))
	add(topicEnum("message.timestamp.type", func(t *Topic) string { return t.MessageTimestampType }, func(t *Topic, v string) { t.MessageTimestampType = v }, "CreateTime", "LogAppendTime"))
	add(topicInt("min.insync.replicas", func(t *Topic) int64 { return int64(t.MinInsyncReplicas) }, func(t *Topic, n int64) { t.MinInsyncReplicas = int(n) }, 1, 1))
	add(topicBool("preallocate", func(t *Topic) bool { return t.Preallocate }, func(t *Topic, v bool) { t.Preallocate = v }))
	add(topicInt("retention.bytes", func(t *Topic) int64 { return t.RetentionBytes }, func(t *Topic, n int64) { t.RetentionBytes = n }, -1, math.MaxInt64))
	add(topicDur("retention.ms", func(t *Topic) time.Duration { return t.RetentionMs }, func(t *Topic, d time.Duration) { t.RetentionMs = d }, -1))
	add(topicInt("segment.bytes", func(t *Topic) int64 { return t.SegmentBytes }, func(t *Topic, n int64) { t.SegmentBytes = n }, 14, math.MaxInt32))
	add(topicDur("segment.ms", func(t *Topic) time.Duration { return t.SegmentMs }, func(t *Topic, d time.Duration) { t.SegmentMs = d }, 1))
	sort.Slice(keys, func(i, j int) bool { return keys[i].Name < keys[j].Name })
	return keys
}()

// LookupTopicKey finds a topic config key by name.
func LookupTopicKey(name string) (TopicKey, bool) {
	i := sort.Search(len(TopicKeys), func(i int) bool { return TopicKeys[i].Name >= name })
	if i < len(TopicKeys) && TopicKeys[i].Name == name {
		return TopicKeys[i], true
	}
	return TopicKey{}, false
}

// ResolveTopic applies overrides on top of the defaults and returns the
// result, or an *Error for the first invalid or unknown key.
func ResolveTopic(defaults Topic, overrides map[string]string) (Topic, error) {
	t := defaults
	names := make([]string, 0, len(overrides))
	for k := range overrides {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := overrides[k]
		tk, ok := LookupTopicKey(k)
		if !ok {
			return t, &Error{Key: k, Value: v, Reason: "unknown topic config"}
		}
		if err := tk.Set(&t, v); err != nil {
			return t, &Error{Key: k, Value: v, Reason: err.Error()}
		}
	}
	return t, nil
}
