#!/usr/bin/env bash
# Local real infrastructure for tactful's integration tier and demo:
# a single-node Kafka (KRaft, combined broker+controller), a Redis and a schema
# registry (deploy/local/registry.sh), all on loopback, owned through pid files
# under .run/. The registry is left out when TACTFUL_SCHEMA_REGISTRY_URL is set:
# to a registry of one's own, or empty for none (tactful's local schema ids).
#
#   services.sh fetch    install redis-server/promtool (apt) and the Kafka jars (Maven),
#                        build the registry (Maven, once)
#   services.sh up       fetch if needed, start all three, wait until each really answers
#   services.sh down     stop exactly what `up` started (pid files); fine if nothing runs
#   services.sh status   say what runs
#   services.sh wipe     `down`, then delete Kafka's data folder (topics, offsets,
#                        cluster metadata), Redis's folder and the registry's (schemas):
#                        the next `up` starts empty
#
# Every setting is an environment variable with a default (see below); `make up`,
# `make down`, `make status` and `make fetch-kafka` call this script.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=deploy/local/lib.sh
source "$ROOT/deploy/local/lib.sh"

# ---- settings -------------------------------------------------------------
# Pinned broker version; see deploy/kafka/README.md for why this one.
KAFKA_VERSION="${TACTFUL_KAFKA_VERSION:-4.4.0}"
KAFKA_PORT="${TACTFUL_KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${TACTFUL_KAFKA_CONTROLLER_PORT:-19093}"
KAFKA_HEAP="${TACTFUL_KAFKA_HEAP:-512m}"
KAFKA_START_TIMEOUT="${TACTFUL_KAFKA_START_TIMEOUT:-90}"   # seconds
REDIS_PORT="${TACTFUL_REDIS_PORT:-16379}"
RUN_DIR="${TACTFUL_RUN_DIR:-$ROOT/.run}"
CACHE_DIR="${TACTFUL_CACHE_DIR:-$ROOT/.cache}"
PYTHON="${TACTFUL_PYTHON:-$ROOT/.venv/bin/python}"
JAVA="${JAVA:-java}"

KAFKA_LIBS="$CACHE_DIR/kafka/$KAFKA_VERSION/libs"
# Maven's own download cache is kept beside the jars (not in ~/.m2) so the
# project leaves nothing outside its tree and a version bump reuses shared jars.
MAVEN_REPO="$CACHE_DIR/kafka/m2"
KAFKA_RUN="$RUN_DIR/kafka"
KAFKA_DATA="$KAFKA_RUN/data"
KAFKA_LOGS="$KAFKA_RUN/logs"
KAFKA_PID="$KAFKA_RUN/kafka.pid"
REDIS_RUN="$RUN_DIR/redis"
REDIS_PID="$REDIS_RUN/redis.pid"

REGISTRY=(bash "$ROOT/deploy/local/registry.sh")
registry_wanted() { [[ -z "${TACTFUL_SCHEMA_REGISTRY_URL+set}" ]]; }

# ---- helpers ---------------------------------------------------------------

