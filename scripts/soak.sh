#!/usr/bin/env bash
# The soak (issue 6, RELIABILITY.md): the reliability tests of .ci/run at full size, from a fresh clone,
# in at most about an hour on a 2-core machine.
#
#   1. crash:  claimgate stream killed with SIGKILL 100 times under a steady load, restarted each time;
#   2. outage: the broker frozen for 120 s mid-stream; status topics unreachable; no table at start-up;
#              --exactly-once killed 30 times (a read-committed reader sees every line once); the broker
#              (Apache Kafka) killed with SIGKILL and restarted on its logs 10 times; status topics
#              compacted for real;
#   3. fuzz:   10 million generated inputs for the claim-line parser and the status records: libFuzzer
#              (cargo fuzz) when it can be built here, else the property tests, in release.
#   4. cluster: tests/cluster.rs on its three-node Apache Kafka cluster, each fault SOAK_CLUSTER_FAULTS
#              times (default 20): the leader of a claims partition killed (-9) and restarted, the leader
#              of an output partition killed, the status topics' leader killed, rolling restarts (node
#              restarts, SIGTERM), an instance killed and a new one joining, --exactly-once through
#              leader failovers, a node cut off from the clients, a leader cut off from its peers. About
#              40-70 s a fault on a 2-core machine: 2-3 hours at the default size.
#
#   scripts/soak.sh                             crash, outage, fuzz (as before)
#   scripts/soak.sh crash|outage|fuzz|cluster   one part (or several)
#
# Sizes: SOAK_KILLS (100), SOAK_EOS_KILLS (30), SOAK_BROKER_KILLS (10), SOAK_RATE (claims/s, 500),
# SOAK_OUTAGE_S (120), SOAK_FUZZ_INPUTS (10000000), SOAK_CLUSTER_FAULTS (20), SOAK_CLUSTER_RATE (400),
# SOAK_SEED. Results: results/soak-<time>/ (figures.jsonl, logs, summary.md); the figures are also
# printed at the end. Each part has a time limit; the script fails if a test fails or a limit is hit.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

KILLS="${SOAK_KILLS:-100}"
EOS_KILLS="${SOAK_EOS_KILLS:-30}"
BROKER_KILLS="${SOAK_BROKER_KILLS:-10}"
RATE="${SOAK_RATE:-500}"
OUTAGE_S="${SOAK_OUTAGE_S:-120}"
FUZZ_INPUTS="${SOAK_FUZZ_INPUTS:-10000000}"
CLUSTER_FAULTS="${SOAK_CLUSTER_FAULTS:-20}"
CLUSTER_RATE="${SOAK_CLUSTER_RATE:-400}"
SEED="${SOAK_SEED:-$(date +%s)}"
PORT="${CLAIMGATE_TEST_PORT:-19292}"
PARTS=("${@:-crash outage fuzz}")
read -r -a PARTS <<<"${PARTS[*]}"

OUT="$ROOT/results/soak-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
export CLAIMGATE_TEST_REPORT="$OUT/figures.jsonl"
export CLAIMGATE_TEST_SEED="$SEED"
: >"$CLAIMGATE_TEST_REPORT"
started=$(date +%s)
log() { printf 'soak.sh [%4ds]: %s\n' "$(( $(date +%s) - started ))" "$*" | tee -a "$OUT/soak.log" >&2; }

BROKER_DIR="$ROOT/.tools/run/soak-broker-$PORT"
stop_broker() { scripts/broker.sh stop --port "$PORT" --dir "$BROKER_DIR" >/dev/null 2>&1 || true; }
trap stop_broker EXIT

# Runs a cargo test command with a time limit, its output to a log file.
run_limited() {
    local name="$1" limit_s="$2"
    shift 2
    log "$name: $* (limit ${limit_s}s)"
    local rc=0
    timeout --signal=TERM --kill-after=30 "$limit_s" "$@" >"$OUT/$name.log" 2>&1 || rc=$?
    if (( rc == 124 || rc == 137 )); then
        log "$name: TIME LIMIT of ${limit_s}s reached (log: $OUT/$name.log)"
        return 1
    elif (( rc != 0 )); then
        log "$name: FAILED (exit $rc; log: $OUT/$name.log)"
        grep -E "panicked|FAILED|^error" "$OUT/$name.log" | head -20 >&2 || true
        return 1
    fi
    log "$name: passed"
}

