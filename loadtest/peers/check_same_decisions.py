#!/usr/bin/env python3
"""BENCHMARK PEER tool — compares the peer's decisions with claimgate's, line by line.

    check_same_decisions.py --reference decisions.jsonl --peer peer-decisions.jsonl [--peer more.jsonl]
    check_same_decisions.py --reference decisions.jsonl --brokers 127.0.0.1:19292 \
        [--accepted-topic claims.accepted] [--rejected-topic claims.rejected] [--save peer.jsonl]
    ... [--reference-dlq dlq.jsonl --peer-dlq peer-dlq.jsonl | --dlq-topic claims.dlq]

Lines are matched by identity (fixmedins_code, mdtrt_id, feedetl_sn). For every line in both,
`verdict`, `reason`, `overridden` and `rule` must match (the "core" fields); the other fields of the
record (bilg_dr_codg, fee_ocur_time, det_item_fee_sumamt, med_type, profile, practitioner_version,
institution_version) are compared too and reported apart. `table_epoch` and `decided_at` are not
compared: the peer writes table_epoch 0, and decided_at is a clock reading.

Reading from topics: every partition is assigned directly (no consumer group, nothing committed) and
read from the beginning until no record has arrived for --quiet-seconds after each partition reported
its end (the Tansu broker's end offsets are unreliable, see ../shared/BROKER.md).

Exit status: 0 when every reference line has exactly one peer decision (or identical duplicates),
with equal core fields, and no peer line is unknown to the reference (and, when dead letters are
given, the two dead-letter sets hold the same raw lines); 1 otherwise.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time

CORE = ("verdict", "reason", "overridden", "rule")
OTHER = (
    "bilg_dr_codg",
    "fee_ocur_time",
    "det_item_fee_sumamt",
    "med_type",
    "profile",
    "practitioner_version",
    "institution_version",
)


def identity(d: dict) -> tuple:
    return (d.get("fixmedins_code"), d.get("mdtrt_id"), d.get("feedetl_sn"))


def read_jsonl(paths: list[str]) -> list[dict]:
    out = []
    for p in paths:
        with open(p, "rb") as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if line:
                    try:
                        out.append(json.loads(line))
                    except ValueError as e:
                        sys.exit(f"{p}:{n}: not JSON: {e}")
    return out


def read_topics(brokers: str, topics: list[str], quiet: float, save: str | None, extra: dict) -> dict[str, list]:
    """Every record value of `topics`, read from the beginning by direct assignment."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    conf = {
        "bootstrap.servers": brokers,
        "group.id": "check-same-decisions-unused",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "fetch.max.bytes": 100 * 1024 * 1024,
        "max.partition.fetch.bytes": 8 * 1024 * 1024,
        "queued.min.messages": 200_000,
    }
    conf.update(extra)
    c = Consumer(conf)
    md = c.list_topics(timeout=10)
    tps = []
    for t in topics:
        if t not in md.topics or md.topics[t].error is not None:
            print(f"check: topic {t} does not exist; taken as empty", file=sys.stderr)
            continue
        tps += [TopicPartition(t, p, OFFSET_BEGINNING) for p in md.topics[t].partitions]
    out: dict[str, list] = {t: [] for t in topics}
    if not tps:
        c.close()
        return out
    c.assign(tps)
    pending_eof = {(tp.topic, tp.partition) for tp in tps}
    last = time.monotonic()
    saver = open(save, "wb") if save else None
    try:
        while True:
            msgs = c.consume(10_000, timeout=0.2)
            if not msgs:
                if not pending_eof and time.monotonic() - last >= quiet:
                    break
                if time.monotonic() - last >= max(quiet, 30.0):
                    print(f"check: no end-of-partition from {sorted(pending_eof)} in 30 s; stopping", file=sys.stderr)
                    break
                continue
            for m in msgs:
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending_eof.discard((m.topic(), m.partition()))
                        continue
                    raise SystemExit(f"check: consumer error: {err}")
                last = time.monotonic()
                v = m.value()
                if v is None:
                    continue
                out[m.topic()].append(json.loads(v))
                if saver:
                    saver.write(v + b"\n")
    finally:
        if saver:
            saver.close()
        c.close()
    return out