as_root() { if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

# ---- fetch -----------------------------------------------------------------

# redis-server (the Redis we start) and prometheus (for promtool, which
# validates the alert rules; Prometheus itself is never run here).
fetch_apt() {
    local missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v redis-cli >/dev/null || missing+=(redis-tools)
    command -v promtool >/dev/null || missing+=(prometheus)
    if ((${#missing[@]})); then
        say "installing with apt-get: ${missing[*]}"
        # Debian's packages start their service on install. Where no
        # policy-rc.d forbids that (container images usually ship one), add one
        # for the duration so no Prometheus (which would listen on all
        # interfaces) or stray Redis on 6379 is left running.
        local policy=/usr/sbin/policy-rc.d added=0
        if [[ ! -e $policy ]]; then
            printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
            as_root chmod +x "$policy"
            added=1
        fi
        local rc=0 log
        log="$(mktemp)"
        { as_root apt-get update -qq &&
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                --no-install-recommends "${missing[@]}"; } >"$log" 2>&1 || rc=$?
        if ((added)); then as_root rm -f "$policy"; fi
        if ((rc != 0)); then
            tail -n 30 "$log" >&2
            die "apt-get install ${missing[*]} failed (exit $rc)"
        fi
        rm -f "$log"
    fi
    promtool --version >/dev/null 2>&1 || die "promtool is installed but does not run"
}

# Kafka's jars from Maven Central via deploy/kafka/pom.xml, copied into
# .cache/kafka/<version>/libs. The .complete marker is written last, so an
# interrupted download is redone rather than half-used.
fetch_kafka() {
    [[ -e "$KAFKA_LIBS/.complete" ]] && return 0
    command -v mvn >/dev/null || die "mvn not found (needed once to fetch the Kafka jars)"
    say "fetching Kafka $KAFKA_VERSION jars from Maven Central into ${KAFKA_LIBS#"$ROOT"/}"
    local tmp="$KAFKA_LIBS.partial" log="$CACHE_DIR/kafka/fetch-$KAFKA_VERSION.log"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    if ! mvn -B -q -Dstyle.color=never -f "$ROOT/deploy/kafka/pom.xml" \
            -Dmaven.repo.local="$MAVEN_REPO" -Dkafka.version="$KAFKA_VERSION" \
            dependency:copy-dependencies -DoutputDirectory="$tmp" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "could not fetch Kafka $KAFKA_VERSION (full output: $log)"
    fi
    ls "$tmp"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1 || die "no kafka_2.13 jar after fetch"
    rm -rf "$KAFKA_LIBS"
    mv "$tmp" "$KAFKA_LIBS"
    touch "$KAFKA_LIBS/.complete"
}

cmd_fetch() {
    fetch_apt
    fetch_kafka
    if registry_wanted; then "${REGISTRY[@]}" fetch; fi
    say "fetch: redis-server, promtool ($(promtool --version 2>&1 | head -n1 | awk '{print $3}')) and Kafka $KAFKA_VERSION jars are in place"
}

# ---- Kafka -----------------------------------------------------------------

# Broker settings fit for tests: one node, one replica for every internal topic,
# no rebalance delay, and no auto topic creation (the app creates its topics, so
# a missing topic is a bug we want to see, not paper over).
write_kafka_config() {
    mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
    cat >"$KAFKA_RUN/server.properties" <<EOF
# Generated by deploy/local/services.sh on every \`up\`; edit the script, not this.
process.roles=broker,controller
node.id=1
# Static voter set: the controller's address lives in config, not in the
# formatted metadata log, so changing TACTFUL_KAFKA_CONTROLLER_PORT just works.
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$KAFKA_DATA

auto.create.topics.enable=false
num.partitions=4
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
# Fewer offsets/transaction partitions than the default 50: the first consumer
# group and the first transactional producer come up in well under a second.
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
}

kafka_classpath() { printf '%s/*' "$KAFKA_LIBS"; }

# The command-line tools (StorageTool); the broker itself is started in kafka_up.
kafka_java() {
    "$JAVA" -Xmx256m -cp "$(kafka_classpath)" \
        -Dlog4j2.configurationFile="$ROOT/deploy/kafka/log4j2.properties" \
        -Dkafka.logs.dir="$KAFKA_LOGS" "$@"
}

# Format the data dir once (KRaft needs a cluster id written into it).
format_kafka() {
    [[ -e "$KAFKA_DATA/meta.properties" ]] && return 0
    # A cluster id is 16 random bytes, base64url without padding (what
    # `StorageTool random-uuid` prints); made here to save a JVM start.
    local cluster_id
    cluster_id="$("$PYTHON" -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("="))')"
    kafka_java kafka.tools.StorageTool format --ignore-formatted \
        --cluster-id "$cluster_id" --config "$KAFKA_RUN/server.properties" \
        >>"$KAFKA_LOGS/format.log" 2>&1 \
        || { tail -n 30 "$KAFKA_LOGS/format.log" >&2; die "formatting Kafka storage failed"; }
}

# Ready means a real client gets metadata listing our broker, not just an open
# port: the port opens before the broker has caught up with the controller.
kafka_ready() {
    "$PYTHON" - "127.0.0.1:$KAFKA_PORT" <<'EOF' 2>/dev/null
import sys
from confluent_kafka.admin import AdminClient
# log_level 0: librdkafka would otherwise print a connect error per attempt.
admin = AdminClient({"bootstrap.servers": sys.argv[1], "log_level": 0})
md = admin.list_topics(timeout=3)
sys.exit(0 if md.brokers else 1)
EOF
}

show_kafka_logs() {
    if [[ -s "$KAFKA_LOGS/server.log" ]]; then
        say "---- last lines of ${KAFKA_LOGS#"$ROOT"/}/server.log ----" >&2
        tail -n 40 "$KAFKA_LOGS/server.log" >&2
    fi
    if [[ -s "$KAFKA_LOGS/stdout.log" ]]; then
        say "---- last lines of ${KAFKA_LOGS#"$ROOT"/}/stdout.log ----" >&2
        tail -n 20 "$KAFKA_LOGS/stdout.log" >&2
    fi
}

kafka_up() {
    local pid
    if pid="$(live_pid "$KAFKA_PID" kafka.Kafka)"; then
        say "kafka: already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
        return 0
    fi
    rm -f "$KAFKA_PID"
    for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
        if port_open "$p"; then
            die "port $p is taken by another process (set TACTFUL_KAFKA_PORT / TACTFUL_KAFKA_CONTROLLER_PORT)"
        fi
    done
    command -v "$JAVA" >/dev/null || die "java not found (Kafka $KAFKA_VERSION needs Java 17+)"
    [[ -x "$PYTHON" ]] || die "$PYTHON not found: run 'make install' first (the readiness check uses confluent_kafka)"
    write_kafka_config
    format_kafka
    # Fresh logs per start (previous ones kept as *.prev), so the tail shown
    # on failure is this start's and not an older run's.
    local f
    for f in server.log stdout.log; do
        if [[ -e "$KAFKA_LOGS/$f" ]]; then mv -f "$KAFKA_LOGS/$f" "$KAFKA_LOGS/$f.prev"; fi
    done
    : >"$KAFKA_LOGS/stdout.log"
    # setsid: own session, so a Ctrl-C in the shell that ran `make up` or the end
    # of that make does not take the broker with it.
    setsid "$JAVA" -Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" \
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
        -cp "$(kafka_classpath)" \
        -Dlog4j2.configurationFile="$ROOT/deploy/kafka/log4j2.properties" \
        -Dkafka.logs.dir="$KAFKA_LOGS" \
        kafka.Kafka "$KAFKA_RUN/server.properties" \
        >>"$KAFKA_LOGS/stdout.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$KAFKA_PID"
    say "kafka: starting $KAFKA_VERSION (pid $pid) on 127.0.0.1:$KAFKA_PORT ..."
    local start=$SECONDS
    until kafka_ready; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$KAFKA_PID"
            show_kafka_logs
            die "kafka exited during startup"
        fi
        if ((SECONDS - start >= KAFKA_START_TIMEOUT)); then
            show_kafka_logs   # before stopping it, so the tail shows why it hung
            stop_pid "$pid" 10
            rm -f "$KAFKA_PID"
            die "kafka not ready after ${KAFKA_START_TIMEOUT}s (stopped it)"
        fi
        sleep 0.5
    done
    say "kafka: ready in $((SECONDS - start))s (logs: ${KAFKA_LOGS#"$ROOT"/}/server.log)"
}

kafka_down() {
    local pid
    if pid="$(live_pid "$KAFKA_PID" kafka.Kafka)"; then
        # A KRaft broker's clean shutdown takes a few seconds; give it 30.
        stop_pid "$pid" 30
        say "kafka: stopped (pid $pid)"
    else
        say "kafka: not running"
    fi
    rm -f "$KAFKA_PID"
}

# ---- Redis -----------------------------------------------------------------

redis_up() {
    local pid
    if pid="$(live_pid "$REDIS_PID" redis-server)"; then
        say "redis: already running (pid $pid) on 127.0.0.1:$REDIS_PORT"
        return 0
    fi
    rm -f "$REDIS_PID"
    if port_open "$REDIS_PORT"; then
        die "port $REDIS_PORT is taken by another process (set TACTFUL_REDIS_PORT)"
    fi
    mkdir -p "$REDIS_RUN"
    # Test data only: no RDB snapshots, no AOF. Daemonized; redis writes the pid file.
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --protected-mode yes \
        --dir "$REDIS_RUN" --save "" --appendonly no \
        --daemonize yes --pidfile "$REDIS_PID" --logfile "$REDIS_RUN/redis.log"
    local i
    for ((i = 0; i < 100; i++)); do
        if [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; then
            say "redis: ready (pid $(<"$REDIS_PID")) on 127.0.0.1:$REDIS_PORT"
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$REDIS_RUN/redis.log" >&2 || true
    die "redis did not answer PING on port $REDIS_PORT"
}

redis_down() {
    local pid
    if pid="$(live_pid "$REDIS_PID" redis-server)"; then
        stop_pid "$pid" 10
        say "redis: stopped (pid $pid)"
    else
        say "redis: not running"
    fi
    rm -f "$REDIS_PID"
}

# ---- commands --------------------------------------------------------------

cmd_up() {
    # Cheap when everything is in place: two `command -v` and one file test.
    fetch_apt
    fetch_kafka
    redis_up
    kafka_up
    if registry_wanted; then "${REGISTRY[@]}" up; fi
}

cmd_down() {
    "${REGISTRY[@]}" down
    kafka_down
    redis_down
}

# Stop first (by pid file, as `down`), then delete: a broker must never lose its
# data folder while it runs. A port that still answers after that belongs to a
# Kafka or Redis this run dir did not start, which may be using these folders.
cmd_wipe() {
    cmd_down
    local p d removed=0
    for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$REDIS_PORT"; do
        if port_open "$p"; then
            die "port $p still answers after stopping what ${RUN_DIR#"$ROOT"/} started; wiped nothing"
        fi
    done
    for d in "$KAFKA_DATA" "$REDIS_RUN"; do
        if [[ -e "$d" ]]; then
            local size
            size="$(du -sh -- "$d" 2>/dev/null | cut -f1)"
            rm -rf -- "$d"
            say "wipe: removed ${d#"$ROOT"/} ($size)"
            removed=1
        fi
    done
    ((removed)) || say "wipe: no Kafka or Redis data under ${RUN_DIR#"$ROOT"/}"
    "${REGISTRY[@]}" wipe
}

cmd_status() {
    local pid rc=0
    if pid="$(live_pid "$KAFKA_PID" kafka.Kafka)"; then
        say "kafka: running (pid $pid) on 127.0.0.1:$KAFKA_PORT, version $KAFKA_VERSION"
    else
        say "kafka: not running"; rc=1
    fi
    if pid="$(live_pid "$REDIS_PID" redis-server)"; then
        say "redis: running (pid $pid) on 127.0.0.1:$REDIS_PORT"
    else
        say "redis: not running"; rc=1
    fi
    if registry_wanted; then "${REGISTRY[@]}" status || rc=1; fi
    return "$rc"
}

case "${1:-}" in
    fetch) cmd_fetch ;;
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    wipe) cmd_wipe ;;
    *) say "usage: $0 {fetch|up|down|status|wipe}" >&2; exit 2 ;;
esac
