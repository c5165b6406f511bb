package server

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestSpliceFrameEveryFetchVersion: for every Fetch version served, a
// response encoded with placeholders and cut by spliceFrame, its parts
// concatenated with the real records in place of the record parts, is
// byte for byte the response encoded with the records (size prefix and
// every length prefix included). The record sets' sizes cross every width
// of the flexible versions' uvarint length (1 to 4 bytes); ranged and
// inlined partitions, empty record sets, errors and aborted transactions
// are mixed.
func TestSpliceFrameEveryFetchVersion(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 61, 126, 127, 300, 16383, 16384, 70000, 1<<21 - 2, 1 << 21, 3 << 20}
	for v := int16(4); v <= 13; v++ {
		for _, rangedEvery := range []int{1, 2, 3} {
			t.Run(fmt.Sprintf("v%d/ranged1in%d", v, rangedEvery), func(t *testing.T) {
				resp := kmsg.NewPtrFetchResponse()
				resp.ThrottleMillis = 7
				var recs [][]byte // the real record sets of the ranged partitions, in order
				k := 0
				for ti := 0; ti < 3; ti++ {
					st := kmsg.NewFetchResponseTopic()
					st.Topic = fmt.Sprintf("topic-%d", ti)
					st.TopicID = [16]byte{byte(ti), 1, 2, 3}
					for pi := 0; pi < 4; pi++ {
						sp := kmsg.NewFetchResponseTopicPartition()
						sp.Partition = int32(pi)
						sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = int64(1000*pi+7), int64(1000*pi), 3
						sp.PreferredReadReplica = -1
						if pi == 3 && ti == 1 {
							sp.ErrorCode = 1
						}
						for a := 0; a < pi; a++ {
							at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
							at.ProducerID, at.FirstOffset = int64(a), int64(10*a)
							sp.AbortedTransactions = append(sp.AbortedTransactions, at)
						}
						n := sizes[(ti*4+pi)%len(sizes)]
						b := make([]byte, n)
						for i := range b {
							b[i] = byte(rng.Uint32())
						}
						sp.RecordBatches = b
						st.Partitions = append(st.Partitions, sp)
						k++
					}
					resp.Topics = append(resp.Topics, st)
				}
				p := pending{corr: 12345, key: 1, version: v, flexible: v >= 12}
				want := append([]byte(nil), appendFrame(nil, &p, resp)...)

				// The same response with placeholders.
				var lens []int64
				ph := 0
				k = 0
				for ti := range resp.Topics {
					for pi := range resp.Topics[ti].Partitions {
						sp := &resp.Topics[ti].Partitions[pi]
						if k%rangedEvery == 0 {
							recs = append(recs, sp.RecordBatches)
							lens = append(lens, int64(len(sp.RecordBatches)))
							sp.RecordBatches = appendPlaceholder(nil, ph)
							ph++
						}
						k++
					}
				}
				frame := appendFrame(nil, &p, resp)
				if len(frame) >= len(want) && rangedEvery == 1 {
					t.Fatalf("frame with placeholders %d bytes, with records %d", len(frame), len(want))
				}
				parts, _, err := spliceFrame(frame, resp.IsFlexible(), lens, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				var got []byte
				nrec := 0
				for _, part := range parts {
					if part.rec >= 0 {
						if part.rec != nrec {
							t.Fatalf("record part %d out of order (want %d)", part.rec, nrec)
						}
						got = append(got, recs[part.rec]...)
						nrec++
						continue
					}
					got = append(got, part.b...)
				}
				if nrec != len(recs) {
					t.Fatalf("%d record parts, want %d", nrec, len(recs))
				}
				if !bytes.Equal(got, want) {
					at := 0
					for at < min(len(got), len(want)) && got[at] == want[at] {
						at++
					}
					t.Fatalf("spliced frame differs at byte %d (lengths %d, %d)", at, len(got), len(want))
				}
				// And it decodes to the response.
				back := kmsg.NewPtrFetchResponse()
				back.SetVersion(v)
				body := got[8:]
				if p.flexible {
					body = body[1:]
				}
				if err := back.ReadFrom(body); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// TestSpliceFrameNoPlaceholders: a frame with no ranged partition is one
// part, unchanged.
func TestSpliceFrameNoPlaceholders(t *testing.T) {
	frame := []byte{0, 0, 0, 4, 1, 2, 3, 4}
	parts, _, err := spliceFrame(frame, false, nil, nil, nil)
	if err != nil || len(parts) != 1 || !bytes.Equal(parts[0].b, []byte{0, 0, 0, 4, 1, 2, 3, 4}) || parts[0].rec != -1 {
		t.Fatalf("parts %+v, %v", parts, err)
	}
}
