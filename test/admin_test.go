package test

// Admin APIs over real TCP against a real broker, driven by kadm (and raw
// kmsg requests where kadm hides the edge cases): DeleteTopics,
// CreatePartitions, DescribeConfigs, AlterConfigs, IncrementalAlterConfigs,
// DescribeCluster, DeleteRecords, OffsetForLeaderEpoch.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/oncelog/oncelog/embed"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// adminClients connects a kgo client (for raw requests) and a kadm client.
func adminClients(t *testing.T, addr string) (*kgo.Client, *kadm.Client) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl, kadm.NewClient(cl)
}

// restartable is a broker on a fixed data directory that a test can stop
// and start again.
type restartable struct {
	t        *testing.T
	dir      string
	settings map[string]string
	b        *embed.Broker
}

func startRestartable(t *testing.T, settings map[string]string) *restartable {
	r := &restartable{t: t, dir: t.TempDir(), settings: settings}
	r.start()
	t.Cleanup(func() {
		if r.b != nil {
			r.b.Close()
		}
	})
	return r
}

func (r *restartable) start() {
	r.t.Helper()
	b, err := embed.Start(embed.Options{DataDir: r.dir, Settings: r.settings})
	if err != nil {
		r.t.Fatal(err)
	}
	r.b = b
}

func (r *restartable) restart() {
	r.t.Helper()
	if err := r.b.Close(); err != nil {
		r.t.Fatal(err)
	}
	r.b = nil
	r.start()
}

// produceTo writes n records to one partition and returns the offset of
// the first.
func produceTo(t *testing.T, ctx context.Context, addr, topic string, partition int32, n int) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	first := int64(-1)
	for i := 0; i < n; i++ {
		r := &kgo.Record{Topic: topic, Partition: partition, Value: []byte(fmt.Sprint(i))}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce to %s/%d: %v", topic, partition, err)
		}
		if first < 0 {
			first = r.Offset
		}
	}
	return first
}

func endOffset(t *testing.T, ctx context.Context, adm *kadm.Client, topic string, partition int32) int64 {
	t.Helper()
	os, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := os.Lookup(topic, partition)
	if !ok || o.Err != nil {
		t.Fatalf("end offset of %s/%d: %v (found %v)", topic, partition, o.Err, ok)
	}
	return o.Offset
}

func startOffset(t *testing.T, ctx context.Context, adm *kadm.Client, topic string, partition int32) int64 {
	t.Helper()
	os, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := os.Lookup(topic, partition)
	if !ok || o.Err != nil {
		t.Fatalf("start offset of %s/%d: %v (found %v)", topic, partition, o.Err, ok)
	}
	return o.Offset
}

func TestAdminDeleteTopicAndRecreate(t *testing.T) {
	b := startBroker(t, map[string]string{"auto.create.topics.enable": "false"})
	ctx := testCtx(t)
	_, adm := adminClients(t, b.Addr())
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "gone"); err != nil {
		t.Fatal(err)
	}
	produceTo(t, ctx, b.Addr(), "gone", 1, 5)
	if got := endOffset(t, ctx, adm, "gone", 1); got != 5 {
		t.Fatalf("end offset before delete = %d, want 5", got)
	}
	if _, err := adm.DeleteTopic(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if topics.Has("gone") {
		t.Fatal("deleted topic is still listed")
	}
	if _, err := adm.DeleteTopic(ctx, "gone"); !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("deleting a missing topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
	}
	// Same name again: a new topic, with a new id and no data.
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "gone"); err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 2; p++ {
		if got := endOffset(t, ctx, adm, "gone", p); got != 0 {
			t.Fatalf("re-created topic partition %d has end offset %d, want 0", p, got)
		}
	}
	if first := produceTo(t, ctx, b.Addr(), "gone", 1, 1); first != 0 {
		t.Fatalf("first record of the re-created topic at offset %d, want 0", first)
	}
}

