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
# it when it ends; they run one at a time on it, a few faults each (the soak runs them long).
# tests/html_report.rs opens the review report in headless Chromium: scripts/chromium.sh installs
# Debian's `chromium` and `fonts-noto-cjk` first when they are missing (apt-get, as root or with sudo).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

scripts/chromium.sh

PORT="${CLAIMGATE_TEST_PORT:-19192}"
DIR="$ROOT/.tools/run/test-broker-$PORT"

stop_broker() { scripts/broker.sh stop --port "$PORT" --dir "$DIR" >/dev/null 2>&1 || true; }
trap stop_broker EXIT

out="$(scripts/broker.sh start --port "$PORT" --dir "$DIR")"
BROKER="$(printf '%s\n' "$out" | sed -n 's/^BROKER=//p')"
export CLAIMGATE_TEST_BROKERS="$BROKER"
echo "test.sh: broker at $BROKER (log: $DIR/broker.log)" >&2

cargo test --workspace --locked "$@"
