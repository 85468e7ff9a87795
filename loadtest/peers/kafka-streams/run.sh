#!/usr/bin/env bash
# BENCHMARK PEER launcher: claimgate's claim filter as a Kafka Streams application (issue 14), for the
# side-by-side load test. Not production code (see README.md beside this file).
#
# Usage:
#   loadtest/peers/kafka-streams/run.sh [PEER ARGS...]   build if needed, then run the peer in this
#                                                        process (exec: the PID is the JVM's)
#   loadtest/peers/kafka-streams/run.sh --build-only     build (mvn -q -B package) and exit
#   loadtest/peers/kafka-streams/run.sh --help           the peer's arguments
#
# The build needs Java 17 and Maven 3.8 (Maven Central, ~/.m2); it is redone when a source file or
# pom.xml is newer than the jar. KSTREAMS_HEAP sets -Xmx (default 1g); KSTREAMS_JAVA_OPTS adds JVM
# flags (e.g. a JFR recording: -XX:StartFlightRecording=filename=peer.jfr,settings=profile).
# SIGTERM closes the application cleanly (commit, flush) and prints its statistics (one JSON line).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
JAR="$HERE/target/claimgate-kstreams-peer.jar"

log() { printf 'kafka-streams/run.sh: %s\n' "$*" >&2; }

build() {
    command -v java >/dev/null || { log "java (17+) is needed"; exit 1; }
    command -v mvn >/dev/null || { log "mvn (Maven 3.8+) is needed"; exit 1; }
    if [[ -f "$JAR" && -d "$HERE/target/lib" ]] \
        && [[ -z "$(find "$HERE/src/main" "$HERE/pom.xml" -newer "$JAR" -print -quit)" ]]; then
        return 0
    fi
    # One build at a time when several runs start together.
    mkdir -p "$HERE/target"
    exec 9>"$HERE/target/.build.lock"
    flock 9
    log "building the peer (mvn -q -B package)"
    (cd "$HERE" && mvn -q -B ${KSTREAMS_MVN_OPTS:-} package) >&2
    exec 9>&-
}

case "${1:-}" in
    --build-only)
        build
        exit 0
        ;;
esac

build
# shellcheck disable=SC2086 # KSTREAMS_JAVA_OPTS is a list of flags
exec java -Xms256m -Xmx"${KSTREAMS_HEAP:-1g}" -XX:+UseG1GC ${KSTREAMS_JAVA_OPTS:-} \
    -Dorg.slf4j.simpleLogger.defaultLogLevel="${KSTREAMS_LOG_LEVEL:-warn}" \
    -Dorg.slf4j.simpleLogger.log.claimgate=info \
    -cp "$JAR:$HERE/target/lib/*" claimgate.peer.kstreams.Main --profile-dir "$ROOT/profiles" "$@"
