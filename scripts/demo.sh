#!/usr/bin/env bash
# Quick start: builds Switchyard (release), starts a throwaway primary + replica and the proxy in
# front of them, all under /tmp/switchyard-demo, and prints a DATABASE_URL to try.
# Usage: scripts/demo.sh [start] | stop | status
set -euo pipefail

cd "$(dirname "$0")/.."
REPO="$(pwd)"
DEMO_DIR="${SWITCHYARD_DEMO_DIR:-/tmp/switchyard-demo}"
CLUSTER_DIR="$DEMO_DIR/cluster"
PID_FILE="$DEMO_DIR/switchyard.pid"
LOG_FILE="$DEMO_DIR/switchyard.log"

if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi

log() { echo "demo.sh: $*" >&2; }
die() { echo "demo.sh: error: $*" >&2; exit 1; }

stop_demo() {
    if [[ -f "$PID_FILE" ]]; then
        local pid
        pid="$(cat "$PID_FILE")"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
            log "stopped switchyard (pid $pid)"
        fi
        rm -f "$PID_FILE"
    fi
    if [[ -d "$CLUSTER_DIR" ]]; then
        scripts/cluster.sh stop "$CLUSTER_DIR" >/dev/null
        log "stopped the demo cluster"
    fi
    rm -f "$DEMO_DIR/proxy.conf" "$DEMO_DIR/userlist.txt" "$LOG_FILE"
    rmdir "$DEMO_DIR" 2>/dev/null || true
}

port_free() {
    python3 -c "import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', int(sys.argv[1]))); s.close()" "$1" 2>/dev/null
}

free_port() {
    python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1]); s.close()"
}

start_demo() {
    scripts/deps.sh
    log "building (release)"
    swift build -c release
    local bin
    bin="$(swift build -c release --show-bin-path)/switchyard"
    [[ -x "$bin" ]] || die "no binary at $bin"

    stop_demo
    mkdir -p "$DEMO_DIR"
    chmod 755 "$DEMO_DIR"
    scripts/cluster.sh start "$CLUSTER_DIR" >/dev/null
    # shellcheck disable=SC1091
    . "$CLUSTER_DIR/cluster.env"

    local port=6432
    if ! port_free "$port"; then
        port="$(free_port)"
        log "port 6432 is busy; using $port"
    fi

    cat >"$DEMO_DIR/userlist.txt" <<'EOF'
"sy_scram" "scram-pass"
"sy_md5" "md5-pass"
"sy_trust" "trust-pass"
"sy_admin" "admin-pass"
EOF
    cat >"$DEMO_DIR/proxy.conf" <<EOF
; Switchyard demo configuration (see proxy.conf at the top of the repository for every key).
[proxy]
listen_addr = 127.0.0.1
listen_port = $port
pool_mode = session
auth_type = scram-sha-256
auth_file = $DEMO_DIR/userlist.txt
default_pool_size = 20
max_client_conn = 1000
server_reset_query = DISCARD ALL
admin_users = sy_admin
log_level = info

[primary]
host = 127.0.0.1
port = $PRIMARY_PORT

[replica.r1]
host = 127.0.0.1
port = $REPLICA_PORT
weight = 1
EOF

    "$bin" --config "$DEMO_DIR/proxy.conf" --check || die "switchyard --check rejected $DEMO_DIR/proxy.conf"
    nohup "$bin" --config "$DEMO_DIR/proxy.conf" >"$LOG_FILE" 2>&1 </dev/null &
    echo $! >"$PID_FILE"

    local ok=0
    for _ in $(seq 1 100); do
        if ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
            tail -n 30 "$LOG_FILE" >&2
            die "switchyard exited at startup (log: $LOG_FILE)"
        fi
        if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 0.2).close()" "$port" 2>/dev/null; then
            ok=1; break
        fi
        sleep 0.1
    done
    (( ok )) || { tail -n 30 "$LOG_FILE" >&2; die "switchyard is not listening on $port (log: $LOG_FILE)"; }

    cat <<EOF

Switchyard is running (pid $(cat "$PID_FILE")) on 127.0.0.1:$port
  primary  127.0.0.1:$PRIMARY_PORT    replica  127.0.0.1:$REPLICA_PORT
  config   $DEMO_DIR/proxy.conf
  log      $LOG_FILE

DATABASE_URL=postgres://sy_scram:scram-pass@127.0.0.1:$port/sydb

Try:   psql "postgres://sy_scram:scram-pass@127.0.0.1:$port/sydb" -c "select 1"
Stop:  scripts/demo.sh stop
EOF
}

case "${1:-start}" in
    start) start_demo ;;
    stop) stop_demo ;;
    status)
        if [[ -f "$PID_FILE" ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
            echo "switchyard running (pid $(cat "$PID_FILE")), config $DEMO_DIR/proxy.conf"
        else
            echo "switchyard not running"; exit 1
        fi
        ;;
    *) echo "usage: $0 [start] | stop | status" >&2; exit 2 ;;
esac