// TestAdminDeleteTopicsRaw covers what kadm does not send: deletion by id
// (v6), unknown ids, duplicates, and an entry naming both.
func TestAdminDeleteTopicsRaw(t *testing.T) {
	b := startBroker(t, nil)
	ctx := testCtx(t)
	cl, adm := adminClients(t, b.Addr())
	created, err := adm.CreateTopics(ctx, 1, 1, nil, "by-id", "dup", "both")
	if err != nil {
		t.Fatal(err)
	}
	id := [16]byte(created["by-id"].ID)
	bothID := [16]byte(created["both"].ID)
	unknownID := [16]byte{1, 2, 3}

	req := kmsg.NewPtrDeleteTopicsRequest()
	req.Version = 6
	add := func(name *string, id [16]byte) {
		rt := kmsg.NewDeleteTopicsRequestTopic()
		rt.Topic, rt.TopicID = name, id
		req.Topics = append(req.Topics, rt)
	}
	add(nil, id)
	add(nil, unknownID)
	add(kmsg.StringPtr("dup"), [16]byte{})
	add(kmsg.StringPtr("dup"), [16]byte{})
	add(kmsg.StringPtr("both"), bothID)
	add(nil, [16]byte{})
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		name string
		id   [16]byte
	}
	got := map[answer]int16{}
	for _, st := range resp.Topics {
		name := ""
		if st.Topic != nil {
			name = *st.Topic
		}
		if _, dup := got[answer{name, st.TopicID}]; dup {
			t.Fatalf("answered %q/%x twice", name, st.TopicID)
		}
		got[answer{name, st.TopicID}] = st.ErrorCode
		if st.ErrorCode != 0 && st.ErrorMessage == nil {
			t.Errorf("%q: error %d without a message", name, st.ErrorCode)
		}
	}
	want := map[answer]int16{
		{"by-id", id}:       0,
		{"", unknownID}:     kerr.UnknownTopicID.Code,
		{"dup", [16]byte{}}: kerr.InvalidRequest.Code,
		{"both", bothID}:    kerr.InvalidRequest.Code,
		{"", [16]byte{}}:    kerr.InvalidRequest.Code,
	}
	if len(got) != len(want) {
		t.Fatalf("answers %v, want %v", got, want)
	}
	for k, code := range want {
		if got[k] != code {
			t.Errorf("%q/%x: error %d, want %d", k.name, k.id, got[k], code)
		}
	}
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if topics.Has("by-id") || !topics.Has("dup") || !topics.Has("both") {
		t.Fatalf("topics after delete: %v; want by-id gone, dup and both kept", topics.Names())
	}
}

func TestAdminCreatePartitions(t *testing.T) {
	b := startBroker(t, nil)
	ctx := testCtx(t)
	cl, adm := adminClients(t, b.Addr())
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "grow"); err != nil {
		t.Fatal(err)
	}
	// ValidateOnly changes nothing.
	if rs, err := adm.ValidateCreatePartitions(ctx, 2, "grow"); err != nil || rs["grow"].Err != nil {
		t.Fatalf("validate: %v %v", err, rs["grow"].Err)
	}
	md, err := adm.Metadata(ctx, "grow")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(md.Topics["grow"].Partitions); n != 1 {
		t.Fatalf("after ValidateOnly the topic has %d partitions, want 1", n)
	}
	rs, err := adm.CreatePartitions(ctx, 2, "grow")
	if err != nil || rs["grow"].Err != nil {
		t.Fatalf("create partitions: %v %v", err, rs["grow"].Err)
	}
	md, err = adm.Metadata(ctx, "grow")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(md.Topics["grow"].Partitions); n != 3 {
		t.Fatalf("topic has %d partitions, want 3", n)
	}
	if first := produceTo(t, ctx, b.Addr(), "grow", 2, 3); first != 0 {
		t.Fatalf("first record in the new partition at %d, want 0", first)
	}
	if got := endOffset(t, ctx, adm, "grow", 2); got != 3 {
		t.Fatalf("new partition end offset %d, want 3", got)
	}
	// Not larger: INVALID_PARTITIONS.
	rs, err = adm.UpdatePartitions(ctx, 3, "grow")
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(rs["grow"].Err, kerr.InvalidPartitions) {
		t.Fatalf("same count: %v, want INVALID_PARTITIONS", rs["grow"].Err)
	}
	rs, err = adm.CreatePartitions(ctx, 1, "nope")
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(rs["nope"].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("unknown topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", rs["nope"].Err)
	}

	// Raw: assignments and duplicates.
	req := kmsg.NewPtrCreatePartitionsRequest()
	add := func(topic string, count int32, replicas ...[]int32) {
		rt := kmsg.NewCreatePartitionsRequestTopic()
		rt.Topic, rt.Count = topic, count
		for _, r := range replicas {
			a := kmsg.NewCreatePartitionsRequestTopicAssignment()
			a.Replicas = r
			rt.Assignment = append(rt.Assignment, a)
		}
		req.Topics = append(req.Topics, rt)
	}
	if _, err := adm.CreateTopics(ctx, 1, 1, nil, "assigned", "elsewhere", "short", "twice"); err != nil {
		t.Fatal(err)
	}
	add("assigned", 2, []int32{0})
	add("elsewhere", 2, []int32{7})
	add("short", 3, []int32{0})
	add("twice", 2)
	add("twice", 3)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int16{
		"assigned":  0,
		"elsewhere": kerr.InvalidReplicaAssignment.Code,
		"short":     kerr.InvalidReplicaAssignment.Code,
		"twice":     kerr.InvalidRequest.Code,
	}
	if len(resp.Topics) != len(want) {
		t.Fatalf("%d answers, want %d: %+v", len(resp.Topics), len(want), resp.Topics)
	}
	for _, st := range resp.Topics {
		if st.ErrorCode != want[st.Topic] {
			t.Errorf("%s: error %d, want %d", st.Topic, st.ErrorCode, want[st.Topic])
		}
	}
	md, err = adm.Metadata(ctx, "assigned", "twice")
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Topics["assigned"].Partitions) != 2 || len(md.Topics["twice"].Partitions) != 1 {
		t.Fatalf("partitions: assigned %d (want 2), twice %d (want 1)", len(md.Topics["assigned"].Partitions), len(md.Topics["twice"].Partitions))
	}
}

