package server

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// awaitReply hands a coordinator a callback for its (possibly later)
// answer and returns the reply that waits for it. If the connection goes
// away first, gone builds the answer instead (nobody reads it).
func awaitReply[R kmsg.Response](c *conn, start func(reply func(R)), gone func() R) reply {
	ch := make(chan R, 1)
	start(func(r R) {
		select {
		case ch <- r:
		default: // answered twice: the first answer stands
		}
	})
	return later(func() kmsg.Response {
		select {
		case r := <-ch:
			return r
		case <-c.ctx.Done():
			return gone()
		}
	})
}
