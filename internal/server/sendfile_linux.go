package server

import (
	"fmt"
	"io"
	"syscall"

	"github.com/oncelog/oncelog/internal/partlog"
)

// sendfileSupported: sendRange works here.
const sendfileSupported = true

// maxSendfileChunk bounds one sendfile(2) call (Linux sends at most
// 0x7ffff000 bytes per call anyway).
const maxSendfileChunk = 1 << 30

// sendRange sends r from its file to the socket behind rc with sendfile(2),
// until every byte is sent or an error. The file offset is passed
// explicitly, so the file's position does not move and concurrent preads of
// the same file (other fetches, the owner) are unaffected. The socket is
// non-blocking: on EAGAIN the callback returns false and the runtime's
// poller waits until the socket is writable (as a blocked Write would).
// A file shorter than the range (a Truncate under the send) is an error.
func sendRange(rc syscall.RawConn, r partlog.FileRange) error {
	// NB: Fd, not SyscallConn and Control (an allocation per call): the
	// segment's reference keeps the file open until the send is done, and
	// a regular file is never in non-blocking mode, which is the one
	// thing Fd changes.
	infd := int(r.File.Fd())
	off, end := r.Pos, r.Pos+r.Len
	var serr error
	werr := rc.Write(func(outfd uintptr) bool {
		for off < end {
			n, err := syscall.Sendfile(int(outfd), infd, &off, int(min(end-off, maxSendfileChunk)))
			switch {
			case err == syscall.EAGAIN:
				return false
			case err == syscall.EINTR:
				continue
			case err != nil:
				serr = fmt.Errorf("sendfile %s at %d: %w", r.File.Name(), off, err)
				return true
			case n == 0:
				serr = fmt.Errorf("sendfile %s at %d: %w", r.File.Name(), off, io.ErrUnexpectedEOF)
				return true
			}
			// The kernel moved off by n.
		}
		return true
	})
	if serr != nil {
		return serr
	}
	return werr
}
