#!/usr/bin/env bash
# Throwaway PostgreSQL 15 primary + streaming hot-standby replica on free loopback ports,
# with the test roles (sy_scram, sy_md5, sy_trust, sy_admin) and database sydb.
# Usage: scripts/cluster.sh start DIR | stop DIR | status DIR
set -euo pipefail

MARKER=".switchyard-cluster"

usage() {
    echo "usage: $0 start DIR | stop DIR | status DIR" >&2
    exit 2
}

die() {
    echo "cluster.sh: error: $*" >&2
    exit 1
}

log() { echo "cluster.sh: $*" >&2; }

find_pg_bin() {
    if [[ -n "${PG_BIN:-}" && -x "${PG_BIN}/pg_ctl" ]]; then echo "$PG_BIN"; return; fi
    local d
    for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin /usr/local/pgsql/bin; do
        if [[ -x "$d/pg_ctl" && -x "$d/initdb" ]]; then echo "$d"; return; fi
    done
    if command -v pg_ctl >/dev/null 2>&1; then dirname "$(command -v pg_ctl)"; return; fi
    die "no PostgreSQL server binaries found (install postgresql-15: scripts/deps.sh)"
}

# Runs a command as the postgres OS user when we are root (Postgres refuses root).
as_pg() {
    if [[ "$(id -u)" == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 - "$@" <<'EOF'
import socket, sys
taken = {int(p) for p in sys.argv[1:]}
while True:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    if port not in taken:
        print(port)
        break
EOF
}

show_logs() {
    local f
    for f in "$DIR"/*.log; do
        [[ -f "$f" ]] || continue
        echo "----- $f (last 40 lines) -----" >&2
        tail -n 40 "$f" >&2 || true
    done
}

psql_primary() {
    as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PRIMARY_PORT" -U postgres "$@"
}

is_running() { # datadir
    [[ -f "$1/postmaster.pid" ]] && as_pg "$PG_BIN/pg_ctl" -D "$1" status >/dev/null 2>&1
}

stop_instance() { # datadir
    if [[ -d "$1" ]] && is_running "$1"; then
        as_pg "$PG_BIN/pg_ctl" -D "$1" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    fi
}

write_env() {
    cat >"$DIR/cluster.env" <<EOF
PRIMARY_PORT=$PRIMARY_PORT
REPLICA_PORT=$REPLICA_PORT
PGHOST_SOCKET_DIR=$DIR
PG_BIN=$PG_BIN
EOF
    chmod 644 "$DIR/cluster.env"
}

cmd_start() {
    # Reuse a healthy cluster: start is idempotent.
    if [[ -f "$DIR/$MARKER" && -f "$DIR/cluster.env" ]]; then
        # shellcheck disable=SC1091
        . "$DIR/cluster.env"
        if is_running "$DIR/primary" && is_running "$DIR/replica"; then
            log "cluster in $DIR is already running"
            cat "$DIR/cluster.env"
            return 0
        fi
        log "cluster in $DIR is incomplete or stopped; recreating it"
        cmd_stop
    elif [[ -d "$DIR" && -n "$(ls -A "$DIR")" && ! -f "$DIR/$MARKER" ]]; then
        die "$DIR exists, is not empty and is not a cluster made by this script; refusing to touch it"
    fi

    mkdir -p "$DIR"
    DIR="$(cd "$DIR" && pwd)"
    # Unix socket paths are limited to 107 bytes: DIR/.s.PGSQL.NNNNN must fit.
    (( ${#DIR} <= 90 )) || die "DIR path too long for unix sockets (${#DIR} > 90 chars): $DIR"
    touch "$DIR/$MARKER"
    if [[ "$(id -u)" == 0 ]]; then
        id postgres >/dev/null 2>&1 || die "no 'postgres' OS user (install postgresql-15: scripts/deps.sh)"
        chmod 755 "$DIR"
        chown -R postgres: "$DIR"
        runuser -u postgres -- test -x "$DIR" -a -w "$DIR" \
            || die "user postgres cannot enter/write $DIR (check the modes of its parent directories)"
    fi

    trap 'rc=$?; if (( rc != 0 )); then echo "cluster.sh: start failed (exit $rc); logs:" >&2; show_logs; fi' EXIT

    PRIMARY_PORT="$(free_port)"
    REPLICA_PORT="$(free_port "$PRIMARY_PORT")"
    local P="$DIR/primary" R="$DIR/replica"

    log "initdb primary in $P"
    as_pg "$PG_BIN/initdb" -D "$P" -U postgres -E UTF8 --no-locale --auth-local=trust \
        --auth-host=scram-sha-256 >"$DIR/initdb.log" 2>&1 || die "initdb failed (see $DIR/initdb.log)"

    as_pg tee -a "$P/postgresql.conf" >/dev/null <<EOF

# ---- switchyard test cluster ----
listen_addresses = '127.0.0.1'
port = $PRIMARY_PORT
unix_socket_directories = '$DIR'
max_connections = 200
shared_buffers = 32MB
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = replica
max_wal_senders = 5
max_replication_slots = 5
wal_keep_size = 256MB
hot_standby = on
password_encryption = 'scram-sha-256'
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
EOF

    as_pg tee "$P/pg_hba.conf" >/dev/null <<EOF
# TYPE  DATABASE     USER      ADDRESS         METHOD
local   all          postgres                  trust
local   replication  postgres                  trust
host    all          sy_scram  127.0.0.1/32    scram-sha-256
host    all          sy_md5    127.0.0.1/32    md5
host    all          sy_trust  127.0.0.1/32    trust
host    all          sy_admin  127.0.0.1/32    scram-sha-256
host    all          all       127.0.0.1/32    scram-sha-256
EOF

    log "starting primary on 127.0.0.1:$PRIMARY_PORT"
    as_pg "$PG_BIN/pg_ctl" -D "$P" -l "$DIR/primary.log" -w -t 60 start >/dev/null \
        || die "primary did not start (see $DIR/primary.log)"

    psql_primary -d postgres >/dev/null <<'EOF'
SET password_encryption = 'scram-sha-256';
CREATE ROLE sy_scram LOGIN PASSWORD 'scram-pass';
CREATE ROLE sy_admin LOGIN SUPERUSER PASSWORD 'admin-pass';
CREATE ROLE sy_trust LOGIN;
SET password_encryption = 'md5';
CREATE ROLE sy_md5 LOGIN PASSWORD 'md5-pass';
RESET password_encryption;
CREATE DATABASE sydb OWNER sy_scram;
\c sydb
GRANT ALL ON SCHEMA public TO PUBLIC;
EOF

    log "pg_basebackup replica into $R"
    as_pg "$PG_BIN/pg_basebackup" -D "$R" -h "$DIR" -p "$PRIMARY_PORT" -U postgres -R -X stream -c fast \
        >"$DIR/basebackup.log" 2>&1 || die "pg_basebackup failed (see $DIR/basebackup.log)"
    as_pg tee -a "$R/postgresql.conf" >/dev/null <<EOF
port = $REPLICA_PORT
EOF

    log "starting replica on 127.0.0.1:$REPLICA_PORT"
    as_pg "$PG_BIN/pg_ctl" -D "$R" -l "$DIR/replica.log" -w -t 60 start >/dev/null \
        || die "replica did not start (see $DIR/replica.log)"

    local i n=0
    for i in $(seq 1 150); do
        n="$(psql_primary -d postgres -Atc "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'" 2>/dev/null || echo 0)"
        [[ "$n" == 1 ]] && break
        sleep 0.2
    done
    [[ "$n" == 1 ]] || die "replica is not streaming after 30 s"
    local rec
    rec="$(as_pg "$PG_BIN/psql" -X -h "$DIR" -p "$REPLICA_PORT" -U postgres -d sydb -Atc 'SELECT pg_is_in_recovery()')"
    [[ "$rec" == t ]] || die "replica is not in recovery (pg_is_in_recovery=$rec)"

    write_env
    trap - EXIT
    log "primary 127.0.0.1:$PRIMARY_PORT, replica 127.0.0.1:$REPLICA_PORT (streaming); env in $DIR/cluster.env"
    cat "$DIR/cluster.env"
}

cmd_stop() {
    if [[ ! -e "$DIR" ]]; then
        log "$DIR does not exist; nothing to stop"
        return 0
    fi
    [[ -f "$DIR/$MARKER" ]] || die "$DIR is not a cluster made by this script (no $MARKER); refusing to remove it"
    stop_instance "$DIR/replica"
    stop_instance "$DIR/primary"
    rm -rf "$DIR"
    log "stopped and removed $DIR"
}

cmd_status() {
    [[ -f "$DIR/$MARKER" ]] || die "$DIR is not a cluster made by this script"
    local ok=0
    is_running "$DIR/primary" && echo "primary: running" || { echo "primary: stopped"; ok=1; }
    is_running "$DIR/replica" && echo "replica: running" || { echo "replica: stopped"; ok=1; }
    [[ -f "$DIR/cluster.env" ]] && cat "$DIR/cluster.env"
    return $ok
}

[[ $# == 2 ]] || usage
ACTION="$1"
DIR="$2"
[[ -n "$DIR" && "$DIR" != / ]] || die "refusing DIR='$DIR'"
PG_BIN="$(find_pg_bin)"

case "$ACTION" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) usage ;;
esac
