#!/usr/bin/env bash
# `claimgate score` at national scale (issue 10, item 6), the scripted run of BENCHMARKS.md: a generated
# registry of CODES practitioner codes and a generated ledger of EVENTS events naming its codes
# (`claimgate gen --ledger`), scored under PROFILE:
#
#   - `score --out` (the changed records only, the default output): wall time, peak RSS;
#   - `score --out --out-all` (every record too: the file is read once more);
#   - with BEFORE=<binary>, the same run with that binary (the whole-file implementation before issue 10,
#     e.g. built from commit 75335b0), which holds the practitioner file in memory; and whether the records
#     both write are the same bytes. It runs under an address-space limit of BEFORE_LIMIT_GB (default 8):
#     at 12 million codes it needs more than the machine has (killed at 24 GB, issue 10), and a shared
#     machine's other processes must not be the ones the kernel kills.
#
#   scripts/bench-score.sh                                   12 million codes, 1 000 events (~3.5 GB in $W)
#   CODES=1000000 BEFORE=/tmp/claimgate-75335b0 scripts/bench-score.sh
#   W=/tmp/bench-score CLEAN=1 scripts/bench-score.sh       remove the generated data afterwards
#
# The machine is shared: run it more than once and report the spread.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CODES="${CODES:-12000000}"
EVENTS="${EVENTS:-1000}"
PROFILE="${PROFILE:-national-2024}"
W="${W:-/tmp/claimgate-bench-score}"
C="${C:-$ROOT/target/release/claimgate}"
BEFORE="${BEFORE:-}"
[[ -n "${NO_BUILD:-}" ]] || cargo build --release --quiet

# Runs a command under /usr/bin/time; prints "wall_s peak_rss_kb user_s sys_s".
measure() {
    local log="$W/time.log"
    /usr/bin/time -f '%e %M %U %S' -o "$log" "$@" >"$W/last.out" 2>"$W/last.err" || { cat "$W/last.err"; exit 1; }
    cat "$log"
}

# One registry per size, one ledger per profile and size (gen writes the registry with it: the same seed
# and size give the same bytes, so only the ledger is kept from a second run).
G="$W/codes-$CODES"
P="$G/practitioners.jsonl"
L="$G/ledger-$PROFILE-$EVENTS.jsonl"
if [[ ! -f "$L" ]]; then
    T="$W/gen-tmp"
    rm -rf "$T"
    "$C" gen --out-dir "$T" --practitioners "$CODES" --claims 0 --ledger "$EVENTS" --ledger-profile "$PROFILE" --quiet
    mkdir -p "$G"
    mv "$T/ledger.jsonl" "$L"
    [[ -f "$P" ]] || mv "$T/practitioners.jsonl" "$P"
    rm -rf "$T"
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB, load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%TZ)"
echo "registry: $CODES codes ($(du -h "$P" | cut -f1) of JSON Lines); ledger: $EVENTS events under $PROFILE"

read -r wall rss user sys < <(measure "$C" score --profile "$PROFILE" --ledger "$L" --practitioners "$P" \
    --out "$W/changes.jsonl" --report "$W/report.md")
echo "score --out (changes only): ${wall} s wall (${user} s user, ${sys} s sys), peak RSS $((rss / 1024)) MiB"
echo "  $(cat "$W/last.out")"
read -r wall rss user sys < <(measure "$C" score --profile "$PROFILE" --ledger "$L" --practitioners "$P" \
    --out "$W/changes.jsonl" --out-all "$W/all.jsonl" --report "$W/report.md")
echo "score --out --out-all (every record too): ${wall} s wall (${user} s user, ${sys} s sys), peak RSS $((rss / 1024)) MiB"

if [[ -n "$BEFORE" ]]; then
    limit=$(( ${BEFORE_LIMIT_GB:-8} * 1024 * 1024 ))
    if ( ulimit -v "$limit"; exec /usr/bin/time -f '%e %M %U %S' -o "$W/time.log" "$BEFORE" score --profile "$PROFILE" \
        --ledger "$L" --practitioners "$P" --out "$W/before.jsonl" --report "$W/before.md" ) >"$W/last.out" 2>"$W/last.err"; then
        read -r wall rss user sys <"$W/time.log"
        echo "before ($BEFORE, whole file in memory): ${wall} s wall (${user} s user, ${sys} s sys), peak RSS $((rss / 1024)) MiB"
        if cmp -s "$W/before.jsonl" "$W/all.jsonl" && cmp -s "$W/before.md" "$W/report.md"; then
            echo "  same records (every one) and the same report as --out-all"
        else
            echo "  DIFFERENT records or report from --out-all"
        fi
    else
        echo "before ($BEFORE, limited to ${BEFORE_LIMIT_GB:-8} GiB of address space): failed after $(tail -1 "$W/time.log" | cut -d' ' -f1) s, peak RSS $(( $(tail -1 "$W/time.log" | cut -d' ' -f2) / 1024 )) MiB: $(tail -2 "$W/last.err" | tr '\n' ' ')"
    fi
fi
rm -f "$W/all.jsonl" "$W/before.jsonl"
if [[ -n "${CLEAN:-}" ]]; then rm -rf "$W"; fi
