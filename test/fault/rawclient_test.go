package fault

// A raw Kafka client: requests framed by hand (4-byte size, request header
// v1/v2) around kmsg bodies, so that tests can send exactly the bytes they
// mean, including wrong ones.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type rawConn struct {
	t    testing.TB
	nc   net.Conn
	corr int32
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc}
}

// frame builds a request frame: header (key, version, correlation id,
// client id, and for flexible versions an empty tag section), then body.
func requestFrame(key, version int16, corr int32, flexible bool, body []byte) []byte {
	b := []byte{0, 0, 0, 0}
	b = binary.BigEndian.AppendUint16(b, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	const clientID = "fault-raw"
	b = binary.BigEndian.AppendUint16(b, uint16(len(clientID)))
	b = append(b, clientID...)
	if flexible {
		b = append(b, 0) // no tagged fields
	}
	b = append(b, body...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func (c *rawConn) write(b []byte) error {
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.nc.Write(b)
	return err
}

// send writes req (at the version set on it) and returns its correlation
// id.
func (c *rawConn) send(req kmsg.Request) int32 {
	c.t.Helper()
	c.corr++
	if err := c.write(requestFrame(req.Key(), req.GetVersion(), c.corr, req.IsFlexible(), req.AppendTo(nil))); err != nil {
		c.t.Fatalf("write %s: %v", kmsg.NameForKey(req.Key()), err)
	}
	return c.corr
}

func (c *rawConn) readFrame(timeout time.Duration) ([]byte, error) {
	c.nc.SetReadDeadline(time.Now().Add(timeout))
	var size [4]byte
	if _, err := io.ReadFull(c.nc, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > 64<<20 {
		return nil, fmt.Errorf("response frame of %d bytes", n)
	}
	b := make([]byte, n)
	_, err := io.ReadFull(c.nc, b)
	return b, err
}

// roundTrip sends req and decodes its response (at the request's version).
func (c *rawConn) roundTrip(req kmsg.Request) kmsg.Response {
	c.t.Helper()
	corr := c.send(req)
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	c.readResponse(corr, resp, req.IsFlexible() && req.Key() != 18)
	return resp
}

// readResponse reads one response frame into resp; flexibleHeader says
// whether the response header carries tagged fields (never for
// ApiVersions, KIP-511).
func (c *rawConn) readResponse(corr int32, resp kmsg.Response, flexibleHeader bool) {
	c.t.Helper()
	b, err := c.readFrame(10 * time.Second)
	if err != nil {
		c.t.Fatalf("read response to %s: %v", kmsg.NameForKey(resp.Key()), err)
	}
	rd := kbin.Reader{Src: b}
	if got := rd.Int32(); got != corr {
		c.t.Fatalf("response correlation id %d, want %d", got, corr)
	}
	if flexibleHeader {
		for n := rd.Uvarint(); n > 0; n-- {
			rd.Uvarint()
			rd.Span(int(rd.Uvarint()))
		}
	}
	if err := rd.Complete(); err != nil {
		c.t.Fatalf("response header: %v", err)
	}
	if err := resp.ReadFrom(rd.Src); err != nil {
		c.t.Fatalf("decode %s v%d: %v", kmsg.NameForKey(resp.Key()), resp.GetVersion(), err)
	}
}

// expectClosed fails unless the broker closes the connection within
// timeout without answering.
func (c *rawConn) expectClosed(timeout time.Duration, what string) {
	c.t.Helper()
	b, err := c.readFrame(timeout)
	switch {
	case err == nil:
		c.t.Fatalf("%s: got a %d-byte response, want the connection closed", what, len(b))
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err):
	default:
		c.t.Fatalf("%s: %v, want the connection closed", what, err)
	}
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && !oe.Timeout()
}

// apiVersions checks the connection still answers ApiVersions v3.
func (c *rawConn) apiVersions() *kmsg.ApiVersionsResponse {
	c.t.Helper()
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(3)
	req.ClientSoftwareName, req.ClientSoftwareVersion = "fault", "1"
	resp := c.roundTrip(req).(*kmsg.ApiVersionsResponse)
	if resp.ErrorCode != 0 || len(resp.ApiKeys) == 0 {
		c.t.Fatalf("ApiVersions: error %d, %d keys", resp.ErrorCode, len(resp.ApiKeys))
	}
	return resp
}
