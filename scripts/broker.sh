#!/usr/bin/env bash
# Install and run Apache Kafka (KRaft mode) from its Maven Central jars, for development, tests, the demo,
# benchmarks and the load test. Single node, or a three-node cluster on loopback; durable log directories;
# every process it starts is stopped by the PID it recorded.
#
# Usage:
#   scripts/broker.sh install                      fetch Apache Kafka $KAFKA_VERSION into .tools/ (Maven), print lib dir
#   scripts/broker.sh start  [--port N] [--dir D] [--advertise-port M] [--controller-port C]
#                                                  a single combined broker+controller on 127.0.0.1:N (default
#                                                   19092); formats D on first use, reuses its logs after that;
#                                                   waits until the broker answers; prints BROKER=… and PID=…
#                                                   --advertise-port: tell clients to connect to port M instead
#                                                   (a proxy in front of the broker, in tests)
#   scripts/broker.sh stop   [--port N] [--dir D]  SIGTERM (controlled shutdown), SIGKILL after a deadline
#   scripts/broker.sh kill   [--port N] [--dir D]  SIGKILL (a crash; the logs stay for a restart)
#   scripts/broker.sh freeze|thaw [--port N] [--dir D]   SIGSTOP / SIGCONT
#   scripts/broker.sh status [--port N]            exit 0 if a broker answers on the port
#   scripts/broker.sh cluster start [--port N] [--dir D]
#                                                  three combined nodes: brokers on N, N+1, N+2, controllers on
#                                                   N+3, N+4, N+5; internal topics RF 3 / min ISR 2, the
#                                                   project's topics default to RF 3 and min.insync.replicas=2;
#                                                   prints BROKER=a,b,c and PID1=… PID2=… PID3=…; routed
#                                                   through a test's proxies when D/routes exists (see
#                                                   cluster_write: then also N+6..N+23)
#   scripts/broker.sh cluster stop [--dir D]       stops all three together
#   scripts/broker.sh node start|stop|kill|freeze|thaw --node I [--dir D]
#                                                  one node (1-3) of the cluster in D (restart keeps its logs)
#
# D defaults to .tools/run/broker-N/ (cluster: .tools/run/cluster-N/). The script needs Java 17+ and Maven
# (`mvn`) on the PATH; the first `install` downloads about 45 MB from Maven Central. Heap per JVM:
# KAFKA_HEAP (default 768m for a single node, 512m per cluster node). Extra broker settings: KAFKA_OVERRIDES,
# space-separated k=v pairs appended to every node's properties (e.g. "log.cleaner.backoff.ms=100").
# Extra JVM options for every broker JVM: KAFKA_JVM_OPTS (space-separated, after the defaults; a collector
# named there replaces the default G1; e.g. the test command's, see scripts/test.sh).
#
# Topic auto-creation is ON, as in a stock Apache Kafka broker (auto.create.topics.enable=true): a producer
# writing to `claims` before anyone created it creates it, the case a new user meets. `claimgate stream`
# never relies on it (see README, "Topics that do not exist yet").
set -euo pipefail

readonly KAFKA_VERSION="4.1.1"
readonly SCALA_VERSION="2.13"
readonly LOG4J_VERSION="2.24.3"
readonly SLF4J_VERSION="1.7.36"
readonly DEP_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
# sha256 of the broker's own jars as published on Maven Central (Maven also checks its .sha1 files).
readonly KAFKA_JAR_SHA256="e89428126cc7630a802123ba27aac4442816840b66d60670226feaff65f24fd1"

readonly HOST="127.0.0.1"
readonly DEFAULT_PORT=19092
readonly READY_TIMEOUT_S="${KAFKA_READY_TIMEOUT_S:-90}"
# A node of a three-node cluster is ready only once a quorum of controllers is up: on a busy 2-core
# machine three JVMs starting together took up to 3 minutes.
readonly CLUSTER_READY_TIMEOUT_S="${KAFKA_READY_TIMEOUT_S:-240}"
readonly STOP_GRACE_S="${KAFKA_STOP_GRACE_S:-20}"
# The one-shot tool JVMs (formatting a log directory, a cluster id) run for under a second: the JIT's
# first tier only, which the full JIT's compile threads would otherwise outspend.
readonly TOOL_JVM=(-XX:TieredStopAtLevel=1)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly TOOLS="$ROOT/.tools"
readonly INSTALL_DIR="$TOOLS/kafka-$KAFKA_VERSION"
readonly LIB="$INSTALL_DIR/lib"

