#!/usr/bin/env bash
# Time from start to ready (`/readyz` 200) of `claimgate stream` with N practitioner codes on the status
# topic, on Apache Kafka (issue 10, performance.md "stream ready after a restart"):
#
#   - cold: no checkpoint, the status topics read from the beginning;
#   - checkpointed: the same instance restarted after a clean stop (which writes the checkpoint), with
#     a few status changes published while it was down (the tail it reads).
#
# Each with its peak RSS (bytes per code). The broker is started here (scripts/broker.sh, its own port
# and directory) and stopped at the end, by PID.
#
#   scripts/bench-restart.sh                 12 000 000 codes (about 4 GB of broker log, 15-20 min)
#   CODES=1000000 scripts/bench-restart.sh   a smaller run
#
# Output: the figures on standard output; the stream logs and the time series in .tools/bench-restart/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CODES="${CODES:-12000000}"
PORT="${BENCH_PORT:-19992}"
HTTP="127.0.0.1:${BENCH_HTTP_PORT:-19998}"
W="$ROOT/.tools/bench-restart"
C="$ROOT/target/release/claimgate"
B="127.0.0.1:$PORT"
mkdir -p "$W"
cargo build --release --quiet -p claimgate

cleanup() {
    if [[ -f "$W/stream.pid" ]]; then kill -TERM "$(cat "$W/stream.pid")" 2>/dev/null || true; fi
    scripts/broker.sh stop --port "$PORT" --dir "$W/broker" >/dev/null 2>&1 || true
}
trap cleanup EXIT

if [[ ! -f "$W/codes-$CODES/practitioners.jsonl" ]]; then
    "$C" gen --out-dir "$W/codes-$CODES" --practitioners "$CODES" --claims 1000 --quiet
fi
P="$W/codes-$CODES/practitioners.jsonl"
rm -rf "$W/broker" "$W/state"
KAFKA_HEAP="${KAFKA_HEAP:-1g}" scripts/broker.sh start --port "$PORT" --dir "$W/broker" >/dev/null
"$C" topics create --brokers "$B" --prefix bench- >/dev/null 2>&1
t0=$(date +%s.%N)
"$C" tables publish --brokers "$B" --practitioners "$P" --institutions "$W/codes-$CODES/institutions.jsonl" \
    --topic-practitioners bench-practitioners --topic-institutions bench-institutions --quiet
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%TZ)"
echo "codes: $CODES; published in $(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)") s"

cat >"$W/stream.toml" <<EOF
brokers = "$B"
group = "bench-g"
[topics]
claims = "bench-claims"
accepted = "bench-claims.accepted"
rejected = "bench-claims.rejected"
dlq = "bench-claims.dlq"
practitioners = "bench-practitioners"
institutions = "bench-institutions"
status_dlq = "bench-status.dlq"
# The retro topic that 'claimgate topics create --prefix bench-' made: without it every late change waits on a full
# producer queue (see BENCHMARKS.md, the compaction's peak).
retro = "bench-status.retro"
[http]
addr = "$HTTP"
[checkpoint]
dir = "$W/state"
every_s = 3600
EOF

# Starts the stream, waits for /readyz 200; prints "seconds peak_rss_kb".
ready_in() {
    local log="$1" t0 pid
    t0=$(date +%s.%N)
    "$C" stream --config "$W/stream.toml" --log-format json 2>"$log" &
    pid=$!
    echo "$pid" >"$W/stream.pid"
    until curl -sf "http://$HTTP/readyz" >/dev/null 2>&1; do
        kill -0 "$pid" 2>/dev/null || { tail -5 "$log" >&2; echo "stream exited" >&2; exit 1; }
        sleep 0.05
    done
    local secs
    secs=$(echo "$(date +%s.%N) - $t0" | bc)
    local rss cpu
    rss=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")
    cpu=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$pid/stat")
    printf '%.2f %s %s\n' "$secs" "$rss" "$cpu"
}

stop_stream() {
    local pid
    pid="$(cat "$W/stream.pid")"
    kill -TERM "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    rm -f "$W/stream.pid"
}

read -r secs rss cpu < <(ready_in "$W/cold.log")
echo "cold (no checkpoint): ready in ${secs} s (${cpu} s of CPU), peak RSS $((rss / 1024)) MiB ($(( rss * 1024 / CODES )) bytes/code)"
stop_stream
grep -o '"event":"checkpoint_written"[^}]*' "$W/cold.log" | tail -1 | sed 's/^/  /'

# While it is down: a few changes (the tail).
head -n 100 "$P" | sed 's/"periods":\[\]/"periods":[{"status":"suspended","from":"2026-01-01","until":"2027-01-01"}]/' >"$W/tail.jsonl"
"$C" tables publish --brokers "$B" --practitioners "$W/tail.jsonl" --topic-practitioners bench-practitioners \
    --topic-institutions bench-institutions --quiet
read -r secs rss cpu < <(ready_in "$W/checkpointed.log")
echo "restart from the checkpoint ($(du -h "$W/state" | tail -1 | cut -f1)): ready in ${secs} s (${cpu} s of CPU), peak RSS $((rss / 1024)) MiB ($(( rss * 1024 / CODES )) bytes/code)"
grep -o '"event":"\(cluster_id_known\|checkpoint_read\|checkpoint_loaded\)"[^}]*' "$W/checkpointed.log" | sed 's/^/  /'
grep -o '"event":"status_loaded"[^}]*' "$W/checkpointed.log" | sed 's/^/  /'
stop_stream
