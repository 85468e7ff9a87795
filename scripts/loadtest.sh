#!/usr/bin/env bash
# The load test of issue 5 in one command: builds the release binaries, starts a broker of its own,
# runs the rate sweeps of `claimgate stream`, of its pass-through and of the quixstreams peer, the
# half-rate comparison and the status-change-to-effect test, writes the report, stops everything.
#
#   scripts/loadtest.sh                      everything, into results/<UTC date-time>/
#   scripts/loadtest.sh --systems claimgate,pass-through      skip the peer
#   scripts/loadtest.sh --measure 10 --refine 3               any claimgate-loadtest flag is passed on
#   scripts/loadtest.sh --cluster ...        the same on a three-node cluster of its own (KRaft, topics RF 3,
#                                            min.insync.replicas=2; every producer already uses acks=all)
#
# From a fresh clone it needs cargo, Java 17+ and Maven (Apache Kafka from Maven Central), python3 (3.11+, venv) and PyPI (the peer's
# venv in .tools/peer-venv). It finishes within LOADTEST_TOTAL_S seconds (default 840, 14 minutes)
# on a 2-core machine: the measurements get what the build and the set-up leave of that (at least
# LOADTEST_MIN_BUDGET_S, default 240), and the sweeps stop early to stay within it. With the build
# done it took 624-673 s here; a cold build (librdkafka from source) took 5-11 minutes, after which
# only the first rates of the sweeps fit (the report notes where they were cut short).
#
# Environment: LOADTEST_PORT (broker port, default 19492; a cluster uses it to +5), LOADTEST_OUT (results
# folder), LOADTEST_TOTAL_S, LOADTEST_MIN_BUDGET_S, KAFKA_HEAP (per node; the script's defaults).
#
# Output: results/<date-time>/report.md (percentile tables, saturating rates and ratios, status
# change to effect, links to the charts), summary.json, one .hgrm per step, SVG charts, and the
# /metrics text of each claimgate instance. The broker, the systems under test and the load test are
# stopped by PID at the end, also on failure or Ctrl-C.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
T0=$(date +%s)
PORT="${LOADTEST_PORT:-19492}"
TOTAL_S="${LOADTEST_TOTAL_S:-840}"
MIN_BUDGET_S="${LOADTEST_MIN_BUDGET_S:-240}"
OUT="${LOADTEST_OUT:-results/$(date -u +%Y-%m-%dT%H-%M-%SZ)}"
WORK="$ROOT/.tools/loadtest"
BROKER_DIR="$WORK/broker-$PORT"
LT_PID=""
CLUSTER=0
ARGS=()
for a in "$@"; do
    if [[ "$a" == --cluster ]]; then CLUSTER=1; else ARGS+=("$a"); fi
done
set -- "${ARGS[@]+"${ARGS[@]}"}"
(( CLUSTER )) && BROKER_DIR="$WORK/cluster-$PORT"

log() { printf 'loadtest.sh: %s\n' "$*" >&2; }

cleanup() {
    local rc=$?
    if [[ -n "$LT_PID" ]] && kill -0 "$LT_PID" 2>/dev/null; then
        kill -TERM "$LT_PID" 2>/dev/null || true
        wait "$LT_PID" 2>/dev/null || true
    fi
    # The systems under test the load test started (it writes their PIDs; it stops them itself
    # unless it was killed).
    for f in "$WORK"/*.pid; do
        [[ -f "$f" ]] || continue
        local pid
        pid="$(tr -dc '0-9' <"$f")"
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            log "stopping PID $pid ($(basename "$f" .pid))"
            kill -TERM "$pid" 2>/dev/null || true
        fi
        rm -f "$f"
    done
    if (( CLUSTER )); then
        scripts/broker.sh cluster stop --dir "$BROKER_DIR" >/dev/null 2>&1 || true
    else
        scripts/broker.sh stop --port "$PORT" --dir "$BROKER_DIR" >/dev/null 2>&1 || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building the release binaries (claimgate, claimgate-loadtest)"
cargo build --release --locked -p claimgate -p claimgate-loadtest
PEER=(--peer loadtest/peers/run_peer.sh)
if [[ " $* " != *" --systems "* ]] || [[ " $* " == *peer* ]]; then
    log "setting up the peer's venv (once)"
    loadtest/peers/run_peer.sh --setup-only
fi
mkdir -p "$WORK" "$OUT"
rm -f "$WORK"/*.pid "$WORK"/lt*-stream.log "$WORK"/lt*-ready "$WORK"/lt*-stats.json
BROKER_PIDS=()
if (( CLUSTER )); then
    # A fresh cluster for each run: topics from an earlier run would weigh on the brokers.
    scripts/broker.sh cluster stop --dir "$BROKER_DIR" >/dev/null 2>&1 || true
    rm -rf "$BROKER_DIR"
    out="$(scripts/broker.sh cluster start --port "$PORT" --dir "$BROKER_DIR")"
    BROKERS="$(printf '%s\n' "$out" | sed -n 's/^BROKER=//p')"
    for i in 1 2 3; do BROKER_PIDS+=(--broker-pid "$(tr -dc '0-9' <"$BROKER_DIR/node-$i/broker.pid")"); done
else
    scripts/broker.sh start --port "$PORT" --dir "$BROKER_DIR" >/dev/null
    BROKERS="127.0.0.1:$PORT"
    BROKER_PIDS=(--broker-pid "$(tr -dc '0-9' <"$BROKER_DIR/broker.pid")")
fi
ELAPSED=$(( $(date +%s) - T0 ))
# Keep about 60 s for starting and stopping the systems and writing the report.
BUDGET=$(( TOTAL_S - ELAPSED - 60 ))
(( BUDGET >= MIN_BUDGET_S )) || BUDGET=$MIN_BUDGET_S
log "set-up took ${ELAPSED} s; measuring for at most ${BUDGET} s; results in $OUT"
target/release/claimgate-loadtest --brokers "$BROKERS" --claimgate target/release/claimgate \
    "${PEER[@]}" --out "$OUT" --work "$WORK" --budget "$BUDGET" "${BROKER_PIDS[@]}" "$@" &
LT_PID=$!
wait "$LT_PID"
LT_PID=""
log "done in $(( $(date +%s) - T0 )) s: $OUT/report.md"