log() { printf 'broker.sh: %s\n' "$*" >&2; }
die() { printf 'broker.sh: error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2
    exit 2
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# ---------------------------------------------------------------------------------------------
# install

installed_ok() { [[ -f "$LIB/.complete" && -f "$LIB/kafka_$SCALA_VERSION-$KAFKA_VERSION.jar" ]]; }

need_java() {
    command -v java >/dev/null || die "Java 17 or newer is needed (java not found on the PATH)"
    local v
    v="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
    [[ -n "$v" && "$v" -ge 17 ]] || die "Apache Kafka $KAFKA_VERSION needs Java 17 or newer; 'java -version' says ${v:-?}"
}

do_install() {
    if installed_ok; then
        printf '%s\n' "$LIB"
        return 0
    fi
    need_java
    command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch Apache Kafka's jars from Maven Central"
    mkdir -p "$TOOLS"
    local tmp
    tmp="$(mktemp -d "$TOOLS/.kafka-install.XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT
    # A throw-away POM whose only purpose is to resolve the broker's runtime classpath. The log4j binding
    # is not in Kafka's POM (the tarball ships it): without it the broker logs nothing. SLF4J is pinned to
    # 1.7 so that 2.x does not win mediation and make the binding inert.
    cat >"$tmp/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>claimgate.tools</groupId><artifactId>kafka-broker</artifactId><version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_$SCALA_VERSION</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
    log "fetching Apache Kafka $KAFKA_VERSION (Scala $SCALA_VERSION) from Maven Central into $INSTALL_DIR"
    (cd "$tmp" && mvn -B -q -C -Dstyle.color=never "$DEP_PLUGIN:copy-dependencies" -DoutputDirectory=lib -DincludeScope=runtime >&2) \
        || die "mvn could not fetch Apache Kafka $KAFKA_VERSION (is Maven Central reachable?)"
    local jar="$tmp/lib/kafka_$SCALA_VERSION-$KAFKA_VERSION.jar" got
    [[ -f "$jar" ]] || die "Maven did not produce $(basename "$jar")"
    got="$(sha256_of "$jar")"
    [[ "$got" == "$KAFKA_JAR_SHA256" ]] \
        || die "REFUSING: $(basename "$jar") has sha256 $got, expected $KAFKA_JAR_SHA256"
    cp "$tmp/pom.xml" "$tmp/lib/pom.xml"
    touch "$tmp/lib/.complete"
    rm -rf "$INSTALL_DIR"
    mkdir -p "$INSTALL_DIR"
    mv "$tmp/lib" "$LIB"
    rm -rf "$tmp"
    trap - EXIT
    log "installed Apache Kafka $KAFKA_VERSION: $(find "$LIB" -name '*.jar' | wc -l) jars in $LIB"
    printf '%s\n' "$LIB"
}

ensure_installed() {
    installed_ok || do_install >/dev/null
    need_java
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
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind((sys.argv[1], int(sys.argv[2])))
except OSError:
    sys.exit(0)
finally:
    s.close()
sys.exit(1)
PY
}

# A free loopback port other than the ones given.
free_port() {
    python3 - "$@" <<'PY'
import random, socket, sys
# Below the kernel's ephemeral range (32768 and up): a port the kernel hands out to a client's
# connection could otherwise be this node's when it restarts after a kill.
avoid = {int(a) for a in sys.argv[1:]}
while True:
    p = random.randrange(20000, 32700)
    if p in avoid:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    break
PY
}

# ---------------------------------------------------------------------------------------------
# processes

pid_alive() {
    local pid="$1" state
    [[ -r "/proc/$pid/stat" ]] || return 1
    state="$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$pid/stat" 2>/dev/null)" || return 1
    [[ -n "$state" && "$state" != "Z" && "$state" != "X" ]]
}

