package test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/oncelog/oncelog/embed"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestPreallocateTopic: a topic created with preallocate=true keeps its
// active segment ahead of its data with zeros (internal/partlog's
// pre-zeroed extents), so does one created with the broker's defaults, one
// with preallocate=false does not, and all read back whole after a restart
// on the same directory.
func TestPreallocateTopic(t *testing.T) {
	dir := t.TempDir()
	b, err := embed.Start(embed.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	on := "true"
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"preallocate": &on}, "prealloc-on"); err != nil {
		t.Fatal(err)
	}
	off := "false"
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"preallocate": &off}, "prealloc-off"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "prealloc-default"); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	for _, topic := range []string{"prealloc-on", "prealloc-off", "prealloc-default"} {
		producePlain(t, addr, topic, 0, "a", "b", "c")
	}
	rc, err := kadm.NewClient(mustClient(t, addr)).DescribeTopicConfigs(ctx, "prealloc-on", "prealloc-off", "prealloc-default")
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]string{"prealloc-on": "true", "prealloc-off": "false", "prealloc-default": "true"} {
		if v, err := rc.On(topic, nil); err != nil || !slices.ContainsFunc(v.Configs, func(c kadm.Config) bool {
			return c.Key == "preallocate" && c.Value != nil && *c.Value == want
		}) {
			t.Fatalf("%s: preallocate not described as %s: %+v %v", topic, want, v, err)
		}
	}
	b.Close()
	size := func(topic string) int64 {
		st, err := os.Stat(filepath.Join(dir, topic+"-0", "00000000000000000000.log"))
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	if on, off, def := size("prealloc-on"), size("prealloc-off"), size("prealloc-default"); on <= off || def != on {
		t.Fatalf("segments: preallocate=true %d bytes, false %d, default %d: want zeros ahead of the data with true and by default", on, off, def)
	}
	b, err = embed.Start(embed.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, topic := range []string{"prealloc-on", "prealloc-off", "prealloc-default"} {
		if got := readAll(t, b.Addr(), false, topic); !slices.Equal(got, []string{topic + ":a", topic + ":b", topic + ":c"}) {
			t.Fatalf("%s after restart: %v", topic, got)
		}
	}
}

func mustClient(t *testing.T, addr string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}
