#!/usr/bin/env bash
# The rows of issue 15 (BENCHMARKS.md, "Issue 15"), one command per row; each prints the machine's
# state (load average, cores) with its figures and keeps its full output in bench-results/.
#
#   scripts/bench-perf.sh callgrind   instructions per line: parse, decide, encode, parse+decide+encode
#                                     (examples/hot_loop), and a whole `review` of 200 000 lines
#   scripts/bench-perf.sh line        criterion: parse + decide + encode, one core (3 runs)
#   scripts/bench-perf.sh lookup      criterion: lookups at 12 M codes, one at a time and in batches
#   scripts/bench-perf.sh snapshot    snapshot load, 12 M codes: 5 loads, median and spread
#   scripts/bench-perf.sh review      10 M-line .zst day, 12 M codes, .zst out: 1 and 2 workers, 3 rounds
#                                     alternating, and the same with --previous
#   scripts/bench-perf.sh python      one review worker against the Python decision logic
#                                     (loadtest/peers/claimrules.py), same 1 M lines, one run
#   scripts/bench-perf.sh previous    the --previous join: a 4 M-line day (PREV_LINES) without it, with the
#                                     inline decisions in memory, and spilled to partition files
#                                     (--previous-memory 32), 3 rounds alternating; peak RSS of each
#   scripts/bench-perf.sh all
#
# Data (about 3 GB) goes to $BENCH_DIR (default /tmp/claimgate-bench), generated once with
# `claimgate gen` (seeded: the same files every time). CODES and DAY size it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CODES="${CODES:-12000000}"
DAY="${DAY:-10000000}"
W="${BENCH_DIR:-/tmp/claimgate-bench}"
C="$ROOT/target/release/claimgate"
OUT="$ROOT/bench-results/$(date -u +%F)-$(hostname -s)"
mkdir -p "$W" "$OUT"

