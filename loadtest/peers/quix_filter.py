#!/usr/bin/env python3
"""BENCHMARK PEER — not production code. Not part of claimgate.

The claim-filter job of `claimgate stream`, written with quixstreams (PyPI) so that the load test can
run a popular Python stream-processing library side by side with claimgate on the same broker, the
same topics and the same data, and check that both decide the same (check_same_decisions.py).

- Status tables: `practitioners` and `institutions` (log-compacted, JSON values keyed by code, a null
  value deletes, a higher version wins) are read into in-memory dicts by a plain confluent-kafka
  consumer in a thread, every partition assigned directly (no group), from the beginning. quixstreams
  3.28 has no global-table feature: its tables are partitioned state (RocksDB) co-partitioned with
  the input, and claims keyed by `fixmedins_code|mdtrt_id` are not co-partitioned with codes; its
  `join_lookup` only wraps an external lookup. The claims are not consumed until both topics have been
  read to their end (every partition reported end-of-partition, then nothing new for
  --tables-quiet-ms, and --expect-* counts reached if given: the Tansu broker's end offsets are not
  trustworthy, see ../shared/BROKER.md). After that the thread keeps following both topics.
- Claims: a quixstreams Application consumes `claims` in a consumer group (value and key as bytes),
  decides each line with claimrules.py (the rules of claimgate, check for check) and produces the
  decision to `claims.accepted` / `claims.rejected`, malformed lines to `claims.dlq` as dead-letter
  records; the key, timestamp and headers of the input are kept. quixstreams commits offsets at its
  checkpoints after the producer has flushed: at least once.
- `table_epoch` is always 0 in the peer's decisions: it keeps no table snapshots to identify.

Usage (see run_peer.sh and README.md):
    quix_filter.py --brokers 127.0.0.1:19292 [--group claimgate-peer] [--profile national-2024]
                   [--max-messages N] [--idle-exit-seconds S] [--stats-file stats.json] ...
At exit it prints one line of JSON with counts and the rate, and writes it to --stats-file if given.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import claimrules as cr  # noqa: E402


def kv_list(items: list[str]) -> dict:
    out = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep:
            raise SystemExit(f"expected KEY=VALUE, got {it!r}")
        out[k.strip()] = v.strip()
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="BENCHMARK PEER: claimgate's claim filter written with quixstreams (not production code)."
    )
    ap.add_argument("--brokers", default="127.0.0.1:9092", help="bootstrap servers")
    ap.add_argument("--group", default="claimgate-quix-peer", help="consumer group for `claims`")
    ap.add_argument(
        "--profile",
        default="national-2024",
        help="national-2024 | huaian-2020 | lanzhou-2014 (profiles/<name>.toml) or a TOML file path",
    )
    ap.add_argument("--claims-topic", default="claims")
    ap.add_argument("--accepted-topic", default="claims.accepted")
    ap.add_argument("--rejected-topic", default="claims.rejected")
    ap.add_argument("--dlq-topic", default="claims.dlq")
    ap.add_argument("--practitioners-topic", default="practitioners")
    ap.add_argument("--institutions-topic", default="institutions")
    ap.add_argument("--max-messages", type=int, default=0, help="stop after N claim messages (0: no limit)")
    ap.add_argument(
        "--idle-exit-seconds",
        type=float,
        default=0.0,
        help="stop when no claim has arrived for S seconds (0: never). quixstreams adds 60 s before the first",
    )
    ap.add_argument("--auto-offset-reset", default="earliest", choices=("earliest", "latest"))
    ap.add_argument("--commit-interval", type=float, default=1.0, help="seconds between checkpoints (commits)")
    ap.add_argument(
        "--consumer-config", action="append", default=[], metavar="K=V", help="librdkafka consumer property"
    )
    ap.add_argument(
        "--producer-config", action="append", default=[], metavar="K=V", help="librdkafka producer property"
    )
    ap.add_argument("--tables-quiet-ms", type=int, default=1000, help="quiet time after end-of-partition")
    ap.add_argument("--tables-timeout", type=float, default=300.0, help="give up if tables are not read by then")
    ap.add_argument("--expect-practitioners", type=int, default=0, help="wait until this many codes are held")
    ap.add_argument("--expect-institutions", type=int, default=0, help="wait until this many codes are held")
    ap.add_argument("--stats-file", help="write the exit statistics (JSON) here too")
    ap.add_argument(
        "--ready-file",
        help="create this file once the tables are read and `claims` partitions are assigned (the peer is deciding)",
    )
    ap.add_argument(
        "--pass-through",
        action="store_true",
        help="baseline: no decision, copy every claim as it is to --accepted-topic (same client settings)",
    )
    ap.add_argument("--log-level", default="WARNING")
    return ap.parse_args(argv)


class TableFollower(threading.Thread):
    """Reads both status topics like a global table, then keeps following them."""

    def __init__(self, args: argparse.Namespace, tables: cr.Tables, consumer_conf: dict):
        super().__init__(name="table-follower", daemon=True)
        self.args = args
        self.tables = tables
        self.conf = consumer_conf
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.error: str | None = None
        self.records = 0
        self.load_seconds = 0.0

    def run(self) -> None:
        try:
            self._run()
        except Exception as e:  # before readiness: surfaced by the main thread; after: logged, and
            self.error = f"{type(e).__name__}: {e}"  # claims go on with the last table
            logging.error("table follower stopped: %s", self.error)
            self.ready.set()

    def _run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

        a = self.args
        conf = {
            "bootstrap.servers": a.brokers,
            # Never joins a group (assign, not subscribe) and never commits; librdkafka wants an id.
            "group.id": f"{a.group}-tables-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.max.bytes": 100 * 1024 * 1024,
            "max.partition.fetch.bytes": 8 * 1024 * 1024,
            "queued.min.messages": 200_000,
            # Status changes should take effect quickly (claimgate's target: 1 s at p99).
            "fetch.wait.max.ms": 100,
        }
        conf.update(self.conf)
        c = Consumer(conf)
        t0 = time.monotonic()
        topics = {a.practitioners_topic: self.tables.apply_practitioner, a.institutions_topic: self.tables.apply_institution}
        tps = []
        while True:
            md = c.list_topics(timeout=10)
            missing = [t for t in topics if t not in md.topics or md.topics[t].error is not None]
            if not missing:
                break
            if time.monotonic() - t0 > a.tables_timeout:
                raise RuntimeError(f"status topics missing: {missing}")
            time.sleep(0.5)
        for t in topics:
            tps += [TopicPartition(t, p, OFFSET_BEGINNING) for p in md.topics[t].partitions]
        c.assign(tps)
        pending_eof = {(tp.topic, tp.partition) for tp in tps}
        last_record = time.monotonic()
        quiet = a.tables_quiet_ms / 1000.0
        try:
            while not self.stopping.is_set():
                msgs = c.consume(10_000, timeout=0.1)
                now = time.monotonic()
                for m in msgs:
                    err = m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            pending_eof.discard((m.topic(), m.partition()))
                            continue
                        logging.warning("table follower: %s", err)
                        continue
                    topics[m.topic()](m.key(), m.value())
                    self.records += 1
                    last_record = now
                if not self.ready.is_set():
                    if (
                        not pending_eof
                        and now - last_record >= quiet
                        and len(self.tables.practitioners) >= a.expect_practitioners
                        and len(self.tables.institutions) >= a.expect_institutions
                    ):
                        self.load_seconds = now - t0
                        self.ready.set()
                    elif now - t0 > a.tables_timeout:
                        raise RuntimeError(
                            f"status tables not read within {a.tables_timeout} s "
                            f"({len(self.tables.practitioners)} practitioners, "
                            f"{len(self.tables.institutions)} institutions, waiting on {sorted(pending_eof)})"
                        )
        finally:
            c.close()


def main(argv: list[str]) -> int:
    a = parse_args(argv)
    logging.basicConfig(level=a.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    profile = cr.Profile(a.profile)
    tables = cr.Tables()
    consumer_extra = {
        # Tansu makes a group join wait about half of session.timeout.ms (BROKER.md).
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1500,
    }
    consumer_extra.update(kv_list(a.consumer_config))
    producer_extra = kv_list(a.producer_config)

    # Only transport settings go to the table reader: group and offset settings are its own.
    table_conf = {
        k: v
        for k, v in kv_list(a.consumer_config).items()
        if k.startswith(("security.", "sasl.", "ssl.", "client.", "socket.", "broker."))
    }
    follower = TableFollower(a, tables, table_conf)
    t_start = time.monotonic()
    follower.start()
    follower.ready.wait()
    if follower.error:
        print(f"quix_filter: {follower.error}", file=sys.stderr)
        return 1
    print(
        f"quix_filter: tables read in {follower.load_seconds:.2f} s: {len(tables.practitioners)} practitioners, "
        f"{len(tables.institutions)} institutions ({follower.records} records, {tables.stale} stale, "
        f"{tables.invalid} invalid); consuming {a.claims_topic} as group {a.group}, profile {profile.name}",
        file=sys.stderr,
        flush=True,
    )

    # confluent-kafka's schema-registry extras import authlib, which warns about httpx on import and
    # forces its own warnings to "always": record (and drop) what the import warns.
    with warnings.catch_warnings(record=True):
        from quixstreams import Application, message_context
        from quixstreams.models.serializers import Serializer

    class Payload(Serializer):
        """The value is (topic, bytes) from `process`: produce the bytes as they are."""

        def __call__(self, value, ctx):
            return value[1]

    state_dir = tempfile.mkdtemp(prefix="quix-peer-state-")
    app = Application(
        broker_address=a.brokers,
        consumer_group=a.group,
        auto_offset_reset=a.auto_offset_reset,
        commit_interval=a.commit_interval,
        consumer_extra_config=consumer_extra,
        producer_extra_config=producer_extra,
        use_changelog_topics=False,
        # The job is stateless, but quixstreams makes its state directory anyway: keep it out of the tree.
        state_dir=state_dir,
        loglevel=a.log_level,
    )
    claims = app.topic(a.claims_topic, value_deserializer="bytes", key_deserializer="bytes")
    out_topics = {
        name: app.topic(name, value_serializer=Payload(), key_serializer="bytes")
        for name in (a.accepted_topic, a.rejected_topic, a.dlq_topic)
    }

    accepted, rejected, dlq = a.accepted_topic, a.rejected_topic, a.dlq_topic
    parse_claim, decide, decision_json, now_text = cr.parse_claim, cr.decide, cr.decision_json, cr.now_text
    Malformed = cr.Malformed
    name = profile.name
    counts = {accepted: 0, rejected: 0, dlq: 0}
    clock = {"first": None, "last": None}
    perf = time.perf_counter

    def process(value, key, timestamp, headers):
        if clock["first"] is None:
            clock["first"] = perf()
        now = now_text()
        try:
            if value is None:
                raise Malformed(None, "no value (a null message)")
            c = parse_claim(value)
        except Malformed as m:
            ctx = message_context()
            out = (dlq, cr.dead_letter_json(m, f"{ctx.topic}/{ctx.partition}@{ctx.offset}", value or b"", now))
        else:
            o = decide(c, tables, profile)
            out = (accepted if o[0] == "accept" else rejected, decision_json(c, o, name, 0, now))
        counts[out[0]] += 1
        clock["last"] = perf()
        return out

    def pass_through(value, key, timestamp, headers):
        if clock["first"] is None:
            clock["first"] = perf()
        counts[accepted] += 1
        clock["last"] = perf()
        return (accepted, value)

    sdf = app.dataframe(claims)
    sdf = sdf.apply(pass_through if a.pass_through else process, metadata=True)
    sdf.to_topic(lambda value, key, timestamp, headers: out_topics[value[0]])

    # Readiness: quixstreams has no public hook for the first assignment; wrap its (pinned, 3.28)
    # rebalance callback, which `run()` looks up on the instance when it subscribes.
    on_assign = app._on_assign

    def on_assign_and_ready(consumer, partitions):
        on_assign(consumer, partitions)
        if partitions and not ready["done"]:
            ready["done"] = True
            print(f"quix_filter: ready: {len(partitions)} partition(s) of {a.claims_topic} assigned", file=sys.stderr, flush=True)
            if a.ready_file:
                with open(a.ready_file, "w") as f:
                    f.write(f"{os.getpid()}\n")

    ready = {"done": False}
    app._on_assign = on_assign_and_ready

    try:
        app.run(count=a.max_messages, timeout=a.idle_exit_seconds, collect=False)
    finally:
        t_exit = perf()
        follower.stopping.set()
        shutil.rmtree(state_dir, ignore_errors=True)

    n = sum(counts.values())
    first, last = clock["first"], clock["last"]
    stopped_by_count = bool(a.max_messages) and n >= a.max_messages
    stats = {
        "peer": "quixstreams" + (" pass-through" if a.pass_through else ""),
        "quixstreams_version": __import__("quixstreams").__version__,
        "profile": name,
        "messages": n,
        "accepted": counts[accepted],
        "rejected": counts[rejected],
        "dead_letters": counts[dlq],
        "tables_load_seconds": round(follower.load_seconds, 3),
        "practitioners": len(tables.practitioners),
        "institutions": len(tables.institutions),
        "stopped_by": "count" if stopped_by_count else "idle-or-signal",
        "seconds_first_consumed_to_last_decided": round(last - first, 3) if first else None,
        # After a count stop, app.run() returns once the producer is flushed and offsets committed.
        "seconds_first_consumed_to_flushed_and_committed": round(t_exit - first, 3) if first else None,
        "wall_seconds": round(time.monotonic() - t_start, 3),
    }
    if first and n:
        span = (t_exit - first) if stopped_by_count else (last - first)
        stats["msgs_per_s"] = round(n / span, 1) if span > 0 else None
    line = json.dumps(stats)
    print(line, flush=True)
    if a.stats_file:
        with open(a.stats_file, "w") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
