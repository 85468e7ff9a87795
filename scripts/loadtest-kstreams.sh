#!/usr/bin/env bash
# claimgate against Kafka Streams (issue 14) in one command: builds claimgate, the load test and the
# Kafka Streams peer (loadtest/peers/kafka-streams, Maven), starts Apache Kafka of its own, and runs,
# on the same broker, topics, partitions and generated day:
#   - the rate sweeps of claimgate and Kafka Streams side by side, at least once (with claimgate's
#     pass-through) and exactly once, and each system at half of its own saturating rate (p50, p99,
#     p99.9, CPU seconds per million lines, peak RSS);
#   - status change to effect of each;
#   - the large table (12 million practitioner codes by default): each system started cold (time to
#     first decision: GlobalKTable restoration against claimgate's start), measured, and restarted with
#     its state kept (Kafka Streams' state directory; claimgate's checkpoint, `stream --checkpoint-dir`,
#     written when it stops: `--claimgate-checkpoint-args ''` restarts it cold instead, and the report
#     says so; its log at `info`, kept in logs/ of the results, is the restart's timeline);
#   - one more step of each under a profiler (JFR, perf) to say where the CPU goes;
#   - every line's decision from Kafka Streams compared with claimgate's (verdict, reason, overridden);
# once on a single node, then on a three-node cluster, and writes report.md, BENCHMARKS-kstreams.md (the
# table for BENCHMARKS.md, with the command, versions and machine), summary.json, .hgrm files, SVG
# charts and the profiles into results/kstreams-<UTC date-time>/<broker>/.
#
#   scripts/loadtest-kstreams.sh                                  the full comparison (hours on 2 cores)
#   KSTREAMS_BROKERS=single scripts/loadtest-kstreams.sh          single node only
#   scripts/loadtest-kstreams.sh --claimgate-checkpoint-args ''   claimgate's restart without its checkpoint
#   scripts/loadtest-kstreams.sh --scale-practitioners 200000 --measure 4 ...   any claimgate-loadtest flag
#
# Environment: KSTREAMS_BROKERS (single,cluster), KSTREAMS_PORT (first broker port, default 19592; the
# cluster takes PORT+2 .. PORT+7), KSTREAMS_OUT (results folder), KSTREAMS_HEAP (the peer's -Xmx,
# default 1g; the large table lives in RocksDB off the heap), KAFKA_HEAP (the broker's).
# Needs cargo, Java 17 and Maven (Maven Central), perf (optional: claimgate's profile). Every process it
# starts is stopped by PID at the end, also on failure or Ctrl-C. The machine should be quiet: every
# figure is a ratio measured side by side, but a 12-million-code restoration on a busy 2-core machine
# measures the neighbours.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
T0=$(date +%s)
BROKERS_TO_RUN="${KSTREAMS_BROKERS:-single,cluster}"
PORT="${KSTREAMS_PORT:-19592}"
OUT="${KSTREAMS_OUT:-results/kstreams-$(date -u +%Y-%m-%dT%H-%M-%SZ)}"
WORK="$ROOT/.tools/loadtest-kstreams"
LT_PID=""
STARTED=()

log() { printf 'loadtest-kstreams.sh: %s\n' "$*" >&2; }

# The brokers' logs are thrown away with them: every run makes new topics, and the large table alone
# takes gigabytes (three copies on the cluster).
stop_brokers() {
    for b in "${STARTED[@]}"; do
        case "$b" in
            single)
                scripts/broker.sh stop --port "$PORT" --dir "$WORK/broker-$PORT" >/dev/null 2>&1 || true
                rm -rf "$WORK/broker-$PORT"
                ;;
            cluster)
                scripts/broker.sh cluster stop --dir "$WORK/cluster-$((PORT + 2))" >/dev/null 2>&1 || true
                rm -rf "$WORK/cluster-$((PORT + 2))"
                ;;
        esac
    done
    STARTED=()
    rm -rf "$WORK/kstreams-state" "$WORK/claimgate-state"
}