pid_state() { sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null || true; }

# 0 if PID is the Kafka broker of node directory $2 (guards against a recycled PID).
pid_is_node() {
    local pid="$1" dir="$2" args
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    args="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ " $args " == *" kafka.Kafka $dir/server.properties"* ]]
}

# Prints the PID recorded in node directory $1 if it names its live broker; removes a stale pid file.
live_pid() {
    local dir="$1" pidfile="$1/broker.pid" pid
    [[ -f "$pidfile" ]] || return 1
    pid="$(tr -dc '0-9' <"$pidfile")"
    if [[ -z "$pid" ]] || ! pid_alive "$pid"; then
        rm -f "$pidfile"
        return 1
    fi
    if ! pid_is_node "$pid" "$dir"; then
        log "pid file $pidfile names PID $pid, which is not this node's broker: removing the pid file, leaving that process alone"
        rm -f "$pidfile"
        return 1
    fi
    printf '%s\n' "$pid"
}

# ---------------------------------------------------------------------------------------------
# one node

# write_node DIR NODE_ID PORT CPORT VOTERS ADVERTISED_PORT NODES [LISTENER_LINES]
# LISTENER_LINES (a routed cluster, see cluster_write) replaces the listener settings of the simple layout.
write_node() {
    local dir="$1" id="$2" port="$3" cport="$4" voters="$5" adv="$6" nodes="$7" rf min_isr
    local listeners="${8:-}"
    if (( nodes == 1 )); then rf=1; min_isr=1; else rf=3; min_isr=2; fi
    if [[ -z "$listeners" ]]; then
        listeners="listeners=PLAINTEXT://$HOST:$port,CONTROLLER://$HOST:$cport
advertised.listeners=PLAINTEXT://$HOST:$adv
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    fi
    mkdir -p "$dir/data" "$dir/logs"
    cat >"$dir/server.properties" <<EOF
# Written by scripts/broker.sh for node $id of $nodes. Regenerated at every start; the data in data/ stays.
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
$listeners
log.dirs=$dir/data
num.partitions=4
default.replication.factor=$rf
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$min_isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$min_isr
# Small machine, test-friendly: no 3 s wait before the first rebalance, few internal partitions,
# a 2 MiB cleaner buffer instead of 128 MiB of heap.
group.initial.rebalance.delay.ms=0
offsets.topic.num.partitions=4
transaction.state.log.num.partitions=4
log.cleaner.dedupe.buffer.size=2097152
auto.create.topics.enable=true
# A node that cannot register with the controller quorum exits after this long (default 60 s): on a busy
# 2-core machine the three JVMs of a cluster can take longer than that to form a quorum.
initial.broker.registration.timeout.ms=180000
# Durable logs; fsync is left to the OS page cache, as in a stock broker (replication is the guarantee).
unclean.leader.election.enable=false
EOF
    local kv
    for kv in ${KAFKA_OVERRIDES:-}; do
        printf '%s\n' "$kv" >>"$dir/server.properties"
    done
    cat >"$dir/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $dir/broker.log
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
EOF
}

# format_node DIR CLUSTER_ID: formats the log directory once (a restart reuses it).
format_node() {
    local dir="$1" cid="$2"
    [[ -f "$dir/data/meta.properties" ]] && return 0
    java -Xmx256m "${TOOL_JVM[@]}" -cp "$LIB/*" -Dlog4j2.configurationFile="$dir/log4j2.properties" \
        kafka.tools.StorageTool format -t "$cid" -c "$dir/server.properties" >"$dir/format.log" 2>&1 \
        || { cat "$dir/format.log" >&2; die "cannot format $dir/data"; }
}

