#!/usr/bin/env bash
# One start of `claimgate stream` against the broker and topics scripts/bench-restart.sh left loaded
# (its .tools/bench-restart/stream.toml), to compare two builds in alternating runs without publishing
# 12 million records again between them:
#
#   scripts/bench-ready.sh BINARY cold    the checkpoint removed first: read from the beginning
#   scripts/bench-ready.sh BINARY ckpt    from the checkpoint the previous run wrote at its stop
#   scripts/bench-ready.sh BINARY compaction
#                                         cold, then CHANGES practitioner records (default 250 000, more
#                                         than the 1/64 of the table that starts a compaction) published
#                                         as one batch while it follows: the peak RSS through the publish
#                                         and the view's compaction (issue 10's "≤ 100 B/code at peak,
#                                         including during compaction of the view"; CHANGE_FROM below)
#
# Prints the time to /readyz 200, the process's CPU and the CPU of each thread above 0.5 s, peak RSS (and
# per code, CODES default 12 000 000), and the follower's log lines; samples RSS every 0.1 s into
# .tools/bench-restart/rss-MODE.txt. The broker is the caller's: start it with scripts/broker.sh
# --port 19992 --dir .tools/bench-restart/broker (bench-restart.sh stops its own at the end).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
W="$ROOT/.tools/bench-restart"
C="$1"
MODE="$2"
CODES="${CODES:-12000000}"
HTTP="127.0.0.1:${BENCH_HTTP_PORT:-19998}"
[[ "$MODE" != ckpt ]] && rm -rf "$W/state"
log="$W/ready-$MODE.log"
rss_log="$W/rss-$MODE.txt"
: >"$rss_log"
t0=$(date +%s.%N)
"$C" stream --config "$W/stream.toml" --log-format json 2>"$log" &
pid=$!
(while kill -0 "$pid" 2>/dev/null; do
    echo "$(date +%s.%N) $(awk '/VmRSS/{print $2}' "/proc/$pid/status" 2>/dev/null)" >>"$rss_log"
    sleep 0.1
done) &
until curl -sf "http://$HTTP/readyz" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { tail -5 "$log" >&2; echo "stream exited" >&2; exit 1; }
    sleep 0.05
done
secs=$(echo "$(date +%s.%N) - $t0" | bc)
rss=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")
cpu=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$pid/stat")
for t in /proc/"$pid"/task/*; do
    awk -v hz="$(getconf CLK_TCK)" '{c = ($14 + $15) / hz; if (c > 0.5) printf "    %s %.2fs\n", $2, c}' "$t/stat" 2>/dev/null || true
done
if [[ "$MODE" == compaction ]]; then
    # The changes: the first CHANGES codes, each given a suspension (a new version of each) from
    # CHANGE_FROM (default: tomorrow, Beijing time, so that none is late; a date already begun makes
    # every change a late one, written to the retro topic too — a second burst, measured on its own).
    stamp=$(date +%s)
    from="${CHANGE_FROM:-$(TZ=Asia/Shanghai date -d tomorrow +%F)}"
    head -n "${CHANGES:-250000}" "$W/codes-$CODES/practitioners.jsonl" |
        sed "s/\"periods\":\[\]/\"periods\":[{\"status\":\"suspended\",\"from\":\"$from\",\"until\":\"2027-03-01\",\"decision_id\":\"B-$stamp\"}]/" \
            >"$W/compaction-changes.jsonl"
    # The high-water mark reset (Linux ≥ 4.0), so that the next peak is the publish's and compaction's.
    echo 5 >"/proc/$pid/clear_refs"
    "$C" tables publish --brokers "$(awk -F'"' '/^brokers/{print $2}' "$W/stream.toml")" \
        --practitioners "$W/compaction-changes.jsonl" --topic-practitioners bench-practitioners \
        --topic-institutions bench-institutions --quiet
    # The fold of these changes (100 000 codes or more): a fold of the garbage a cold start left (a
    # topic the cleaner has not compacted yet) may come first.
    # (Builds before the garbage fold log no `folded`: their first fold is the changes'.)
    until grep -qE '"event":"table_compacted","(folded":[1-9][0-9]{5,}|delta)' "$log"; do
        kill -0 "$pid" 2>/dev/null || { tail -5 "$log" >&2; echo "stream exited" >&2; exit 1; }
        sleep 0.2
    done
    sleep 2
    hwm=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")
    now=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
    echo "through the publish and the compaction: peak RSS $((hwm / 1024)) MiB ($((hwm * 1024 / CODES)) B/code); 2 s after it $((now / 1024)) MiB"
    grep -o '"event":"table_compact[a-z_]*"[^}]*' "$log" | sed 's/^/  /'
fi
kill -TERM "$pid"
while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
echo "$MODE $(basename "$C"): ready ${secs}s cpu ${cpu}s peak $((rss / 1024)) MiB ($((rss * 1024 / CODES)) B/code) load $(cut -d' ' -f1 /proc/loadavg)"
grep -o '"event":"\(status_loaded\|checkpoint_loaded\)"[^}]*' "$log" | sed 's/^/  /' || true
