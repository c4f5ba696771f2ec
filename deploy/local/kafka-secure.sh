#!/usr/bin/env bash
# A second local broker, secured the way production clusters usually are:
# SASL_SSL with SCRAM-SHA-512 on loopback, so tactful's TLS and SASL code paths
# run against a real broker (tests/integration/test_secure_broker.py).
#
#   kafka-secure.sh up       make a CA and a broker certificate (openssl), create the
#                            SCRAM users while formatting the storage (the broker's own
#                            StorageTool, --add-scram), start the broker, wait until an
#                            authenticated client gets metadata over TLS
#   kafka-secure.sh env      print the TACTFUL_* client variables for this broker
#                            (eval "$(deploy/local/kafka-secure.sh env)")
#   kafka-secure.sh down     stop the broker this run dir started (pid file)
#   kafka-secure.sh status   say whether it runs
#   kafka-secure.sh wipe     `down`, then delete its run dir: data, certificates, users
#
# The Kafka jars are services.sh's (same pinned version, same cache; `services.sh
# fetch` fetches them). Everything this profile makes lives in
# $TACTFUL_RUN_DIR/kafka-secure; the plain broker of services.sh is not touched.
#
# Listeners: SASL_SSL on 127.0.0.1:$TACTFUL_SECURE_KAFKA_PORT for clients and
# between brokers (as the admin user); the KRaft controller listener stays
# PLAINTEXT on loopback. No ACLs: authentication is what is tested here.
#
# The client user is $TACTFUL_SASL_USERNAME (default tactful) with password
# $TACTFUL_SASL_PASSWORD (default: random, made at the first `up`); the same
# variables tactful's clients read. Users are created when the storage is
# formatted, so changing them takes a `wipe`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=deploy/local/lib.sh
source "$ROOT/deploy/local/lib.sh"

# ---- settings -------------------------------------------------------------
KAFKA_VERSION="${TACTFUL_KAFKA_VERSION:-4.4.0}"
PORT="${TACTFUL_SECURE_KAFKA_PORT:-19192}"
CONTROLLER_PORT="${TACTFUL_SECURE_KAFKA_CONTROLLER_PORT:-19193}"
HEAP="${TACTFUL_KAFKA_HEAP:-512m}"
START_TIMEOUT="${TACTFUL_KAFKA_START_TIMEOUT:-90}"   # seconds
RUN_DIR="${TACTFUL_RUN_DIR:-$ROOT/.run}"
CACHE_DIR="${TACTFUL_CACHE_DIR:-$ROOT/.cache}"
PYTHON="${TACTFUL_PYTHON:-$ROOT/.venv/bin/python}"
JAVA="${JAVA:-java}"
CLIENT_USER="${TACTFUL_SASL_USERNAME:-tactful}"

KAFKA_LIBS="$CACHE_DIR/kafka/$KAFKA_VERSION/libs"
HOME_DIR="$RUN_DIR/kafka-secure"
DATA="$HOME_DIR/data"
LOGS="$HOME_DIR/logs"
TLS="$HOME_DIR/tls"
PID_FILE="$HOME_DIR/kafka.pid"
# Secrets made at the first `up`, kept (mode 600) so `up` after `down` and `env` agree.
SECRETS="$HOME_DIR/secrets"

random_secret() { openssl rand -hex 16; }

# ---- secrets, certificates -------------------------------------------------

# The admin (inter-broker) password is always random; the client's comes from
# TACTFUL_SASL_PASSWORD when set. Written once; later runs read them back.
make_secrets() {
    mkdir -p "$HOME_DIR"
    if [[ ! -s "$SECRETS" ]]; then
        (
            umask 077
            printf 'ADMIN_PASSWORD=%s\nCLIENT_USER=%s\nCLIENT_PASSWORD=%s\n' \
                "$(random_secret)" "$CLIENT_USER" "${TACTFUL_SASL_PASSWORD:-$(random_secret)}" >"$SECRETS"
        )
    fi
    # shellcheck disable=SC1090
    source "$SECRETS"
    if [[ -n "${TACTFUL_SASL_PASSWORD:-}" && "$TACTFUL_SASL_PASSWORD" != "$CLIENT_PASSWORD" ]] \
        || [[ "$CLIENT_USER" != "${TACTFUL_SASL_USERNAME:-$CLIENT_USER}" ]]; then
        say "warning: $HOME_DIR was set up with other SCRAM credentials; they stay until '$0 wipe' (see '$0 env')" >&2
    fi
}

