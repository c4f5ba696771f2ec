#!/usr/bin/env bash
# Secured and clustered Redis on loopback, for the mirror's integration tests:
#
# - a three-node Redis Cluster (Debian's redis-server in cluster mode, three
#   primaries, no replicas, made with `redis-cli --cluster create`);
# - a single Redis with TLS only (no plaintext port) and ACL users: the
#   default user is off, and user `tactful` may touch only the `tactful*` keys.
#   Its certificates (a CA and a server certificate for 127.0.0.1) are made with
#   openssl at start time; its password is made at start time too, unless given.
#
#   redis-cluster.sh up [cluster|tls|all]   start (default all); wait until each answers
#   redis-cluster.sh down                   stop by pid what `up` started, delete the run dir
#   redis-cluster.sh status                 say what runs
#
# Settings (environment variables, with defaults):
#   TACTFUL_REDIS_CLUSTER_DIR    run dir                 $TACTFUL_RUN_DIR/redis-cluster (.run/redis-cluster)
#   TACTFUL_REDIS_CLUSTER_PORT   first node's port       17001 (nodes on it and the next two ports;
#                                                        Redis puts each node's cluster bus at port+10000)
#   TACTFUL_REDIS_TLS_PORT       the TLS Redis's port    16390
#   TACTFUL_REDIS_ACL_USER       its ACL user            tactful
#   TACTFUL_REDIS_ACL_PASSWORD   that user's password    random, written to $DIR/tls/password
#
# After `up`, the run dir holds what clients need: `cluster/url` (a seed node),
# `tls/url` (rediss://127.0.0.1:PORT/0), `tls/ca.pem`, `tls/user`, `tls/password`.
# Test data only: no RDB snapshots, no AOF.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=deploy/local/lib.sh
source "$ROOT/deploy/local/lib.sh"
RUN_DIR="${TACTFUL_RUN_DIR:-$ROOT/.run}"
DIR="${TACTFUL_REDIS_CLUSTER_DIR:-$RUN_DIR/redis-cluster}"
FIRST_PORT="${TACTFUL_REDIS_CLUSTER_PORT:-17001}"
TLS_PORT="${TACTFUL_REDIS_TLS_PORT:-16390}"
ACL_USER="${TACTFUL_REDIS_ACL_USER:-tactful}"
START_TIMEOUT=30 # seconds, for each server and for the cluster to agree

CLUSTER_DIR="$DIR/cluster"
TLS_DIR="$DIR/tls"
PORTS=("$FIRST_PORT" "$((FIRST_PORT + 1))" "$((FIRST_PORT + 2))")

# Wait until `$@` prints PONG, or die naming $1's log.
wait_pong() {
    local log="$1"
    shift
    local deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        [[ "$("$@" ping 2>/dev/null)" == PONG ]] && return 0
        sleep 0.2
    done
    tail -n 20 "$log" >&2 || true
    die "redis did not answer PING ($log)"
}

need() {
    command -v redis-server >/dev/null || die "redis-server is not installed (services.sh fetch installs it)"
    command -v redis-cli >/dev/null || die "redis-cli is not installed (apt-get install redis-tools)"
}

# ---- the cluster -----------------------------------------------------------

cluster_up() {
    local port running=0
    for port in "${PORTS[@]}"; do
        if live_pid "$CLUSTER_DIR/$port/redis.pid" redis-server >/dev/null; then running=$((running + 1)); fi
    done
    if ((running == 3)); then
        say "redis cluster: already running on 127.0.0.1:${PORTS[0]}-${PORTS[2]}"
        return 0
    fi
    ((running == 0)) || die "redis cluster: only $running of 3 nodes run under $CLUSTER_DIR; run down first"
    for port in "${PORTS[@]}"; do
        if port_open "$port" || port_open "$((port + 10000))"; then
            die "port $port or $((port + 10000)) is taken (set TACTFUL_REDIS_CLUSTER_PORT)"
        fi
    done
    # A node's nodes.conf from an earlier run would make it refuse to join a new cluster.
    rm -rf "$CLUSTER_DIR"
    for port in "${PORTS[@]}"; do
        mkdir -p "$CLUSTER_DIR/$port"
        redis-server --bind 127.0.0.1 --port "$port" --protected-mode yes \
            --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
            --dir "$CLUSTER_DIR/$port" --save "" --appendonly no \
            --daemonize yes --pidfile "$CLUSTER_DIR/$port/redis.pid" --logfile "$CLUSTER_DIR/$port/redis.log"
    done
    for port in "${PORTS[@]}"; do
        wait_pong "$CLUSTER_DIR/$port/redis.log" redis-cli -h 127.0.0.1 -p "$port"
    done
    redis-cli --cluster create "${PORTS[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes \
        >"$CLUSTER_DIR/create.log" 2>&1 || {
        cat "$CLUSTER_DIR/create.log" >&2
        die "redis-cli --cluster create failed"
    }
    # Every node must see every slot served before a client may rely on it.
    local deadline=$((SECONDS + START_TIMEOUT))
    for port in "${PORTS[@]}"; do
        until redis-cli -h 127.0.0.1 -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; do
            ((SECONDS < deadline)) || die "redis cluster: node $port did not reach cluster_state:ok"
            sleep 0.2
        done
    done
    printf 'redis://127.0.0.1:%s/0\n' "${PORTS[0]}" >"$CLUSTER_DIR/url"
    say "redis cluster: ready on 127.0.0.1:${PORTS[0]}-${PORTS[2]} (TACTFUL_REDIS_URL=$(<"$CLUSTER_DIR/url") TACTFUL_REDIS_CLUSTER=true)"
}