func findConfig(t *testing.T, rcs kadm.ResourceConfigs, resource, key string) kadm.Config {
	t.Helper()
	rc, err := rcs.On(resource, nil)
	if err != nil {
		t.Fatalf("resource %s: %v", resource, err)
	}
	if rc.Err != nil {
		t.Fatalf("resource %s: %v (%s)", resource, rc.Err, rc.ErrMessage)
	}
	for _, c := range rc.Configs {
		if c.Key == key {
			return c
		}
	}
	t.Fatalf("resource %s has no config %s", resource, key)
	return kadm.Config{}
}

func describeTopic(t *testing.T, ctx context.Context, adm *kadm.Client, topic string) kadm.ResourceConfigs {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	return rcs
}

func TestAdminTopicConfigsSurviveRestart(t *testing.T) {
	r := startRestartable(t, map[string]string{"log.segment.bytes": "1048576"})
	ctx := testCtx(t)
	_, adm := adminClients(t, r.b.Addr())
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "cfg"); err != nil {
		t.Fatal(err)
	}

	// Every topic key is there; defaults say where they come from.
	rcs := describeTopic(t, ctx, adm, "cfg")
	if c := findConfig(t, rcs, "cfg", "retention.ms"); c.Source != kmsg.ConfigSourceDefaultConfig || c.MaybeValue() != strconv.Itoa(7*24*3600*1000) {
		t.Fatalf("retention.ms = %q from %v, want the default", c.MaybeValue(), c.Source)
	}
	c := findConfig(t, rcs, "cfg", "segment.bytes")
	if c.Source != kmsg.ConfigSourceStaticBrokerConfig || c.MaybeValue() != "1048576" {
		t.Fatalf("segment.bytes = %q from %v, want 1048576 from the static broker config", c.MaybeValue(), c.Source)
	}
	if len(c.Synonyms) != 2 || c.Synonyms[0].Key != "log.segment.bytes" || c.Synonyms[0].Source != kmsg.ConfigSourceStaticBrokerConfig || c.Synonyms[1].Source != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("segment.bytes synonyms %+v", c.Synonyms)
	}

	// Incremental SET, then visible.
	set := []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("12345")}}
	if rs, err := adm.AlterTopicConfigs(ctx, set, "cfg"); err != nil || rs[0].Err != nil {
		t.Fatalf("alter: %v %+v", err, rs)
	}
	c = findConfig(t, describeTopic(t, ctx, adm, "cfg"), "cfg", "retention.ms")
	if c.MaybeValue() != "12345" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
		t.Fatalf("retention.ms = %q from %v after SET", c.MaybeValue(), c.Source)
	}
	// ValidateOnly changes nothing.
	if rs, err := adm.ValidateAlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "retention.ms", Value: kadm.StringPtr("999")}}, "cfg"); err != nil || rs[0].Err != nil {
		t.Fatalf("validate alter: %v %+v", err, rs)
	}
	if c := findConfig(t, describeTopic(t, ctx, adm, "cfg"), "cfg", "retention.ms"); c.MaybeValue() != "12345" {
		t.Fatalf("ValidateOnly changed retention.ms to %q", c.MaybeValue())
	}

	r.restart()
	_, adm = adminClients(t, r.b.Addr())
	if c := findConfig(t, describeTopic(t, ctx, adm, "cfg"), "cfg", "retention.ms"); c.MaybeValue() != "12345" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
		t.Fatalf("after restart retention.ms = %q from %v", c.MaybeValue(), c.Source)
	}

	// Legacy AlterConfigs replaces the whole set: retention.ms goes back.
	state := []kadm.AlterConfig{{Name: "max.message.bytes", Value: kadm.StringPtr("5000")}}
	if rs, err := adm.AlterTopicConfigsState(ctx, state, "cfg"); err != nil || rs[0].Err != nil {
		t.Fatalf("alter state: %v %+v", err, rs)
	}
	r.restart()
	_, adm = adminClients(t, r.b.Addr())
	rcs = describeTopic(t, ctx, adm, "cfg")
	if c := findConfig(t, rcs, "cfg", "retention.ms"); c.Source != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("retention.ms from %v after AlterConfigs without it, want the default", c.Source)
	}
	if c := findConfig(t, rcs, "cfg", "max.message.bytes"); c.MaybeValue() != "5000" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
		t.Fatalf("max.message.bytes = %q from %v", c.MaybeValue(), c.Source)
	}

	// Incremental DELETE.
	del := []kadm.AlterConfig{{Op: kadm.DeleteConfig, Name: "max.message.bytes"}}
	if rs, err := adm.AlterTopicConfigs(ctx, del, "cfg"); err != nil || rs[0].Err != nil {
		t.Fatalf("delete: %v %+v", err, rs)
	}
	if c := findConfig(t, describeTopic(t, ctx, adm, "cfg"), "cfg", "max.message.bytes"); c.Source != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("max.message.bytes from %v after DELETE", c.Source)
	}
}

