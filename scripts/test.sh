#!/usr/bin/env bash
# The project's test command (README, .ci/run): starts a Kafka-compatible broker on loopback for the
# integration tests (installing it on first use), runs every test of the workspace, stops the broker.
#
#   scripts/test.sh                 all tests
#   scripts/test.sh <cargo test args>   e.g. scripts/test.sh --test stream -- restart
#
# CLAIMGATE_TEST_PORT picks the broker's port (default 19192, away from the demo's 19092). The fault tests
# of tests/cluster.rs start a three-node cluster of their own (tests/util/cluster.rs: listeners on
# CLAIMGATE_TEST_CLUSTER_PORT, default 19710, to +23; 3 x 384 MB of heap) when that file runs, and stop
# it when it ends; they run one at a time on it, a few faults each (the soak runs them long). Run with
# no arguments, test.sh runs that binary beside the others (see the end of this file).
# Every broker JVM the tests start runs with KAFKA_JVM_OPTS (scripts/broker.sh), by default
# "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC": the JIT's first tier only and one GC thread. A test broker
# carries a few hundred lines a second and is started dozens of times; on 2 cores the full JIT's and G1's
# threads were most of its CPU (a three-node cluster ready in 11 s on 11 CPU-s against 17 s on 22; a
# cluster test 67 s against 96, same host, back to back). Benchmarks start their brokers without it.
# Set KAFKA_JVM_OPTS= (empty) to test on the JVM's defaults. Maven (MAVEN_OPTS, building the Kafka
# Streams peer on first use) gets the first tier only too, unless MAVEN_OPTS is set; the peer itself keeps
# the full JIT (it decides every line of its test).
# tests/html_report.rs opens the review report in headless Chromium: scripts/chromium.sh installs
# Debian's `chromium` and `fonts-noto-cjk` first when they are missing (apt-get, as root or with sudo).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

scripts/chromium.sh

export KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS--XX:TieredStopAtLevel=1 -XX:+UseSerialGC}"
export MAVEN_OPTS="${MAVEN_OPTS--XX:TieredStopAtLevel=1}"

PORT="${CLAIMGATE_TEST_PORT:-19192}"
DIR="$ROOT/.tools/run/test-broker-$PORT"

stop_broker() { scripts/broker.sh stop --port "$PORT" --dir "$DIR" >/dev/null 2>&1 || true; }
trap stop_broker EXIT

out="$(scripts/broker.sh start --port "$PORT" --dir "$DIR")"
BROKER="$(printf '%s\n' "$out" | sed -n 's/^BROKER=//p')"
export CLAIMGATE_TEST_BROKERS="$BROKER"
echo "test.sh: broker at $BROKER (log: $DIR/broker.log)" >&2

if [[ $# -gt 0 || "${CLAIMGATE_TEST_SERIAL:-}" == 1 ]]; then
    cargo test --workspace --locked "$@"
    exit
fi

# Everything: the three-node cluster's fault tests (tests/cluster.rs: their own JVMs, ports and topics)
# run beside the other test binaries instead of after them, which took a third of the test time.
# CLAIMGATE_TEST_SERIAL=1 runs them one after the other as cargo does.
cargo test --workspace --locked --no-run
cluster_bin="$(cargo test --locked --test cluster --no-run --message-format=json | python3 -c '
import json, sys
for m in map(json.loads, sys.stdin):
    t = m.get("target", {})
    if m.get("executable") and t.get("name") == "cluster" and t.get("kind") == ["test"]:
        print(m["executable"])')"
[[ -x "$cluster_bin" ]] || { echo "test.sh: cannot find the tests/cluster.rs binary" >&2; exit 1; }
# Kept after the run (and readable while it runs, or after a CI time-out cut it short).
cluster_log="$ROOT/.tools/run/cluster-tests.log"
mkdir -p "$(dirname "$cluster_log")"
"$cluster_bin" >"$cluster_log" 2>&1 &
cluster_pid=$!
echo "test.sh: tests/cluster.rs runs beside the other tests (PID $cluster_pid); its output: $cluster_log" >&2
targets=(--lib --bins)
for f in tests/*.rs; do
    name="$(basename "$f" .rs)"
    [[ "$name" == cluster ]] || targets+=(--test "$name")
done
rc=0
cargo test --workspace --locked "${targets[@]}" || rc=$?
cargo test --workspace --locked --doc || rc=$?
cluster_rc=0
wait "$cluster_pid" || cluster_rc=$?
echo
echo "     Ran tests/cluster.rs beside the others ($cluster_bin):"
cat "$cluster_log"
if [[ $rc -ne 0 || $cluster_rc -ne 0 ]]; then
    echo "test.sh: FAILED (the other tests: exit $rc; tests/cluster.rs: exit $cluster_rc)" >&2
    exit 1
fi
