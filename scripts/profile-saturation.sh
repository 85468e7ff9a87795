#!/usr/bin/env bash
# Where the machine's CPU goes when the open-loop load test runs claimgate near its saturating rate
# (issue 11, "saturation honestly measured"): one broker of the script's own, claimgate at a fixed rate,
# and `perf record -a -g` of the whole machine for a few seconds in the middle of the step. Writes the
# profile by process and thread (who takes the two cores: the broker, claimgate, the load test's
# generator, reader and librdkafka threads, other users) and the load test's and claimgate's hottest
# functions, next to the load test's own report of the step.
#
#   scripts/profile-saturation.sh --rate 50000          results/profile-<UTC date-time>/
#   scripts/profile-saturation.sh --rate 50000 --seconds 20 --perf-seconds 8
#
# Needs `perf` (Debian: linux-perf) and the permission to profile the whole machine (root here).
# Environment: LOADTEST_PORT (default 19692), KAFKA_HEAP, PROFILE_NO_BUILD=1 (use the release binaries as
# they are).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PORT="${LOADTEST_PORT:-19692}"
RATE=50000
STEP_S=20
PERF_S=8
OUT="results/profile-$(date -u +%Y-%m-%dT%H-%M-%SZ)"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rate) RATE="$2"; shift 2 ;;
        --seconds) STEP_S="$2"; shift 2 ;;
        --perf-seconds) PERF_S="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        *) echo "profile-saturation.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
command -v perf >/dev/null || { echo "profile-saturation.sh: perf is needed (apt-get install linux-perf)" >&2; exit 1; }
WORK="$ROOT/.tools/profile"
DIR="$WORK/broker-$PORT"
LT_PID=""
log() { printf 'profile-saturation.sh: %s\n' "$*" >&2; }
cleanup() {
    local rc=$?
    [[ -n "$LT_PID" ]] && kill -TERM "$LT_PID" 2>/dev/null && wait "$LT_PID" 2>/dev/null
    scripts/broker.sh stop --port "$PORT" --dir "$DIR" >/dev/null 2>&1 || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ -n "${PROFILE_NO_BUILD:-}" ]] || cargo build --release --locked -p claimgate -p claimgate-loadtest
mkdir -p "$WORK" "$OUT"
rm -rf "$DIR"
scripts/broker.sh start --port "$PORT" --dir "$DIR" >/dev/null
BROKER_PID="$(tr -dc '0-9' <"$DIR/broker.pid")"
target/release/claimgate-loadtest --brokers "127.0.0.1:$PORT" --claimgate target/release/claimgate \
    --systems claimgate --no-sweep --half-of $(( 2 * RATE )) --half-repeats 1 --half-seconds "$STEP_S" \
    --status-changes 0 --budget 100000 --out "$OUT/loadtest" --work "$WORK/work" --broker-pid "$BROKER_PID" \
    >"$OUT/loadtest.log" 2>&1 &
LT_PID=$!
# The measured step starts once the system is up and primed: wait for it, then into its middle.
for _ in $(seq 1 600); do
    grep -q "at half of claimgate's saturating rate" "$OUT/loadtest.log" 2>/dev/null && break
    sleep 0.5
done
sleep $(( STEP_S / 2 - PERF_S / 2 > 0 ? STEP_S / 2 - PERF_S / 2 : 1 ))
log "recording $PERF_S s of the whole machine at $RATE lines/s"
perf record -a -g -F 299 -o "$OUT/perf.data" -- sleep "$PERF_S" 2>"$OUT/perf-record.log"
wait "$LT_PID" || true
LT_PID=""
# Whole reports to files first (a pipe into head would end perf with SIGPIPE).
perf report -i "$OUT/perf.data" --no-children --sort pid,comm --stdio -g none >"$OUT/perf-comm.txt" 2>/dev/null || true
perf report -i "$OUT/perf.data" --no-children --sort comm,dso --stdio -g none >"$OUT/perf-comm-dso.txt" 2>/dev/null || true
perf report -i "$OUT/perf.data" --no-children --sort comm,sym --stdio -g none >"$OUT/perf-comm-sym.txt" 2>/dev/null || true
grep -v '^$' "$OUT/perf-comm.txt" | head -60 >"$OUT/by-thread.txt" || true
grep -v '^$' "$OUT/perf-comm-dso.txt" | head -60 >"$OUT/by-process.txt" || true
grep -E 'claimgate|reader|rdk:|^#' "$OUT/perf-comm-sym.txt" | head -80 >"$OUT/loadtest-symbols.txt" || true
log "done: $OUT/by-thread.txt, $OUT/by-process.txt, $OUT/loadtest-symbols.txt, $OUT/loadtest/report.md"
