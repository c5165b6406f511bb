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
//   - v3+: the feature transaction.version is supported and finalized at
//     2 (KIP-890 part 2), which is what makes clients use transaction
//     protocol v2.

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

// transactionVersion is the transaction protocol finalized on this broker:
// 2 is KIP-890 part 2 (partitions added by Produce v12+ and TxnOffsetCommit
// v5+, the epoch bumped at every EndTxn v5+). Clients that know it (Kafka
// 4 Java, franz-go) switch to it; others keep protocol 1, which is served
// alongside.
const transactionVersion = 2

func handleAPIVersions(c *conn, req kmsg.Request) reply {
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	resp.ApiKeys = apiVersionList()
	if resp.Version >= 3 {
		sf := kmsg.NewApiVersionsResponseSupportedFeature()
		sf.Name, sf.MinVersion, sf.MaxVersion = "transaction.version", 0, transactionVersion
		resp.SupportedFeatures = []kmsg.ApiVersionsResponseSupportedFeature{sf}
		ff := kmsg.NewApiVersionsResponseFinalizedFeature()
		ff.Name, ff.MinVersionLevel, ff.MaxVersionLevel = "transaction.version", transactionVersion, transactionVersion
		resp.FinalizedFeatures = []kmsg.ApiVersionsResponseFinalizedFeature{ff}
		resp.FinalizedFeaturesEpoch = 1
	}
	return now(resp)
}

func apiVersionsUnsupported() *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	resp.ApiKeys = apiVersionList()
	return resp
}