func TestAdminConfigErrors(t *testing.T) {
	b := startBroker(t, nil)
	ctx := testCtx(t)
	cl, adm := adminClients(t, b.Addr())
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "strict"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cfg  kadm.AlterConfig
		want *kerr.Error
	}{
		{"bad value", kadm.AlterConfig{Name: "segment.bytes", Value: kadm.StringPtr("lots")}, kerr.InvalidConfig},
		{"out of range", kadm.AlterConfig{Name: "min.insync.replicas", Value: kadm.StringPtr("2")}, kerr.InvalidConfig},
		{"unknown key", kadm.AlterConfig{Name: "no.such.key", Value: kadm.StringPtr("1")}, kerr.InvalidConfig},
		{"append to a non-list", kadm.AlterConfig{Op: kadm.AppendConfig, Name: "retention.ms", Value: kadm.StringPtr("1")}, kerr.InvalidConfig},
		{"append an unsupported policy", kadm.AlterConfig{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: kadm.StringPtr("compact")}, kerr.InvalidConfig},
		{"subtract the last policy", kadm.AlterConfig{Op: kadm.SubtractConfig, Name: "cleanup.policy", Value: kadm.StringPtr("delete")}, kerr.InvalidConfig},
		{"append a policy already there", kadm.AlterConfig{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: kadm.StringPtr("delete")}, nil},
	}
	for _, tc := range cases {
		rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{tc.cfg}, "strict")
		if err != nil {
			t.Fatal(err)
		}
		if tc.want == nil {
			if rs[0].Err != nil {
				t.Errorf("%s: %v (%s)", tc.name, rs[0].Err, rs[0].ErrMessage)
			}
			continue
		}
		if !errors.Is(rs[0].Err, tc.want) || rs[0].ErrMessage == "" {
			t.Errorf("%s: %v %q, want %v with a message", tc.name, rs[0].Err, rs[0].ErrMessage, tc.want)
		}
	}
	// The legacy API validates the same way.
	rs, err := adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "retention.ms", Value: kadm.StringPtr("-5")}}, "strict")
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(rs[0].Err, kerr.InvalidConfig) {
		t.Errorf("legacy bad value: %v, want INVALID_CONFIG", rs[0].Err)
	}
	// Nothing above changed the topic.
	rc, err := describeTopic(t, ctx, adm, "strict").On("strict", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rc.Configs {
		if c.Source != kmsg.ConfigSourceDefaultConfig && c.Key != "cleanup.policy" {
			t.Errorf("%s = %q from %v; rejected alters must change nothing", c.Key, c.MaybeValue(), c.Source)
		}
	}
	// Unknown topics.
	rs, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "retention.ms", Value: kadm.StringPtr("1")}}, "missing")
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(rs[0].Err, kerr.UnknownTopicOrPartition) {
		t.Errorf("alter missing topic: %v", rs[0].Err)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, "missing")
	if err != nil {
		t.Fatal(err)
	}
	if rc, _ := rcs.On("missing", nil); !errors.Is(rc.Err, kerr.UnknownTopicOrPartition) {
		t.Errorf("describe missing topic: %v", rc.Err)
	}
	// Broker configs are static.
	brs, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Name: "num.partitions", Value: kadm.StringPtr("3")}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(brs[0].Err, kerr.InvalidRequest) || brs[0].ErrMessage == "" {
		t.Errorf("alter broker config: %v %q, want INVALID_REQUEST with a message", brs[0].Err, brs[0].ErrMessage)
	}

	// Raw: duplicate resources, duplicate keys, null values.
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	addRes := func(name string, cfgs ...kmsg.IncrementalAlterConfigsRequestResourceConfig) {
		rr := kmsg.NewIncrementalAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName, rr.Configs = kmsg.ConfigResourceTypeTopic, name, cfgs
		req.Resources = append(req.Resources, rr)
	}
	cfg := func(name string, op kmsg.IncrementalAlterConfigOp, v *string) kmsg.IncrementalAlterConfigsRequestResourceConfig {
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Op, c.Value = name, op, v
		return c
	}
	if _, err := adm.CreateTopics(ctx, 1, 1, nil, "twice", "keys", "nulls"); err != nil {
		t.Fatal(err)
	}
	addRes("twice", cfg("retention.ms", 0, kmsg.StringPtr("1")))
	addRes("twice", cfg("retention.ms", 0, kmsg.StringPtr("2")))
	addRes("keys", cfg("retention.ms", 0, kmsg.StringPtr("1")), cfg("retention.ms", 1, nil))
	addRes("nulls", cfg("retention.ms", 0, nil))
	addRes("strict", cfg("retention.ms", 9, kmsg.StringPtr("1")))
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Resources) != 5 {
		t.Fatalf("%d answers, want 5", len(resp.Resources))
	}
	for _, r := range resp.Resources {
		if r.ErrorCode != kerr.InvalidRequest.Code || r.ErrorMessage == nil {
			t.Errorf("%s: error %d, want INVALID_REQUEST with a message", r.ResourceName, r.ErrorCode)
		}
	}
}

