#!/usr/bin/env bash
# The latency/throughput trade-off of the Kafka client settings that decide claimgate's end-to-end
# latency (issue 11), in one command: for each setting below, claimgate and its pass-through at one
# fixed rate (open loop, coordinated omission corrected: p50/p99/p99.9) and draining a backlog (the
# throughput), on one broker of the script's own. Writes one table.
#
#   scripts/latency-tradeoff.sh                         single node, results/tradeoff-<UTC date-time>/
#   scripts/latency-tradeoff.sh --cluster               the three-node cluster (acks=all, RF 3, min ISR 2)
#   scripts/latency-tradeoff.sh --rate 20000 --backlog 300000 --seconds 6 --repeats 3
#
# --rate: the fixed rate of the latency steps (lines/s; use half of claimgate's saturating rate from
# scripts/loadtest.sh on the same machine); --backlog: lines drained per system and setting; --seconds:
# measured seconds per latency step; --repeats: latency steps per system and setting (medians reported).
# Settings (the systems' own, `-S`; the load test's generator and reader keep theirs):
#   default                      claimgate's defaults (src/io/kafka/pipeline/delivery.rs, pipeline/mod.rs)
#   linger.ms=0 | 1 | 5 | 20     the producer's wait to fill a batch
#   fetch.min.bytes=65536 + fetch.wait.max.ms=10    the consumer waits for bigger fetches
#   socket.nagle.disable=true    TCP_NODELAY on the clients' sockets (librdkafka leaves Nagle on)
# Output: <out>/tradeoff.md (the table), <out>/<setting>/ (each run's report.md, summary.json, .hgrm).
# Environment: LOADTEST_PORT (default 19592; a cluster uses it to +5), KAFKA_HEAP.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
COMMAND="scripts/latency-tradeoff.sh $*"
PORT="${LOADTEST_PORT:-19592}"
RATE=20000
BACKLOG=300000
SECONDS_PER_STEP=6
REPEATS=2
CLUSTER=0
OUT="results/tradeoff-$(date -u +%Y-%m-%dT%H-%M-%SZ)"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --cluster) CLUSTER=1; shift ;;
        --rate) RATE="$2"; shift 2 ;;
        --backlog) BACKLOG="$2"; shift 2 ;;
        --seconds) SECONDS_PER_STEP="$2"; shift 2 ;;
        --repeats) REPEATS="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        *) echo "latency-tradeoff.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
SETTINGS=(
    "default|"
    "linger-0|linger.ms=0"
    "linger-1|linger.ms=1"
    "linger-5|linger.ms=5"
    "linger-20|linger.ms=20"
    "fetch-min-64k|fetch.min.bytes=65536 fetch.wait.max.ms=10"
    "nagle-off|socket.nagle.disable=true"
)
WORK="$ROOT/.tools/tradeoff"
DIR="$WORK/broker-$PORT"
log() { printf 'latency-tradeoff.sh: %s\n' "$*" >&2; }
cleanup() {
    local rc=$?
    if (( CLUSTER )); then scripts/broker.sh cluster stop --dir "$DIR" >/dev/null 2>&1 || true
    else scripts/broker.sh stop --port "$PORT" --dir "$DIR" >/dev/null 2>&1 || true; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cargo build --release --locked -p claimgate -p claimgate-loadtest
mkdir -p "$WORK" "$OUT"
rm -rf "$DIR"
PIDS=()
if (( CLUSTER )); then
    out="$(scripts/broker.sh cluster start --port "$PORT" --dir "$DIR")"
    BROKERS="$(printf '%s\n' "$out" | sed -n 's/^BROKER=//p')"
    for i in 1 2 3; do PIDS+=(--broker-pid "$(tr -dc '0-9' <"$DIR/node-$i/broker.pid")"); done
else
    scripts/broker.sh start --port "$PORT" --dir "$DIR" >/dev/null
    BROKERS="127.0.0.1:$PORT"
    PIDS=(--broker-pid "$(tr -dc '0-9' <"$DIR/broker.pid")")
fi
log "broker(s) $BROKERS; rate $RATE/s, backlog $BACKLOG, $REPEATS x ${SECONDS_PER_STEP}s per system and setting; results in $OUT"
for entry in "${SETTINGS[@]}"; do
    name="${entry%%|*}"
    props=()
    for kv in ${entry#*|}; do props+=(-S "$kv"); done
    log "setting $name: ${entry#*|}"
    target/release/claimgate-loadtest --brokers "$BROKERS" --claimgate target/release/claimgate \
        --systems claimgate,pass-through --no-sweep --half-of $(( 2 * RATE )) --half-repeats "$REPEATS" \
        --half-seconds "$SECONDS_PER_STEP" --status-changes 0 --backlog "$BACKLOG" --budget 100000 \
        --out "$OUT/$name" --work "$WORK/work" "${PIDS[@]}" "${props[@]+"${props[@]}"}" >"$OUT/$name.log" 2>&1 \
        || { log "setting $name failed (see $OUT/$name.log)"; tail -5 "$OUT/$name.log" >&2; }
done
python3 - "$OUT" "$BROKERS" "$RATE" "$BACKLOG" "$COMMAND" "${SETTINGS[@]}" <<'PY' | tee "$OUT/tradeoff.md"
import json, os, sys, statistics
out, brokers, rate, backlog, command = sys.argv[1:6]
settings = [s.split("|", 1) for s in sys.argv[6:]]
print(f"# Latency/throughput trade-off: {brokers}\n")
print(f"Open loop at {rate}/s (coordinated omission corrected, medians of the repeats), and a backlog of {backlog} lines drained; each setting given to claimgate and its pass-through only (`-S`), the load test's generator and reader unchanged. Command: `{command.strip()}` (each setting's folder has its report.md and exact command).\n")
print("| setting | claimgate p50 / p99 / p99.9 ms | pass-through p50 / p99 / p99.9 ms | claimgate p99 − pass-through p99 | backlog: claimgate /s | backlog: pass-through /s | machine load at start |")
print("|---|---|---|---|---|---|---|")
for name, props in settings:
    path = os.path.join(out, name, "summary.json")
    if not os.path.exists(path):
        print(f"| {name} ({props or 'defaults'}) | failed | | | | | |")
        continue
    s = json.load(open(path))
    fig = {f["system"]: f for f in s.get("half_rate_figures", [])}
    def lat(sys_):
        f = fig.get(sys_)
        return f"{f['median_p50_ms']:.2f} / {f['median_p99_ms']:.2f} / {f.get('median_p999_ms', 0):.2f}" if f else "—"
    def drain(sys_):
        r = [b["rate"] for b in s.get("backlog", []) if b["system"] == sys_]
        return f"{statistics.median(r):.0f}" if r else "—"
    cg, pt = fig.get("claimgate"), fig.get("pass-through")
    added = f"{cg['median_p99_ms'] - pt['median_p99_ms']:+.2f} ms" if cg and pt else "—"
    print(f"| {name} (`{props or 'defaults'}`) | {lat('claimgate')} | {lat('pass-through')} | {added} | {drain('claimgate')} | {drain('pass-through')} | {s['machine']['load_average']} |")
PY
log "done: $OUT/tradeoff.md"
