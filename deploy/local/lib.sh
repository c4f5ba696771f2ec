# Shell helpers the deploy/local scripts share (sourced, never run).

say() { printf '%s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Pid from a pid file if that process is alive and its command line contains
# $2 (guards against a stale file whose pid was reused by something else).
live_pid() {
    local file="$1" pattern="$2" pid
    [[ -s "$file" ]] || return 1
    pid="$(<"$file")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern" || return 1
    printf '%s' "$pid"
}

# Send SIGTERM to one pid and wait up to $2 seconds, then SIGKILL.
stop_pid() {
    local pid="$1" grace="$2" i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    say "  pid $pid still alive after ${grace}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}
