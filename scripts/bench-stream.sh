#!/usr/bin/env bash
# Stream throughput of `claimgate stream` next to a pass-through (the same binary, consumer, producer
# and commit path, forwarding claims without deciding them), on one broker, in one run, alternating
# rounds, with the stream process's CPU time per line (user + system, its whole run: start-up, the
# table load and the drain included). The figure is records per second over the span of the outputs' producer timestamps (first
# output written to last), read back with `claimgate tail`; a backlog of N claims is waiting in each
# run's topic before the run starts, so the rate is the pipeline's ceiling, not the sender's.
#
#   scripts/bench-stream.sh            N=1000000 claims, 3 rounds
#   N=200000 ROUNDS=1 scripts/bench-stream.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
N="${N:-1000000}"
ROUNDS="${ROUNDS:-3}"
PORT="${PORT:-19392}"
WORK="$ROOT/.tools/bench-stream"
BROKER_DIR="$WORK/broker"
C="$ROOT/target/release/claimgate"

cargo build --release --quiet
mkdir -p "$WORK"
stop_broker() { scripts/broker.sh stop --port "$PORT" --dir "$BROKER_DIR" >/dev/null 2>&1 || true; }
trap stop_broker EXIT
scripts/broker.sh start --port "$PORT" --dir "$BROKER_DIR" >/dev/null
B="127.0.0.1:$PORT"

if [[ ! -f "$WORK/data/claims.jsonl" ]] || [[ "$(wc -l <"$WORK/data/claims.jsonl")" != "$N" ]]; then
    "$C" gen --out-dir "$WORK/data" --practitioners 100000 --claims "$N" --quiet
fi

run() { # mode round
    local mode=$1 round=$2
    local prefix="b${round}-${mode}-" extra=()
    if [[ $mode == pass ]]; then extra=(--pass-through); fi
    "$C" topics create --brokers "$B" --prefix "$prefix" >/dev/null 2>&1
    "$C" tables publish --brokers "$B" -q --practitioners "$WORK/data/practitioners.jsonl" \
        --institutions "$WORK/data/institutions.jsonl" \
        --topic-practitioners "${prefix}practitioners" --topic-institutions "${prefix}institutions"
    "$C" send --brokers "$B" --topic "${prefix}claims" "$WORK/data/claims.jsonl" 2>/dev/null
    "$C" stream --brokers "$B" --group "${prefix}g" --http 127.0.0.1:0 --log-level warn \
        --topic-claims "${prefix}claims" --topic-accepted "${prefix}claims.accepted" \
        --topic-rejected "${prefix}claims.rejected" --topic-dlq "${prefix}claims.dlq" \
        --topic-practitioners "${prefix}practitioners" --topic-institutions "${prefix}institutions" \
        -X session.timeout.ms=6000 -X heartbeat.interval.ms=500 "${extra[@]}" 2>"$WORK/$prefix.log" &
    local pid=$!
    local out
    out="$("$C" tail --brokers "$B" --count "$N" --idle-s 60 \
        --topics "${prefix}claims.accepted,${prefix}claims.rejected,${prefix}claims.dlq")"
    # CPU of the stream process (user + system, clock ticks) over its whole run, per line.
    local ticks hz
    ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    hz=$(getconf CLK_TCK)
    kill -TERM "$pid"; wait "$pid" || true
    local rate
    rate="$(printf '%s\n' "$out" | sed -n 's/.*: \([0-9]*\) records\/s/\1/p')"
    printf '%s %s %s %s\n' "$mode" "$round" "$rate" "$(awk -v t="$ticks" -v hz="$hz" -v n="$N" 'BEGIN{printf "%.2f", t / hz * 1e6 / n}')"
}

results=()
for r in $(seq 1 "$ROUNDS"); do
    results+=("$(run pass "$r")")
    results+=("$(run claimgate "$r")")
done
echo
echo "claims: $N, rounds: $ROUNDS, broker: Apache Kafka 4.1.1 (scripts/broker.sh, single node), $(nproc) cores, $(date -u +%F)"
printf '%-10s %-6s %12s %16s\n' mode round "records/s" "CPU µs/line"
for line in "${results[@]}"; do printf '%-10s %-6s %12s %16s\n' $line; done
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
p=$(printf '%s\n' "${results[@]}" | awk '$1=="pass"{print $3}' | median)
c=$(printf '%s\n' "${results[@]}" | awk '$1=="claimgate"{print $3}' | median)
echo "median: pass-through $p/s, claimgate $c/s, ratio $(awk -v c="$c" -v p="$p" 'BEGIN{printf "%.2f", c/p}')"