def dlq_identity(d: dict) -> str:
    return d.get("raw") if d.get("raw") is not None else "b64:" + str(d.get("raw_base64"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", required=True, help="claimgate's decisions (JSON Lines, from `claimgate review`)")
    ap.add_argument("--peer", action="append", default=[], help="the peer's decisions (JSON Lines); repeatable")
    ap.add_argument("--brokers", help="read the peer's decisions from the decision topics instead")
    ap.add_argument("--accepted-topic", default="claims.accepted")
    ap.add_argument("--rejected-topic", default="claims.rejected")
    ap.add_argument("--dlq-topic", help="also read the peer's dead letters from this topic (with --brokers)")
    ap.add_argument("--save", help="with --brokers: write the decisions read to this file")
    ap.add_argument("--reference-dlq", help="claimgate's dead letters (JSON Lines): compared by raw line")
    ap.add_argument("--peer-dlq", action="append", default=[], help="the peer's dead letters (JSON Lines)")
    ap.add_argument("--quiet-seconds", type=float, default=2.0)
    ap.add_argument("--show", type=int, default=10, help="differences to print (default 10)")
    a = ap.parse_args()

    reference = read_jsonl([a.reference])
    peer_dlq: list[dict] = read_jsonl(a.peer_dlq)
    if a.brokers:
        topics = [a.accepted_topic, a.rejected_topic] + ([a.dlq_topic] if a.dlq_topic else [])
        t0 = time.monotonic()
        got = read_topics(a.brokers, topics, a.quiet_seconds, a.save, {})
        peer = got[a.accepted_topic] + got[a.rejected_topic]
        if a.dlq_topic:
            peer_dlq += got[a.dlq_topic]
        print(f"read {len(peer)} decisions from {a.accepted_topic}, {a.rejected_topic} in {time.monotonic() - t0:.1f} s")
    elif a.peer:
        peer = read_jsonl(a.peer)
    else:
        ap.error("give --peer FILE or --brokers")

    ref_by_id: dict[tuple, dict] = {}
    ref_dups = 0
    for d in reference:
        k = identity(d)
        if k in ref_by_id:
            ref_dups += 1
        ref_by_id[k] = d

    peer_by_id: dict[tuple, dict] = {}
    dup_same = dup_diff = 0
    for d in peer:
        k = identity(d)
        old = peer_by_id.get(k)
        if old is not None:
            if all(old.get(f) == d.get(f) for f in CORE + OTHER):
                dup_same += 1
            else:
                dup_diff += 1
            continue
        peer_by_id[k] = d

    missing = [k for k in ref_by_id if k not in peer_by_id]
    extra = [k for k in peer_by_id if k not in ref_by_id]
    core_diff = []
    other_diff = []
    compared = 0
    for k, r in ref_by_id.items():
        p = peer_by_id.get(k)
        if p is None:
            continue
        compared += 1
        cd = [(f, r.get(f), p.get(f)) for f in CORE if r.get(f) != p.get(f)]
        if cd:
            core_diff.append((k, cd))
        od = [(f, r.get(f), p.get(f)) for f in OTHER if r.get(f) != p.get(f)]
        if od:
            other_diff.append((k, od))

    by_reason = collections.Counter((d["verdict"], d["reason"]) for d in peer_by_id.values())
    print(f"reference decisions: {len(reference)} ({ref_dups} duplicate identities)")
    print(f"peer decisions:      {len(peer)} ({dup_same} identical redeliveries, {dup_diff} conflicting duplicates)")
    print(f"lines compared:      {compared}")
    print(f"core mismatches (verdict, reason, overridden, rule): {len(core_diff)}")
    print(f"other-field mismatches:                              {len(other_diff)}")
    print(f"missing from the peer: {len(missing)}; unknown to the reference: {len(extra)}")
    print("peer decisions by verdict and reason:")
    for (v, r), n in sorted(by_reason.items()):
        print(f"  {v:7} {r:34} {n:9}")
    for title, rows in (("core differences", core_diff), ("other-field differences", other_diff)):
        for k, diffs in rows[: a.show]:
            print(f"{title}: {'/'.join(map(str, k))}: " + "; ".join(f"{f}: reference {rv!r}, peer {pv!r}" for f, rv, pv in diffs))
    for k in missing[: a.show]:
        print(f"missing from the peer: {'/'.join(map(str, k))}")
    for k in extra[: a.show]:
        print(f"unknown to the reference: {'/'.join(map(str, k))}")

    dlq_ok = True
    if a.reference_dlq:
        ref_dl = collections.Counter(dlq_identity(d) for d in read_jsonl([a.reference_dlq]))
        peer_dl = collections.Counter(dlq_identity(d) for d in peer_dlq)
        only_ref = ref_dl - peer_dl
        only_peer = peer_dl - ref_dl
        # Redelivered dead letters are duplicates of the same raw line: compare as sets too.
        dlq_ok = set(ref_dl) == set(peer_dl)
        print(
            f"dead letters: reference {sum(ref_dl.values())}, peer {sum(peer_dl.values())}; "
            f"only in reference {sum(only_ref.values())}, only in peer {sum(only_peer.values())}"
        )
        for raw in list(only_ref)[: a.show]:
            print(f"dead letter only in reference: {raw[:160]!r}")
        for raw in list(only_peer)[: a.show]:
            print(f"dead letter only in peer: {raw[:160]!r}")

    ok = not core_diff and not missing and not extra and not dup_diff and dlq_ok
    print("RESULT:", "SAME DECISIONS" if ok else "DIFFERENT")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
