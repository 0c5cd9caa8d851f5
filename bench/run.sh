#!/usr/bin/env bash
# Side-by-side benchmark: pgbench select-only (-S) and TPC-B-like through direct Postgres, PgBouncer
# (Debian's), Pgpool-II (Debian's, streaming-replication mode with load balancing) and Switchyard, in
# interleaved rounds. Reports median TPS, average and p99 latency, the proxy's CPU microseconds per
# transaction (utime+stime from /proc; for Pgpool-II, summed over all its processes) and the ratios to
# PgBouncer; with REPLICAS > 0 it first checks, once, on which servers each target's reads ran; with
# Switchyard it appends the classifier microbenchmark (switchyard --microbench classifier).
# bench/routing.sh is this script with read/write-splitting defaults. bench/README.md has results.
#
# Knobs (environment):
#   ROUNDS=3  DURATION=15  CLIENTS=16  THREADS=2  SCALE=10  PROTOCOL=simple
#   POOL_SIZE=CLIENTS+4    same default_pool_size for PgBouncer and Switchyard
#   TARGETS="direct pgbouncer switchyard"   (add pgpool for Pgpool-II, switchyard-w2 for a second Switchyard
#                                     with workers = 2 beside the first)
#   SY_WORKERS=1                      workers of the `switchyard` target (PgBouncer has one thread)
#   SY_SETTINGS='key = value'         extra [proxy] lines for Switchyard (e.g. server_pipeline_depth = 1)
#   SCRIPTS="select-only tpcb"
#   CLUSTER_ENV=path/to/cluster.env   use a running cluster (scripts/cluster.sh) instead of a new one
#   SKIP_DEPS=1  SKIP_BUILD=1  SKIP_INIT=1 (reuse pgbench tables)
#   SWITCHYARD_BIN=path               use this binary (implies no build)
#   REPLICAS=0|1|2...                 replicas given to Switchyard and Pgpool-II: 1 is the cluster's, each
#                                     further one is made here by pg_basebackup (and removed at exit).
#                                     Switchyard routes reads to them only with POOL_MODE=transaction.
#   BENCH_REPLICA=1                   old name of REPLICAS=1
#   POOL_MODE=session|transaction     pool mode of PgBouncer and Switchyard (Pgpool-II pools sessions only)
#   PGPOOL_CHILDREN=CLIENTS+4         Pgpool-II num_init_children (one client per child)
#   PGPOOL_STATEMENT_LB=on|off        Pgpool-II statement_level_load_balance (on: a replica per statement,
#                                     like Switchyard's per-transaction choice; off: one per session)
#   VERIFY_TX=500                     transactions per client (4 clients) of the routing check; 0 skips it
#   MICROBENCH=1  MICROBENCH_SECONDS=1   classifier microbenchmark (needs the switchyard target)
#   LATENCY_PLOT=file.png             plot the latency distribution of each target (last round) and print
#                                     percentiles and the p99 each proxy adds over direct (bench/latency_plot.py)
#   BENCH_OUT=file.md                 also write the Markdown summary there
#   PGBOUNCER_BIN=path                PgBouncer binary (default: Debian's `pgbouncer`, 1.18, which cannot keep
#                                     prepared statements in transaction mode; bench/pgbouncer-source.sh builds
#                                     1.24.1 from Debian's source package). From 1.21 on the bench sets
#                                     max_prepared_statements = PGB_MAX_PREPARED (200, 1.24's default).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO="$(pwd)"

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-15}"
CLIENTS="${CLIENTS:-16}"
THREADS="${THREADS:-2}"
SCALE="${SCALE:-10}"
PROTOCOL="${PROTOCOL:-simple}"
PGBOUNCER_BIN="${PGBOUNCER_BIN:-pgbouncer}"
POOL_MODE="${POOL_MODE:-session}"   # session | transaction, the same for PgBouncer and Switchyard
POOL_SIZE="${POOL_SIZE:-$((CLIENTS + 4))}"
TARGETS="${TARGETS:-direct pgbouncer switchyard}"
SCRIPTS="${SCRIPTS:-select-only tpcb}"
REPLICAS="${REPLICAS:-${BENCH_REPLICA:-0}}"
PGPOOL_CHILDREN="${PGPOOL_CHILDREN:-$((CLIENTS + 4))}"
PGPOOL_STATEMENT_LB="${PGPOOL_STATEMENT_LB:-on}"
VERIFY_TX="${VERIFY_TX:-500}"
MICROBENCH="${MICROBENCH:-1}"
MICROBENCH_SECONDS="${MICROBENCH_SECONDS:-1}"
[[ "$REPLICAS" =~ ^[0-9]+$ ]] || { echo "bench: error: REPLICAS must be a number" >&2; exit 2; }

if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi

log() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }

