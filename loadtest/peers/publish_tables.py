#!/usr/bin/env python3
"""BENCHMARK PEER tool — publishes demo data to the broker for the peer (and for claimgate stream).

    publish_tables.py --brokers 127.0.0.1:19292 [--practitioners p.jsonl] [--institutions i.jsonl]
                      [--claims claims.jsonl] [--create-topics] [--partitions 4]

- status records: key = the record's `code`, value = the JSON line as it is, to `practitioners` /
  `institutions` (topic names: --practitioners-topic / --institutions-topic);
- claim lines: key = `fixmedins_code|mdtrt_id` (records.md), value = the line's bytes as they are
  (malformed lines included: their key is taken from the text where it can be, else no key), to
  `claims` (--claims-topic);
- --create-topics creates the topics first when they are missing: the claim and decision topics with
  --partitions partitions, the status topics with one partition and cleanup.policy=compact (Tansu
  accepts but never performs compaction, BROKER.md).
Prints how many records went to each topic and the produce rate.
"""

from __future__ import annotations

import argparse
import re
import sys
import time

import orjson
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

_RE_INST = re.compile(rb'"fixmedins_code"\s*:\s*"([^"]*)"')
_RE_MDTRT = re.compile(rb'"mdtrt_id"\s*:\s*"([^"]*)"')


def claim_key(line: bytes) -> bytes | None:
    try:
        o = orjson.loads(line)
        if isinstance(o, dict) and o.get("fixmedins_code") is not None and o.get("mdtrt_id") is not None:
            return f"{str(o['fixmedins_code']).strip()}|{str(o['mdtrt_id']).strip()}".encode()
    except orjson.JSONDecodeError:
        pass
    i, m = _RE_INST.search(line), _RE_MDTRT.search(line)
    if i and m:
        return i.group(1).strip() + b"|" + m.group(1).strip()
    return None


def status_key(line: bytes) -> bytes:
    return str(orjson.loads(line)["code"]).strip().encode()


def create_topics(brokers: str, a: argparse.Namespace) -> None:
    admin = AdminClient({"bootstrap.servers": brokers})
    have = set(admin.list_topics(timeout=10).topics)
    want = [
        NewTopic(t, num_partitions=a.partitions, replication_factor=1)
        for t in (a.claims_topic, a.accepted_topic, a.rejected_topic, a.dlq_topic)
    ] + [
        NewTopic(t, num_partitions=1, replication_factor=1, config={"cleanup.policy": "compact"})
        for t in (a.practitioners_topic, a.institutions_topic)
    ]
    new = [t for t in want if t.topic not in have]
    if not new:
        return
    for t, f in admin.create_topics(new, operation_timeout=30).items():
        try:
            f.result()
            print(f"created topic {t}", file=sys.stderr)
        except Exception as e:  # already created by someone else, most likely
            print(f"topic {t}: {e}", file=sys.stderr)


def publish(p: Producer, topic: str, path: str, keyfn) -> int:
    n = 0
    with open(path, "rb") as f:
        for line in f:
            line = line.rstrip(b"\r\n")
            if not line:
                continue
            key = keyfn(line)
            while True:
                try:
                    p.produce(topic, value=line, key=key)
                    break
                except BufferError:
                    p.poll(0.05)
            n += 1
            if n % 10_000 == 0:
                p.poll(0)
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--practitioners")
    ap.add_argument("--institutions")
    ap.add_argument("--claims")
    ap.add_argument("--create-topics", action="store_true")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--claims-topic", default="claims")
    ap.add_argument("--accepted-topic", default="claims.accepted")
    ap.add_argument("--rejected-topic", default="claims.rejected")
    ap.add_argument("--dlq-topic", default="claims.dlq")
    ap.add_argument("--practitioners-topic", default="practitioners")
    ap.add_argument("--institutions-topic", default="institutions")
    a = ap.parse_args()

    if a.create_topics:
        create_topics(a.brokers, a)
    errors = []

    def on_delivery(err, msg):
        if err is not None and len(errors) < 10:
            errors.append(str(err))

    p = Producer(
        {
            "bootstrap.servers": a.brokers,
            "linger.ms": 20,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 500_000,
            "on_delivery": on_delivery,
        }
    )
    for topic, path, keyfn in (
        (a.practitioners_topic, a.practitioners, status_key),
        (a.institutions_topic, a.institutions, status_key),
        (a.claims_topic, a.claims, claim_key),
    ):
        if not path:
            continue
        t0 = time.monotonic()
        n = publish(p, topic, path, keyfn)
        left = p.flush(120)
        dt = time.monotonic() - t0
        print(f"{topic}: {n} records from {path} in {dt:.2f} s ({n / dt:,.0f}/s){'; ' + str(left) + ' undelivered' if left else ''}")
        if left:
            return 1
    if errors:
        print("delivery errors: " + "; ".join(errors), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
