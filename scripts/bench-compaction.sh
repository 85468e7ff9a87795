#!/usr/bin/env bash
# Issue 10's memory goal "≤ 100 bytes per code at peak, including during compaction of the view",
# measured: `claimgate stream` started cold on the 12-million-code topic that scripts/bench-restart.sh
# loaded (its .tools/bench-restart/stream.toml, broker on port 19992: start it with scripts/broker.sh
# --port 19992 --dir .tools/bench-restart/broker), then CHANGES practitioner records (default 250 000,
# more than the 1/64 of the table that triggers a compaction) published as one batch while it follows.
# Prints the peak RSS once ready, the peak through the compaction (`table_compacted` in its log), both
# per code, and samples RSS every 0.1 s into .tools/bench-restart/rss-compaction.txt.
#
#   scripts/bench-compaction.sh BINARY
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
W="$ROOT/.tools/bench-restart"
C="$1"
CODES="${CODES:-12000000}"
CHANGES="${CHANGES:-250000}"
HTTP="127.0.0.1:${BENCH_HTTP_PORT:-19998}"
rm -rf "$W/state"
log="$W/compaction.log"
rss_log="$W/rss-compaction.txt"
: >"$rss_log"
"$C" stream --config "$W/stream.toml" --log-format json 2>"$log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
(while kill -0 "$pid" 2>/dev/null; do
    echo "$(date +%s.%N) $(awk '/VmRSS/{print $2}' "/proc/$pid/status" 2>/dev/null)" >>"$rss_log"
    sleep 0.1
done) &
until curl -sf "http://$HTTP/readyz" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { tail -5 "$log" >&2; echo "stream exited" >&2; exit 1; }
    sleep 0.1
done
ready_hwm=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")
echo "ready: peak RSS $((ready_hwm / 1024)) MiB ($((ready_hwm * 1024 / CODES)) B/code)"
# The changes: the first CHANGES codes, each given a suspension (a new version of each).
stamp=$(date +%s)
head -n "$CHANGES" "$W/codes-$CODES/practitioners.jsonl" |
    sed "s/\"periods\":\[\]/\"periods\":[{\"status\":\"suspended\",\"from\":\"2026-12-01\",\"until\":\"2027-03-01\",\"decision_id\":\"B-$stamp\"}]/" \
        >"$W/compaction-changes.jsonl"
# Reset the high-water mark, so that the next peak is the compaction's alone (Linux ≥ 4.0).
echo 5 >"/proc/$pid/clear_refs"
"$C" tables publish --brokers "$(awk -F'"' '/^brokers/{print $2}' "$W/stream.toml")" \
    --practitioners "$W/compaction-changes.jsonl" --topic-practitioners bench-practitioners \
    --topic-institutions bench-institutions --quiet
until grep -q '"event":"table_compacted"' "$log"; do
    kill -0 "$pid" 2>/dev/null || { tail -5 "$log" >&2; echo "stream exited" >&2; exit 1; }
    sleep 0.2
done
sleep 2
hwm=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")
rss=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
echo "through the publish and the compaction: peak RSS $((hwm / 1024)) MiB ($((hwm * 1024 / CODES)) B/code); now $((rss / 1024)) MiB"
grep -o '"event":"table_compacted"[^}]*' "$log" | head -1
