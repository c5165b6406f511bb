package partlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path"

	"github.com/oncelog/oncelog/internal/vfs"
)

// The log start offset checkpoint, file "log-start-offset":
//
//	0 magic   "OLSO"
//	4 version uint8 (1)
//	5 offset  int64, big endian
//	13 crc    uint32, CRC-32C of bytes [0:13)
//
// It is replaced atomically (temp file, fsync, rename, fsync directory), so a
// reader sees the old or the new checkpoint, never a torn one; a file that
// does not verify is therefore corruption, not a crash artefact.
const (
	checkpointName    = "log-start-offset"
	checkpointTmpName = checkpointName + ".tmp"
	checkpointMagic   = "OLSO"
	checkpointVersion = 1
	checkpointSize    = 17
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func encodeCheckpoint(off int64) []byte {
	b := make([]byte, checkpointSize)
	copy(b, checkpointMagic)
	b[4] = checkpointVersion
	binary.BigEndian.PutUint64(b[5:], uint64(off))
	binary.BigEndian.PutUint32(b[13:], crc32.Checksum(b[:13], castagnoli))
	return b
}

// readCheckpoint returns the stored log start offset; ok is false if there is
// none.
func readCheckpoint(fsys vfs.FS, dir string) (off int64, ok bool, err error) {
	p := path.Join(dir, checkpointName)
	f, err := fsys.OpenFile(p, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	b := make([]byte, checkpointSize+1)
	n, err := f.ReadAt(b, 0)
	if err != nil && err != io.EOF {
		return 0, false, err
	}
	b = b[:n]
	err = nil // io.EOF after a full read is not an error
	switch {
	case n != checkpointSize:
		err = fmt.Errorf("size %d, want %d", n, checkpointSize)
	case string(b[:4]) != checkpointMagic:
		err = fmt.Errorf("bad magic %q", b[:4])
	case b[4] != checkpointVersion:
		err = fmt.Errorf("unknown version %d", b[4])
	case crc32.Checksum(b[:13], castagnoli) != binary.BigEndian.Uint32(b[13:]):
		err = errors.New("CRC mismatch")
	}
	if err != nil {
		return 0, false, fmt.Errorf("%w: checkpoint %s: %v; refusing to start", ErrCorrupt, p, err)
	}
	off = int64(binary.BigEndian.Uint64(b[5:]))
	if off < 0 {
		return 0, false, fmt.Errorf("%w: checkpoint %s: negative offset %d; refusing to start", ErrCorrupt, p, off)
	}
	return off, true, nil
}

// writeCheckpoint durably replaces the checkpoint with off (through
// checkpointTmpName, which Open removes if a crash left it).
func writeCheckpoint(fsys vfs.FS, dir string, off int64) error {
	return vfs.WriteFileAtomic(fsys, path.Join(dir, checkpointName), encodeCheckpoint(off))
}
