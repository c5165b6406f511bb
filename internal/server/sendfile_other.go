//go:build !linux

package server

import (
	"errors"
	"syscall"

	"github.com/oncelog/oncelog/internal/partlog"
)

// sendfileSupported: zero-copy fetch responses are Linux-only; elsewhere
// fetches copy the records.
const sendfileSupported = false

func sendRange(syscall.RawConn, partlog.FileRange) error {
	return errors.New("sendfile is not supported on this platform")
}