# A CA, and a broker key and certificate it signs, valid for 127.0.0.1 and
# localhost (clients verify the host name: librdkafka and Python's ssl both do by
# default). PEM throughout: the broker reads PEM key and trust stores directly.
make_certificates() {
    [[ -s "$TLS/broker.pem" ]] && return 0
    command -v openssl >/dev/null || die "openssl not found (needed to make the test certificates)"
    rm -rf "$TLS"
    mkdir -p "$TLS"
    local log="$TLS/openssl.log"
    {
        openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=tactful local test CA" \
            -keyout "$TLS/ca.key" -out "$TLS/ca.pem"
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
            -keyout "$TLS/broker.key" -out "$TLS/broker.csr"
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >"$TLS/broker.ext"
        openssl x509 -req -in "$TLS/broker.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" -CAcreateserial \
            -days 30 -extfile "$TLS/broker.ext" -out "$TLS/broker.crt"
        # Kafka's PEM key store wants an unencrypted PKCS#8 key followed by the chain.
        openssl pkcs8 -topk8 -nocrypt -in "$TLS/broker.key" -out "$TLS/broker.p8"
    } >"$log" 2>&1 || { cat "$log" >&2; die "making the test certificates failed"; }
    cat "$TLS/broker.p8" "$TLS/broker.crt" "$TLS/ca.pem" >"$TLS/broker.pem.partial"
    chmod 600 "$TLS"/*.key "$TLS/broker.p8" "$TLS/broker.pem.partial"
    mv "$TLS/broker.pem.partial" "$TLS/broker.pem"
}

# ---- Kafka -----------------------------------------------------------------

write_config() {
    mkdir -p "$DATA" "$LOGS"
    (
        umask 077   # holds the admin password
        cat >"$HOME_DIR/server.properties" <<EOF
# Generated by deploy/local/kafka-secure.sh on every \`up\`; edit the script, not this.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=SASL_SSL://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=SASL_SSL://127.0.0.1:$PORT
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
inter.broker.listener.name=SASL_SSL
controller.listener.names=CONTROLLER
log.dirs=$DATA

sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$ADMIN_PASSWORD";
ssl.keystore.type=PEM
ssl.keystore.location=$TLS/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$TLS/ca.pem
ssl.client.auth=none

auto.create.topics.enable=false
num.partitions=4
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
    )
}

kafka_java() {
    "$JAVA" -Xmx256m -cp "$KAFKA_LIBS/*" \
        -Dlog4j2.configurationFile="$ROOT/deploy/kafka/log4j2.properties" \
        -Dkafka.logs.dir="$LOGS" "$@"
}

# Format once; the SCRAM users go into the metadata log here, before the broker
# first starts (KRaft's way: no ZooKeeper, no running broker needed).
format_storage() {
    [[ -e "$DATA/meta.properties" ]] && return 0
    local cluster_id
    cluster_id="$("$PYTHON" -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("="))')"
    kafka_java kafka.tools.StorageTool format --ignore-formatted \
        --cluster-id "$cluster_id" --config "$HOME_DIR/server.properties" \
        --add-scram "SCRAM-SHA-512=[name=admin,password=$ADMIN_PASSWORD]" \
        --add-scram "SCRAM-SHA-512=[name=$CLIENT_USER,password=$CLIENT_PASSWORD]" \
        >>"$LOGS/format.log" 2>&1 \
        || { tail -n 30 "$LOGS/format.log" >&2; die "formatting the secure broker's storage failed"; }
}

# Ready means the client user gets metadata over TLS, verified against our CA.
ready() {
    # The password goes in the environment, not on a command line that `ps` shows.
    READY_PASSWORD="$CLIENT_PASSWORD" "$PYTHON" - "127.0.0.1:$PORT" "$TLS/ca.pem" "$CLIENT_USER" <<'EOF' 2>/dev/null
import os, sys
from confluent_kafka.admin import AdminClient
servers, ca, user = sys.argv[1:]
admin = AdminClient({
    "bootstrap.servers": servers, "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": user, "sasl.password": os.environ["READY_PASSWORD"], "ssl.ca.location": ca, "log_level": 0,
})
md = admin.list_topics(timeout=3)
sys.exit(0 if md.brokers else 1)
EOF
}

show_logs() {
    local f
    for f in server.log stdout.log; do
        if [[ -s "$LOGS/$f" ]]; then
            say "---- last lines of $LOGS/$f ----" >&2
            tail -n 30 "$LOGS/$f" >&2
        fi
    done
}

cmd_up() {
    local pid
    make_secrets
    if pid="$(live_pid "$PID_FILE" "$HOME_DIR/server.properties")"; then
        say "kafka-secure: already running (pid $pid) on 127.0.0.1:$PORT"
        return 0
    fi
    rm -f "$PID_FILE"
    for p in "$PORT" "$CONTROLLER_PORT"; do
        if port_open "$p"; then
            die "port $p is taken by another process (set TACTFUL_SECURE_KAFKA_PORT / TACTFUL_SECURE_KAFKA_CONTROLLER_PORT)"
        fi
    done
    command -v "$JAVA" >/dev/null || die "java not found (Kafka $KAFKA_VERSION needs Java 17+)"
    [[ -e "$KAFKA_LIBS/.complete" ]] || die "no Kafka $KAFKA_VERSION jars in $KAFKA_LIBS: run 'deploy/local/services.sh fetch' (or set TACTFUL_CACHE_DIR)"
    [[ -x "$PYTHON" ]] || die "$PYTHON not found: run 'make install' first (the readiness check uses confluent_kafka)"
    make_certificates
    write_config
    format_storage
    local f
    for f in server.log stdout.log; do
        if [[ -e "$LOGS/$f" ]]; then mv -f "$LOGS/$f" "$LOGS/$f.prev"; fi
    done
    : >"$LOGS/stdout.log"
    setsid "$JAVA" -Xms"$HEAP" -Xmx"$HEAP" \
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
        -cp "$KAFKA_LIBS/*" \
        -Dlog4j2.configurationFile="$ROOT/deploy/kafka/log4j2.properties" \
        -Dkafka.logs.dir="$LOGS" \
        kafka.Kafka "$HOME_DIR/server.properties" \
        >>"$LOGS/stdout.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$PID_FILE"
    say "kafka-secure: starting $KAFKA_VERSION (pid $pid) on 127.0.0.1:$PORT (SASL_SSL, SCRAM-SHA-512) ..."
    local start=$SECONDS
    until ready; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE"
            show_logs
            die "the secure broker exited during startup"
        fi
        if ((SECONDS - start >= START_TIMEOUT)); then
            show_logs
            stop_pid "$pid" 10
            rm -f "$PID_FILE"
            die "the secure broker was not ready after ${START_TIMEOUT}s (stopped it)"
        fi
        sleep 0.5
    done
    say "kafka-secure: ready in $((SECONDS - start))s (logs: $LOGS/server.log; client variables: $0 env)"
}

cmd_env() {
    [[ -s "$SECRETS" && -s "$TLS/ca.pem" ]] || die "no secure broker set up in $HOME_DIR: run '$0 up' first"
    # shellcheck disable=SC1090
    source "$SECRETS"
    printf 'export TACTFUL_BOOTSTRAP_SERVERS=%q\n' "127.0.0.1:$PORT"
    printf 'export TACTFUL_SECURITY_PROTOCOL=SASL_SSL\n'
    printf 'export TACTFUL_SASL_MECHANISM=SCRAM-SHA-512\n'
    printf 'export TACTFUL_SASL_USERNAME=%q\n' "$CLIENT_USER"
    printf 'export TACTFUL_SASL_PASSWORD=%q\n' "$CLIENT_PASSWORD"
    printf 'export TACTFUL_SSL_CAFILE=%q\n' "$TLS/ca.pem"
}

cmd_down() {
    local pid
    if pid="$(live_pid "$PID_FILE" "$HOME_DIR/server.properties")"; then
        stop_pid "$pid" 30
        say "kafka-secure: stopped (pid $pid)"
    else
        say "kafka-secure: not running"
    fi
    rm -f "$PID_FILE"
}

cmd_wipe() {
    cmd_down
    local p
    for p in "$PORT" "$CONTROLLER_PORT"; do
        if port_open "$p"; then
            die "port $p still answers after stopping what $HOME_DIR started; wiped nothing"
        fi
    done
    if [[ -e "$HOME_DIR" ]]; then
        rm -rf -- "$HOME_DIR"
        say "kafka-secure: removed $HOME_DIR"
    fi
}

cmd_status() {
    local pid
    if pid="$(live_pid "$PID_FILE" "$HOME_DIR/server.properties")"; then
        say "kafka-secure: running (pid $pid) on 127.0.0.1:$PORT, version $KAFKA_VERSION"
    else
        say "kafka-secure: not running"
        return 1
    fi
}

case "${1:-}" in
    up) cmd_up ;;
    env) cmd_env ;;
    down) cmd_down ;;
    status) cmd_status ;;
    wipe) cmd_wipe ;;
    *) say "usage: $0 {up|env|down|status|wipe}" >&2; exit 2 ;;
esac