func TestAdminDescribeConfigsRaw(t *testing.T) {
	b := startBroker(t, map[string]string{"num.partitions": "4"})
	ctx := testCtx(t)
	cl, adm := adminClients(t, b.Addr())
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"retention.ms": kmsg.StringPtr("1000")}, "described"); err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrDescribeConfigsRequest()
	add := func(typ kmsg.ConfigResourceType, name string, names ...string) {
		rr := kmsg.NewDescribeConfigsRequestResource()
		rr.ResourceType, rr.ResourceName, rr.ConfigNames = typ, name, names
		req.Resources = append(req.Resources, rr)
	}
	add(kmsg.ConfigResourceTypeTopic, "described", "retention.ms", "segment.bytes", "not.a.config")
	add(kmsg.ConfigResourceTypeBroker, "0", "num.partitions", "log.segment.bytes", "auto.create.topics.enable")
	add(kmsg.ConfigResourceTypeBroker, "")
	add(kmsg.ConfigResourceTypeBroker, "5")
	add(kmsg.ConfigResourceTypeBroker, "zero")
	add(kmsg.ConfigResourceTypeGroupConfig, "g")
	add(kmsg.ConfigResourceTypeTopic, "")
	req.IncludeSynonyms = true
	// Straight to broker 0: kgo would route broker resources by id.
	kr, err := cl.Broker(0).Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	resp := kr.(*kmsg.DescribeConfigsResponse)
	if len(resp.Resources) != 7 {
		t.Fatalf("%d answers, want 7", len(resp.Resources))
	}
	byName := func(r kmsg.DescribeConfigsResponseResource) map[string]kmsg.DescribeConfigsResponseResourceConfig {
		m := map[string]kmsg.DescribeConfigsResponseResourceConfig{}
		for _, c := range r.Configs {
			m[c.Name] = c
		}
		return m
	}
	topic := byName(resp.Resources[0])
	if len(topic) != 2 {
		t.Fatalf("filtered topic configs: %v, want retention.ms and segment.bytes", topic)
	}
	if c := topic["retention.ms"]; c.Value == nil || *c.Value != "1000" || c.Source != kmsg.ConfigSourceDynamicTopicConfig || c.ReadOnly || c.ConfigType != kmsg.ConfigTypeLong || len(c.ConfigSynonyms) != 2 {
		t.Errorf("retention.ms: %+v", c)
	}
	brokerCfg := byName(resp.Resources[1])
	if len(brokerCfg) != 3 {
		t.Fatalf("filtered broker configs: %v", brokerCfg)
	}
	if c := brokerCfg["num.partitions"]; c.Value == nil || *c.Value != "4" || c.Source != kmsg.ConfigSourceStaticBrokerConfig || !c.ReadOnly {
		t.Errorf("num.partitions: %+v", c)
	}
	if c := brokerCfg["log.segment.bytes"]; c.Source != kmsg.ConfigSourceDefaultConfig || c.ConfigType != kmsg.ConfigTypeInt {
		t.Errorf("log.segment.bytes: %+v", c)
	}
	if r := resp.Resources[2]; r.ErrorCode != 0 || len(r.Configs) != 0 {
		t.Errorf("broker \"\" (dynamic cluster defaults, none): error %d, %d configs", r.ErrorCode, len(r.Configs))
	}
	for i, want := range []*kerr.Error{kerr.InvalidRequest, kerr.InvalidRequest, kerr.InvalidRequest, kerr.InvalidTopicException} {
		r := resp.Resources[3+i]
		if r.ErrorCode != want.Code || r.ErrorMessage == nil {
			t.Errorf("resource %d %q: error %d, want %s with a message", r.ResourceType, r.ResourceName, r.ErrorCode, want.Message)
		}
	}

	// v0 has IsDefault instead of Source.
	v0 := kmsg.NewPtrDescribeConfigsRequest()
	v0.Version = 0
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, "described"
	v0.Resources = append(v0.Resources, rr)
	vs := kversion.Stable()
	vs.SetMaxKeyVersion(32, 0)
	cl0, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.MaxVersions(vs))
	if err != nil {
		t.Fatal(err)
	}
	defer cl0.Close()
	kr, err = cl0.Request(ctx, v0)
	if err != nil {
		t.Fatal(err)
	}
	r0 := byName(kr.(*kmsg.DescribeConfigsResponse).Resources[0])
	if r0["retention.ms"].IsDefault || !r0["segment.bytes"].IsDefault {
		t.Errorf("v0 IsDefault: retention.ms %v (want false), segment.bytes %v (want true)", r0["retention.ms"].IsDefault, r0["segment.bytes"].IsDefault)
	}

	// kadm's per-broker describe sees the settings with synonyms.
	rcs, err := adm.DescribeBrokerConfigs(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := findConfig(t, rcs, "0", "num.partitions")
	if c.MaybeValue() != "4" || len(c.Synonyms) != 2 {
		t.Errorf("num.partitions via kadm: %+v", c)
	}
}

