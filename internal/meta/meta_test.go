package meta

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oncelog/oncelog/internal/vfs"
)

func mustAppend(t *testing.T, l *Log, r *Record) {
	t.Helper()
	if err := l.Append(r, nil); err != nil {
		t.Fatal(err)
	}
}

func TestReplayAfterReopen(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(vfs.OS, dir)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, &Record{Type: TypeTopicCreate, Name: "a", TopicID: "00", Partitions: 3, Configs: map[string]string{"retention.ms": "1"}})
	mustAppend(t, l, &Record{Type: TypeTopicCreate, Name: "b", TopicID: "01", Partitions: 1})
	mustAppend(t, l, &Record{Type: TypePartitionsAdd, Name: "a", Partitions: 5})
	mustAppend(t, l, &Record{Type: TypeTopicConfig, Name: "a", Configs: map[string]string{}})
	mustAppend(t, l, &Record{Type: TypeTopicDelete, Name: "b"})
	mustAppend(t, l, &Record{Type: TypePIDBlock, NextProducerID: 2000})
	if err := l.Append(&Record{Type: TypePartitionsAdd, Name: "missing", Partitions: 2}, nil); err == nil {
		t.Fatal("a record for a missing topic was accepted")
	}
	want := l.State()
	l.Close()
	l2, err := Open(vfs.OS, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	got := l2.State()
	if len(got.Topics) != 1 || got.Topics["a"].Partitions != 5 || len(got.Topics["a"].Configs) != 0 || got.NextProducerID != 2000 {
		t.Fatalf("replayed state %+v, want %+v", got, want)
	}
}

func TestTornTailIsTruncated(t *testing.T) {
	dir := t.TempDir()
	l, _ := Open(vfs.OS, dir)
	mustAppend(t, l, &Record{Type: TypeTopicCreate, Name: "a", TopicID: "00", Partitions: 1})
	l.Close()
	name := filepath.Join(dir, fileName)
	good, _ := os.ReadFile(name)
	// A crash in the middle of the next append leaves part of a frame.
	f, _ := os.OpenFile(name, os.O_APPEND|os.O_WRONLY, 0)
	frame, _ := frame(&Record{Type: TypeTopicCreate, Name: "b", TopicID: "01", Partitions: 1})
	f.Write(frame[:len(frame)-3])
	f.Close()
	l2, err := Open(vfs.OS, dir)
	if err != nil {
		t.Fatal(err)
	}
	if st := l2.State(); len(st.Topics) != 1 {
		t.Fatalf("topics after torn tail: %v", st.Topics)
	}
	mustAppend(t, l2, &Record{Type: TypeTopicCreate, Name: "c", TopicID: "02", Partitions: 1})
	l2.Close()
	after, _ := os.ReadFile(name)
	if !strings.HasPrefix(string(after), string(good)) {
		t.Fatal("valid prefix changed")
	}
	l3, err := Open(vfs.OS, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l3.Close()
	if st := l3.State(); len(st.Topics) != 2 || st.Topics["c"] == nil {
		t.Fatalf("topics after repair and append: %v", st.Topics)
	}
}

func TestCorruptMiddleRefused(t *testing.T) {
	dir := t.TempDir()
	l, _ := Open(vfs.OS, dir)
	for i := 0; i < 3; i++ {
		mustAppend(t, l, &Record{Type: TypeTopicCreate, Name: fmt.Sprint("t", i), TopicID: "00", Partitions: 1})
	}
	l.Close()
	name := filepath.Join(dir, fileName)
	b, _ := os.ReadFile(name)
	b[frameHeader+3] ^= 0xff // inside the first record's body
	os.WriteFile(name, b, 0o644)
	_, err := Open(vfs.OS, dir)
	if err == nil || !strings.Contains(err.Error(), "refusing to start") || !strings.Contains(err.Error(), "position 0") {
		t.Fatalf("corrupt middle record: %v", err)
	}
}

func TestCompaction(t *testing.T) {
	dir := t.TempDir()
	l, _ := Open(vfs.OS, dir)
	for i := 0; i < compactAfterRecords+10; i++ {
		mustAppend(t, l, &Record{Type: TypePIDBlock, NextProducerID: int64(i+1) * 1000})
	}
	mustAppend(t, l, &Record{Type: TypeTopicCreate, Name: "kept", TopicID: "00", Partitions: 2})
	want := l.State()
	l.Close()
	fi, _ := os.Stat(filepath.Join(dir, fileName))
	if fi.Size() > 100<<10 {
		t.Fatalf("log not compacted: %d bytes", fi.Size())
	}
	l2, err := Open(vfs.OS, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	got := l2.State()
	if got.NextProducerID != want.NextProducerID || got.Topics["kept"] == nil {
		t.Fatalf("after compaction %+v, want %+v", got, want)
	}
}