WORK="$(mktemp -d /tmp/sy-bench.XXXXXX)"
chmod 755 "$WORK"
CLUSTER_DIR=""
if [[ -n "${LATENCY_PLOT:-}" ]]; then
    export LATENCY_DIR="$WORK/latency"
    mkdir -p "$LATENCY_DIR"
    LATENCY_PLOT="$(realpath -m "$LATENCY_PLOT")"
fi
PGB_PID=""
SY_PID=""
SY2_PID=""
SY_WORKERS="${SY_WORKERS:-1}"
PGPOOL_PID=""
EXTRA_REPLICAS=()   # data directories of the replicas made here

# Root runs the servers as postgres (Postgres and PgBouncer refuse root); setpriv execs, so $! is the server.
AS_PG=()
[[ "$(id -u)" == 0 ]] && AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups)

stop_pid() { # pid signal: the signal, then up to 15 s for it to exit, then SIGKILL
    local pid="$1" i
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill "-$2" "$pid" 2>/dev/null || true
    for i in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local pid d kids=""
    if [[ -n "$PGPOOL_PID" ]]; then
        kids="$(descendants "$PGPOOL_PID" 2>/dev/null || true)"
        stop_pid "$PGPOOL_PID" INT   # fast shutdown (TERM waits for clients)
        for pid in $kids; do          # children that outlived their parent (only ours, by pid)
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
        done
    fi
    stop_pid "$PGB_PID" TERM
    stop_pid "$SY_PID" TERM
    stop_pid "$SY2_PID" TERM
    for d in "${EXTRA_REPLICAS[@]}"; do
        if [[ -f "$d/postmaster.pid" ]]; then
            "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$d" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
        fi
        rm -rf "$(dirname "$d")"
    done
    if [[ -n "$CLUSTER_DIR" ]]; then
        "$REPO/scripts/cluster.sh" stop "$CLUSTER_DIR" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK/logs"
}
trap cleanup EXIT

# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"

descendants() { # pid -> the pids of its live descendants
    python3 - "$1" <<'EOF'
import os, sys
parent = {}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            s = open(f"/proc/{d}/stat").read()
        except OSError:
            continue
        parent[int(d)] = int(s[s.rindex(")") + 2:].split()[1])
tree, grew = {int(sys.argv[1])}, True
while grew:
    new = {p for p, pp in parent.items() if pp in tree and p not in tree}
    tree |= new
    grew = bool(new)
print(" ".join(str(p) for p in sorted(tree - {int(sys.argv[1])})))
EOF
}

cpu_ticks() { # pid -> "total kernel" CPU clock ticks of it and its live descendants (utime+stime; stime), plus
    # what the children they reaped used (cutime+cstime): multi-process servers (Pgpool-II) are counted whole,
    # exited children too.
    python3 - "$1" <<'EOF'
import os, sys
root = int(sys.argv[1])
procs = {}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            s = open(f"/proc/{d}/stat").read()
        except OSError:
            continue
        f = s[s.rindex(")") + 2:].split()   # f[0] is field 3 (state): utime..cstime are fields 14..17
        procs[int(d)] = (int(f[1]), int(f[11]) + int(f[12]) + int(f[13]) + int(f[14]), int(f[12]) + int(f[14]))
tree, grew = {root}, True
while grew:
    new = {p for p, (pp, _, _) in procs.items() if pp in tree and p not in tree}
    tree |= new
    grew = bool(new)
print(sum(procs[p][1] for p in tree if p in procs), sum(procs[p][2] for p in tree if p in procs))
EOF
}

has_target() { [[ " $TARGETS " == *" $1 "* ]]; }
drop_target() { TARGETS="$(echo " $TARGETS " | sed -e "s/ $1 / /g" -e 's/^ *//' -e 's/ *$//')"; }

# ---- 1. dependencies and build ----
[[ "${SKIP_DEPS:-0}" == 1 ]] || scripts/deps.sh
PGPOOL_BIN="$(command -v pgpool || echo /usr/sbin/pgpool)"
if has_target pgpool && [[ ! -x "$PGPOOL_BIN" ]]; then
    if [[ "${SKIP_DEPS:-0}" != 1 ]]; then
        # Debian's pgpool2 (4.3 on bookworm). Its service is not wanted: this script runs its own instance.
        log "installing pgpool2"
        SUDO=()
        [[ "$(id -u)" == 0 ]] || SUDO=(sudo)
        "${SUDO[@]}" apt-get update -qq || true
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pgpool2 >/dev/null \
            || log "WARNING: apt-get install pgpool2 failed"
        "${SUDO[@]}" service pgpool2 stop >/dev/null 2>&1 || true
    fi
    if [[ ! -x "$PGPOOL_BIN" ]]; then
        log "WARNING: no pgpool binary; leaving Pgpool-II out"
        drop_target pgpool
    fi
