// Package meta is the broker's metadata log: the durable record of topics,
// their partition counts and config overrides, and the blocks of producer
// ids handed out. The in-memory view is derived by replaying the log.
//
// File "metadata.log" in the metadata directory: a sequence of frames
// [length uint32][crc32c uint32][JSON record]. Every append is fsynced
// before it returns. Recovery truncates a torn tail frame and refuses to
// start on a bad frame followed by valid data. When the log grows past
// compactAfterRecords it is rewritten as the current state (temp file,
// fsync, rename, fsync directory).
package meta

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path"
	"sort"
	"sync"

	"github.com/oncelog/oncelog/internal/vfs"
)

const (
	fileName            = "metadata.log"
	frameHeader         = 8
	maxRecordBytes      = 16 << 20
	compactAfterRecords = 10000
)

// Record is one metadata change.
type Record struct {
	Type string `json:"type"`
	// Topic records.
	Name       string            `json:"name,omitempty"`
	TopicID    string            `json:"topic_id,omitempty"`
	Partitions int32             `json:"partitions,omitempty"`
	Configs    map[string]string `json:"configs,omitempty"`
	// pid_block: producer ids below NextProducerID may have been handed out.
	NextProducerID int64 `json:"next_producer_id,omitempty"`
}

// Record types.
const (
	TypeTopicCreate   = "topic_create"
	TypeTopicDelete   = "topic_delete"
	TypePartitionsAdd = "partitions_add"
	TypeTopicConfig   = "topic_config"
	TypePIDBlock      = "pid_block"
)

// TopicState is the derived state of one topic.
type TopicState struct {
	Name       string
	TopicID    string
	Partitions int32
	Configs    map[string]string
}

// State is the whole derived metadata.
type State struct {
	Topics         map[string]*TopicState
	NextProducerID int64
}

func newState() *State { return &State{Topics: make(map[string]*TopicState)} }

// apply derives the state change of one record.
func (s *State) apply(r *Record) error {
	switch r.Type {
	case TypeTopicCreate:
		s.Topics[r.Name] = &TopicState{Name: r.Name, TopicID: r.TopicID, Partitions: r.Partitions, Configs: copyMap(r.Configs)}
	case TypeTopicDelete:
		delete(s.Topics, r.Name)
	case TypePartitionsAdd:
		t := s.Topics[r.Name]
		if t == nil {
			return fmt.Errorf("partitions_add for unknown topic %q", r.Name)
		}
		t.Partitions = r.Partitions
	case TypeTopicConfig:
		t := s.Topics[r.Name]
		if t == nil {
			return fmt.Errorf("topic_config for unknown topic %q", r.Name)
		}
		t.Configs = copyMap(r.Configs)
	case TypePIDBlock:
		if r.NextProducerID > s.NextProducerID {
			s.NextProducerID = r.NextProducerID
		}
	default:
		return fmt.Errorf("unknown record type %q", r.Type)
	}
	return nil
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Log is the open metadata log. Safe for concurrent use.
type Log struct {
	fs  vfs.FS
	dir string

	mu struct {
		sync.Mutex
		f       vfs.File
		records int
		state   *State
		err     error // sticky write error
	}
}

// Open replays the metadata log in dir, creating it if absent.
func Open(fs vfs.FS, dir string) (*Log, error) {
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	l := &Log{fs: fs, dir: dir}
	name := path.Join(dir, fileName)
	f, err := fs.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	st, n, validEnd, err := replay(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("metadata log %s: %w", name, err)
	}
	if fi, err := f.Stat(); err == nil && fi.Size() > validEnd {
		// A torn tail from a crash during an append: that append was
		// never acknowledged, so dropping it loses nothing.
		if err := f.Truncate(validEnd); err != nil {
			f.Close()
			return nil, err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, err
		}
	}
	if err := fs.SyncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	l.mu.f, l.mu.state, l.mu.records = f, st, n
	if n > compactAfterRecords {
		l.mu.Lock()
		err := l.compactLocked()
		l.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	return l, nil
}

// replay reads every frame; it returns the state, the number of records and
// the end of the last valid frame. A bad frame is tolerated only at the tail.
func replay(f vfs.File) (*State, int, int64, error) {
	st := newState()
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, 1<<62), 1<<16)
	var pos int64
	n := 0
	var hdr [frameHeader]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return st, n, pos, nil // clean end or torn header
		}
		size := binary.BigEndian.Uint32(hdr[0:])
		if size > maxRecordBytes {
			return st, n, pos, tailOrCorrupt(r, pos, "frame length out of range")
		}
		body := make([]byte, size)
		if _, err := io.ReadFull(r, body); err != nil {
			return st, n, pos, nil // torn body
		}
		if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(hdr[4:]) {
			return st, n, pos, tailOrCorrupt(r, pos, "CRC mismatch")
		}
		var rec Record
		if err := json.Unmarshal(body, &rec); err != nil {
			return st, n, pos, fmt.Errorf("record at position %d: %w", pos, err)
		}
		if err := st.apply(&rec); err != nil {
			return st, n, pos, fmt.Errorf("record at position %d: %w", pos, err)
		}
		pos += frameHeader + int64(size)
		n++
	}
}

