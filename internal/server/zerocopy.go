package server

// Zero-copy fetch responses.
//
// A fetch of a large partition (minSendfileBytes of records or more) on a
// TCP connection, with the log on the OS filesystem, leaves the records in
// the segment files: the partition gives file ranges (partition.FetchRanges)
// and holds the segments open. The response is still encoded by kmsg (STYLE
// rule 2), with each such partition's RecordBatches set to a placeholder:
// placeholderBytes bytes, a per-process random prefix and the partition's
// index among the ranged ones. spliceFrame finds the placeholders in the
// encoded frame, in order, and cuts it into parts: the bytes before a
// placeholder's length prefix, the prefix for the real length (non-flexible
// versions: int32; flexible, v12+: uvarint(len+1), whose width differs from
// the placeholder's), the records, then the bytes up to the next one. The
// frame's size prefix is rewritten for the real total. The writer sends the
// byte parts through its bufio.Writer and each record part with
// sendfile(2) from the file to the socket (sendRange), after a flush.
//
// NB: the placeholder is only searched for. A record set inlined in the
// same frame (a smaller partition) could contain it only by knowing the
// process's random prefix (crypto/rand at start), and each placeholder is
// checked to sit right after its own length prefix; a frame that breaks
// that is a bug, and panics.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	"sync/atomic"
	"syscall"

	"github.com/oncelog/oncelog/internal/partlog"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// minSendfileBytes is the smallest record set of one partition sent from
// its file rather than copied into the frame: below it, a sendfile call
// (and the flush before it) costs more than the copy it saves.
const minSendfileBytes = 64 << 10

// zeroCopySets and zeroCopyBytes count the record sets and bytes sent
// from their files, for tests and profiles.
var zeroCopySets, zeroCopyBytes atomic.Int64

// placeholderBytes is a placeholder's size: a 16-byte random prefix and a
// big-endian uint32 index.
const placeholderBytes = 20

// placeholderPrefix is the random part of every placeholder of this
// process.
var placeholderPrefix = func() (p [placeholderBytes - 4]byte) {
	rand.Read(p[:])
	return p
}()

// appendPlaceholder appends the placeholder of ranged partition i.
func appendPlaceholder(dst []byte, i int) []byte {
	dst = append(dst, placeholderPrefix[:]...)
	return binary.BigEndian.AppendUint32(dst, uint32(i))
}

// rangedRecords are one partition's records left in the log's files.
type rangedRecords struct {
	rs      partlog.FileRanges
	release func() // gives the segments back; once, after the send
}

// framePart is a piece of a frame sent in parts: the bytes b, or (rec >= 0)
// the records of ranged partition rec.
type framePart struct {
	b   []byte
	rec int
}

// spliceFrame cuts frame, an encoded response frame (size prefix first)
// whose ranged partitions carry placeholders 0..len(recLens)-1 in encoding
// order, into the parts that send it with the real records of recLens[i]
// bytes in place of placeholder i; flexible is whether the response is. It
// rewrites frame's size prefix and appends the new length prefixes to
// scratch, which the parts alias; both are returned for reuse.
func spliceFrame(frame []byte, flexible bool, recLens []int64, parts []framePart, scratch []byte) ([]framePart, []byte, error) {
	parts = parts[:0]
	// Room for every prefix up front, so the parts' slices of scratch
	// stay valid.
	if need := 5 * len(recLens); cap(scratch) < need {
		scratch = make([]byte, 0, need)
	}
	scratch = scratch[:0]
	total := int64(len(frame) - 4)
	from := 4 // frame[4:from] is in parts already (with the size prefix)
	var ph [placeholderBytes]byte
	for i, n := range recLens {
		appendPlaceholder(ph[:0], i)
		at := bytes.Index(frame[from:], ph[:])
		if at < 0 {
			panic(fmt.Sprintf("server: placeholder %d of %d not found in the frame", i, len(recLens)))
		}
		at += from
		// The placeholder's own length prefix, checked, and the real
		// one.
		var old int
		start := len(scratch)
		if flexible {
			old = 1 // uvarint(placeholderBytes+1) is one byte
			if at-old < from || frame[at-1] != placeholderBytes+1 {
				panic(fmt.Sprintf("server: placeholder %d does not follow its compact length", i))
			}
			scratch = binary.AppendUvarint(scratch, uint64(n)+1)
		} else {
			old = 4
			if at-old < from || binary.BigEndian.Uint32(frame[at-4:]) != placeholderBytes {
				panic(fmt.Sprintf("server: placeholder %d does not follow its int32 length", i))
			}
			if n > math.MaxInt32 {
				return parts, scratch, fmt.Errorf("record set of %d bytes", n)
			}
			scratch = binary.BigEndian.AppendUint32(scratch, uint32(n))
		}
		prefix := scratch[start:]
		// The frame's own size prefix goes with the first byte part.
		first := from
		if i == 0 {
			first = 0
		}
		parts = append(parts, framePart{b: frame[first : at-old], rec: -1}, framePart{b: prefix, rec: -1}, framePart{rec: i})
		total += int64(len(prefix)-old) + n - placeholderBytes
		from = at + placeholderBytes
	}
	if len(recLens) == 0 {
		from = 0
	}
	parts = append(parts, framePart{b: frame[from:], rec: -1})
	if total > math.MaxInt32 {
		return parts, scratch, fmt.Errorf("response frame of %d bytes", total)
	}
	binary.BigEndian.PutUint32(frame, uint32(total))
	return parts, scratch, nil
}

// appendFrame appends resp's frame for the request p answers: size prefix
// (of the frame as encoded; spliceFrame rewrites it), correlation id, the
// header's tag buffer when flexible, the body.
func appendFrame(buf []byte, p *pending, resp kmsg.Response) []byte {
	resp.SetVersion(p.version)
	buf = append(buf[:0], 0, 0, 0, 0)
	buf = binary.BigEndian.AppendUint32(buf, uint32(p.corr))
	// NB: ApiVersions responses always use header v0, even when the
	// body is flexible (KIP-511), so clients can read them before they
	// know our versions.
	if p.flexible && p.key != apiVersionsKey {
		buf = append(buf, 0)
	}
	buf = resp.AppendTo(buf)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	return buf
}

// writeParts writes a spliced frame: byte parts through w, record parts by
// sendfile straight to the socket (rc), after flushing w; the bytes after
// the last record set may be left in w. NB: TCP_CORK around the parts (so
// the bytes before a record set share its first segment rather than go as
// a small one) made no measurable difference on loopback and is not used.
func writeParts(w *bufio.Writer, rc syscall.RawConn, parts []framePart, ranged []rangedRecords) error {
	for _, r := range ranged {
		var n int64
		for _, x := range r.rs.Ranges {
			n += x.Len
		}
		if n != r.rs.Bytes {
			panic(fmt.Sprintf("server: ranges of %d bytes for a record set of %d", n, r.rs.Bytes))
		}
	}
	for _, p := range parts {
		if p.rec < 0 {
			if _, err := w.Write(p.b); err != nil {
				return err
			}
			continue
		}
		if err := w.Flush(); err != nil {
			return err
		}
		for _, r := range ranged[p.rec].rs.Ranges {
			if err := sendRange(rc, r); err != nil {
				return err
			}
		}
		zeroCopySets.Add(1)
		zeroCopyBytes.Add(ranged[p.rec].rs.Bytes)
	}
	return nil
}