fi
SY_BIN="${SWITCHYARD_BIN:-}"
if { has_target switchyard || has_target switchyard-w2; } && [[ -z "$SY_BIN" ]]; then
    if [[ "${SKIP_BUILD:-0}" != 1 ]] && ! swift build -c release; then
        log "WARNING: swift build -c release failed; using the last release binary if there is one"
    fi
    SY_BIN="$(swift build -c release --show-bin-path)/switchyard"
fi
if has_target switchyard && [[ ! -x "$SY_BIN" ]]; then
    log "WARNING: no release binary; leaving Switchyard out"
    drop_target switchyard
fi

# ---- 2. cluster ----
use_cluster
init_pgbench "$SCALE"

q() { # port sql -> one value, as the bench user over TCP
    "$PSQL" -X -Atq -h 127.0.0.1 -p "$1" -c "$2"
}

# Servers reads may use: NODE_NAMES[0] is the primary, then the replicas r1, r2...
NODE_NAMES=(primary)
NODE_PORTS=("$PRIMARY_PORT")
if (( REPLICAS >= 1 )); then
    NODE_NAMES+=(r1)
    NODE_PORTS+=("$REPLICA_PORT")
fi

make_replica() { # name: a hot standby of the primary by pg_basebackup, in $WORK/replica-NAME, streaming
    local name="$1" base="$WORK/replica-$1" port i status=""
    port="$(free_port)"
    mkdir -p "$base"
    chmod 755 "$base"
    [[ "$(id -u)" == 0 ]] && chown postgres: "$base"
    EXTRA_REPLICAS+=("$base/data")
    "${AS_PG[@]}" "$PG_BIN/pg_basebackup" -D "$base/data" -h "$PGHOST_SOCKET_DIR" -p "$PRIMARY_PORT" -U postgres \
        -R -X stream -c fast >"$base/basebackup.log" 2>&1 || { cat "$base/basebackup.log" >&2; die "pg_basebackup for $name failed"; }
    printf "\n# ---- bench replica %s ----\nport = %s\nunix_socket_directories = '%s'\ncluster_name = 'bench_%s'\n" \
        "$name" "$port" "$base" "$name" | "${AS_PG[@]}" tee -a "$base/data/postgresql.conf" >/dev/null
    "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$base/data" -l "$base/postgres.log" -w -t 60 start >/dev/null \
        || { tail -n 20 "$base/postgres.log" >&2; die "replica $name did not start"; }
    for i in $(seq 1 150); do
        status="$("${AS_PG[@]}" "$PSQL" -X -Atq -h "$base" -p "$port" -U postgres -d postgres \
            -c "SELECT status FROM pg_stat_wal_receiver" 2>/dev/null || true)"
        [[ "$status" == streaming ]] && break
        sleep 0.2
    done
    [[ "$status" == streaming ]] || die "replica $name is not streaming after 30 s (status '$status')"
    NODE_NAMES+=("$name")
    NODE_PORTS+=("$port")
    log "replica $name on 127.0.0.1:$port (pg_basebackup, streaming)"
}

for i in $(seq 2 "$REPLICAS"); do
    make_replica "r$i"