cluster_down() {
    local port pid stopped=0
    for port in "${PORTS[@]}"; do
        if pid="$(live_pid "$CLUSTER_DIR/$port/redis.pid" redis-server)"; then
            kill "$pid"
            stopped=$((stopped + 1))
        fi
    done
    for port in "${PORTS[@]}"; do
        wait_gone "$CLUSTER_DIR/$port/redis.pid"
    done
    rm -rf "$CLUSTER_DIR"
    say "redis cluster: stopped $stopped nodes"
}

# ---- TLS + ACL -------------------------------------------------------------

make_certificates() {
    command -v openssl >/dev/null || die "openssl is not installed"
    local d="$TLS_DIR"
    (
        umask 077
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=tactful test CA" \
            -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
            -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$d/san.ext"
        openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
            -days 2 -extfile "$d/san.ext" -out "$d/server.pem" 2>/dev/null
    ) || die "openssl could not make the test certificates"
    chmod 644 "$d/ca.pem"
}

tls_up() {
    local pid
    if pid="$(live_pid "$TLS_DIR/redis.pid" redis-server)"; then
        say "redis tls: already running (pid $pid) on 127.0.0.1:$TLS_PORT"
        return 0
    fi
    port_open "$TLS_PORT" && die "port $TLS_PORT is taken (set TACTFUL_REDIS_TLS_PORT)"
    rm -rf "$TLS_DIR"
    mkdir -p "$TLS_DIR"
    make_certificates
    local password="${TACTFUL_REDIS_ACL_PASSWORD:-$(openssl rand -hex 24)}"
    (umask 077 && printf '%s\n' "$password" >"$TLS_DIR/password")
    printf '%s\n' "$ACL_USER" >"$TLS_DIR/user"
    # The user may run what the mirror needs on its own keys (prefixes starting `tactful`,
    # which covers test prefixes like tactful-it-1234), and nothing dangerous (no FLUSHALL,
    # KEYS, CONFIG, DEBUG). The ACL file keeps the password off the command line (and `ps`).
    (
        umask 077
        printf 'user default off\n'
        printf 'user %s on >%s ~tactful* resetchannels -@all +@read +@write +@keyspace +@scripting +@connection -@dangerous\n' \
            "$ACL_USER" "$password"
    ) >"$TLS_DIR/users.acl"
    # Debian builds redis-server with TLS; a build without it rejects --tls-port and exits here.
    redis-server --bind 127.0.0.1 --port 0 --tls-port "$TLS_PORT" --protected-mode yes \
        --tls-cert-file "$TLS_DIR/server.pem" --tls-key-file "$TLS_DIR/server.key" \
        --tls-ca-cert-file "$TLS_DIR/ca.pem" --tls-auth-clients no \
        --aclfile "$TLS_DIR/users.acl" \
        --dir "$TLS_DIR" --save "" --appendonly no \
        --daemonize yes --pidfile "$TLS_DIR/redis.pid" --logfile "$TLS_DIR/redis.log" \
        || die "redis-server would not start with TLS (a build without TLS support?); see $TLS_DIR/redis.log"
    wait_pong "$TLS_DIR/redis.log" env REDISCLI_AUTH="$password" redis-cli --tls --cacert "$TLS_DIR/ca.pem" \
        -h 127.0.0.1 -p "$TLS_PORT" --user "$ACL_USER"
    printf 'rediss://127.0.0.1:%s/0\n' "$TLS_PORT" >"$TLS_DIR/url"
    say "redis tls: ready (pid $(<"$TLS_DIR/redis.pid")) on 127.0.0.1:$TLS_PORT, user $ACL_USER" \
        "(TACTFUL_REDIS_URL=$(<"$TLS_DIR/url") TACTFUL_REDIS_USERNAME=$ACL_USER" \
        "TACTFUL_REDIS_PASSWORD=\$(cat $TLS_DIR/password) TACTFUL_REDIS_CA_FILE=$TLS_DIR/ca.pem)"
}

tls_down() {
    local pid
    if pid="$(live_pid "$TLS_DIR/redis.pid" redis-server)"; then
        kill "$pid"
        wait_gone "$TLS_DIR/redis.pid"
        say "redis tls: stopped (pid $pid)"
    else
        say "redis tls: not running"
    fi
    rm -rf "$TLS_DIR"
}

wait_gone() {
    local deadline=$((SECONDS + START_TIMEOUT))
    while live_pid "$1" redis-server >/dev/null; do
        ((SECONDS < deadline)) || die "redis-server $(<"$1") did not stop"
        sleep 0.1
    done
}

status() {
    local port pid
    for port in "${PORTS[@]}"; do
        if pid="$(live_pid "$CLUSTER_DIR/$port/redis.pid" redis-server)"; then
            say "redis cluster node: running (pid $pid) on 127.0.0.1:$port"
        else
            say "redis cluster node: not running on 127.0.0.1:$port"
        fi
    done
    if pid="$(live_pid "$TLS_DIR/redis.pid" redis-server)"; then
        say "redis tls: running (pid $pid) on 127.0.0.1:$TLS_PORT"
    else
        say "redis tls: not running"
    fi
}

case "${1:-}" in
up)
    need
    case "${2:-all}" in
    cluster) cluster_up ;;
    tls) tls_up ;;
    all) cluster_up && tls_up ;;
    *) die "usage: $0 up [cluster|tls|all]" ;;
    esac
    ;;
down)
    cluster_down
    tls_down
    rmdir "$DIR" 2>/dev/null || true
    ;;
status) status ;;
*) die "usage: $0 up [cluster|tls|all] | down | status" ;;
esac
