package server

// Produce (key 0), versions 3-13.
//
// Behaviour:
//   - Acks must be -1, 0 or 1 (INVALID_REQUIRED_ACKS). acks=0 gets no
//     response at all; the records are still appended.
//   - Each partition carries exactly one record batch (v3+ rule), magic 2,
//     validated here on the connection's goroutine (length, CRC-32C, record
//     count, records, timestamps; decompressed for all four codecs and
//     stored as sent). A bad batch gets CORRUPT_MESSAGE, INVALID_RECORD or
//     INVALID_TIMESTAMP and nothing of it is stored; a batch over
//     max.message.bytes gets MESSAGE_TOO_LARGE.
//   - The partition's owner checks producer state (duplicates answered with
//     their original offsets, OUT_OF_ORDER_SEQUENCE_NUMBER, fencing), stamps
//     and appends; an acks=-1 answer waits for the fsync (group commit), an
//     acks=1 answer only for the write. The high watermark moves only after
//     the fsync either way.
//   - A missing topic is created when auto.create.topics.enable is on.
//
// Version notes: v8 adds per-record errors and an error message. v11 may
// answer TRANSACTION_ABORTABLE (KIP-890 part 1). v12 (transaction protocol
// v2, KIP-890 part 2) adds the partition to the producer's transaction
// itself instead of AddPartitionsToTxn. v13 names topics by id (KIP-516).
//
//   - A transactional batch is accepted only into an open transaction of
//     its producer that holds the partition (KIP-890 part 1 verification);
//     otherwise INVALID_TXN_STATE, or TRANSACTION_ABORTABLE from v11.