func TestAdminDescribeCluster(t *testing.T) {
	b := startBroker(t, nil)
	ctx := testCtx(t)
	cl, adm := adminClients(t, b.Addr())
	md, err := adm.BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrDescribeClusterRequest()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != 0 {
		t.Fatalf("error %d", resp.ErrorCode)
	}
	if resp.ClusterID == "" || resp.ClusterID != md.Cluster {
		t.Errorf("cluster id %q, metadata says %q", resp.ClusterID, md.Cluster)
	}
	if resp.ControllerID != 0 || len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != 0 {
		t.Fatalf("controller %d, brokers %+v", resp.ControllerID, resp.Brokers)
	}
	if got := fmt.Sprintf("%s:%d", resp.Brokers[0].Host, resp.Brokers[0].Port); got != b.Addr() {
		t.Errorf("broker address %s, want %s", got, b.Addr())
	}
	if resp.EndpointType != 1 {
		t.Errorf("endpoint type %d, want 1", resp.EndpointType)
	}
	req.EndpointType = 2 // controllers
	resp, err = req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != kerr.MismatchedEndpointType.Code || resp.ErrorMessage == nil {
		t.Errorf("controller endpoint type: error %d, want MISMATCHED_ENDPOINT_TYPE", resp.ErrorCode)
	}
}

