"""Idempotent produce and read-back through librdkafka (python3-confluent-kafka).

Run by test/compat/python_test.go, which creates the topic first:

    python3 idempotent_roundtrip.py BOOTSTRAP TOPIC PARTITIONS N

Produces N keyed records with enable.idempotence=True and acks=all, checks
every delivery report, then reads the partitions back with assign() (consumer
groups are not implemented by the broker yet) from the beginning, and prints
one JSON summary line on stdout. The exit code is 0 even when checks fail: the
Go test asserts on the summary. It is 2 on a usage or setup error.
"""

import json
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition


def produce(bootstrap, topic, n):
    reports = {}  # value -> (partition, offset)
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
            return
        reports[msg.value().decode()] = (msg.partition(), msg.offset())

    p = Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 60000,
    })
    for i in range(n):
        key = "key-%d" % (i % 97)
        value = "value-%d" % i
        while True:
            try:
                p.produce(topic, key=key, value=value, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    remaining = p.flush(60)
    return reports, errors, remaining


def consume(bootstrap, topic, partitions, want, deadline_s=60.0):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        # librdkafka wants a group.id even for assign(); nothing is committed.
        "group.id": "oncelog-compat-unused",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": False,
    })
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got = []  # (partition, offset, key, value)
    errors = []
    deadline = time.monotonic() + deadline_s
    quiet_until = None
    while time.monotonic() < deadline:
        msgs = c.consume(num_messages=1000, timeout=0.5)
        for m in msgs:
            if m.error() is not None:
                errors.append(str(m.error()))
                continue
            got.append((m.partition(), m.offset(), m.key().decode(), m.value().decode()))
        if len(got) >= want:
            # Keep polling a little to catch duplicates past the end.
            if quiet_until is None:
                quiet_until = time.monotonic() + 2.0
            elif time.monotonic() > quiet_until:
                break
    c.close()
    return got, errors


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    bootstrap, topic, partitions, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

    started = time.monotonic()
    reports, produce_errors, unflushed = produce(bootstrap, topic, n)
    produced_s = time.monotonic() - started

    started = time.monotonic()
    got, consume_errors = consume(bootstrap, topic, partitions, n)
    consumed_s = time.monotonic() - started

    seen = set()
    duplicates = 0
    wrong_key = 0
    unknown = 0
    per_partition = {}
    for part, off, key, value in got:
        if (part, off) in seen or value in seen:
            duplicates += 1
        seen.add((part, off))
        seen.add(value)
        i = int(value.split("-")[1])
        if key != "key-%d" % (i % 97):
            wrong_key += 1
        if value not in reports:
            unknown += 1
        per_partition.setdefault(part, []).append((off, value))

    # Order per partition: the consumed sequence must be exactly the delivery
    # reports' records of that partition, in offset order.
    expected = {}
    for value, (part, off) in reports.items():
        expected.setdefault(part, []).append((off, value))
    order_ok = True
    for part in set(expected) | set(per_partition):
        if sorted(expected.get(part, [])) != per_partition.get(part, []):
            order_ok = False

    delivered_values = set(reports)
    consumed_values = {v for _, _, _, v in got}
    summary = {
        "produced": n,
        "delivered": len(reports),
        "delivery_errors": len(produce_errors),
        "delivery_error_samples": produce_errors[:5],
        "unflushed": unflushed,
        "consumed": len(got),
        "consume_errors": len(consume_errors),
        "consume_error_samples": consume_errors[:5],
        "duplicates": duplicates,
        "missing": len(delivered_values - consumed_values),
        "unknown": unknown,
        "wrong_key": wrong_key,
        "order_ok": order_ok,
        "partitions": {str(p): len(v) for p, v in sorted(per_partition.items())},
        "produce_seconds": round(produced_s, 3),
        "consume_seconds": round(consumed_s, 3),
    }
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KafkaException as e:
        print("setup error: %s" % e, file=sys.stderr)
        sys.exit(2)
