"""A transactional producer that hangs inside a transaction, for
test/txncompat.

Usage: hang.py BOOTSTRAP TXN_ID TOPIC PARTITIONS TIMEOUT_MS

With transaction.timeout.ms=TIMEOUT_MS it opens a transaction, writes
"hung/P/I" to every partition and reports {"ev": "open"} once they are
acknowledged. The test then SIGSTOPs it. When a line arrives on stdin
(after SIGCONT) it tries to commit and reports {"ev": "committed"} or
{"ev": "commit_failed", "err": "...", "code": 47, "fatal": true}.
"""

import json
import sys

from confluent_kafka import KafkaException, Producer

bootstrap, txn_id, topic, partitions, timeout_ms = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])


def emit(**kv):
    print(json.dumps(kv), flush=True)


p = Producer({
    "bootstrap.servers": bootstrap,
    "transactional.id": txn_id,
    "transaction.timeout.ms": timeout_ms,
    "broker.address.family": "v4",
    "linger.ms": 2,
})
try:
    p.init_transactions(30)
    p.begin_transaction()
    for part in range(partitions):
        for i in range(10):
            p.produce(topic, value=f"hung/{part}/{i}".encode(), partition=part)
    if p.flush(30) != 0:
        emit(ev="error", err="flush timed out")
        sys.exit(1)
except KafkaException as e:
    emit(ev="error", err=str(e.args[0]))
    sys.exit(1)
emit(ev="open")
sys.stdin.readline()
try:
    p.commit_transaction(15)
    emit(ev="committed")
except KafkaException as e:
    err = e.args[0]
    emit(ev="commit_failed", err=str(err), code=err.code(), fatal=err.fatal())