needs_broker() {
    if [[ -z "${CLAIMGATE_TEST_BROKERS:-}" ]]; then
        local out
        out="$(scripts/broker.sh start --port "$PORT" --dir "$BROKER_DIR")"
        CLAIMGATE_TEST_BROKERS="$(printf '%s\n' "$out" | sed -n 's/^BROKER=//p')"
        export CLAIMGATE_TEST_BROKERS
        log "broker at $CLAIMGATE_TEST_BROKERS"
    fi
}

status=0
log "seed $SEED; parts: ${PARTS[*]}; results in $OUT"
log "building the tests"
cargo test --locked --test reliability --test fuzz_claims --test cluster --no-run >"$OUT/build.log" 2>&1 \
    || { log "build failed (see $OUT/build.log)"; exit 1; }

for part in "${PARTS[@]}"; do
    case "$part" in
        crash)
            needs_broker
            CLAIMGATE_TEST_CRASH_KILLS="$KILLS" CLAIMGATE_TEST_CRASH_RATE="$RATE" \
                run_limited crash 2400 cargo test --locked --test reliability -- --nocapture kill_9 || status=1
            ;;
        outage)
            needs_broker
            CLAIMGATE_TEST_OUTAGE_S="$OUTAGE_S" CLAIMGATE_TEST_EOS_KILLS="$EOS_KILLS" \
                CLAIMGATE_TEST_BROKER_KILLS="$BROKER_KILLS" CLAIMGATE_TEST_CRASH_RATE="$RATE" \
                run_limited outage 2400 cargo test --locked --test reliability -- --nocapture --skip kill_9 || status=1
            ;;
        fuzz)
            # libFuzzer through cargo fuzz (nightly features: RUSTC_BOOTSTRAP=1 lets the stable compiler
            # use them). Installed under .tools/ on first use; without it, the property tests in release.
            fuzz_bin="$ROOT/.tools/cargo-fuzz/bin/cargo-fuzz"
            if [[ ! -x "$fuzz_bin" ]]; then
                log "installing cargo-fuzz into .tools/cargo-fuzz"
                CARGO_TARGET_DIR="$ROOT/.tools/cargo-fuzz-build" cargo install cargo-fuzz --version 0.13.2 --locked \
                    --root "$ROOT/.tools/cargo-fuzz" >"$OUT/cargo-fuzz-install.log" 2>&1 || true
            fi
            claim_runs=$(( FUZZ_INPUTS * 4 / 5 ))
            status_runs=$(( FUZZ_INPUTS - claim_runs ))
            if [[ -x "$fuzz_bin" ]] && RUSTC_BOOTSTRAP=1 timeout 1200 "$fuzz_bin" build -s none claim_line \
                    >"$OUT/fuzz-build.log" 2>&1 && RUSTC_BOOTSTRAP=1 "$fuzz_bin" build -s none status_record \
                    >>"$OUT/fuzz-build.log" 2>&1; then
                # Seeds: generated claim lines, one per file, and a few status records.
                mkdir -p fuzz/corpus/claim_line fuzz/corpus/status_record
                cargo run --locked --quiet -- gen --out-dir "$OUT/gen" --practitioners 200 --claims 300 \
                    --malformed-rate 0.05 >/dev/null 2>&1
                split -l 1 -a 4 "$OUT/gen/claims.jsonl" fuzz/corpus/claim_line/seed-
                split -l 1 -a 4 "$OUT/gen/practitioners.jsonl" fuzz/corpus/status_record/p-
                split -l 1 -a 4 "$OUT/gen/institutions.jsonl" fuzz/corpus/status_record/i-
                cp tests/fuzz_regressions/claim-* fuzz/corpus/claim_line/ 2>/dev/null || true
                cp tests/fuzz_regressions/status-* fuzz/corpus/status_record/ 2>/dev/null || true
                for target in claim_line status_record; do
                    runs=$claim_runs
                    [[ "$target" == status_record ]] && runs=$status_runs
                    RUSTC_BOOTSTRAP=1 run_limited "fuzz-$target" 1500 "$fuzz_bin" run -s none "$target" \
                        "fuzz/corpus/$target" -- -runs="$runs" -dict=fuzz/claim.dict -max_len=4096 \
                        -print_final_stats=1 -seed="$SEED" || status=1
                    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/fuzz-$target.log" | tail -1)
                    crashes=$(find "fuzz/artifacts/$target" -type f 2>/dev/null | wc -l)
                    printf '{"test":"fuzz_%s","figures":{"inputs":%s,"crashes":%s,"engine":"libFuzzer"}}\n' \
                        "$target" "${execs:-0}" "$crashes" >>"$CLAIMGATE_TEST_REPORT"
                    (( crashes == 0 )) || { log "fuzz $target: $crashes crashing inputs in fuzz/artifacts/$target"; status=1; }
                done
                # The property tests too, at a size that runs in a few minutes in a debug build.
                CLAIMGATE_TEST_FUZZ_CASES=50000 run_limited proptest 1200 \
                    cargo test --locked --test fuzz_claims || status=1
                printf '{"test":"proptest","figures":{"inputs":%s,"engine":"proptest"}}\n' $(( 50000 * 6 )) \
                    >>"$CLAIMGATE_TEST_REPORT"
            else
                log "cargo fuzz is not usable here (see $OUT/fuzz-build.log): the property tests in release instead"
                per=$(( FUZZ_INPUTS / 6 + 1 ))
                CLAIMGATE_TEST_FUZZ_CASES="$per" run_limited proptest 2400 \
                    cargo test --locked --release --test fuzz_claims || status=1
                printf '{"test":"proptest","figures":{"inputs":%s,"engine":"proptest --release"}}\n' $(( per * 6 )) \
                    >>"$CLAIMGATE_TEST_REPORT"
            fi
            ;;
        cluster)
            # The cluster tests start their own three-node cluster (tests/util/cluster.rs); one test at
            # a time, each with its faults repeated. A rolling restart counts node restarts (3 a round).
            CLAIMGATE_TEST_LEADER_KILLS="$CLUSTER_FAULTS" CLAIMGATE_TEST_OUTPUT_KILLS="$CLUSTER_FAULTS" \
                CLAIMGATE_TEST_STATUS_KILLS="$CLUSTER_FAULTS" \
                CLAIMGATE_TEST_ROLLING_RESTARTS="$(( (CLUSTER_FAULTS + 2) / 3 * 3 ))" \
                CLAIMGATE_TEST_INSTANCE_KILLS="$CLUSTER_FAULTS" CLAIMGATE_TEST_EOS_FAILOVERS="$CLUSTER_FAULTS" \
                CLAIMGATE_TEST_CUTS="$CLUSTER_FAULTS" CLAIMGATE_TEST_CLUSTER_RATE="$CLUSTER_RATE" \
                run_limited cluster $(( 600 + CLUSTER_FAULTS * 8 * 90 )) \
                cargo test --locked --test cluster -- --nocapture --test-threads 1 --include-ignored || status=1
            ;;
        *) log "unknown part: $part (crash|outage|fuzz|cluster)"; exit 2 ;;
    esac
