#!/usr/bin/env bash
# The scripted scale runs of BENCHMARKS.md: 12 million practitioner codes and a 10-million-line day.
#
#   - load 12M codes from JSON Lines and write the snapshot (`tables build`): wall time, peak RSS;
#   - load the snapshot back (`tables inspect --load`): wall time, peak RSS (bytes per code);
#   - `review` of a generated day from zstd JSON Lines against the 12M table, for 1M and 10M lines:
#     lines/s and peak RSS (memory flat in input size means both peaks are about equal);
#   - `review` of the 10M-line day with 1 worker and with 2, for the scaling with cores.
#
#   scripts/bench-scale.sh                     full size (about 10 GB of disk in .tools/bench-scale)
#   CODES=2000000 DAY=2000000 scripts/bench-scale.sh   a smaller run
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CODES="${CODES:-12000000}"
DAY="${DAY:-10000000}"
W="$ROOT/.tools/bench-scale"
C="$ROOT/target/release/claimgate"
mkdir -p "$W"
cargo build --release --quiet

# Runs a command under /usr/bin/time; prints "wall_s peak_rss_kb".
measure() {
    local log="$W/time.log"
    /usr/bin/time -f '%e %M' -o "$log" "$@" >"$W/last.out" 2>"$W/last.err" || { cat "$W/last.err"; exit 1; }
    cat "$log"
}

if [[ ! -f "$W/codes-$CODES/practitioners.jsonl" ]]; then
    "$C" gen --out-dir "$W/codes-$CODES" --practitioners "$CODES" --claims 1000000 --compress zst --quiet
fi
if [[ ! -f "$W/day-$DAY/claims.jsonl.zst" ]]; then
    "$C" gen --out-dir "$W/day-$DAY" --practitioners "$CODES" --claims "$DAY" --compress zst --quiet
fi
P="$W/codes-$CODES/practitioners.jsonl"
I="$W/codes-$CODES/institutions.jsonl"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u +%FT%TZ)"
echo "codes: $CODES ($(du -h "$P" | cut -f1) of JSON Lines)"

read -r wall rss < <(measure "$C" tables build --practitioners "$P" --institutions "$I" --out "$W/snap.bin" --quiet)
echo "load from JSON Lines + write snapshot: ${wall} s, peak RSS $((rss / 1024)) MiB ($(( rss * 1024 / CODES )) bytes/code)"
read -r wall rss < <(measure "$C" tables inspect --load "$W/snap.bin")
echo "load from snapshot ($(du -h "$W/snap.bin" | cut -f1)): ${wall} s, peak RSS $((rss / 1024)) MiB ($(( rss * 1024 / CODES )) bytes/code)"
echo "  $(cat "$W/last.out")"

for day in "$W/codes-$CODES/claims.jsonl.zst" "$W/day-$DAY/claims.jsonl.zst"; do
    read -r wall rss < <(measure "$C" review --claims "$day" --snapshot "$W/snap.bin" --out "$W/decisions.jsonl.zst")
    echo "review $(du -h "$day" | cut -f1) of zstd claims, decisions to .zst: ${wall} s wall, peak RSS $((rss / 1024)) MiB"
    sed -n '2p' "$W/last.out" | sed 's/^/  /'
done
for t in 1 2; do
    echo "review $DAY lines, $t worker(s), output to /dev/null:"
    "$C" review --claims "$W/day-$DAY/claims.jsonl.zst" --snapshot "$W/snap.bin" --out /dev/null --threads "$t" | sed -n '2p' | sed 's/^/  /'
done
