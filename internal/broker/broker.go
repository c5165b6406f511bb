// Package broker holds what one oncelog node serves: its topics and their
// partitions, the metadata log they are recorded in, and the producer id
// allocator. The protocol handlers in internal/server call it; it calls the
// partitions and the metadata log and never the network.
package broker

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oncelog/oncelog/internal/clock"
	"github.com/oncelog/oncelog/internal/config"
	"github.com/oncelog/oncelog/internal/meta"
	"github.com/oncelog/oncelog/internal/partition"
	"github.com/oncelog/oncelog/internal/partlog"
	"github.com/oncelog/oncelog/internal/vfs"
	"github.com/twmb/franz-go/pkg/kerr"
)

// producerIDBlock is how many producer ids one durable metadata record
// reserves; after a crash the unused rest of a block is skipped, never
// reused.
const producerIDBlock = 1000

// maxTopicNameLength is Kafka's limit (249 characters).
const maxTopicNameLength = 249

// recoveryThreads is how many partitions open at once.
const recoveryThreads = 8

// maxPartitionsPerTopic bounds CreateTopics and CreatePartitions.
const maxPartitionsPerTopic = 100000

// Topic is one topic and its partitions.
type Topic struct {
	Name       string
	ID         [16]byte
	Overrides  map[string]string
	Config     config.Topic
	Partitions []*partition.Partition
}

// Broker is one node's state. Safe for concurrent use.
type Broker struct {
	Config config.Broker
	// ClusterID is stable across restarts (kept beside the metadata log).
	ClusterID string

	fs   vfs.FS
	clk  clock.Clock
	lg   *slog.Logger
	meta *meta.Log

	mu struct {
		sync.RWMutex
		topics map[string]*Topic
		byID   map[[16]byte]*Topic
	}
	// recovery bounds how many partitions open (and recover) at once.
	recovery chan struct{}
	// onSync is Options.OnSync, handed to every partition.
	onSync func(time.Duration)
	// zeros bounds the zeros that user topics' partitions write ahead of
	// their data for preallocate (partlog.ZeroBudget).
	zeros *partlog.ZeroBudget
	// unlock releases the data directory's lock.
	unlock func()

	// topicAdmin serialises create, delete and partition changes so that
	// directories and metadata records change in the same order.
	topicAdmin sync.Mutex

	pids struct {
		sync.Mutex
		next     int64 // next id to hand out
		blockEnd int64 // ids below blockEnd are durably reserved
	}
}

// Options configure Open.
type Options struct {
	Config config.Broker
	FS     vfs.FS
	Clock  clock.Clock
	Logger *slog.Logger
	// OnSync, if set, is told how long each partition log sync took.
	OnSync func(time.Duration)
}