func TestAdminDeleteRecords(t *testing.T) {
	r := startRestartable(t, nil)
	ctx := testCtx(t)
	cl, adm := adminClients(t, r.b.Addr())
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "trim"); err != nil {
		t.Fatal(err)
	}
	produceTo(t, ctx, r.b.Addr(), "trim", 0, 10)

	deleteBefore := func(adm *kadm.Client, topic string, p int32, at int64) kadm.DeleteRecordsResponse {
		t.Helper()
		var os kadm.Offsets
		os.Add(kadm.Offset{Topic: topic, Partition: p, At: at})
		rs, err := adm.DeleteRecords(ctx, os)
		if err != nil {
			t.Fatal(err)
		}
		res, ok := rs.Lookup(topic, p)
		if !ok {
			t.Fatalf("no answer for %s/%d", topic, p)
		}
		return res
	}
	if res := deleteBefore(adm, "trim", 0, 4); res.Err != nil || res.LowWatermark != 4 {
		t.Fatalf("delete before 4: %+v", res)
	}
	if got := startOffset(t, ctx, adm, "trim", 0); got != 4 {
		t.Fatalf("start offset %d, want 4", got)
	}
	// A lower offset changes nothing.
	if res := deleteBefore(adm, "trim", 0, 2); res.Err != nil || res.LowWatermark != 4 {
		t.Fatalf("delete before 2 after 4: %+v", res)
	}
	if res := deleteBefore(adm, "trim", 0, 11); !errors.Is(res.Err, kerr.OffsetOutOfRange) {
		t.Fatalf("delete past the high watermark: %+v", res)
	}
	fetchErr := func(cl *kgo.Client, offset int64) int16 {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.MaxWaitMillis = 10
		req.MaxBytes = 1 << 20
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "trim"
		md, err := kadm.NewClient(cl).Metadata(ctx, "trim")
		if err != nil {
			t.Fatal(err)
		}
		rt.TopicID = [16]byte(md.Topics["trim"].ID)
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = 0, offset, 1<<20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		kr, err := cl.Broker(0).Request(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		resp := kr.(*kmsg.FetchResponse)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("fetch response %+v", resp)
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	if code := fetchErr(cl, 3); code != kerr.OffsetOutOfRange.Code {
		t.Fatalf("fetch below the start: error %d, want OFFSET_OUT_OF_RANGE", code)
	}
	if code := fetchErr(cl, 4); code != 0 {
		t.Fatalf("fetch at the start: error %d", code)
	}

	r.restart()
	cl, adm = adminClients(t, r.b.Addr())
	if got := startOffset(t, ctx, adm, "trim", 0); got != 4 {
		t.Fatalf("after restart start offset %d, want 4", got)
	}
	if code := fetchErr(cl, 3); code != kerr.OffsetOutOfRange.Code {
		t.Fatalf("after restart fetch below the start: error %d", code)
	}
	// A consumer from the start begins at 4. (A short FetchMaxWait: the
	// broker's Close waits for a parked long poll to finish.)
	cons, err := kgo.NewClient(kgo.SeedBrokers(r.b.Addr()), kgo.FetchMaxWait(100*time.Millisecond),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"trim": {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	fs := cons.PollFetches(ctx)
	if err := fs.Err0(); err != nil {
		t.Fatal(err)
	}
	if recs := fs.Records(); len(recs) == 0 || recs[0].Offset != 4 {
		t.Fatalf("consumer from the start got %d records, first %+v", len(recs), recs)
	}
	// -1: up to the high watermark.
	if res := deleteBefore(adm, "trim", 0, -1); res.Err != nil || res.LowWatermark != 10 {
		t.Fatalf("delete all: %+v", res)
	}
	if res := deleteBefore(adm, "trim", 0, -7); !errors.Is(res.Err, kerr.OffsetOutOfRange) {
		t.Fatalf("negative offset: %+v", res)
	}

	// Raw: unknown topic and partition, and a partition given twice.
	req := kmsg.NewPtrDeleteRecordsRequest()
	add := func(topic string, p int32, off int64) {
		rt := kmsg.NewDeleteRecordsRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewDeleteRecordsRequestTopicPartition()
		rp.Partition, rp.Offset = p, off
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
	}
	produceTo(t, ctx, r.b.Addr(), "trim", 1, 5)
	add("nope", 0, 0)
	add("trim", 9, 0)
	add("trim", 1, 2)
	add("trim", 1, 3)
	kr, err := cl.Broker(0).Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	type tp struct {
		t string
		p int32
	}
	got := map[tp]kmsg.DeleteRecordsResponseTopicPartition{}
	n := 0
	for _, st := range kr.(*kmsg.DeleteRecordsResponse).Topics {
		for _, sp := range st.Partitions {
			got[tp{st.Topic, sp.Partition}] = sp
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d partition answers, want 3: %+v", n, got)
	}
	if got[tp{"nope", 0}].ErrorCode != kerr.UnknownTopicOrPartition.Code || got[tp{"trim", 9}].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("unknown partitions: %+v", got)
	}
	if sp := got[tp{"trim", 1}]; sp.ErrorCode != 0 || sp.LowWatermark != 3 {
		t.Errorf("duplicated partition: %+v, want low watermark 3 (the last offset given)", sp)
	}
}

func TestAdminOffsetForLeaderEpoch(t *testing.T) {
	b := startBroker(t, nil)
	ctx := testCtx(t)
	cl, adm := adminClients(t, b.Addr())
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "epochs"); err != nil {
		t.Fatal(err)
	}
	produceTo(t, ctx, b.Addr(), "epochs", 0, 7)

	var req kadm.OffsetForLeaderEpochRequest
	req.Add("epochs", 0, 0)
	req.Add("epochs", 1, 3)
	rs, err := adm.OffsetForLeaderEpoch(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if r := rs["epochs"][0]; r.Err != nil || r.LeaderEpoch != 0 || r.EndOffset != 7 {
		t.Errorf("epoch 0 of a partition with 7 records: %+v, want epoch 0 end 7", r)
	}
	if r := rs["epochs"][1]; r.Err != nil || r.LeaderEpoch != -1 || r.EndOffset != -1 {
		t.Errorf("future epoch: %+v, want -1/-1", r)
	}

	// Raw: CurrentLeaderEpoch fencing (v2+), an empty partition, epoch -1,
	// unknown partitions (kadm cannot route those).
	raw := kmsg.NewPtrOffsetForLeaderEpochRequest()
	rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
	rt.Topic = "epochs"
	for _, x := range []struct{ p, current, epoch int32 }{{0, 1, 0}, {0, -2, 0}, {0, 0, 0}, {1, -1, 0}, {0, -1, -1}} {
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = x.p, x.current, x.epoch
		rt.Partitions = append(rt.Partitions, rp)
	}
	raw.Topics = append(raw.Topics, rt)
	for _, x := range []struct {
		topic string
		p     int32
	}{{"missing", 0}, {"epochs", 2}} {
		rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
		rt.Topic = x.topic
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition = x.p
		rt.Partitions = append(rt.Partitions, rp)
		raw.Topics = append(raw.Topics, rt)
	}
	kr, err := cl.Broker(0).Request(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	oresp := kr.(*kmsg.OffsetForLeaderEpochResponse)
	if len(oresp.Topics) != 3 {
		t.Fatalf("%d topic answers, want 3", len(oresp.Topics))
	}
	for _, st := range oresp.Topics[1:] {
		if sp := st.Partitions[0]; sp.ErrorCode != kerr.UnknownTopicOrPartition.Code || sp.EndOffset != -1 {
			t.Errorf("%s/%d: %+v, want UNKNOWN_TOPIC_OR_PARTITION", st.Topic, sp.Partition, sp)
		}
	}
	ps := oresp.Topics[0].Partitions
	want := []struct {
		code   int16
		epoch  int32
		offset int64
	}{
		{kerr.UnknownLeaderEpoch.Code, -1, -1},
		{kerr.FencedLeaderEpoch.Code, -1, -1},
		{0, 0, 7},
		{0, 0, 0},
		{0, -1, -1},
	}
	if len(ps) != len(want) {
		t.Fatalf("%d answers, want %d", len(ps), len(want))
	}
	for i, w := range want {
		if ps[i].ErrorCode != w.code || ps[i].LeaderEpoch != w.epoch || ps[i].EndOffset != w.offset {
			t.Errorf("answer %d: error %d epoch %d offset %d, want %d %d %d", i, ps[i].ErrorCode, ps[i].LeaderEpoch, ps[i].EndOffset, w.code, w.epoch, w.offset)
		}
	}
}

// TestAdminInternalTopicsProtected: the coordinators' topics cannot be
// deleted, grown or trimmed by clients.
func TestAdminInternalTopicsProtected(t *testing.T) {
	b := startBroker(t, nil)
	ctx := testCtx(t)
	cl, adm := adminClients(t, b.Addr())
	// FindCoordinator creates __consumer_offsets on first use.
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKey = "g"
	fc.CoordinatorKeys = []string{"g"}
	if _, err := fc.RequestWith(ctx, cl); err != nil {
		t.Fatal(err)
	}
	const topic = "__consumer_offsets"
	md, err := adm.Metadata(ctx, topic)
	if err != nil || md.Topics[topic].Err != nil {
		t.Fatalf("metadata of %s: %v %v", topic, err, md.Topics[topic].Err)
	}
	parts := len(md.Topics[topic].Partitions)

	if _, err := adm.DeleteTopic(ctx, topic); !errors.Is(err, kerr.InvalidRequest) {
		t.Errorf("delete %s: %v, want INVALID_REQUEST", topic, err)
	}
	rs, err := adm.CreatePartitions(ctx, 1, topic)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(rs[topic].Err, kerr.InvalidRequest) {
		t.Errorf("grow %s: %v, want INVALID_REQUEST", topic, rs[topic].Err)
	}
	req := kmsg.NewPtrDeleteRecordsRequest()
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Offset = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	kr, err := cl.Broker(0).Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if code := kr.(*kmsg.DeleteRecordsResponse).Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidTopicException.Code {
		t.Errorf("delete records of %s: error %d, want INVALID_TOPIC_EXCEPTION", topic, code)
	}
	md, err = adm.Metadata(ctx, topic)
	if err != nil || md.Topics[topic].Err != nil || len(md.Topics[topic].Partitions) != parts {
		t.Fatalf("%s changed: %v %v, %d partitions (had %d)", topic, err, md.Topics[topic].Err, len(md.Topics[topic].Partitions), parts)
	}
}
