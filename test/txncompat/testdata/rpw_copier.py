"""A read-process-write copier (confluent-kafka, librdkafka) for
test/txncompat.

Usage: rpw_copier.py BOOTSTRAP GROUP IN OUT TXN_ID BATCH PAUSE_MS

As a member of GROUP it consumes IN read_committed and copies every record
to the same partition of OUT in transactions of at most BATCH records,
sending the consumer's positions to each transaction
(send_offsets_to_transaction with the consumer group metadata, KIP-447).
PAUSE_MS is slept inside every transaction, between its records and its
commit, so that a kill lands inside a transaction most of the time. The
test SIGKILLs it and starts it again with the same TXN_ID. Every event is
one JSON line on stdout:

  {"ev": "ready"}                            init_transactions done
  {"ev": "committed", "n": 50, "pos": {"0": 150, "1": 100}}
  {"ev": "aborted", "err": "..."}            abortable error; rewound
  {"ev": "error", "err": "...", "fatal": true}
"""

import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

bootstrap, group, topic_in, topic_out, txn_id = sys.argv[1:6]
batch, pause = int(sys.argv[6]), int(sys.argv[7]) / 1000.0


def emit(**kv):
    print(json.dumps(kv), flush=True)


producer = Producer({
    "bootstrap.servers": bootstrap,
    "transactional.id": txn_id,
    "transaction.timeout.ms": 20000,
    "broker.address.family": "v4",
    "linger.ms": 2,
})
try:
    # Fences an earlier instance of TXN_ID and aborts its open transaction
    # before this instance reads any offset.
    producer.init_transactions(60)
except KafkaException as e:
    emit(ev="error", err="init_transactions: " + str(e.args[0]), fatal=e.args[0].fatal())
    sys.exit(1)
emit(ev="ready")

consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": group,
    "isolation.level": "read_committed",
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    "session.timeout.ms": 3000,
    "heartbeat.interval.ms": 300,
    "broker.address.family": "v4",
})
consumer.subscribe([topic_in])


def rewind():
    """Seeks every assigned partition back to its committed offset."""
    parts = consumer.assignment()
    if not parts:
        return
    for tp in consumer.committed(parts, timeout=30):
        if tp.offset < 0:
            tp.offset = 0
        consumer.seek(tp)


while True:
    msgs = consumer.consume(num_messages=batch, timeout=0.5)
    msgs = [m for m in msgs if m.error() is None]
    if not msgs:
        continue
    try:
        producer.begin_transaction()
        for m in msgs:
            producer.produce(topic_out, key=m.key(), value=m.value(), partition=m.partition())
        time.sleep(pause)
        positions = consumer.position(consumer.assignment())
        producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
        producer.commit_transaction(30)
    except KafkaException as e:
        err = e.args[0]
        if err.txn_requires_abort():
            producer.abort_transaction(30)
            rewind()
            emit(ev="aborted", err=str(err))
            continue
        emit(ev="error", err=str(err), fatal=err.fatal())
        sys.exit(1)
    emit(ev="committed", n=len(msgs), pos={str(tp.partition): tp.offset for tp in positions})
