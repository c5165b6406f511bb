// Package failpoint lets crash tests kill the broker at a chosen point of a
// protocol path. A failpoint is armed by naming it in the environment
// variable ONCELOG_FAILPOINTS (comma-separated) of the broker process; when
// the code reaches an armed point the process kills itself with SIGKILL,
// exactly as a crash would. Unarmed, Hit costs one map lookup of an empty
// map.
//
// The points, in the order a transaction's commit passes them:
//
//	txn.after-prepare         PrepareCommit/PrepareAbort is durable, no marker written
//	txn.after-first-marker    one marker of the transaction is durable
//	txn.after-markers         every marker is durable, completion not yet written
package failpoint

import (
	"os"
	"strings"
	"syscall"
)

var armed = func() map[string]bool {
	m := map[string]bool{}
	for _, name := range strings.Split(os.Getenv("ONCELOG_FAILPOINTS"), ",") {
		if name = strings.TrimSpace(name); name != "" {
			m[name] = true
		}
	}
	return m
}()

// Armed reports whether name is armed (for code that must take a slower,
// observable path only under test).
func Armed(name string) bool { return armed[name] }

// Hit kills the process if name is armed.
func Hit(name string) {
	if armed[name] {
		os.Stderr.WriteString("oncelog: failpoint " + name + " hit; killing the process\n")
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