done
if (( REPLICAS >= 1 )); then
    # Every replica has replayed pgbench -i before any target runs.
    lsn="$(q "$PRIMARY_PORT" "SELECT pg_current_wal_lsn()")"
    for i in "${!NODE_PORTS[@]}"; do
        (( i == 0 )) && continue
        for _ in $(seq 1 300); do
            [[ "$(q "${NODE_PORTS[$i]}" "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" == t ]] && break
            sleep 0.2
        done
        [[ "$(q "${NODE_PORTS[$i]}" "SELECT pg_is_in_recovery()")" == t ]] || die "${NODE_NAMES[$i]} is not a standby"
    done
fi

cat >"$WORK/userlist.txt" <<'EOF'
"sy_scram" "scram-pass"
EOF
[[ "$(id -u)" == 0 ]] && chown postgres: "$WORK" "$WORK/userlist.txt"

# ---- 3. PgBouncer (runs as postgres: it refuses root); it cannot split, so it uses the primary ----
PGB_PORT=""
if has_target pgbouncer; then
    command -v "$PGBOUNCER_BIN" >/dev/null || die "pgbouncer ($PGBOUNCER_BIN) is not installed (scripts/deps.sh)"
    PGB_PORT="$(free_port)"
    PGB_VERSION="$("$PGBOUNCER_BIN" --version | head -1 | awk '{print $2}')"
    PGB_EXTRA=""
    if [[ "$(printf '%s\n1.21.0\n' "$PGB_VERSION" | sort -V | head -1)" == 1.21.0 ]]; then
        PGB_EXTRA="max_prepared_statements = ${PGB_MAX_PREPARED:-200}"
    fi
    cat >"$WORK/pgbouncer.ini" <<EOF
[databases]
sydb = host=127.0.0.1 port=$PRIMARY_PORT dbname=sydb

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $WORK/userlist.txt
pool_mode = $POOL_MODE
default_pool_size = $POOL_SIZE
max_client_conn = 1000
server_reset_query = DISCARD ALL
log_connections = 0
log_disconnections = 0
$PGB_EXTRA
EOF
    [[ "$(id -u)" == 0 ]] && chown postgres: "$WORK/pgbouncer.ini"
    "${AS_PG[@]}" "$PGBOUNCER_BIN" "$WORK/pgbouncer.ini" >"$WORK/pgbouncer.log" 2>&1 </dev/null &
    PGB_PID=$!
    wait_port "$PGB_PORT" "$PGB_PID" pgbouncer "$WORK/pgbouncer.log"
    log "pgbouncer $PGB_VERSION on $PGB_PORT (pid $PGB_PID)${PGB_EXTRA:+, $PGB_EXTRA}"
fi

# ---- 4. Pgpool-II: streaming-replication mode, reads load-balanced over the replicas ----
# Clients authenticate with SCRAM (pool_hba.conf); Pgpool-II logs in to the servers with the password it
# reads in clear text from pool_passwd ("TEXT" prefix), which SCRAM needs. The primary has weight 0, as
# Switchyard never sends reads to the primary while a replica is up. No watchdog, no query cache; health
# checks and the streaming-replication check every second, like Switchyard's probes.
PGPOOL_PORT=""
if has_target pgpool; then
    PGPOOL_PORT="$(free_port)"
    PGPOOL_PCP_PORT="$(free_port)"
    mkdir -p "$WORK/pgpool"
    {
        cat <<EOF
backend_clustering_mode = 'streaming_replication'
listen_addresses = '127.0.0.1'
port = $PGPOOL_PORT
unix_socket_directories = '$WORK/pgpool'
pcp_listen_addresses = '127.0.0.1'
pcp_port = $PGPOOL_PCP_PORT
pcp_socket_dir = '$WORK/pgpool'
pid_file_name = '$WORK/pgpool/pgpool.pid'
logdir = '$WORK/pgpool'
log_destination = 'stderr'
log_min_messages = warning
log_connections = off
log_statement = off
log_per_node_statement = off

enable_pool_hba = on
pool_passwd = '$WORK/pgpool/pool_passwd'
allow_clear_text_frontend_auth = off

num_init_children = $PGPOOL_CHILDREN
max_pool = 1
child_life_time = 0
child_max_connections = 0
connection_life_time = 0
client_idle_limit = 0
connection_cache = on
reset_query_list = 'ABORT; DISCARD ALL'

load_balance_mode = on
statement_level_load_balance = $PGPOOL_STATEMENT_LB
disable_load_balance_on_write = 'transaction'
memory_cache_enabled = off

sr_check_period = 1
sr_check_user = 'sy_scram'
sr_check_password = ''
sr_check_database = 'sydb'
delay_threshold = 0
health_check_period = 1
health_check_timeout = 10
health_check_user = 'sy_scram'
health_check_password = ''
health_check_database = 'sydb'
health_check_max_retries = 3
failover_on_backend_error = off
failover_command = ''
use_watchdog = off
EOF
        for i in "${!NODE_PORTS[@]}"; do
            weight=1
            (( i == 0 && ${#NODE_PORTS[@]} > 1 )) && weight=0
            printf "\nbackend_hostname%d = '127.0.0.1'\nbackend_port%d = %s\nbackend_weight%d = %d\nbackend_flag%d = 'DISALLOW_TO_FAILOVER'\nbackend_application_name%d = '%s'\n" \
                "$i" "$i" "${NODE_PORTS[$i]}" "$i" "$weight" "$i" "$i" "${NODE_NAMES[$i]}"
        done
    } >"$WORK/pgpool/pgpool.conf"
    echo "sy_scram:TEXTscram-pass" >"$WORK/pgpool/pool_passwd"
    printf 'local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n' >"$WORK/pgpool/pool_hba.conf"
    : >"$WORK/pgpool/pcp.conf"
    chmod 600 "$WORK/pgpool/pool_passwd"
    [[ "$(id -u)" == 0 ]] && chown -R postgres: "$WORK/pgpool"
    # -n: stay in the foreground (so $! is the parent of all its processes); -D: ignore a saved node status.
    "${AS_PG[@]}" "$PGPOOL_BIN" -n -D -f "$WORK/pgpool/pgpool.conf" -F "$WORK/pgpool/pcp.conf" \
        -a "$WORK/pgpool/pool_hba.conf" >"$WORK/pgpool.log" 2>&1 </dev/null &
    PGPOOL_PID=$!
    wait_port "$PGPOOL_PORT" "$PGPOOL_PID" pgpool "$WORK/pgpool.log"
    nodes=""
    for _ in $(seq 1 100); do
        nodes="$(q "$PGPOOL_PORT" "SHOW pool_nodes" 2>/dev/null || true)" && [[ -n "$nodes" ]] && break
        sleep 0.2
    done
    [[ -n "$nodes" ]] || { tail -n 30 "$WORK/pgpool.log" >&2; die "pgpool does not answer SHOW pool_nodes"; }
    log "pgpool $("$PGPOOL_BIN" --version 2>&1 | awk '{print $3}') on $PGPOOL_PORT (pid $PGPOOL_PID, $PGPOOL_CHILDREN children); pool_nodes (id|host|port|status|pg_status|lb_weight|role|...):"
    echo "$nodes" | cut -d'|' -f1-8 | sed 's/^/bench:     /' >&2
fi

# ---- 5. Switchyard (SY_WORKERS event loops; switchyard-w2: a second one with workers = 2) ----
switchyard_conf() { # port workers -> proxy.conf on stdout
    cat <<EOF
[proxy]
listen_addr = 127.0.0.1
listen_port = $1
workers = $2
pool_mode = $POOL_MODE
auth_type = scram-sha-256
auth_file = $WORK/userlist.txt
default_pool_size = $POOL_SIZE
max_client_conn = 1000
server_reset_query = DISCARD ALL
log_level = info
health_check_user = sy_scram
health_check_database = sydb
${SY_SETTINGS:-}

[primary]
host = 127.0.0.1
port = $PRIMARY_PORT
EOF
    # Probes (health, WAL positions) log in as the bench user; reads route to the replicas in transaction mode.
    for i in "${!NODE_PORTS[@]}"; do
        (( i == 0 )) && continue
        printf '\n[replica.%s]\nhost = 127.0.0.1\nport = %s\nweight = 1\n' "${NODE_NAMES[$i]}" "${NODE_PORTS[$i]}"
    done
}
SY_PORT=""
if has_target switchyard; then
    SY_PORT="$(free_port)"
    switchyard_conf "$SY_PORT" "$SY_WORKERS" >"$WORK/proxy.conf"
    "$SY_BIN" --config "$WORK/proxy.conf" >"$WORK/switchyard.log" 2>&1 </dev/null &
    SY_PID=$!
    wait_port "$SY_PORT" "$SY_PID" switchyard "$WORK/switchyard.log"
    log "switchyard $("$SY_BIN" --version 2>&1 | head -1) on $SY_PORT (pid $SY_PID, workers = $SY_WORKERS)"
fi
SY2_PORT=""
if has_target switchyard-w2; then
    SY2_PORT="$(free_port)"
    switchyard_conf "$SY2_PORT" 2 >"$WORK/proxy-w2.conf"
    "$SY_BIN" --config "$WORK/proxy-w2.conf" >"$WORK/switchyard-w2.log" 2>&1 </dev/null &
    SY2_PID=$!
    wait_port "$SY2_PORT" "$SY2_PID" switchyard-w2 "$WORK/switchyard-w2.log"
    log "switchyard-w2 on $SY2_PORT (pid $SY2_PID, workers = 2)"
fi

target_port() { # target -> port
    case "$1" in
        direct) echo "$PRIMARY_PORT" ;;
        pgbouncer) echo "$PGB_PORT" ;;
        pgpool) echo "$PGPOOL_PORT" ;;
        switchyard) echo "$SY_PORT" ;;
        switchyard-w2) echo "$SY2_PORT" ;;
        *) die "unknown target $1" ;;
    esac
}

