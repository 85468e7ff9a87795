#!/usr/bin/env bash
# The demo: everything claimgate does, on a generated data set and a broker started here.
#
#   1. build claimgate (release);
#   2. generate a day: 100 000 practitioners, their institutions, 1 000 000 claim lines (demo/);
#   3. review the day from files and print the report summary (report: demo/report.md);
#   4. start Apache Kafka on loopback (scripts/broker.sh), create the topics, publish the status tables,
#      run `claimgate stream`, feed it the day's claims, and print the verdict counts;
#   5. stop everything it started.
#
#   scripts/demo.sh                     the whole demo
#   DEMO_CLAIMS=200000 scripts/demo.sh  a smaller day
#   DEMO_PORT=19093 scripts/demo.sh     another broker port (default 19092)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CLAIMS="${DEMO_CLAIMS:-1000000}"
PORT="${DEMO_PORT:-19092}"
HTTP="${DEMO_HTTP:-127.0.0.1:9898}"
OUT="$ROOT/demo"
BROKER_DIR="$ROOT/.tools/run/demo-broker-$PORT"
C="$ROOT/target/release/claimgate"

if [[ -t 1 ]]; then
    say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
    say() { printf '\n== %s\n' "$*"; }
fi

say "building claimgate (release; the first build compiles librdkafka, a few minutes)"
cargo build --release --locked --quiet

if [[ ! -f "$OUT/claims.jsonl" ]] || [[ "$(wc -l <"$OUT/claims.jsonl")" != "$CLAIMS" ]]; then
    say "generating the demo data set in demo/"
    "$C" gen --out-dir "$OUT" --practitioners 100000 --claims "$CLAIMS"
fi

say "claimgate review: the day from files, as of each line's service time"
"$C" review --claims "$OUT/claims.jsonl" --practitioners "$OUT/practitioners.jsonl" \
    --institutions "$OUT/institutions.jsonl" --out "$OUT/decisions.jsonl" \
    --dead-letters "$OUT/dead-letters.jsonl" --report "$OUT/report.md"
echo "report: demo/report.md, decisions: demo/decisions.jsonl, dead letters: demo/dead-letters.jsonl"

STREAM_PID=""
cleanup() {
    if [[ -n "$STREAM_PID" ]] && kill -0 "$STREAM_PID" 2>/dev/null; then
        kill -TERM "$STREAM_PID" 2>/dev/null || true
        wait "$STREAM_PID" 2>/dev/null || true
    fi
    scripts/broker.sh stop --port "$PORT" --dir "$BROKER_DIR" >/dev/null 2>&1 || true
}
trap cleanup EXIT

say "starting Apache Kafka on 127.0.0.1:$PORT (scripts/broker.sh; the first run fetches its jars from Maven Central)"
scripts/broker.sh start --port "$PORT" --dir "$BROKER_DIR" >/dev/null
B="127.0.0.1:$PORT"
"$C" topics create --brokers "$B"
"$C" tables publish --brokers "$B" --practitioners "$OUT/practitioners.jsonl" --institutions "$OUT/institutions.jsonl"

say "claimgate stream (operations port http://$HTTP: /metrics /readyz /v1/practitioners/{code})"
"$C" stream --brokers "$B" --http "$HTTP" -X session.timeout.ms=6000 -X heartbeat.interval.ms=500 \
    2>"$OUT/stream.log" &
STREAM_PID=$!
for _ in $(seq 1 300); do
    if curl -sf "http://$HTTP/readyz" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$STREAM_PID" 2>/dev/null; then cat "$OUT/stream.log"; exit 1; fi
    sleep 0.2
done
curl -s "http://$HTTP/readyz"

say "feeding the day's claims to the claims topic"
"$C" send --brokers "$B" "$OUT/claims.jsonl"

say "verdicts on claims.accepted / claims.rejected / claims.dlq"
"$C" tail --brokers "$B" --count "$CLAIMS" --idle-s 60

code="$(head -c 200 "$OUT/practitioners.jsonl" | sed -n 's/.*"code":"\([^"]*\)".*/\1/p' | head -1)"
say "a practitioner's own status query: GET /v1/practitioners/$code?at=2026-04-02"
curl -s "http://$HTTP/v1/practitioners/$code?at=2026-04-02%2010:00:00"; echo

say "stopping (SIGTERM: drain, commit, exit 0)"
kill -TERM "$STREAM_PID"
wait "$STREAM_PID"
STREAM_PID=""
echo "stream log: demo/stream.log"
