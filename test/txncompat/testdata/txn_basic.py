"""One transactional producer, two transactions, for test/txncompat.

Usage: txn_basic.py BOOTSTRAP TXN_ID PARTITIONS PER_PARTITION TOPIC...

The first transaction writes PER_PARTITION records to every partition of
every TOPIC (values "commit/TOPIC/P/I") and commits; the second writes the
same shape (values "abort/TOPIC/P/I") and aborts. Every event is one JSON
line on stdout:

  {"ev": "committed", "n": 120}
  {"ev": "aborted", "n": 120}
  {"ev": "error", "err": "...", "code": 47, "fatal": true}
"""

import json
import sys

from confluent_kafka import KafkaException, Producer

bootstrap, txn_id = sys.argv[1], sys.argv[2]
partitions, per_partition = int(sys.argv[3]), int(sys.argv[4])
topics = sys.argv[5:]


def emit(**kv):
    print(json.dumps(kv), flush=True)


def fail(e):
    err = e.args[0]
    emit(ev="error", err=str(err), code=err.code(), fatal=err.fatal())
    sys.exit(1)


def delivery(err, msg):
    if err is not None:
        emit(ev="error", err="delivery: " + str(err), code=err.code(), fatal=err.fatal())


producer = Producer({
    "bootstrap.servers": bootstrap,
    "transactional.id": txn_id,
    "broker.address.family": "v4",
    "linger.ms": 5,
})


def transaction(kind, commit):
    producer.begin_transaction()
    n = 0
    for topic in topics:
        for p in range(partitions):
            for i in range(per_partition):
                producer.produce(topic, value=f"{kind}/{topic}/{p}/{i}".encode(), partition=p, on_delivery=delivery)
                n += 1
    if producer.flush(30) != 0:
        emit(ev="error", err="flush timed out")
        sys.exit(1)
    if commit:
        producer.commit_transaction(30)
        emit(ev="committed", n=n)
    else:
        producer.abort_transaction(30)
        emit(ev="aborted", n=n)


try:
    producer.init_transactions(30)
    transaction("commit", True)
    transaction("abort", False)
except KafkaException as e:
    fail(e)
