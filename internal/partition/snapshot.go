package partition

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path"

	"github.com/oncelog/oncelog/internal/vfs"
)

// The producer state snapshot shortens replay after a restart and keeps the
// producer state of data removed by retention or DeleteRecords. Recovery
// from the log alone yields the same state for the data still in the log.
//
// File: "producer-state.snapshot", written atomically (temp file, fsync,
// rename, fsync directory). Layout: magic "OLPS", version uint16, crc32c
// uint32 of the body, body length uint32, body (JSON of snapshotBody).

const (
	snapshotName    = "producer-state.snapshot"
	snapshotMagic   = "OLPS"
	snapshotVersion = 1
	snapshotHeader  = 4 + 2 + 4 + 4
	// maxSnapshotBytes bounds what is read back; a table at its limit of
	// entries stays far below it.
	maxSnapshotBytes = 256 << 20
)

type snapshotBody struct {
	// Offset is the log end offset the state corresponds to: it derives
	// from every batch below Offset.
	Offset    int64           `json:"offset"`
	Producers []ProducerEntry `json:"producers"`
	Aborted   []AbortedTxn    `json:"aborted"`
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// writeSnapshot syncs the log and writes the state as of its end. Owner only
// (or after the owner stopped).
func (p *Partition) writeSnapshot() error {
	if err := p.log.Sync(); err != nil {
		return err
	}
	p.mu.Lock()
	aborted := append([]AbortedTxn(nil), p.mu.aborted...)
	p.mu.Unlock()
	body := snapshotBody{Offset: p.log.NextOffset(), Producers: p.producers.sorted(), Aborted: aborted}
	if err := writeSnapshotFile(p.opts.FS, p.opts.Dir, &body); err != nil {
		return fmt.Errorf("partition %s-%d: writing producer snapshot: %w", p.Topic, p.Index, err)
	}
	p.snapshotOffset = body.Offset
	p.snapshotStale = false
	return nil
}

func writeSnapshotFile(fs vfs.FS, dir string, body *snapshotBody) error {
	js, err := json.Marshal(body)
	if err != nil {
		return err
	}
	buf := make([]byte, snapshotHeader, snapshotHeader+len(js))
	copy(buf, snapshotMagic)
	binary.BigEndian.PutUint16(buf[4:], snapshotVersion)
	binary.BigEndian.PutUint32(buf[6:], crc32.Checksum(js, crcTable))
	binary.BigEndian.PutUint32(buf[10:], uint32(len(js)))
	buf = append(buf, js...)
	return vfs.WriteFileAtomic(fs, path.Join(dir, snapshotName), buf)
}

// readSnapshot returns nil, nil when there is no snapshot, and an error when
// one exists but cannot be used (the caller then rebuilds from the log).
func readSnapshot(fs vfs.FS, dir string) (*snapshotBody, error) {
	f, err := fs.OpenFile(path.Join(dir, snapshotName), os.O_RDONLY, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	defer f.Close()
	var hdr [snapshotHeader]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return nil, fmt.Errorf("snapshot header: %w", err)
	}
	if string(hdr[:4]) != snapshotMagic {
		return nil, errors.New("snapshot: bad magic")
	}
	if v := binary.BigEndian.Uint16(hdr[4:]); v != snapshotVersion {
		return nil, fmt.Errorf("snapshot: unknown version %d", v)
	}
	n := binary.BigEndian.Uint32(hdr[10:])
	if n > maxSnapshotBytes {
		return nil, fmt.Errorf("snapshot: body of %d bytes exceeds the limit", n)
	}
	body := make([]byte, n)
	if _, err := f.ReadAt(body, snapshotHeader); err != nil && !(errors.Is(err, io.EOF) && len(body) == 0) {
		return nil, fmt.Errorf("snapshot body: %w", err)
	}
	if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(hdr[6:]) {
		return nil, errors.New("snapshot: CRC mismatch")
	}
	var s snapshotBody
	if err := json.Unmarshal(body, &s); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return &s, nil
}
