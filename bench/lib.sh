# Shared by the bench scripts (run.sh, tls.sh, callgrind.sh): ports, waiting for a proxy, the cluster and
# pgbench's tables. Each script defines log/die and WORK before sourcing this file.

free_port() {
    python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1]); s.close()"
}

wait_port() { # port pid name logfile [tries of 0.1 s]
    local i
    for i in $(seq 1 "${5:-100}"); do
        kill -0 "$2" 2>/dev/null || { tail -n 20 "$4" >&2; die "$3 exited at startup (log: $4)"; }
        python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 0.2).close()" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    tail -n 20 "$4" >&2
    die "$3 is not listening on $1"
}

use_cluster() { # CLUSTER_ENV's running cluster, or a throwaway one in $WORK/cluster (sets CLUSTER_DIR to stop it)
    if [[ -n "${CLUSTER_ENV:-}" ]]; then
        # shellcheck disable=SC1090
        . "$CLUSTER_ENV"
    else
        CLUSTER_DIR="$WORK/cluster"
        scripts/cluster.sh start "$CLUSTER_DIR" >/dev/null
        # shellcheck disable=SC1091
        . "$CLUSTER_DIR/cluster.env"
    fi
    PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
    PGBENCH="$PG_BIN/pgbench"
    [[ -x "$PGBENCH" ]] || PGBENCH="$(command -v pgbench)"
    PSQL="$PG_BIN/psql"
    [[ -x "$PSQL" ]] || PSQL="$(command -v psql)"
    export PGUSER=sy_scram PGPASSWORD=scram-pass PGDATABASE=sydb PGHOST=127.0.0.1
}

init_pgbench() { # scale: pgbench -i on the primary unless SKIP_INIT=1
    [[ "${SKIP_INIT:-0}" == 1 ]] && return 0
    log "pgbench -i -s $1 (direct to the primary on $PRIMARY_PORT)"
    "$PGBENCH" -i -q -s "$1" -p "$PRIMARY_PORT" >"$WORK/init.log" 2>&1 || { cat "$WORK/init.log" >&2; die "pgbench -i failed"; }
}
