#!/usr/bin/env bash
# A/B of two claimgate builds' stream on one Apache Kafka node: same data, alternating, CPU per line.
set -euo pipefail
cd /work/main
PORT=19392; WORK=/work/main/.tools/bench-stream; BROKER_DIR=$WORK/broker; N=1000000
B="127.0.0.1:$PORT"
stop_broker() { scripts/broker.sh stop --port "$PORT" --dir "$BROKER_DIR" >/dev/null 2>&1 || true; }
trap stop_broker EXIT
scripts/broker.sh start --port "$PORT" --dir "$BROKER_DIR" >/dev/null
run() { # name binary mode round
  local name=$1 C=$2 mode=$3 round=$4 extra=()
  local prefix="ab${round}-${name}-${mode}-"
  [[ $mode == pass ]] && extra=(--pass-through)
  "$C" topics create --brokers "$B" --prefix "$prefix" >/dev/null 2>&1
  "$C" tables publish --brokers "$B" -q --practitioners "$WORK/data/practitioners.jsonl" --institutions "$WORK/data/institutions.jsonl" --topic-practitioners "${prefix}practitioners" --topic-institutions "${prefix}institutions"
  "$C" send --brokers "$B" --topic "${prefix}claims" "$WORK/data/claims.jsonl" 2>/dev/null
  "$C" stream --brokers "$B" --group "${prefix}g" --http 127.0.0.1:0 --log-level warn \
    --topic-claims "${prefix}claims" --topic-accepted "${prefix}claims.accepted" \
    --topic-rejected "${prefix}claims.rejected" --topic-dlq "${prefix}claims.dlq" \
    --topic-practitioners "${prefix}practitioners" --topic-institutions "${prefix}institutions" \
    -X session.timeout.ms=6000 -X heartbeat.interval.ms=500 "${extra[@]}" 2>"$WORK/$prefix.log" &
  local pid=$! out ticks
  out="$("$C" tail --brokers "$B" --count "$N" --idle-s 60 --topics "${prefix}claims.accepted,${prefix}claims.rejected,${prefix}claims.dlq")"
  ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  kill -TERM "$pid"; wait "$pid" || true
  printf '%-10s %-10s %s %8s %8.2f\n' "$name" "$mode" "$round" "$(printf '%s\n' "$out" | sed -n 's/.*: \([0-9]*\) records\/s/\1/p')" "$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v n="$N" 'BEGIN{print t / hz * 1e6 / n}')"
}
echo "build      mode       round  records/s  CPU µs/line   ($(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
for r in 1 2 3; do
  run 2026-11-30 /tmp/claimgate-3666424 claimgate "$r"
  run head /work/main/target/release/claimgate claimgate "$r"
  run head /work/main/target/release/claimgate pass "$r"
done
