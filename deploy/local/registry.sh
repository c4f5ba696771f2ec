#!/usr/bin/env bash
# A local schema registry for tactful's integration tier and demo: Apicurio
# Registry (Confluent-compatible API under /apis/ccompat/v7), built once with
# Maven from Maven Central into the cache, run on loopback, owned through a pid
# file under .run/ as services.sh owns the broker. services.sh up/down/status
# call it; it can also be run on its own:
#
#   registry.sh fetch    build the registry from deploy/registry/pom.xml (once per version)
#   registry.sh up       fetch if needed, start it, wait until the API answers
#   registry.sh down     stop exactly what `up` started (pid file); fine if nothing runs
#   registry.sh status   say whether it runs (exit 1 if not)
#   registry.sh url      print the URL tactful takes as TACTFUL_SCHEMA_REGISTRY_URL
#   registry.sh wipe     `down`, then delete its folder under the run dir (schemas, logs)
#
# Schemas are kept in an H2 database file under the run dir, so they survive a
# `down`/`up` as the broker's records do: a record on a topic keeps the id it
# was written with, and a registry that forgot its schemas would dead-letter it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=deploy/local/lib.sh
source "$ROOT/deploy/local/lib.sh"

# ---- settings -------------------------------------------------------------
# Pinned: the pom's Quarkus version must match this Apicurio version's (see the pom).
REGISTRY_VERSION="${TACTFUL_REGISTRY_VERSION:-2.4.2.Final}"
REGISTRY_PORT="${TACTFUL_REGISTRY_PORT:-18081}"
REGISTRY_HEAP="${TACTFUL_REGISTRY_HEAP:-256m}"
REGISTRY_START_TIMEOUT="${TACTFUL_REGISTRY_START_TIMEOUT:-90}"   # seconds
RUN_DIR="${TACTFUL_RUN_DIR:-$ROOT/.run}"
CACHE_DIR="${TACTFUL_CACHE_DIR:-$ROOT/.cache}"
JAVA="${JAVA:-java}"

REGISTRY_CACHE="$CACHE_DIR/registry"
REGISTRY_APP="$REGISTRY_CACHE/$REGISTRY_VERSION/app"
REGISTRY_JAR="$REGISTRY_APP/apicurio-registry-runner-1.0-runner.jar"
# Maven's download cache beside the build, not in ~/.m2 (as for the Kafka jars).
MAVEN_REPO="$REGISTRY_CACHE/m2"
REGISTRY_RUN="$RUN_DIR/registry"
REGISTRY_PID="$REGISTRY_RUN/registry.pid"
REGISTRY_LOG="$REGISTRY_RUN/registry.log"
REGISTRY_URL="http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7"
# What live_pid looks for in the process's command line.
REGISTRY_MARK="apicurio-registry-runner"

# ---- fetch (build) -----------------------------------------------------------

# `mvn package` on a copy of deploy/registry/pom.xml; the runner jar and its lib/
# are moved to .cache/registry/<version>/app. The .complete marker is written
# last, so an interrupted build is redone rather than half-used.
cmd_fetch() {
    [[ -e "$REGISTRY_APP/.complete" ]] && return 0
    command -v mvn >/dev/null || die "mvn not found (needed once to build the schema registry)"
    command -v "$JAVA" >/dev/null || die "java not found (the schema registry needs Java 17+)"
    local build="$REGISTRY_CACHE/$REGISTRY_VERSION/build" log="$REGISTRY_CACHE/build-$REGISTRY_VERSION.log"
    say "building Apicurio Registry $REGISTRY_VERSION from Maven Central into ${REGISTRY_APP#"$ROOT"/} (once; about a minute)"
    rm -rf "$build" "$REGISTRY_APP"
    mkdir -p "$build"
    cp "$ROOT/deploy/registry/pom.xml" "$build/pom.xml"
    local start=$SECONDS
    if ! mvn -B -q -Dstyle.color=never -f "$build/pom.xml" -Dmaven.repo.local="$MAVEN_REPO" \
            -Dapicurio.version="$REGISTRY_VERSION" -DskipTests package >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "could not build Apicurio Registry $REGISTRY_VERSION (full output: $log)"
    fi
    [[ -s "$build/target/apicurio-registry-runner-1.0-runner.jar" ]] || die "no runner jar after the build (see $log)"
    mkdir -p "$REGISTRY_APP"
    mv "$build/target/apicurio-registry-runner-1.0-runner.jar" "$build/target/lib" "$REGISTRY_APP/"
    rm -rf "$build"
    touch "$REGISTRY_APP/.complete"
    say "registry: built in $((SECONDS - start))s"
}

