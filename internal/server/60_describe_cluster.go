package server

// DescribeCluster (key 60), versions 0-2 (KIP-700).
//
// Behaviour:
//   - One broker, this node, at its advertised address; it is also the
//     controller. The cluster id is the one kept in the data directory.
//   - EndpointType (v1+) must be 1 (brokers): this listener is a broker
//     endpoint, and Kafka answers MISMATCHED_ENDPOINT_TYPE for a request
//     meant for a controller endpoint (KIP-919) or of an unknown type.
//
// Version notes: v1 adds EndpointType (KIP-919); v2 IncludeFencedBrokers
// and IsFenced (KIP-1073): this node is never fenced.
//
// Not done: cluster authorized operations (no ACLs yet; answered as "not
// computed", as Metadata does); no rack.

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(60, 0, 2, handleDescribeCluster) }

func handleDescribeCluster(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.DescribeClusterRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	b := c.s.b
	resp.ClusterID = b.ClusterID
	resp.EndpointType = 1
	if req.Version >= 1 && req.EndpointType != 1 {
		msg := fmt.Sprintf("this is a broker endpoint (type 1), but the request asks for endpoint type %d", req.EndpointType)
		resp.ErrorCode = kerr.MismatchedEndpointType.Code
		resp.ErrorMessage = &msg
		return now(resp)
	}
	resp.ControllerID = b.Config.NodeID
	br := kmsg.NewDescribeClusterResponseBroker()
	br.NodeID, br.Host, br.Port = b.Config.NodeID, c.s.adv.host, c.s.adv.port
	resp.Brokers = []kmsg.DescribeClusterResponseBroker{br}
	return now(resp)
}