done

{
    echo "# Soak $(date -u +%Y-%m-%dT%H:%M:%SZ), seed $SEED, $(( $(date +%s) - started )) s"
    echo
    echo '| test | figures |'
    echo '|---|---|'
    while IFS= read -r line; do
        python3 -c 'import json,sys; v=json.loads(sys.argv[1]); print("| %s | %s |" % (v["test"], ", ".join("%s %s" % kv for kv in v["figures"].items())))' "$line"
    done <"$CLAIMGATE_TEST_REPORT"
    # The cluster faults as RELIABILITY.md tabulates them.
    if grep -q '"fault"' "$CLAIMGATE_TEST_REPORT"; then
        echo
        echo '| fault | how many times | lines sent | lost | duplicated (identical) | differing duplicates | seconds |'
        echo '|---|---|---|---|---|---|---|'
        python3 - "$CLAIMGATE_TEST_REPORT" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    v = json.loads(line)
    f = v["figures"]
    if "fault" in f:
        print(f"| {f['fault']} | {f['faults']} | {f['lines']} | {f['lost']} | {f['duplicates']} | {f['differing_duplicates']} | {f['seconds']} |")
PY
    fi
    echo
    echo "status: $([[ $status == 0 ]] && echo passed || echo FAILED)"
} | tee "$OUT/summary.md"
exit "$status"