// tailOrCorrupt decides whether a bad frame is a torn tail or corruption.
// Every append is fsynced before the next starts, so only the last frame
// can be torn: if any valid frame follows the bad one, the bad one is
// corruption of acknowledged metadata, and truncating would lose the valid
// records after it.
func tailOrCorrupt(r *bufio.Reader, pos int64, why string) error {
	rest, _ := io.ReadAll(r)
	for i := 0; i+frameHeader <= len(rest); i++ {
		size := int(binary.BigEndian.Uint32(rest[i:]))
		if size > maxRecordBytes || i+frameHeader+size > len(rest) {
			continue
		}
		body := rest[i+frameHeader : i+frameHeader+size]
		if crc32.Checksum(body, crcTable) == binary.BigEndian.Uint32(rest[i+4:]) && json.Valid(body) {
			return fmt.Errorf("corrupt frame at position %d (%s) followed by valid records; refusing to start", pos, why)
		}
	}
	return nil
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func frame(rec *Record) ([]byte, error) {
	body, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, frameHeader, frameHeader+len(body))
	binary.BigEndian.PutUint32(buf[0:], uint32(len(body)))
	binary.BigEndian.PutUint32(buf[4:], crc32.Checksum(body, crcTable))
	return append(buf, body...), nil
}

// ErrFailed wraps the sticky error of a failed metadata write.
var ErrFailed = errors.New("metadata log failed")

// Append validates rec against the current state, writes and fsyncs it,
// then applies it. check, if not nil, runs under the lock before the write
// and may reject the record.
func (l *Log) Append(rec *Record, check func(*State) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.err != nil {
		return l.mu.err
	}
	if check != nil {
		if err := check(l.mu.state); err != nil {
			return err
		}
	}
	// Apply to a scratch copy first so an invalid record is never written.
	scratch := l.cloneStateLocked()
	if err := scratch.apply(rec); err != nil {
		return err
	}
	buf, err := frame(rec)
	if err != nil {
		return err
	}
	if _, err := l.mu.f.Write(buf); err != nil {
		l.mu.err = fmt.Errorf("%w: %v", ErrFailed, err)
		return l.mu.err
	}
	if err := l.mu.f.Sync(); err != nil {
		l.mu.err = fmt.Errorf("%w: %v", ErrFailed, err)
		return l.mu.err
	}
	l.mu.state = scratch
	l.mu.records++
	if l.mu.records > compactAfterRecords {
		if err := l.compactLocked(); err != nil {
			l.mu.err = fmt.Errorf("%w: compaction: %v", ErrFailed, err)
			return nil // the record itself is durable
		}
	}
	return nil
}

func (l *Log) cloneStateLocked() *State {
	s := newState()
	s.NextProducerID = l.mu.state.NextProducerID
	for k, t := range l.mu.state.Topics {
		c := *t
		c.Configs = copyMap(t.Configs)
		s.Topics[k] = &c
	}
	return s
}

// compactLocked rewrites the log as the records that recreate the state.
func (l *Log) compactLocked() error {
	var recs []*Record
	names := make([]string, 0, len(l.mu.state.Topics))
	for n := range l.mu.state.Topics {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := l.mu.state.Topics[n]
		recs = append(recs, &Record{Type: TypeTopicCreate, Name: t.Name, TopicID: t.TopicID, Partitions: t.Partitions, Configs: t.Configs})
	}
	recs = append(recs, &Record{Type: TypePIDBlock, NextProducerID: l.mu.state.NextProducerID})
	var buf []byte
	for _, r := range recs {
		b, err := frame(r)
		if err != nil {
			return err
		}
		buf = append(buf, b...)
	}
	name := path.Join(l.dir, fileName)
	if err := vfs.WriteFileAtomic(l.fs, name, buf); err != nil {
		return err
	}
	nf, err := l.fs.OpenFile(name, os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	l.mu.f.Close()
	l.mu.f = nf
	l.mu.records = len(recs)
	return nil
}

// State returns a copy of the current state.
func (l *Log) State() *State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cloneStateLocked()
}

// Close closes the log file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.f.Close()
}