# launch DIR HEAP: starts the JVM in the background, records its PID.
launch() {
    local dir="$1" heap="$2" pid
    local -a extra gc=(-XX:+UseG1GC -XX:MaxGCPauseMillis=20)
    read -r -a extra <<<"${KAFKA_JVM_OPTS:-}"
    # A collector named in KAFKA_JVM_OPTS replaces G1 (the JVM refuses two).
    [[ " ${extra[*]} " == *" -XX:+Use"*"GC "* ]] && gc=()
    (
        cd "$dir"
        exec nohup java "-Xms$heap" "-Xmx$heap" "${gc[@]}" \
            -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true "${extra[@]}" \
            -Dlog4j2.configurationFile="$dir/log4j2.properties" -Dkafka.logs.dir="$dir/logs" \
            -cp "$LIB/*" kafka.Kafka "$dir/server.properties" </dev/null >>"$dir/broker.out" 2>&1
    ) &
    pid=$!
    disown "$pid" 2>/dev/null || true
    printf '%s\n' "$pid" >"$dir/broker.pid"
    printf '%s\n' "$pid"
}

# wait_ready DIR PORT PID: until the broker port answers ApiVersions (it opens only once the broker is
# unfenced; the controller port opens earlier and is not polled).
wait_ready() {
    local dir="$1" port="$2" pid="$3" limit="${4:-$READY_TIMEOUT_S}" deadline
    deadline=$(( $(date +%s) + limit ))
    while :; do
        if ! pid_alive "$pid"; then
            rm -f "$dir/broker.pid"
            log "Kafka (PID $pid) exited before it was ready; last lines of $dir/broker.log and broker.out:"
            tail -n 15 "$dir/broker.log" >&2 2>/dev/null || true
            tail -n 15 "$dir/broker.out" >&2 2>/dev/null || true
            die "broker on port $port failed to start"
        fi
        if kafka_probe "$HOST" "$port" 1; then
            return 0
        fi
        if (( $(date +%s) >= deadline )); then
            log "no answer from $HOST:$port within ${limit}s; last lines of $dir/broker.log:"
            tail -n 20 "$dir/broker.log" >&2 2>/dev/null || true
            kill -KILL "$pid" 2>/dev/null || true
            rm -f "$dir/broker.pid"
            die "broker on port $port not ready after ${limit}s (killed PID $pid)"
        fi
        sleep 0.2
    done
}

stop_node() {
    local dir="$1" pid i
    pid="$(live_pid "$dir")" || { rm -f "$dir/broker.pid"; return 0; }
    kill -CONT "$pid" 2>/dev/null || true   # a frozen broker acts on SIGTERM only once resumed
    kill -TERM "$pid" 2>/dev/null || true
    for (( i = 0; i < STOP_GRACE_S * 10; i++ )); do
        pid_alive "$pid" || break
        sleep 0.1
    done
    if pid_alive "$pid"; then
        log "PID $pid still alive after ${STOP_GRACE_S}s of controlled shutdown: sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for (( i = 0; i < 50; i++ )); do pid_alive "$pid" || break; sleep 0.1; done
        pid_alive "$pid" && die "PID $pid survived SIGKILL"
    fi
    rm -f "$dir/broker.pid"
    log "stopped broker PID $pid ($dir)"
}

kill_node() {
    local dir="$1" pid i
    pid="$(live_pid "$dir")" || die "no running broker in $dir"
    kill -KILL "$pid"
    for (( i = 0; i < 100; i++ )); do pid_alive "$pid" || break; sleep 0.05; done
    rm -f "$dir/broker.pid"
    log "killed broker PID $pid with SIGKILL ($dir)"
}

signal_node() {
    local dir="$1" sig="$2" pid state i
    pid="$(live_pid "$dir")" || die "no running broker in $dir"
    kill "-$sig" "$pid"
    for (( i = 0; i < 50; i++ )); do
        state="$(pid_state "$pid")"
        if [[ "$sig" == STOP && "$state" == T ]] || [[ "$sig" == CONT && "$state" != T ]]; then break; fi
        sleep 0.02
    done
    log "sent SIG$sig to broker PID $pid ($dir, state ${state:-?})"
}

