"""Two producers with one transactional.id, for test/txncompat.

Usage: fence.py BOOTSTRAP TXN_ID TOPIC PARTITIONS

The first producer opens a transaction and writes "zombie/P/I" to every
partition. The second one calls init_transactions with the same id, which
must fence the first and abort its transaction. The first then writes
"zombie-late/P/I" (every send must fail) and tries to commit (which must
fail as fenced). The second commits "fresh/P/I". Events, one JSON line each:

  {"ev": "open"}                                 first producer's records acked
  {"ev": "fenced_init"}                          second producer initialised
  {"ev": "late_delivery", "err": "...", "code": -144}   (one per late record)
  {"ev": "late_delivered"}                       a late record was accepted
  {"ev": "commit_failed", "err": "...", "code": -144, "fatal": true}
  {"ev": "zombie_committed"}
  {"ev": "fresh_committed", "n": 30}
  {"ev": "error", "err": "..."}
"""

import json
import sys

from confluent_kafka import KafkaException, Producer

bootstrap, txn_id, topic, partitions = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
PER_PARTITION = 10


def emit(**kv):
    print(json.dumps(kv), flush=True)


def producer():
    return Producer({
        "bootstrap.servers": bootstrap,
        "transactional.id": txn_id,
        "broker.address.family": "v4",
        "linger.ms": 2,
        "message.timeout.ms": 10000,
    })


def write(p, kind, on_delivery=None):
    for part in range(partitions):
        for i in range(PER_PARTITION):
            p.produce(topic, value=f"{kind}/{part}/{i}".encode(), partition=part, on_delivery=on_delivery)


try:
    first = producer()
    first.init_transactions(30)
    first.begin_transaction()
    write(first, "zombie")
    if first.flush(30) != 0:
        emit(ev="error", err="first flush timed out")
        sys.exit(1)
    emit(ev="open")

    second = producer()
    second.init_transactions(30)
    emit(ev="fenced_init")
except KafkaException as e:
    emit(ev="error", err=str(e.args[0]))
    sys.exit(1)


def late(err, msg):
    if err is None:
        emit(ev="late_delivered")
    else:
        emit(ev="late_delivery", err=str(err), code=err.code())


try:
    write(first, "zombie-late", late)
    first.flush(15)
except KafkaException as e:
    emit(ev="late_delivery", err="produce: " + str(e.args[0]), code=e.args[0].code())
except BufferError as e:
    emit(ev="late_delivery", err="produce: " + str(e), code=0)
try:
    first.commit_transaction(15)
    emit(ev="zombie_committed")
except KafkaException as e:
    err = e.args[0]
    emit(ev="commit_failed", err=str(err), code=err.code(), fatal=err.fatal())

try:
    second.begin_transaction()
    write(second, "fresh")
    second.commit_transaction(30)
    emit(ev="fresh_committed", n=partitions * PER_PARTITION)
except KafkaException as e:
    emit(ev="error", err="second producer: " + str(e.args[0]))
    sys.exit(1)
