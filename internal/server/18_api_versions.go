package server

// ApiVersions (key 18), versions 0-4.
//
// Behaviour:
//   - Lists every registered handler with exactly the version range it
//     serves; the list is derived from the registry, never written by hand.
//   - A version we do not serve is answered in v0 format with
//     UNSUPPORTED_VERSION and the full list (KIP-511), so the client can
//     retry with a version we know.
//
// Version notes:
//   - v3 (KIP-511) is flexible and carries the client's software name and
//     version; the response header stays v0.
//
// Not done: feature flags (SupportedFeatures/FinalizedFeatures); they matter
// once transaction.version=2 is served.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const apiVersionsKey = 18

func init() { register(apiVersionsKey, 0, 4, handleAPIVersions) }

func apiVersionList() []kmsg.ApiVersionsResponseApiKey {
	var keys []kmsg.ApiVersionsResponseApiKey
	for _, h := range sortedHandlers() {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = h.key, h.min, h.max
		keys = append(keys, k)
	}
	return keys
}

func handleAPIVersions(c *conn, req kmsg.Request) reply {
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	resp.ApiKeys = apiVersionList()
	return now(resp)
}

func apiVersionsUnsupported() *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	resp.ApiKeys = apiVersionList()
	return resp
}