# start_node DIR HEAP PORT: the node's properties are already written; formats if needed, launches.
start_node() {
    local dir="$1" heap="$2" port="$3" pid
    if pid="$(live_pid "$dir")"; then die "a broker is already running from $dir (PID $pid)"; fi
    port_in_use "$port" && die "port $port on $HOST is busy (another process listens on it); pick another with --port N"
    format_node "$dir" "$(cat "$dir/cluster.id")"
    launch "$dir" "$heap"
}

# ---------------------------------------------------------------------------------------------
# commands

PORT="$DEFAULT_PORT"
DIR=""
ADVERTISE_PORT=""
CONTROLLER_PORT=""
NODE=""

parse_opts() {
    local kind="$1"
    shift
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --port) [[ $# -ge 2 ]] || die "--port needs a value"; PORT="$2"; shift 2 ;;
            --dir) [[ $# -ge 2 ]] || die "--dir needs a value"; DIR="$2"; shift 2 ;;
            --advertise-port) [[ $# -ge 2 ]] || die "--advertise-port needs a value"; ADVERTISE_PORT="$2"; shift 2 ;;
            --controller-port) [[ $# -ge 2 ]] || die "--controller-port needs a value"; CONTROLLER_PORT="$2"; shift 2 ;;
            --node) [[ $# -ge 2 ]] || die "--node needs a value"; NODE="$2"; shift 2 ;;
            -h|--help) usage ;;
            *) die "unknown argument: $1 (see scripts/broker.sh --help)" ;;
        esac
    done
    for v in "$PORT" ${ADVERTISE_PORT:+"$ADVERTISE_PORT"} ${CONTROLLER_PORT:+"$CONTROLLER_PORT"}; do
        [[ "$v" =~ ^[0-9]+$ ]] && (( v >= 1 && v <= 65535 )) || die "invalid port: $v"
    done
    if [[ -z "$DIR" ]]; then
        DIR="$TOOLS/run/$kind-$PORT"
    elif [[ "$DIR" != /* ]]; then
        DIR="$PWD/$DIR"
    fi
}

cmd_start() {
    ensure_installed
    local t0 pid cport cid
    t0="$(date +%s%N)"
    mkdir -p "$DIR"
    if [[ -f "$DIR/cluster.id" ]]; then cid="$(cat "$DIR/cluster.id")"; else
        cid="$(java -Xmx64m "${TOOL_JVM[@]}" -cp "$LIB/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
        printf '%s\n' "$cid" >"$DIR/cluster.id"
    fi
    # The controller port of a restarted node must stay the same (it is in the quorum's metadata).
    if [[ -n "$CONTROLLER_PORT" ]]; then cport="$CONTROLLER_PORT"
    elif [[ -f "$DIR/controller.port" ]]; then cport="$(cat "$DIR/controller.port")"
    else cport="$(free_port "$PORT")"; fi
    printf '%s\n' "$cport" >"$DIR/controller.port"
    write_node "$DIR" 1 "$PORT" "$cport" "1@$HOST:$cport" "${ADVERTISE_PORT:-$PORT}" 1
    pid="$(start_node "$DIR" "${KAFKA_HEAP:-768m}" "$PORT")"
    wait_ready "$DIR" "$PORT" "$pid"
    log "Apache Kafka $KAFKA_VERSION ready on $HOST:$PORT in $(( ($(date +%s%N) - t0) / 1000000 )) ms (PID $pid, log $DIR/broker.log)"
    printf 'BROKER=%s:%s\n' "$HOST" "$PORT"
    printf 'PID=%s\n' "$pid"
}

cmd_status() {
    if kafka_probe "$HOST" "$PORT" 2; then echo "broker on $HOST:$PORT: up"; return 0; fi
    echo "broker on $HOST:$PORT: down"
    return 1
}

# The cluster: D/node-I for I in 1..3, D/ports holds "broker ports;controller ports".
cluster_ports() {
    [[ -f "$DIR/ports" ]] || die "no cluster in $DIR (start one with 'scripts/broker.sh cluster start --dir $DIR')"
    read -r -a BPORTS <<<"$(cut -d';' -f1 "$DIR/ports")"
    read -r -a CPORTS <<<"$(cut -d';' -f2 "$DIR/ports")"
    read -r -a RPORTS <<<"$(cut -s -d';' -f3 "$DIR/ports")"
    read -r -a QPORTS <<<"$(cut -s -d';' -f4 "$DIR/ports")"
}

# A routed cluster's port for KIND (client|repl|ctrl) from node FROM to node TO, as D/routes says (the
# port of a proxy the test runs), else DEFAULT (the node's own listener: a direct connection).
route() {
    local kind="$1" from="$2" to="$3" default="$4" port
    if [[ "$kind" == client ]]; then
        port="$(awk -v t="$to" '$1 == "client" && $2 == t { print $3 }' "$DIR/routes")"
    else
        port="$(awk -v k="$kind" -v f="$from" -v t="$to" '$1 == k && $2 == f && $3 == t { print $4 }' "$DIR/routes")"
    fi
    printf '%s\n' "${port:-$default}"
}

# qport I K: the real port of node I's controller listener for node K's traffic (routed clusters).
qport() {
    local i="$1" k="$2"
    if (( i == k )); then printf '%s\n' "${CPORTS[$((i - 1))]}"
    else printf '%s\n' "${QPORTS[$(( 3 * (i - 1) + k - 1 ))]}"; fi
}

# The node properties of the three nodes. With D/routes (written by a test before the first start) the
# cluster is routed: every connection a test may want to cut goes to a port the routes file names — a
# proxy of the test's own — rather than straight to a node:
#   client I PORT      clients reach node I's broker listener (PLAINTEXT) at PORT (its advertised port);
#   repl K I PORT      node K reaches node I's replication listener at PORT: node I has one replication
#                      listener per peer, R1..R3, and node K replicates over R<K> (its
#                      inter.broker.listener.name), so each direction between two nodes has a port of its own;
#   ctrl K I PORT      node K reaches node I's controller at PORT: node I has one controller listener per
#                      peer, Q1..Q3, and node K talks to controllers over Q<K> (the first of its
#                      controller.listener.names); PORT is both node K's controller.quorum.voters entry for
#                      node I and node I's advertised address for Q<K>.
# The advertised address matters: a KRaft follower fetches the metadata log from the address the quorum
# leader advertises for the follower's controller listener (BeginQuorumEpoch's LeaderEndpoints, KIP-853),
# not from its controller.quorum.voters entry. With one CONTROLLER listener advertised as its real port,
# the followers' fetches went straight to the leader, around the proxies, and a quorum leader cut off from
# its peers kept its quorum (issue 11).
# A line left out means a direct connection. Real listeners: brokers on N..N+2, controllers (node I's own
# Q<I>) on N+3..N+5, replication listeners on N+6..N+14 (node I's R<K> on N+6+3(I-1)+(K-1)), and in a
# routed cluster node I's Q<K>, K != I, on N+15+3(I-1)+(K-1).
cluster_write() {
    local i k voters listeners adv map
    for i in 1 2 3; do
        local extra=""
        if [[ -f "$DIR/routes" ]]; then
            voters=""
            for k in 1 2 3; do
                if (( k == i )); then voters+="${voters:+,}$k@$HOST:${CPORTS[$((k - 1))]}"
                else voters+="${voters:+,}$k@$HOST:$(route ctrl "$i" "$k" "$(qport "$k" "$i")")"; fi
            done
            listeners="listeners=PLAINTEXT://$HOST:${BPORTS[$((i - 1))]}"
            adv="advertised.listeners=PLAINTEXT://$HOST:$(route client 0 "$i" "${BPORTS[$((i - 1))]}")"
            map="listener.security.protocol.map=PLAINTEXT:PLAINTEXT"
            # Controller listeners: Q<i> (this node's own, first: the one it talks to other controllers
            # over) on its controller port, then Q<k> for each peer k, advertised through that peer's proxy.
            local names="Q$i" real
            listeners+=",Q$i://$HOST:${CPORTS[$((i - 1))]}"
            adv+=",Q$i://$HOST:${CPORTS[$((i - 1))]}"
            map+=",Q$i:PLAINTEXT"
            for k in 1 2 3; do
                (( k == i )) && continue
                real="$(qport "$i" "$k")"
                names+=",Q$k"
                listeners+=",Q$k://$HOST:$real"
                adv+=",Q$k://$HOST:$(route ctrl "$k" "$i" "$real")"
                map+=",Q$k:PLAINTEXT"
            done
            for k in 1 2 3; do
                real="${RPORTS[$(( 3 * (i - 1) + k - 1 ))]}"
                listeners+=",R$k://$HOST:$real"
                adv+=",R$k://$HOST:$(route repl "$k" "$i" "$real")"
                map+=",R$k:PLAINTEXT"
            done
            extra="$listeners
$adv
inter.broker.listener.name=R$i
controller.listener.names=$names
$map"
        else
            voters=""
            for k in 1 2 3; do voters+="${voters:+,}$k@$HOST:${CPORTS[$((k - 1))]}"; done
        fi
        write_node "$DIR/node-$i" "$i" "${BPORTS[$((i - 1))]}" "${CPORTS[$((i - 1))]}" "$voters" \
            "${BPORTS[$((i - 1))]}" 3 "$extra"
        cp "$DIR/cluster.id" "$DIR/node-$i/cluster.id"
    done
}

# The nodes a failed `cluster start` had launched: stopped, so that no half-started cluster is left behind.
CLUSTER_STARTED=0
cluster_abort() {
    local rc=$? i pid
    (( CLUSTER_STARTED )) && return 0
    for i in 1 2 3; do
        if pid="$(live_pid "$DIR/node-$i" 2>/dev/null)"; then
            kill -CONT "$pid" 2>/dev/null || true
            kill -KILL "$pid" 2>/dev/null || true
            rm -f "$DIR/node-$i/broker.pid"
            log "cluster start failed: killed node $i (PID $pid)"
        fi
    done
    return "$rc"
}

cmd_cluster_start() {
    ensure_installed
    local t0 i pids=() cid
    t0="$(date +%s%N)"
    mkdir -p "$DIR"
    if [[ -f "$DIR/ports" ]]; then cluster_ports; else
        BPORTS=("$PORT" "$((PORT + 1))" "$((PORT + 2))")
        CPORTS=("$((PORT + 3))" "$((PORT + 4))" "$((PORT + 5))")
        RPORTS=()
        QPORTS=()
        if [[ -f "$DIR/routes" ]]; then
            for i in $(seq 6 14); do RPORTS+=("$((PORT + i))"); done
            # Node I's Q<K> on N+15+3(I-1)+(K-1); the three slots with K = I are not used (Q<I> is the
            # node's controller port).
            for i in $(seq 15 23); do QPORTS+=("$((PORT + i))"); done
        fi
        printf '%s;%s;%s;%s\n' "${BPORTS[*]}" "${CPORTS[*]}" "${RPORTS[*]}" "${QPORTS[*]}" >"$DIR/ports"
    fi
    for i in 0 1 2; do
        port_in_use "${CPORTS[$i]}" && die "controller port ${CPORTS[$i]} is busy; pick another --port"
    done
    for i in "${RPORTS[@]}"; do
        port_in_use "$i" && die "replication port $i is busy; pick another --port"
    done
    local q
    for q in 0 1 2 3 4 5 6 7 8; do
        (( q / 3 == q % 3 )) && continue
        [[ -n "${QPORTS[$q]:-}" ]] && port_in_use "${QPORTS[$q]}" && die "controller port ${QPORTS[$q]} is busy; pick another --port"
    done
    if [[ ! -f "$DIR/cluster.id" ]]; then
        cid="$(java -Xmx64m "${TOOL_JVM[@]}" -cp "$LIB/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
        printf '%s\n' "$cid" >"$DIR/cluster.id"
    fi
    cluster_write
    trap cluster_abort EXIT
    # All three JVMs first: none is ready before a quorum of controllers is up.
    for i in 1 2 3; do pids+=("$(start_node "$DIR/node-$i" "${KAFKA_HEAP:-512m}" "${BPORTS[$((i - 1))]}")"); done
    for i in 1 2 3; do wait_ready "$DIR/node-$i" "${BPORTS[$((i - 1))]}" "${pids[$((i - 1))]}" "$CLUSTER_READY_TIMEOUT_S"; done
    CLUSTER_STARTED=1
    trap - EXIT
    local brokers=""
    for i in 1 2 3; do brokers+="${brokers:+,}$HOST:$( [[ -f "$DIR/routes" ]] && route client 0 "$i" "${BPORTS[$((i - 1))]}" || echo "${BPORTS[$((i - 1))]}")"; done
    log "three-node Apache Kafka $KAFKA_VERSION cluster ready on $brokers in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
    printf 'BROKER=%s\n' "$brokers"
    for i in 1 2 3; do printf 'PID%s=%s\n' "$i" "${pids[$((i - 1))]}"; done
}

cmd_cluster_stop() {
    [[ -d "$DIR" ]] || { log "no cluster in $DIR"; return 0; }
    local i pid
    # Together: a node whose quorum majority is gone can wait minutes in controlled shutdown.
    for i in 1 2 3; do
        if pid="$(live_pid "$DIR/node-$i")"; then kill -CONT "$pid" 2>/dev/null || true; kill -TERM "$pid" 2>/dev/null || true; fi
    done
    for i in 1 2 3; do stop_node "$DIR/node-$i"; done
}

cmd_node() {
    local what="$1"
    [[ "$NODE" =~ ^[123]$ ]] || die "--node must be 1, 2 or 3"
    cluster_ports
    local dir="$DIR/node-$NODE" port="${BPORTS[$((NODE - 1))]}" pid
    case "$what" in
        start)
            pid="$(start_node "$dir" "${KAFKA_HEAP:-512m}" "$port")"
            wait_ready "$dir" "$port" "$pid" "$CLUSTER_READY_TIMEOUT_S"
            log "node $NODE ready on $HOST:$port (PID $pid)"
            printf 'PID=%s\n' "$pid" ;;
        stop) stop_node "$dir" ;;
        kill) kill_node "$dir" ;;
        freeze) signal_node "$dir" STOP ;;
        thaw) signal_node "$dir" CONT ;;
        *) die "unknown node command: $what (start|stop|kill|freeze|thaw)" ;;
    esac
}

main() {
    [[ $# -ge 1 ]] || usage
    local cmd="$1"
    shift
    case "$cmd" in
        install) [[ $# -eq 0 ]] || die "install takes no arguments"; do_install ;;
        start)  parse_opts broker "$@"; cmd_start ;;
        stop)   parse_opts broker "$@"; stop_node "$DIR" ;;
        kill)   parse_opts broker "$@"; kill_node "$DIR" ;;
        status) parse_opts broker "$@"; cmd_status ;;
        freeze) parse_opts broker "$@"; signal_node "$DIR" STOP ;;
        thaw)   parse_opts broker "$@"; signal_node "$DIR" CONT ;;
        cluster)
            [[ $# -ge 1 ]] || usage
            local sub="$1"; shift
            parse_opts cluster "$@"
            case "$sub" in
                start) cmd_cluster_start ;;
                stop) cmd_cluster_stop ;;
                *) die "unknown cluster command: $sub (start|stop)" ;;
            esac ;;
        node)
            [[ $# -ge 1 ]] || usage
            local what="$1"; shift
            parse_opts cluster "$@"
            cmd_node "$what" ;;
        -h|--help|help) usage ;;
        *) die "unknown command: $cmd (install|start|stop|kill|status|freeze|thaw|cluster|node)" ;;
    esac
}

main "$@"