target_pid() { # target -> the proxy's pid (empty for direct)
    case "$1" in
        pgbouncer) echo "$PGB_PID" ;;
        pgpool) echo "$PGPOOL_PID" ;;
        switchyard) echo "$SY_PID" ;;
        switchyard-w2) echo "$SY2_PID" ;;
        *) echo "" ;;
    esac
}

# ---- 6. where reads run (once): index scans of pgbench_accounts counted on every server ----
# Each `pgbench -S` transaction is one index scan of pgbench_accounts; health probes and pool checks never
# touch it, so pg_stat_user_tables.idx_scan deltas per server count exactly where the reads ran.
ROUTING="$WORK/routing.tsv"
printf 'target\t%s\n' "$(IFS=$'\t'; echo "${NODE_NAMES[*]}")" >"$ROUTING"
node_reads() { # -> idx_scan of pgbench_accounts on each server, space-separated
    local port out=()
    for port in "${NODE_PORTS[@]}"; do
        out+=("$(q "$port" "SELECT coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = 'pgbench_accounts'")")
    done
    echo "${out[*]}"
}
if (( REPLICAS >= 1 && VERIFY_TX > 0 )); then
    sleep 3   # a few probe rounds, so the proxies see the replicas up
    expected=$((4 * VERIFY_TX))
    for target in $TARGETS; do
        read -r -a reads_before <<<"$(node_reads)"
        "$PGBENCH" -n -S -M "$PROTOCOL" -c 4 -j 2 -t "$VERIFY_TX" -p "$(target_port "$target")" >"$WORK/verify_$target.log" 2>&1 \
            || { cat "$WORK/verify_$target.log" >&2; die "routing check through $target failed"; }
        # Table statistics become visible when a backend goes idle (at most about 1 s later in PG 15).
        for _ in $(seq 1 20); do
            sleep 0.5
            read -r -a reads_after <<<"$(node_reads)"
            total=0
            for i in "${!reads_after[@]}"; do total=$((total + reads_after[i] - reads_before[i])); done
            (( total >= expected )) && break
        done
        row="$target"
        for i in "${!reads_after[@]}"; do row+=$'\t'"$((reads_after[i] - reads_before[i]))"; done
        echo "$row" >>"$ROUTING"
        log "routing check $target: $(for i in "${!reads_after[@]}"; do printf '%s +%s  ' "${NODE_NAMES[$i]}" "$((reads_after[i] - reads_before[i]))"; done)(of $expected reads)"
    done