state() {
    echo "# $(date -u +%FT%TZ) $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet || echo '+dirty');" \
        "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs);" \
        "load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

build() { cargo build --release --quiet --bin claimgate --example hot_loop; }

data() {
    if [[ ! -f "$W/codes/practitioners.jsonl" ]]; then
        "$C" gen --out-dir "$W/codes" --practitioners "$CODES" --claims 1000000 --compress zst --quiet
    fi
    if [[ ! -f "$W/day/claims.jsonl.zst" ]]; then
        "$C" gen --out-dir "$W/day" --practitioners "$CODES" --claims "$DAY" --compress zst --quiet
        rm -f "$W/day/practitioners.jsonl" "$W/day/institutions.jsonl"
    fi
    if [[ ! -f "$W/snap.bin" ]] || ! "$C" tables inspect "$W/snap.bin" >/dev/null 2>&1; then
        "$C" tables build --practitioners "$W/codes/practitioners.jsonl" \
            --institutions "$W/codes/institutions.jsonl" --out "$W/snap.bin" --quiet
    fi
}

median() { sort -g | awk '{a[NR]=$1} END {printf "median %s (min %s, max %s, n %d)\n", a[int((NR+1)/2)], a[1], a[NR], NR}'; }

row_callgrind() {
    build
    state
    local passes=3
    for mode in parse decide encode line batch; do
        valgrind --tool=callgrind --callgrind-out-file="$W/cg-$mode.out" --toggle-collect='hot_loop::run_*' \
            target/release/examples/hot_loop "$mode" "$passes" >"$W/cg-$mode.log" 2>&1
        local ir lines
        ir=$(grep -o 'Collected : [0-9]*' "$W/cg-$mode.log" | grep -o '[0-9]*$')
        lines=$(grep -o 'mode [a-z]*: [0-9]* lines' "$W/cg-$mode.log" | grep -o '[0-9]* lines' | grep -o '[0-9]*')
        echo "hot_loop $mode: $ir instructions / $lines lines = $((ir / lines)) per line"
    done
    if [[ ! -f "$W/small/snap.bin" ]]; then
        "$C" gen --out-dir "$W/small" --practitioners 100000 --claims 200000 --compress zst --quiet
        "$C" tables build --practitioners "$W/small/practitioners.jsonl" \
            --institutions "$W/small/institutions.jsonl" --out "$W/small/snap.bin" --quiet
    fi
    valgrind --tool=callgrind --callgrind-out-file="$W/cg-review.out" "$C" review --claims "$W/small/claims.jsonl.zst" \
        --snapshot "$W/small/snap.bin" --out "$W/small/decisions.jsonl.zst" --threads 1 --quiet \
        --dead-letters "$W/small/dl.jsonl" >"$W/cg-review.log" 2>&1
    local ir
    ir=$(grep -o 'Collected : [0-9]*' "$W/cg-review.log" | grep -o '[0-9]*$')
    echo "review, 200000 lines, 1 worker, .zst in and out: $ir instructions = $((ir / 200000)) per line (table load included)"
    # Where they go: callgrind_annotate splits an inlined function by source file, so a grep of its
    # lines gives parts of functions, not wholes (it printed 2 044 for a parse of ~4 800); read it whole.
    echo "  breakdown: callgrind_annotate --inclusive=yes $W/cg-review.out"
}

row_line() {
    state
    for i in 1 2 3; do
        cargo bench --bench core -- 'line/' --measurement-time 3 --warm-up-time 1 2>&1 | grep -E '^line/|time:|thrpt:'
    done
}

row_lookup() {
    state
    cargo bench --bench core -- 'lookup' --measurement-time 3 --warm-up-time 1 2>&1 | grep -E '^lookup|time:|thrpt:|built'
}

row_snapshot() {
    build
    data
    state
    ls -la "$W/snap.bin"
    for i in 1 2 3 4 5; do
        "$C" tables inspect --load "$W/snap.bin" | grep -o 'in [0-9.]* s' | grep -o '[0-9.]*'
    done | median | sed 's/^/snapshot load, seconds: /'
}

review_rate() { sed -n 2p | grep -o 'then [0-9]* lines/s' | grep -o '[0-9]*'; }

row_review() {
    build
    data
    state
    local day="$W/day/claims.jsonl.zst"
    [[ -f "$W/previous.jsonl.zst" ]] ||
        "$C" review --claims "$day" --snapshot "$W/snap.bin" --out "$W/previous.jsonl.zst" --quiet --dead-letters "$W/dl.jsonl"
    for round in 1 2 3; do
        for t in 1 2; do
            r=$("$C" review --claims "$day" --snapshot "$W/snap.bin" --out "$W/decisions.jsonl.zst" --threads "$t" \
                --dead-letters "$W/dl.jsonl" | review_rate)
            echo "round $round: $t worker(s), .zst in and out: $r lines/s"
            echo "$t $r" >>"$W/review-rates.txt"
        done
        r=$("$C" review --claims "$day" --snapshot "$W/snap.bin" --out "$W/decisions.jsonl.zst" --threads 2 \
            --dead-letters "$W/dl.jsonl" --previous "$W/previous.jsonl.zst" | review_rate)
        echo "round $round: 2 workers with --previous: $r lines/s"
    done
    /usr/bin/time -f 'peak RSS %M KB, wall %e s (2 workers, table load included)' "$C" review --claims "$day" \
        --snapshot "$W/snap.bin" --out "$W/decisions.jsonl.zst" --quiet --dead-letters "$W/dl.jsonl"
    /usr/bin/time -f 'peak RSS %M KB, wall %e s (2 workers, --previous, table load included)' "$C" review \
        --claims "$day" --snapshot "$W/snap.bin" --out "$W/decisions.jsonl.zst" --quiet --dead-letters "$W/dl.jsonl" \
        --previous "$W/previous.jsonl.zst"
}

row_python() {
    build
    state
    local d="$W/python"
    if [[ ! -f "$d/claims.jsonl" ]]; then
        "$C" gen --out-dir "$d" --practitioners 100000 --claims 1000000 --quiet
    fi
    python3 -c 'import orjson' 2>/dev/null || { echo "python3 with orjson needed (pip install orjson)"; exit 1; }
    local rust py
    rust=$("$C" review --claims "$d/claims.jsonl" --practitioners "$d/practitioners.jsonl" \
        --institutions "$d/institutions.jsonl" --out "$d/decisions.jsonl" --threads 1 --dead-letters "$d/dl.jsonl" |
        review_rate)
    py=$(python3 loadtest/peers/claimrules.py --claims "$d/claims.jsonl" --practitioners "$d/practitioners.jsonl" \
        --institutions "$d/institutions.jsonl" --out "$d/py-decisions.jsonl" --dead-letters "$d/py-dl.jsonl" 2>&1 |
        grep -o '([0-9,]* lines/s)' | tr -d '(),' | grep -o '^[0-9]*')
    echo "review, 1 worker: $rust lines/s; Python decision logic (orjson): $py lines/s; ratio $(awk -v a="$rust" -v b="$py" 'BEGIN {printf "%.1f", a / b}')"
}

row_previous() {
    build
    state
    local d="$W/previous" n="${PREV_LINES:-4000000}"
    if [[ ! -f "$d/claims.jsonl.zst" ]]; then
        "$C" gen --out-dir "$d" --practitioners 100000 --claims "$n" --compress zst --quiet
    fi
    local tables=(--practitioners "$d/practitioners.jsonl" --institutions "$d/institutions.jsonl")
    [[ -f "$d/inline.jsonl.zst" ]] ||
        "$C" review --claims "$d/claims.jsonl.zst" "${tables[@]}" --out "$d/inline.jsonl.zst" --quiet \
            --dead-letters "$d/dl.jsonl"
    local base=(review --claims "$d/claims.jsonl.zst" "${tables[@]}" --out "$d/decisions.jsonl.zst"
        --dead-letters "$d/dl.jsonl" --report "$d/report.md")
    for round in 1 2 3; do
        for mode in none memory spilled; do
            local extra=()
            [[ $mode != none ]] && extra=(--previous "$d/inline.jsonl.zst")
            [[ $mode == spilled ]] && extra+=(--previous-memory 32 --spill-dir "$d")
            /usr/bin/time -f "%M %e" -o "$d/time.txt" "$C" "${base[@]}" "${extra[@]}" --quiet
            echo "round $round: $mode: wall $(cut -d' ' -f2 "$d/time.txt") s, peak RSS $(cut -d' ' -f1 "$d/time.txt") KB"
        done
    done
}

# A row run again the same day gets a file of its own (its UTC time in the name): an earlier run's
# output may be the evidence of a figure in BENCHMARKS.md.
run() {
    local f="$OUT/$1.txt"
    [[ -e $f ]] && f="$OUT/$1-$(date -u +%H%M%S).txt"
    "row_$1" 2>&1 | tee "$f"
}

case "${1:-all}" in
    all) for r in callgrind line lookup snapshot review python; do run "$r"; done ;;
    callgrind | line | lookup | snapshot | review | python | previous) run "$1" ;;
    *) echo "usage: $0 [callgrind|line|lookup|snapshot|review|python|previous|all]" >&2; exit 2 ;;
esac
