#!/usr/bin/env bash
# BENCHMARK PEER launcher — runs quix_filter.py, claimgate's claim filter written with quixstreams, for
# side-by-side load tests. Not production code (see loadtest/peers/README.md).
#
# Usage:
#   loadtest/peers/run_peer.sh [PEER ARGS...]     set up the venv if needed, then run the peer:
#                                                  quix_filter.py PEER ARGS... (exit status is the peer's)
#   loadtest/peers/run_peer.sh --setup-only       set up the venv and exit
#   loadtest/peers/run_peer.sh --python           set up the venv and print its python's path (to run
#                                                  publish_tables.py or check_same_decisions.py)
#
# Peer arguments (all optional; `--help` lists every one):
#   --brokers HOST:PORT        bootstrap servers (default 127.0.0.1:9092)
#   --group NAME               consumer group for `claims` (default claimgate-quix-peer)
#   --profile NAME|FILE        national-2024 (default) | huaian-2020 | lanzhou-2014 | a TOML path
#   --claims-topic, --accepted-topic, --rejected-topic, --dlq-topic,
#   --practitioners-topic, --institutions-topic       topic names (defaults as service.md)
#   --max-messages N           stop after N claim messages
#   --idle-exit-seconds S      stop after S s without a claim (quixstreams waits 60 s more for the first)
#   --consumer-config K=V, --producer-config K=V      librdkafka properties, repeatable
#   --expect-practitioners N, --expect-institutions N  wait for that many codes before consuming claims
#   --stats-file FILE          also write the exit statistics (one JSON object) there
#   --ready-file FILE          created once the tables are read and `claims` partitions are assigned:
#                              start the load (or the warm-up) after it appears
#   --pass-through             baseline: copy claims unchanged to --accepted-topic, no decision
# The peer logs to stderr; its last line on stdout is the JSON statistics (messages, accepted,
# rejected, dead_letters, msgs_per_s, ...). SIGTERM or Ctrl-C stops it cleanly (flush, commit).
#
# The venv lives in <repo>/.tools/peer-venv and is rebuilt only when requirements.txt changes
# (its sha256 is stamped in the venv). Needs python3 (3.11+) with venv, and PyPI.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$ROOT/.tools/peer-venv"
REQ="$HERE/requirements.txt"
STAMP="$VENV/.requirements.sha256"

log() { printf 'run_peer.sh: %s\n' "$*" >&2; }

setup() {
    local want
    want="$(sha256sum "$REQ" | cut -d' ' -f1)"
    if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
        return 0
    fi
    mkdir -p "$ROOT/.tools"
    # One setup at a time when several runs start together.
    exec 9>"$ROOT/.tools/peer-venv.lock"
    flock 9
    if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
        return 0
    fi
    command -v python3 >/dev/null || { log "python3 is needed"; exit 1; }
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || { log "python 3.11+ is needed (tomllib; quixstreams 3.28)"; exit 1; }
    log "setting up $VENV (pip install -r $REQ)"
    [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ" >&2
    printf '%s\n' "$want" >"$STAMP"
    exec 9>&-
}

case "${1:-}" in
    --setup-only)
        setup
        exit 0
        ;;
    --python)
        setup
        printf '%s\n' "$VENV/bin/python"
        exit 0
        ;;
esac

setup
export PYTHONDONTWRITEBYTECODE=1
exec "$VENV/bin/python" "$HERE/quix_filter.py" "$@"