cleanup() {
    local rc=$?
    if [[ -n "$LT_PID" ]] && kill -0 "$LT_PID" 2>/dev/null; then
        kill -TERM "$LT_PID" 2>/dev/null || true
        wait "$LT_PID" 2>/dev/null || true
    fi
    # The systems under test the load test started (it writes their PIDs; it stops them itself unless
    # it was killed).
    local pids=()
    for f in "$WORK"/*.pid; do
        [[ -f "$f" ]] || continue
        local pid
        pid="$(tr -dc '0-9' <"$f")"
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            log "stopping PID $pid ($(basename "$f" .pid))"
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
        rm -f "$f"
    done
    # A Kafka Streams peer whose brokers are gone can wait in its shutdown for a long time: 15 s, then KILL.
    for _ in $(seq 30); do
        local alive=()
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
        pids=("${alive[@]}")
        ((${#pids[@]} == 0)) && break
        sleep 0.5
    done
    for pid in "${pids[@]}"; do
        log "PID $pid did not stop within 15 s: killed"
        kill -KILL "$pid" 2>/dev/null || true
    done
    stop_brokers
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building the release binaries (claimgate, claimgate-loadtest)"
cargo build --release --locked -p claimgate -p claimgate-loadtest
log "building the Kafka Streams peer (Maven)"
loadtest/peers/kafka-streams/run.sh --build-only
mkdir -p "$WORK" "$OUT"

# Defaults of the comparison; any flag given on the command line comes after them and wins.
DEFAULTS=(
    --systems claimgate,pass-through,broker,kafka-streams,claimgate-eos,kafka-streams-eos
    --start-rate 5000 --warmup 5 --measure 10 --half-seconds 10 --half-repeats 3
    --scale-practitioners 12000000 --scale-seconds 30 --profile-seconds 20
    --claimgate-checkpoint-args '--checkpoint-dir {dir} --log-level info'
    --kstreams-heap "${KSTREAMS_HEAP:-1g}"
)

# On the three-node cluster every client lingers 20 ms (the generator and every system alike): with
# claimgate's 1 ms, the three JVMs on the clients' two cores spent their CPU on tiny acks=all produce
# requests and their followers' fetches, and the broker alone carried 243 of 800 lines/s
# (BENCHMARKS.md). The sweeps start at 500/s and double: Kafka Streams under exactly_once_v2 kept up
# with 1 000-1 800/s there, so a start at 5 000/s found no saturating rate of it to halve. Given on the
# command line, --gen-linger-ms, --start-rate, --factor and a later `-S linger.ms=…` win.
CLUSTER_DEFAULTS=(--gen-linger-ms 20 -S linger.ms=20 --start-rate 500 --factor 2)

IFS=',' read -r -a RUNS <<<"$BROKERS_TO_RUN"
for b in "${RUNS[@]}"; do
    rm -f "$WORK"/*.pid "$WORK"/lt*-stream.log "$WORK"/lt*-ready "$WORK"/lt*-stats.json
    case "$b" in
        single)
            out="$(scripts/broker.sh start --port "$PORT" --dir "$WORK/broker-$PORT")"
            STARTED+=(single)
            EXTRA_DEFAULTS=()
            BROKER_PIDS=(--broker-pid "$(tr -dc '0-9' <"$WORK/broker-$PORT/broker.pid")")
            ;;
        cluster)
            out="$(scripts/broker.sh cluster start --port "$((PORT + 2))" --dir "$WORK/cluster-$((PORT + 2))")"
            STARTED+=(cluster)
            EXTRA_DEFAULTS=("${CLUSTER_DEFAULTS[@]}")
            # Every node's CPU counts as the broker's (one --broker-pid per node).
            BROKER_PIDS=()
            for i in 1 2 3; do
                BROKER_PIDS+=(--broker-pid "$(printf '%s\n' "$out" | sed -n "s/^PID$i=//p")")
            done
            ;;
        *) log "KSTREAMS_BROKERS: unknown broker kind '$b' (single, cluster)"; exit 2 ;;
    esac
    BOOT="$(printf '%s\n' "$out" | sed -n 's/^BROKER=//p')"
    log "$b broker at $BOOT; results in $OUT/$b"
    target/release/claimgate-loadtest --brokers "$BOOT" --claimgate target/release/claimgate \
        --kstreams loadtest/peers/kafka-streams/run.sh --out "$OUT/$b" --work "$WORK" \
        --budget 86400 "${BROKER_PIDS[@]}" "${DEFAULTS[@]}" "${EXTRA_DEFAULTS[@]}" "$@" &
    LT_PID=$!
    wait "$LT_PID"
    LT_PID=""
    # The systems' own logs (the next broker's run starts from an empty work folder).
    mkdir -p "$OUT/$b/logs"
    cp "$WORK"/lt*-stream.log "$OUT/$b/logs/" 2>/dev/null || true
    stop_brokers
done
log "done in $(( $(date +%s) - T0 )) s: $OUT/*/report.md, $OUT/*/BENCHMARKS-kstreams.md"