// Open recovers the broker from its data directory.
func Open(opts Options) (*Broker, error) {
	if opts.FS == nil {
		opts.FS = vfs.OS
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	b := &Broker{Config: opts.Config, fs: opts.FS, clk: opts.Clock, lg: opts.Logger, recovery: make(chan struct{}, recoveryThreads), zeros: partlog.NewZeroBudget(zeroBytesPerSecond, zeroBurstBytes), onSync: opts.OnSync}
	b.mu.topics = make(map[string]*Topic)
	b.mu.byID = make(map[[16]byte]*Topic)
	dir := opts.Config.DataDir
	if err := b.fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	if opts.FS == vfs.OS {
		unlock, err := lockDataDir(dir)
		if err != nil {
			return nil, err
		}
		b.unlock = unlock
	}
	id, err := b.loadClusterID()
	if err != nil {
		b.Close()
		return nil, err
	}
	b.ClusterID = id
	m, err := meta.Open(b.fs, path.Join(dir, "__metadata"))
	if err != nil {
		return nil, err
	}
	b.meta = m
	st := m.State()
	b.pids.next, b.pids.blockEnd = st.NextProducerID, st.NextProducerID
	names := make([]string, 0, len(st.Topics))
	for n := range st.Topics {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ts := st.Topics[n]
		t, err := b.openTopic(ts.Name, ts.TopicID, ts.Partitions, ts.Configs)
		if err != nil {
			b.Close()
			return nil, err
		}
		b.mu.topics[t.Name] = t
		b.mu.byID[t.ID] = t
	}
	return b, nil
}

func (b *Broker) loadClusterID() (string, error) {
	name := path.Join(b.Config.DataDir, "cluster.id")
	f, err := b.fs.OpenFile(name, 0, 0)
	if err == nil {
		defer f.Close()
		buf := make([]byte, 64)
		n, _ := f.ReadAt(buf, 0)
		if id := strings.TrimSpace(string(buf[:n])); id != "" {
			return id, nil
		}
	}
	var raw [16]byte
	rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	if err := vfs.WriteFileAtomic(b.fs, name, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("writing %s: %w", name, err)
	}
	return id, nil
}

func (b *Broker) partitionDir(topic string, i int32) string {
	return path.Join(b.Config.DataDir, topic+"-"+strconv.Itoa(int(i)))
}

func (b *Broker) openTopic(name, idHex string, n int32, overrides map[string]string) (*Topic, error) {
	cfg, err := config.ResolveTopic(b.Config.TopicDefaults, overrides)
	if err != nil {
		return nil, fmt.Errorf("topic %s: %w", name, err)
	}
	t := &Topic{Name: name, Overrides: overrides, Config: cfg}
	raw, err := hex.DecodeString(idHex)
	if err != nil || len(raw) != 16 {
		return nil, fmt.Errorf("topic %s: bad topic id %q", name, idHex)
	}
	copy(t.ID[:], raw)
	// Partitions recover in parallel (Kafka's num.recovery.threads):
	// recovery is CPU (CRC) and I/O, and thousands of partitions add up.
	t.Partitions = make([]*partition.Partition, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := int32(0); i < n; i++ {
		wg.Add(1)
		b.recovery <- struct{}{}
		go func(i int32) {
			defer func() { <-b.recovery; wg.Done() }()
			t.Partitions[i], errs[i] = b.openPartition(t, i)
		}(i)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, q := range t.Partitions {
			if q != nil {
				q.Close()
			}
		}
		return nil, err
	}
	return t, nil
}

// The broker-wide bound on preallocate's zeros: 16 MiB/s, 5 % of the
// 320 MB/s the disk measured writes back, and a burst that fits two of
// the largest extents. At 5,000 records/s of 1 KiB the zeros of six
// partitions need about as much as their data, 5 MB/s.
const (
	zeroBytesPerSecond = 16 << 20
	zeroBurstBytes     = 8 << 20
)

func (b *Broker) openPartition(t *Topic, i int32) (*partition.Partition, error) {
	// Internal topics' zeros are not bounded: few partitions, small
	// appends, and their Syncs are on every commit's path (EndTxn,
	// OffsetCommit).
	zeros := b.zeros
	if IsInternal(t.Name) {
		zeros = nil
	}
	return partition.Open(partition.Options{
		FS:                   b.fs,
		Dir:                  b.partitionDir(t.Name, i),
		Topic:                t.Name,
		Index:                i,
		Config:               t.Config,
		Clock:                b.clk,
		Logger:               b.lg,
		ProducerIDExpiration: b.Config.ProducerIDExpiration,
		MaxProducers:         b.Config.ProducerStateMaxPerPartition,
		Zeros:                zeros,
		OnSync:               b.onSync,
	})
}

// Topic returns the named topic or nil.
func (b *Broker) Topic(name string) *Topic {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.mu.topics[name]
}

// TopicByID returns the topic with the given id or nil.
func (b *Broker) TopicByID(id [16]byte) *Topic {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.mu.byID[id]
}

// Partition returns the partition or nil.
func (b *Broker) Partition(topic string, i int32) *partition.Partition {
	t := b.Topic(topic)
	if t == nil || i < 0 || int(i) >= len(t.Partitions) {
		return nil
	}
	return t.Partitions[i]
}

// Topics returns all topics sorted by name.
func (b *Broker) Topics() []*Topic {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]*Topic, 0, len(b.mu.topics))
	for _, t := range b.mu.topics {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Error is a protocol outcome: a Kafka error code and a message for the
// client.
type Error struct {
	Code    *kerr.Error
	Message string
}

func (e *Error) Error() string { return e.Code.Message + ": " + e.Message }

func protoErr(code *kerr.Error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ValidateTopicName applies Kafka's rules for topic names.
func ValidateTopicName(name string) *Error {
	if name == "" {
		return protoErr(kerr.InvalidTopicException, "topic name is empty")
	}
	if name == "." || name == ".." {
		return protoErr(kerr.InvalidTopicException, "topic name cannot be %q", name)
	}
	if len(name) > maxTopicNameLength {
		return protoErr(kerr.InvalidTopicException, "topic name is longer than %d characters", maxTopicNameLength)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return protoErr(kerr.InvalidTopicException, "topic name %q contains %q; only ASCII letters, digits, '.', '_' and '-' are allowed", name, c)
		}
	}
	return nil
}

// Internal topics hold the coordinators' logs; clients cannot create them.
var internalTopics = map[string]bool{"__consumer_offsets": true, "__transaction_state": true}

// IsInternal reports whether name is an internal topic.
func IsInternal(name string) bool { return internalTopics[name] }

// CreateTopic creates a topic durably. partitions -1 means num.partitions.
func (b *Broker) CreateTopic(name string, partitions int32, overrides map[string]string, validateOnly bool) (*Topic, *Error) {
	if IsInternal(name) {
		return nil, protoErr(kerr.InvalidRequest, "topic %q is internal; the broker creates it on first use", name)
	}
	return b.createTopic(name, partitions, overrides, validateOnly)
}

// CreateInternalTopic creates one of the coordinators' topics.
func (b *Broker) CreateInternalTopic(name string, partitions int32, overrides map[string]string) (*Topic, *Error) {
	return b.createTopic(name, partitions, overrides, false)
}

func (b *Broker) createTopic(name string, partitions int32, overrides map[string]string, validateOnly bool) (*Topic, *Error) {
	if e := ValidateTopicName(name); e != nil {
		return nil, e
	}
	if partitions == -1 {
		partitions = b.Config.NumPartitions
	}
	if partitions <= 0 || partitions > maxPartitionsPerTopic {
		return nil, protoErr(kerr.InvalidPartitions, "number of partitions must be between 1 and %d, got %d", maxPartitionsPerTopic, partitions)
	}
	if overrides == nil {
		overrides = map[string]string{}
	}
	if _, err := config.ResolveTopic(b.Config.TopicDefaults, overrides); err != nil {
		return nil, protoErr(kerr.InvalidConfig, "%v", err)
	}
	b.topicAdmin.Lock()
	defer b.topicAdmin.Unlock()
	if b.Topic(name) != nil {
		return nil, protoErr(kerr.TopicAlreadyExists, "topic %q already exists", name)
	}
	if validateOnly {
		return &Topic{Name: name}, nil
	}
	var id [16]byte
	rand.Read(id[:])
	idHex := hex.EncodeToString(id[:])
	// Clear leftovers of an earlier topic of the same name whose deletion
	// was interrupted.
	for i := int32(0); i < partitions; i++ {
		b.fs.RemoveAll(b.partitionDir(name, i))
	}
	rec := &meta.Record{Type: meta.TypeTopicCreate, Name: name, TopicID: idHex, Partitions: partitions, Configs: overrides}
	if err := b.meta.Append(rec, nil); err != nil {
		return nil, protoErr(kerr.KafkaStorageError, "recording topic: %v", err)
	}
	t, err := b.openTopic(name, idHex, partitions, overrides)
	if err != nil {
		b.lg.Error("opening new topic failed", "topic", name, "err", err)
		return nil, protoErr(kerr.KafkaStorageError, "opening topic: %v", err)
	}
	b.mu.Lock()
	b.mu.topics[name] = t
	b.mu.byID[t.ID] = t
	b.mu.Unlock()
	b.lg.Info("created topic", "topic", name, "partitions", partitions)
	return t, nil
}

// DeleteTopic removes a topic and its data.
func (b *Broker) DeleteTopic(name string) *Error {
	b.topicAdmin.Lock()
	defer b.topicAdmin.Unlock()
	t := b.Topic(name)
	if t == nil {
		return protoErr(kerr.UnknownTopicOrPartition, "topic %q does not exist", name)
	}
	if err := b.meta.Append(&meta.Record{Type: meta.TypeTopicDelete, Name: name}, nil); err != nil {
		return protoErr(kerr.KafkaStorageError, "recording deletion: %v", err)
	}
	b.mu.Lock()
	delete(b.mu.topics, name)
	delete(b.mu.byID, t.ID)
	b.mu.Unlock()
	for _, p := range t.Partitions {
		if err := p.Delete(); err != nil {
			b.lg.Warn("removing partition files failed", "topic", name, "partition", p.Index, "err", err)
		}
	}
	b.lg.Info("deleted topic", "topic", name)
	return nil
}

// CreatePartitions raises a topic's partition count to total.
func (b *Broker) CreatePartitions(name string, total int32, validateOnly bool) *Error {
	b.topicAdmin.Lock()
	defer b.topicAdmin.Unlock()
	t := b.Topic(name)
	if t == nil {
		return protoErr(kerr.UnknownTopicOrPartition, "topic %q does not exist", name)
	}
	have := int32(len(t.Partitions))
	if total <= have {
		return protoErr(kerr.InvalidPartitions, "topic %q has %d partitions; the new count %d must be larger", name, have, total)
	}
	if total > maxPartitionsPerTopic {
		return protoErr(kerr.InvalidPartitions, "at most %d partitions per topic", maxPartitionsPerTopic)
	}
	if validateOnly {
		return nil
	}
	for i := have; i < total; i++ {
		b.fs.RemoveAll(b.partitionDir(name, i))
	}
	if err := b.meta.Append(&meta.Record{Type: meta.TypePartitionsAdd, Name: name, Partitions: total}, nil); err != nil {
		return protoErr(kerr.KafkaStorageError, "recording partitions: %v", err)
	}
	parts := append([]*partition.Partition(nil), t.Partitions...)
	for i := have; i < total; i++ {
		p, err := b.openPartition(t, i)
		if err != nil {
			return protoErr(kerr.KafkaStorageError, "opening partition %d: %v", i, err)
		}
		parts = append(parts, p)
	}
	nt := *t
	nt.Partitions = parts
	b.mu.Lock()
	b.mu.topics[name] = &nt
	b.mu.byID[nt.ID] = &nt
	b.mu.Unlock()
	return nil
}

// SetTopicConfig replaces a topic's config overrides.
func (b *Broker) SetTopicConfig(name string, overrides map[string]string, validateOnly bool) *Error {
	cfg, err := config.ResolveTopic(b.Config.TopicDefaults, overrides)
	if err != nil {
		return protoErr(kerr.InvalidConfig, "%v", err)
	}
	b.topicAdmin.Lock()
	defer b.topicAdmin.Unlock()
	t := b.Topic(name)
	if t == nil {
		return protoErr(kerr.UnknownTopicOrPartition, "topic %q does not exist", name)
	}
	if validateOnly {
		return nil
	}
	if err := b.meta.Append(&meta.Record{Type: meta.TypeTopicConfig, Name: name, Configs: overrides}, nil); err != nil {
		return protoErr(kerr.KafkaStorageError, "recording config: %v", err)
	}
	nt := *t
	nt.Overrides = overrides
	nt.Config = cfg
	b.mu.Lock()
	b.mu.topics[name] = &nt
	b.mu.byID[nt.ID] = &nt
	b.mu.Unlock()
	for _, p := range t.Partitions {
		p.SetConfig(cfg)
	}
	return nil
}

// AllocateProducerID hands out a producer id never used before, even
// across crashes: ids are reserved in durable blocks.
func (b *Broker) AllocateProducerID() (int64, error) {
	b.pids.Lock()
	defer b.pids.Unlock()
	if b.pids.next >= b.pids.blockEnd {
		end := b.pids.next + producerIDBlock
		if err := b.meta.Append(&meta.Record{Type: meta.TypePIDBlock, NextProducerID: end}, nil); err != nil {
			return -1, err
		}
		b.pids.blockEnd = end
	}
	id := b.pids.next
	b.pids.next++
	return id, nil
}

// Close closes every partition and the metadata log.
func (b *Broker) Close() error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	// Each close fsyncs and writes a snapshot: in parallel, as recovery.
	for _, t := range b.Topics() {
		for _, p := range t.Partitions {
			wg.Add(1)
			b.recovery <- struct{}{}
			go func(p *partition.Partition) {
				defer func() { <-b.recovery; wg.Done() }()
				if err := p.Close(); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}(p)
		}
	}
	wg.Wait()
	if b.meta != nil {
		if err := b.meta.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if b.unlock != nil {
		b.unlock()
	}
	return errors.Join(errs...)
}
