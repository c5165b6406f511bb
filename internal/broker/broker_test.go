package broker

import (
	"strings"
	"testing"

	"github.com/oncelog/oncelog/internal/config"
	"github.com/twmb/franz-go/pkg/kerr"
)

func openAt(t *testing.T, dir string) *Broker {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = dir
	b, err := Open(Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestProducerIDsNeverReused: ids are reserved in durable blocks, so a
// restart, clean or not, never hands out an id again.
func TestProducerIDsNeverReused(t *testing.T) {
	dir := t.TempDir()
	b := openAt(t, dir)
	seen := map[int64]bool{}
	var last int64
	for i := 0; i < 2500; i++ {
		id, err := b.AllocateProducerID()
		if err != nil {
			t.Fatal(err)
		}
		if seen[id] {
			t.Fatalf("id %d handed out twice", id)
		}
		seen[id], last = true, id
	}
	// A crash: the broker is not closed (only the lock goes, as the
	// kernel drops it when a process dies); the next one opens the dir.
	b.unlock()
	b.unlock = nil
	b2 := openAt(t, dir)
	id, err := b2.AllocateProducerID()
	if err != nil {
		t.Fatal(err)
	}
	if id <= last || seen[id] {
		t.Fatalf("after restart got id %d; last before was %d", id, last)
	}
	b2.Close()
	b.Close()
}

func TestTopicsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	b := openAt(t, dir)
	if _, err := b.CreateTopic("orders", 4, map[string]string{"retention.ms": "60000"}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateTopic("gone", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteTopic("gone"); err != nil {
		t.Fatal(err)
	}
	if err := b.CreatePartitions("orders", 6, false); err != nil {
		t.Fatal(err)
	}
	id := b.Topic("orders").ID
	b.Close()
	b = openAt(t, dir)
	defer b.Close()
	tp := b.Topic("orders")
	if tp == nil || len(tp.Partitions) != 6 || tp.ID != id || tp.Config.RetentionMs.Milliseconds() != 60000 {
		t.Fatalf("orders after restart: %+v", tp)
	}
	if b.Topic("gone") != nil {
		t.Fatal("deleted topic came back")
	}
}

func TestCreateTopicRules(t *testing.T) {
	b := openAt(t, t.TempDir())
	defer b.Close()
	cases := []struct {
		name  string
		parts int32
		cfg   map[string]string
		want  *kerr.Error
	}{
		{"", 1, nil, kerr.InvalidTopicException},
		{"..", 1, nil, kerr.InvalidTopicException},
		{"bad name", 1, nil, kerr.InvalidTopicException},
		{"ok", 0, nil, kerr.InvalidPartitions},
		{"ok", 1, map[string]string{"no.such": "1"}, kerr.InvalidConfig},
		{"ok", 1, map[string]string{"retention.ms": "soon"}, kerr.InvalidConfig},
		{"__consumer_offsets", 1, nil, kerr.InvalidRequest},
	}
	for _, c := range cases {
		_, err := b.CreateTopic(c.name, c.parts, c.cfg, false)
		if err == nil || err.Code != c.want {
			t.Errorf("CreateTopic(%q, %d, %v) = %v, want %v", c.name, c.parts, c.cfg, err, c.want)
		}
	}
	if _, err := b.CreateTopic("ok", -1, nil, false); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateTopic("ok", 1, nil, false); err == nil || err.Code != kerr.TopicAlreadyExists {
		t.Fatalf("duplicate create: %v", err)
	}
}

func TestDataDirIsLocked(t *testing.T) {
	dir := t.TempDir()
	b := openAt(t, dir)
	cfg := config.Default()
	cfg.DataDir = dir
	if _, err := Open(Options{Config: cfg}); err == nil || !strings.Contains(err.Error(), "in use by another oncelog process") {
		t.Fatalf("second broker on the same dir: %v", err)
	}
	b.Close()
	b2 := openAt(t, dir) // released on close
	b2.Close()
}