import (
	"math"
	"time"

	"github.com/oncelog/oncelog/internal/broker"
	"github.com/oncelog/oncelog/internal/partition"
	"github.com/oncelog/oncelog/internal/recordbatch"
	"github.com/oncelog/oncelog/internal/txn"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const produceKey = 0

func init() { register(produceKey, 3, 13, handleProduce) }

type txnProducer struct {
	pid   int64
	epoch int16
}

type txnPart struct {
	tp    txn.TopicPartition
	sp    *kmsg.ProduceResponseTopicPartition
	p     *partition.Partition
	batch []byte
	h     recordbatch.Header
}

type produceSlot struct {
	sp   *kmsg.ProduceResponseTopicPartition
	wait <-chan partition.AppendResult
}

func handleProduce(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	b := c.s.b
	var slots []produceSlot
	txnTPs := map[txnProducer][]txnPart{}
	nowT := time.Now()
	// acks=1 is answered once the batch is written to the OS, acks=-1 once
	// it is fsynced; either way consumers see it only once it is durable.
	ack := partition.AckDurable
	if req.Acks == 1 {
		ack = partition.AckWritten
	}

	resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	for ti := range req.Topics {
		rt := &req.Topics[ti]
		st := &resp.Topics[ti]
		*st = kmsg.NewProduceResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		st.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		var t *broker.Topic
		if req.Version >= 13 {
			// v13 names topics by id (KIP-516); the name is used below
			// for transactions.
			if t = b.TopicByID(rt.TopicID); t != nil {
				rt.Topic = t.Name
			}
		} else {
			t = b.Topic(rt.Topic)
		}
		if t == nil && req.Version < 13 && b.Config.AutoCreateTopics && broker.ValidateTopicName(rt.Topic) == nil {
			t, _ = b.CreateTopic(rt.Topic, -1, nil, false)
			if t == nil {
				t = b.Topic(rt.Topic)
			}
		}
		for pi := range rt.Partitions {
			rp := &rt.Partitions[pi]
			sp := &st.Partitions[pi]
			*sp = kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.BaseOffset, sp.LogAppendTime, sp.LogStartOffset = -1, -1, -1
			fail := func(code *kerr.Error, msg string) {
				sp.ErrorCode = code.Code
				if req.Version >= 8 && msg != "" {
					sp.ErrorMessage = &msg
				}
			}
			if req.Acks != -1 && req.Acks != 0 && req.Acks != 1 {
				fail(kerr.InvalidRequiredAcks, "acks must be -1, 0 or 1")
				continue
			}
			if t == nil && req.Version >= 13 {
				fail(kerr.UnknownTopicID, "")
				continue
			}
			if t == nil || rp.Partition < 0 || int(rp.Partition) >= len(t.Partitions) {
				fail(kerr.UnknownTopicOrPartition, "")
				continue
			}
			p := t.Partitions[rp.Partition]
			cfg := p.Config()
			if len(rp.Records) > int(cfg.MaxMessageBytes)+recordbatch.LengthPrefixSize {
				fail(kerr.MessageTooLarge, "batch exceeds max.message.bytes")
				continue
			}
			n := 0
			if err := recordbatch.Split(rp.Records, func([]byte) error { n++; return nil }); err != nil || n != 1 {
				fail(kerr.CorruptMessage, "a produce request must carry exactly one whole record batch per partition")
				continue
			}
			h, err := recordbatch.Validate(rp.Records, validateOptions(cfg.MessageTimestampType, cfg.TimestampBeforeMaxMs, cfg.TimestampAfterMaxMs, nowT))
			if err != nil {
				fail(batchErrorCode(err), err.Error())
				continue
			}
			c.s.Metrics.AddProduced(int(h.RecordCount), len(rp.Records))
			if h.IsTransactional() {
				if req.TransactionID == nil || c.s.Txns == nil {
					fail(kerr.InvalidTxnState, "a transactional batch needs the request's transactional id")
					continue
				}
				key := txnProducer{h.ProducerID, h.ProducerEpoch}
				txnTPs[key] = append(txnTPs[key], txnPart{tp: txn.TopicPartition{Topic: rt.Topic, Partition: rp.Partition}, sp: sp, p: p, batch: rp.Records, h: h})
				continue
			}
			slots = append(slots, produceSlot{sp: sp, wait: p.AppendAck(rp.Records, h, ack)})
		}
	}
	// Transactional batches are verified against the producer's open
	// transaction (KIP-890 part 1; under protocol v2, Produce v12+, the
	// partitions are added to it) and queued under the transaction
	// coordinator's lock, so no marker can overtake them.
	notAdded := kerr.InvalidTxnState
	if req.Version >= 11 {
		notAdded = kerr.TransactionAbortable
	}
	for key, parts := range txnTPs {
		tps := make([]txn.TopicPartition, len(parts))
		byTP := map[txn.TopicPartition]*txnPart{}
		for i := range parts {
			tps[i] = parts[i].tp
			byTP[parts[i].tp] = &parts[i]
		}
		errs := c.s.Txns.VerifyAndEnqueue(*req.TransactionID, key.pid, key.epoch, tps, req.Version >= 12, notAdded, func(tp txn.TopicPartition) {
			tpp := byTP[tp]
			slots = append(slots, produceSlot{sp: tpp.sp, wait: tpp.p.AppendAck(tpp.batch, tpp.h, ack)})
		})
		for tp, err := range errs {
			if err != nil {
				sp := byTP[tp].sp
				sp.ErrorCode = err.Code
				if req.Version >= 8 {
					m := "transactional produce refused: " + err.Message
					sp.ErrorMessage = &m
				}
			}
		}
	}
	if req.Acks == 0 {
		return noReply()
	}
	return later(func() kmsg.Response {
		for _, s := range slots {
			r := <-s.wait
			if r.Err != nil {
				s.sp.ErrorCode = r.Err.Code
				if req.Version >= 8 && r.ErrMessage != "" {
					m := r.ErrMessage
					s.sp.ErrorMessage = &m
				}
				continue
			}
			s.sp.BaseOffset = r.BaseOffset
			s.sp.LogAppendTime = r.LogAppendTime
			s.sp.LogStartOffset = r.LogStartOffset
		}
		return resp
	})
}

func validateOptions(tsType string, beforeMs, afterMs int64, nowT time.Time) recordbatch.ValidateOptions {
	o := recordbatch.ValidateOptions{Now: nowT, FromClient: true, MaxTimestampDiff: -1}
	if tsType == "LogAppendTime" {
		o.TimestampType = recordbatch.LogAppendTime
	}
	// NB: Kafka (KIP-937) bounds the past and the future separately; the
	// validator takes one window, so the narrower one applies to both.
	lim := beforeMs
	if afterMs < lim {
		lim = afterMs
	}
	if lim != math.MaxInt64 {
		o.MaxTimestampDiff = time.Duration(lim) * time.Millisecond
	}
	return o
}

func batchErrorCode(err error) *kerr.Error {
	switch {
	case errorsIs(err, recordbatch.ErrInvalidTimestamp):
		return kerr.InvalidTimestamp
	case errorsIs(err, recordbatch.ErrInvalidRecord):
		return kerr.InvalidRecord
	default:
		return kerr.CorruptMessage
	}
}
