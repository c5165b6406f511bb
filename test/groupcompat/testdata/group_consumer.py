"""A consumer group member for test/groupcompat (confluent-kafka, librdkafka).

Usage: group_consumer.py BOOTSTRAP GROUP TOPIC BATCH SLEEP_MS

Consumes TOPIC as a member of GROUP with manual commits: after every BATCH
processed messages, and before its partitions are revoked, it commits
synchronously. Every event is one JSON line on stdout:

  {"ev": "assigned", "parts": [0, 1, 2]}
  {"ev": "revoked", "parts": [0, 1, 2]}
  {"ev": "processed", "p": 3, "o": 17}
  {"ev": "committed", "offsets": [[3, 18], ...]}   acknowledged by the broker
  {"ev": "commit_error", "err": "..."}
  {"ev": "closed"}

SIGTERM makes it close the consumer (leaving the group) and exit.
"""

import json
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaException

bootstrap, group, topic, batch, sleep_ms = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
running = True


def emit(**kv):
    print(json.dumps(kv), flush=True)


def on_term(signum, frame):
    global running
    running = False


signal.signal(signal.SIGTERM, on_term)

consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": group,
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 500,
    "partition.assignment.strategy": "range",
    "broker.address.family": "v4",
})


def commit():
    try:
        res = consumer.commit(asynchronous=False)
    except KafkaException as e:
        # _NO_OFFSET: nothing was consumed since the last commit.
        if e.args and e.args[0].code() == -168:
            return
        emit(ev="commit_error", err=str(e))
        return
    emit(ev="committed", offsets=[[tp.partition, tp.offset] for tp in res if tp.error is None and tp.offset >= 0])


def on_assign(c, parts):
    emit(ev="assigned", parts=sorted(tp.partition for tp in parts))


def on_revoke(c, parts):
    commit()
    emit(ev="revoked", parts=sorted(tp.partition for tp in parts))


consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
pending = 0
while running:
    msg = consumer.poll(0.2)
    if msg is None:
        if pending:
            commit()
            pending = 0
        continue
    if msg.error():
        emit(ev="error", err=str(msg.error()))
        continue
    time.sleep(sleep_ms / 1000.0)
    emit(ev="processed", p=msg.partition(), o=msg.offset())
    pending += 1
    if pending >= batch:
        commit()
        pending = 0
if pending:
    commit()
consumer.close()
emit(ev="closed")