fi

# ---- 7. interleaved rounds ----
CLK_TCK="$(getconf CLK_TCK)"
RESULTS="$WORK/results.tsv"
printf 'round\tscript\ttarget\ttps\tlat_avg_ms\tp99_ms\ttx\tcpu_us_per_tx\tsys_us_per_tx\n' >"$RESULTS"
mkdir -p "$WORK/logs"

run_one() { # round script target
    local round="$1" script="$2" target="$3" port pid args=()
    port="$(target_port "$target")"
    pid="$(target_pid "$target")"
    case "$script" in
        select-only) args=(-S) ;;
        tpcb) args=() ;;
        *) die "unknown script $script" ;;
    esac
    local prefix="$WORK/logs/r${round}_${script}_${target}"
    local before="0 0" after="0 0"
    [[ -n "$pid" ]] && before="$(cpu_ticks "$pid")"
    local out
    if ! out="$(cd "$WORK/logs" && "$PGBENCH" -n "${args[@]}" -M "$PROTOCOL" -c "$CLIENTS" -j "$THREADS" \
            -T "$DURATION" -p "$port" -l --log-prefix="$prefix" 2>&1)"; then
        echo "$out" >&2
        log "WARNING: pgbench failed for $target/$script round $round"
        rm -f "$prefix".*
        return 0
    fi
    [[ -n "$pid" ]] && after="$(cpu_ticks "$pid")"
    python3 - "$prefix" "$round" "$script" "$target" "$((${after% *} - ${before% *}))" "$CLK_TCK" "$out" \
        "$((${after#* } - ${before#* }))" >>"$RESULTS" <<'EOF'
import glob, re, sys
prefix, rnd, script, target, ticks, clk, out, sys_ticks = sys.argv[1:9]
tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", out).group(1))
lat = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))
tx = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))
failed = re.search(r"number of failed transactions: (\d+)", out)
if failed and int(failed.group(1)):
    print(f"bench: WARNING: {failed.group(1)} failed transactions ({target}/{script})", file=sys.stderr)
lat_us = []
for f in glob.glob(prefix + ".*"):
    with open(f) as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 3:
                lat_us.append(int(parts[2]))
lat_us.sort()
p99 = lat_us[min(len(lat_us) - 1, int(len(lat_us) * 0.99))] / 1000 if lat_us else float("nan")
import os
if os.environ.get("LATENCY_DIR"):
    # The latest round's per-transaction latencies, for bench/latency_plot.py.
    with open(os.path.join(os.environ["LATENCY_DIR"], f"{script}_{target}.txt"), "w") as fh:
        fh.write("\n".join(map(str, lat_us)) + "\n")
cpu = "" if target == "direct" or tx == 0 else f"{int(ticks) * 1e6 / int(clk) / tx:.2f}"
kernel = "" if target == "direct" or tx == 0 else f"{int(sys_ticks) * 1e6 / int(clk) / tx:.2f}"
print(f"{rnd}\t{script}\t{target}\t{tps:.1f}\t{lat:.3f}\t{p99:.3f}\t{tx}\t{cpu}\t{kernel}")
EOF
    rm -f "$prefix".*
    tail -n 1 "$RESULTS" | awk -F'\t' '{printf "bench:   round %s %-11s %-10s tps=%-10s avg=%sms p99=%sms cpu/tx=%s (kernel %s)\n", $1, $2, $3, $4, $5, $6, ($8 == "" ? "-" : $8 "us"), ($9 == "" ? "-" : $9 "us")}' >&2
}

log "$ROUNDS rounds x {$SCRIPTS} x {$TARGETS}, ${DURATION}s each, -c $CLIENTS -j $THREADS -M $PROTOCOL, pool $POOL_SIZE ($POOL_MODE), $REPLICAS replica(s)"
for round in $(seq 1 "$ROUNDS"); do
    for script in $SCRIPTS; do
        for target in $TARGETS; do
            run_one "$round" "$script" "$target"
        done
    done
done

