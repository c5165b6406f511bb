"""Reads a whole topic with librdkafka, for test/txncompat.

Usage: read_topic.py BOOTSTRAP ISOLATION TOPIC

ISOLATION is read_committed or read_uncommitted. Every partition is read
from offset 0 until the consumer's position reaches the high watermark
taken at the start (call it once no transaction is open). Every record is
one JSON line, then {"ev": "done"}:

  {"ev": "rec", "p": 0, "o": 12, "v": "commit/t/0/3"}
"""

import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition

bootstrap, isolation, topic = sys.argv[1], sys.argv[2], sys.argv[3]


def emit(**kv):
    print(json.dumps(kv), flush=True)


consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": "txncompat-reader",
    "enable.auto.commit": False,
    "isolation.level": isolation,
    "broker.address.family": "v4",
})
md = consumer.list_topics(topic, timeout=30)
parts = sorted(md.topics[topic].partitions)
ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in parts}
consumer.assign([TopicPartition(topic, p, 0) for p in parts])
deadline = time.time() + 60
while True:
    pos = {tp.partition: tp.offset for tp in consumer.position([TopicPartition(topic, p) for p in parts])}
    if all(ends[p] == 0 or pos.get(p, -1) >= ends[p] for p in parts):
        break
    if time.time() > deadline:
        emit(ev="error", err=f"timed out at {pos} of {ends}")
        sys.exit(1)
    msg = consumer.poll(0.2)
    if msg is None:
        continue
    if msg.error():
        if msg.error().code() == -191:  # _PARTITION_EOF
            continue
        emit(ev="error", err=str(msg.error()))
        sys.exit(1)
    if msg.offset() < ends[msg.partition()]:
        emit(ev="rec", p=msg.partition(), o=msg.offset(), v=msg.value().decode())
consumer.close()
emit(ev="done")