# ---- up / down ---------------------------------------------------------------

# Ready means the Confluent-compatible API answers 200, not just an open port.
# Plain bash over /dev/tcp: no curl needed on the machine.
registry_ready() {
    local status
    status="$( (exec 3<>"/dev/tcp/127.0.0.1/$REGISTRY_PORT" &&
        printf 'GET /apis/ccompat/v7/subjects HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 &&
        timeout 2 head -n 1 <&3) 2>/dev/null)" || return 1
    [[ "$status" == "HTTP/1."?" 200"* ]]
}

cmd_up() {
    local pid
    if pid="$(live_pid "$REGISTRY_PID" "$REGISTRY_MARK")"; then
        say "registry: already running (pid $pid) at $REGISTRY_URL"
        return 0
    fi
    rm -f "$REGISTRY_PID"
    if port_open "$REGISTRY_PORT"; then
        die "port $REGISTRY_PORT is taken by another process (set TACTFUL_REGISTRY_PORT)"
    fi
    cmd_fetch
    mkdir -p "$REGISTRY_RUN"
    if [[ -e "$REGISTRY_LOG" ]]; then mv -f "$REGISTRY_LOG" "$REGISTRY_LOG.prev"; fi
    # From the run dir, so nothing Quarkus writes lands in the checkout. The H2 file
    # database keeps the schemas across restarts (the default is in memory).
    (
        cd "$REGISTRY_RUN"
        exec setsid "$JAVA" -Xmx"$REGISTRY_HEAP" -XX:+UseSerialGC -Djava.awt.headless=true \
            -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$REGISTRY_PORT" \
            -Dquarkus.http.access-log.enabled=false \
            -Dquarkus.datasource.jdbc.url="jdbc:h2:file:$REGISTRY_RUN/db/registry" \
            -jar "$REGISTRY_JAR" >>"$REGISTRY_LOG" 2>&1 </dev/null
    ) &
    pid=$!
    echo "$pid" >"$REGISTRY_PID"
    say "registry: starting Apicurio $REGISTRY_VERSION (pid $pid) at $REGISTRY_URL ..."
    local start=$SECONDS
    until registry_ready; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$REGISTRY_PID"
            tail -n 40 "$REGISTRY_LOG" >&2 || true
            die "the schema registry exited during startup"
        fi
        if ((SECONDS - start >= REGISTRY_START_TIMEOUT)); then
            tail -n 40 "$REGISTRY_LOG" >&2 || true
            stop_pid "$pid" 10
            rm -f "$REGISTRY_PID"
            die "the schema registry was not ready after ${REGISTRY_START_TIMEOUT}s (stopped it)"
        fi
        sleep 0.25
    done
    say "registry: ready in $((SECONDS - start))s (log: ${REGISTRY_LOG#"$ROOT"/})"
}

cmd_down() {
    local pid
    if pid="$(live_pid "$REGISTRY_PID" "$REGISTRY_MARK")"; then
        stop_pid "$pid" 20
        say "registry: stopped (pid $pid)"
    else
        say "registry: not running"
    fi
    rm -f "$REGISTRY_PID"
}

cmd_status() {
    local pid
    if pid="$(live_pid "$REGISTRY_PID" "$REGISTRY_MARK")"; then
        say "registry: running (pid $pid) at $REGISTRY_URL, Apicurio $REGISTRY_VERSION"
    else
        say "registry: not running"
        return 1
    fi
}

cmd_wipe() {
    cmd_down
    if port_open "$REGISTRY_PORT"; then
        die "port $REGISTRY_PORT still answers after stopping what ${RUN_DIR#"$ROOT"/} started; wiped nothing"
    fi
    if [[ -e "$REGISTRY_RUN" ]]; then
        rm -rf -- "$REGISTRY_RUN"
        say "wipe: removed ${REGISTRY_RUN#"$ROOT"/}"
    else
        say "wipe: no registry data under ${RUN_DIR#"$ROOT"/}"
    fi
}

case "${1:-}" in
    fetch) cmd_fetch ;;
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    url) say "$REGISTRY_URL" ;;
    wipe) cmd_wipe ;;
    *) say "usage: $0 {fetch|up|down|status|url|wipe}" >&2; exit 2 ;;
esac