# ---- 8. classifier microbenchmark (in-process, after the rounds so nothing else of ours runs) ----
MICRO="$WORK/microbench.json"
: >"$MICRO"
if [[ "$MICROBENCH" == 1 && -n "$SY_BIN" ]] && has_target switchyard; then
    log "switchyard --microbench classifier (${MICROBENCH_SECONDS}s per case)"
    if ! "$SY_BIN" --microbench classifier --microbench-format json --microbench-seconds "$MICROBENCH_SECONDS" \
            >"$MICRO" 2>"$WORK/microbench.err"; then
        cat "$WORK/microbench.err" >&2
        log "WARNING: switchyard --microbench failed (an older binary?)"
        : >"$MICRO"
    fi
fi
MICRO_STATS="$WORK/microbench-stats.json"
: >"$MICRO_STATS"
if [[ "$MICROBENCH" == 1 && -n "$SY_BIN" ]] && has_target switchyard; then
    log "switchyard --microbench stats (${MICROBENCH_SECONDS}s per case)"
    "$SY_BIN" --microbench stats --microbench-format json --microbench-seconds "$MICROBENCH_SECONDS" \
        >"$MICRO_STATS" 2>>"$WORK/microbench.err" || : >"$MICRO_STATS"
fi

# ---- 9. latency distribution (LATENCY_PLOT) ----
LATENCY_TABLE=""
if [[ -n "${LATENCY_PLOT:-}" ]]; then
    python3 -c "import matplotlib" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check matplotlib >&2 \
        || log "WARNING: matplotlib could not be installed; no plot"
    LATENCY_TABLE="$WORK/latency.md"
    python3 "$REPO/bench/latency_plot.py" "$LATENCY_DIR" "$LATENCY_PLOT" >"$LATENCY_TABLE" || LATENCY_TABLE=""
fi

# ---- 10. summary ----
SUMMARY="$WORK/summary.md"
VERSIONS="pgbench $("$PGBENCH" --version | awk '{print $3}')"
has_target pgbouncer && VERSIONS+=", PgBouncer $PGB_VERSION"
has_target pgpool && VERSIONS+=", Pgpool-II $("$PGPOOL_BIN" --version 2>&1 | awk '{print $3}')"
has_target switchyard && VERSIONS+=", Switchyard $("$SY_BIN" --version 2>&1 | head -1)"
VERSIONS+="; $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end, $(date -u +%Y-%m-%d)"
python3 - "$RESULTS" "$ROUTING" "$MICRO" "$MICRO_STATS" "$ROUNDS" "$DURATION" "$CLIENTS" "$THREADS" "$PROTOCOL" "$SCALE" \
    "$POOL_SIZE" "$POOL_MODE" "$REPLICAS" "$PGPOOL_CHILDREN" "$PGPOOL_STATEMENT_LB" "$VERSIONS" >"$SUMMARY" <<'EOF'
import csv, statistics, sys
(path, routing, micro, micro_stats, rounds, dur, clients, threads, proto, scale, pool, mode, replicas, children,
 stmt_lb, versions) = sys.argv[1:17]
rows = list(csv.DictReader(open(path), delimiter="\t"))
targets = dict.fromkeys(r["target"] for r in rows)
def med(vals):
    vals = [float(v) for v in vals if v not in ("", None)]
    return statistics.median(vals) if vals else None
def fmt(v, nd=1):
    return "—" if v is None else f"{v:,.{nd}f}"
def ratio(a, b):
    return "—" if a is None or not b else f"{a / b:.2f}"
print(f"pgbench -M {proto} -c {clients} -j {threads}, {dur}s runs, scale {scale}; medians of {rounds} interleaved "
      f"rounds. PgBouncer and Switchyard: pool_mode = {mode}, pool size {pool}"
      + (f"; Pgpool-II: {children} children, connection cache, statement_level_load_balance = {stmt_lb}"
         if "pgpool" in targets else "")
      + f"; {replicas} replica(s)"
      + (" (Switchyard and Pgpool-II read from them; PgBouncer uses the primary)" if int(replicas) else "")
      + f". {versions}.\n")
