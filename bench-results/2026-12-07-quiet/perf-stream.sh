#!/usr/bin/env bash
set -euo pipefail
cd /work/main
PORT=19392; WORK=/work/main/.tools/bench-stream; BROKER_DIR=$WORK/broker; C=/work/main/target/release/claimgate; N=1000000
B="127.0.0.1:$PORT"
stop_broker() { scripts/broker.sh stop --port "$PORT" --dir "$BROKER_DIR" >/dev/null 2>&1 || true; }
trap stop_broker EXIT
scripts/broker.sh start --port "$PORT" --dir "$BROKER_DIR" >/dev/null
for mode in ${MODES:-claimgate}; do
prefix="p-$mode-$(date +%s)-"
extra=(); [[ $mode == pass ]] && extra=(--pass-through)
"$C" topics create --brokers "$B" --prefix "$prefix" >/dev/null 2>&1
"$C" tables publish --brokers "$B" -q --practitioners "$WORK/data/practitioners.jsonl" --institutions "$WORK/data/institutions.jsonl" --topic-practitioners "${prefix}practitioners" --topic-institutions "${prefix}institutions"
"$C" send --brokers "$B" --topic "${prefix}claims" "$WORK/data/claims.jsonl" 2>/dev/null
perf record -F 499 -g -o /tmp/perf-stream-$mode.data "$C" stream --brokers "$B" --group "${prefix}g" --http 127.0.0.1:0 --log-level warn \
    --topic-claims "${prefix}claims" --topic-accepted "${prefix}claims.accepted" \
    --topic-rejected "${prefix}claims.rejected" --topic-dlq "${prefix}claims.dlq" \
    --topic-practitioners "${prefix}practitioners" --topic-institutions "${prefix}institutions" \
    -X session.timeout.ms=6000 -X heartbeat.interval.ms=500 "${extra[@]}" 2>"$WORK/$prefix.log" &
pid=$!
"$C" tail --brokers "$B" --count "$N" --idle-s 60 --topics "${prefix}claims.accepted,${prefix}claims.rejected,${prefix}claims.dlq"
kill -INT $(pgrep -P $pid -f "claimgate stream") 2>/dev/null || kill -INT $pid
wait $pid || true
done