print("| workload | target | TPS | avg latency (ms) | p99 latency (ms) | proxy CPU µs/tx | of it kernel | CPU/tx vs PgBouncer "
      "| kernel vs PgBouncer's CPU | TPS vs PgBouncer |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
order = ["direct", "pgbouncer", "pgpool", "switchyard", "switchyard-w2"]
for script in dict.fromkeys(r["script"] for r in rows):
    stats = {}
    for target in order:
        sel = [r for r in rows if r["script"] == script and r["target"] == target]
        if sel:
            stats[target] = (med(r["tps"] for r in sel), med(r["lat_avg_ms"] for r in sel),
                             med(r["p99_ms"] for r in sel), med(r["cpu_us_per_tx"] for r in sel),
                             med(r.get("sys_us_per_tx") for r in sel))
    base = stats.get("pgbouncer", (None,) * 5)
    for target, (tps, lat, p99, cpu, kernel) in stats.items():
        print(f"| {script} | {target} | {fmt(tps)} | {fmt(lat, 3)} | {fmt(p99, 3)} | {fmt(cpu, 2)} | {fmt(kernel, 2)} "
              f"| {ratio(cpu, base[3])} | {ratio(kernel, base[3])} | {ratio(tps, base[0])} |")
print()
print("CPU µs/tx: utime+stime of the proxy's process over the run"
      + (" (for Pgpool-II, of all its processes, exited children included)" if "pgpool" in targets else "")
      + ", from /proc, divided by the transactions pgbench completed; \"of it kernel\" is the stime part (the"
      " socket reads and writes, and on loopback the peer's TCP receive and wake-up, which run in the sender's"
      " system call). \"kernel vs PgBouncer's CPU\" divides a target's kernel part by PgBouncer's whole CPU/tx:"
      " the part of its CPU/tx ratio spent in the kernel, mostly in the read and write per message every proxy"
      " makes: a floor that cutting user-space instructions does not lower.")
routed = list(csv.DictReader(open(routing), delimiter="\t"))
if routed:
    nodes = [k for k in routed[0] if k != "target"]
    print("\nWhere reads ran (checked once before the rounds: `pgbench -S` transactions through each target, "
          "counted on each server as `pg_stat_user_tables.idx_scan` deltas of pgbench_accounts):\n")
    print("| target | " + " | ".join(nodes) + " | on replicas |")
    print("|---|" + "---:|" * (len(nodes) + 1))
    for r in routed:
        counts = [int(r[n]) for n in nodes]
        total = sum(counts) or 1
        print(f"| {r['target']} | " + " | ".join(f"{c:,}" for c in counts) + f" | {100 * sum(counts[1:]) / total:.0f}% |")
text = open(micro).read().strip()
if text:
    import json
    m = json.loads(text)
    res = {r["name"]: r for r in m["results"]}
    print(f"\nClassifier cost per statement (`switchyard --microbench classifier`, {m['build']} build, in-process on "
          "one thread; thread CPU time per call, median and best of 5 samples):\n")
    print("| case | what | CPU µs/statement | best | wall µs |")
    print("|---|---|---:|---:|---:|")
    for r in m["results"]:
        print(f"| {r['name']} | {r['detail']} | {r['cpu_ns_median'] / 1000:.2f} | {r['cpu_ns_min'] / 1000:.2f} "
              f"| {r['wall_ns_median'] / 1000:.2f} |")
    c = m["checks"]
    print(f"\nChecks: the cached case parsed {c['cached_parses']} time(s) for {c['cached_hits']:,} cache hits; the "
          f"uncached case parsed every time ({c['uncached_parses']:,} parses, {c['uncached_hits']} hits).")
    sy = [x for x in rows if x["target"] == "switchyard" and x["script"] == "select-only"]
    cpu = med(x["cpu_us_per_tx"] for x in sy)
    if cpu and "cached" in res:
        hit = res["cached"]["cpu_ns_median"] / 1000
        print(f"A `pgbench -S` transaction is one statement, so one cached classification: {hit:.2f} µs of "
              f"Switchyard's {cpu:.2f} µs CPU per transaction ({100 * hit / cpu:.0f}%) in this run.")
    if {"uncached", "fingerprint-mix", "parse-mix"} <= res.keys():
        rest = res["uncached"]["cpu_ns_median"] - res["fingerprint-mix"]["cpu_ns_median"] - res["parse-mix"]["cpu_ns_median"]
        print(f"Of an uncached statement, libpg_query's parse is {res['parse-mix']['cpu_ns_median'] / 1000:.2f} µs and "
              f"fingerprinting {res['fingerprint-mix']['cpu_ns_median'] / 1000:.2f} µs; the remaining ≈{rest / 1000:.2f} µs "
              "is decoding the JSON parse tree, walking it and caching the verdict.")
text = open(micro_stats).read().strip()
if text:
    import json
    m = json.loads(text)
    print(f"\nStats recording per statement (`switchyard --microbench stats`, {m['build']} build, one thread):\n")
    print("| case | what | CPU µs/statement | best | wall µs |")
    print("|---|---|---:|---:|---:|")
    for r in m["results"]:
        print(f"| {r['name']} | {r['detail']} | {r['cpu_ns_median'] / 1000:.2f} | {r['cpu_ns_min'] / 1000:.2f} "
              f"| {r['wall_ns_median'] / 1000:.2f} |")
EOF
[[ -n "$LATENCY_TABLE" ]] && cat "$LATENCY_TABLE" >>"$SUMMARY"
echo
cat "$SUMMARY"
if [[ -n "${BENCH_OUT:-}" ]]; then
    cp "$SUMMARY" "$BENCH_OUT"
    log "summary written to $BENCH_OUT"
fi
log "raw results: $RESULTS"
