#!/usr/bin/env bash
# Instructions per transaction of the proxy process, counted by valgrind's callgrind: repeatable whatever
# else the machine is doing, so a regression shows even on a noisy machine. PgBouncer and Switchyard run
# the same pgbench -S load, each under callgrind, twice (N1 and N2 transactions); the difference of the
# two totals divided by N2 - N1 leaves out start-up and shutdown.
#
# Knobs: N1=500 N2=2500 CLIENTS=4 POOL_MODE=transaction PROTOCOL=simple SCRIPT=select-only|tpcb
#        TARGETS="pgbouncer switchyard" SY_WORKERS=1 SY_SETTINGS="key = value" (extra [proxy] lines)
#        CLUSTER_ENV=path/to/cluster.env (else a throwaway cluster) SWITCHYARD_BIN=... (else a release build)
#        REPLICAS=0|1 (1: Switchyard routes the reads to the cluster's replica)  BENCH_OUT=file.md
#        KEEP=1 keeps the callgrind.out files (for callgrind_annotate) in the printed work folder.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"

N1="${N1:-500}"
N2="${N2:-2500}"
CLIENTS="${CLIENTS:-4}"
POOL_MODE="${POOL_MODE:-transaction}"
PROTOCOL="${PROTOCOL:-simple}"
SCRIPT="${SCRIPT:-select-only}"
case "$SCRIPT" in
    select-only) BUILTIN=(-S) ;;
    tpcb) BUILTIN=(-b tpcb-like) ;;
    *) echo "callgrind-bench: error: SCRIPT must be select-only or tpcb" >&2; exit 2 ;;
esac
TARGETS="${TARGETS:-pgbouncer switchyard}"
REPLICAS="${REPLICAS:-0}"

log() { echo "callgrind-bench: $*" >&2; }
die() { echo "callgrind-bench: error: $*" >&2; exit 1; }
command -v valgrind >/dev/null || die "valgrind is not installed (apt-get install valgrind)"
if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then export PATH="/opt/swift/usr/bin:$PATH"; fi

WORK="$(mktemp -d /tmp/sy-callgrind.XXXXXX)"
chmod 755 "$WORK"
CLUSTER_DIR=""
PROXY_PID=""
cleanup() {
    if [[ -n "$PROXY_PID" ]] && kill -0 "$PROXY_PID" 2>/dev/null; then kill -KILL "$PROXY_PID" 2>/dev/null || true; fi
    [[ -n "$CLUSTER_DIR" ]] && "$REPO/scripts/cluster.sh" stop "$CLUSTER_DIR" >/dev/null 2>&1 || true
    [[ "${KEEP:-0}" == 1 ]] || rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"

SY_BIN="${SWITCHYARD_BIN:-}"
if [[ " $TARGETS " == *" switchyard "* && -z "$SY_BIN" ]]; then
    swift build -c release >&2
    SY_BIN="$(swift build -c release --show-bin-path)/switchyard"
fi

if [[ -n "$SY_BIN" ]]; then
    # valgrind 3.19 cannot read the DWARF of recent Swift toolchains: keep the symbols, drop the debug info.
    objcopy --strip-debug "$SY_BIN" "$WORK/switchyard"
    SY_BIN="$WORK/switchyard"
fi

use_cluster
init_pgbench 1
printf '"sy_scram" "scram-pass"\n' >"$WORK/userlist.txt"
AS_PG=()
[[ "$(id -u)" == 0 ]] && AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups) && chown -R postgres: "$WORK"

config() { # target port -> config file path
    local target="$1" port="$2" file="$WORK/$1-$2.conf"
    case "$target" in
        pgbouncer)
            cat >"$file" <<EOF
[databases]
sydb = host=127.0.0.1 port=$PRIMARY_PORT dbname=sydb
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $WORK/userlist.txt
pool_mode = $POOL_MODE
default_pool_size = $((CLIENTS + 2))
log_connections = 0
log_disconnections = 0
EOF
            ;;
        switchyard)
            cat >"$file" <<EOF
[proxy]
listen_addr = 127.0.0.1
listen_port = $port
pool_mode = $POOL_MODE
workers = ${SY_WORKERS:-1}
auth_type = scram-sha-256
auth_file = $WORK/userlist.txt
default_pool_size = $((CLIENTS + 2))
${SY_SETTINGS:-}
[primary]
host = 127.0.0.1
port = $PRIMARY_PORT
EOF
            if [[ "$REPLICAS" == 1 ]]; then
                # Routing needs the probes (health, WAL positions, pg_proc); their per-second work then counts too.
                sed -i 's/^\[primary\]$/health_check_user = sy_scram\nhealth_check_database = sydb\n[primary]/' "$file"
                printf '[replica.r1]\nhost = 127.0.0.1\nport = %s\n' "$REPLICA_PORT" >>"$file"
            fi
            ;;
    esac
    [[ ${#AS_PG[@]} -gt 0 ]] && chown postgres: "$file"
    echo "$file"
}

instructions() { # target transactions -> total instructions (Ir) of the proxy process
    local target="$1" tx="$2" port conf out cmd
    port="$(free_port)"
    conf="$(config "$target" "$port")"
    out="$WORK/callgrind.out.$target.$tx"
    case "$target" in
        pgbouncer) cmd=("${AS_PG[@]}" valgrind --tool=callgrind --callgrind-out-file="$out" pgbouncer "$conf") ;;
        switchyard) cmd=("${AS_PG[@]}" valgrind --tool=callgrind --callgrind-out-file="$out" "$SY_BIN" --config "$conf") ;;
    esac
    "${cmd[@]}" >"$WORK/$target.$tx.log" 2>&1 </dev/null &
    PROXY_PID=$!
    wait_port "$port" "$PROXY_PID" "$target" "$WORK/$target.$tx.log" 600
    if [[ "$target" == switchyard && "$REPLICAS" == 1 ]]; then
        # The first probe reads the primary's pg_proc (once per 5 minutes): not part of a transaction's cost.
        for _ in $(seq 1 600); do grep -q "function catalog loaded" "$WORK/$target.$tx.log" && break; sleep 0.1; done
    fi
    sleep 1  # let the probes settle
    "$PGBENCH" -n "${BUILTIN[@]}" -M "$PROTOCOL" -c "$CLIENTS" -j 1 -t $((tx / CLIENTS)) -p "$port" >"$WORK/pgbench.$target.$tx.log" 2>&1 \
        || { cat "$WORK/pgbench.$target.$tx.log" >&2; die "pgbench through $target failed"; }
    kill -INT "$PROXY_PID" 2>/dev/null || true
    wait "$PROXY_PID" 2>/dev/null || true
    PROXY_PID=""
    awk '/^summary:|^totals:/ {print $2; exit}' "$out"
}

printf '| target | Ir at %s tx | Ir at %s tx | instructions per transaction | vs PgBouncer |\n|---|---:|---:|---:|---:|\n' "$N1" "$N2" >"$WORK/table.md"
base=""
for target in $TARGETS; do
    log "$target under callgrind: $N1 then $N2 pgbench $SCRIPT transactions ($CLIENTS clients, $POOL_MODE, -M $PROTOCOL)"
    a="$(instructions "$target" "$N1")"
    b="$(instructions "$target" "$N2")"
    per=$(( (b - a) / (N2 - N1) ))
    [[ "$target" == pgbouncer ]] && base="$per"
    ratio="—"
    [[ -n "$base" && "$base" -gt 0 ]] && ratio="$(python3 -c "print(f'{$per / $base:.2f}')")"
    printf '| %s | %s | %s | %s | %s |\n' "$target" "$a" "$b" "$per" "$ratio" >>"$WORK/table.md"
done
cat "$WORK/table.md"
[[ -n "${BENCH_OUT:-}" ]] && cp "$WORK/table.md" "$BENCH_OUT"
[[ "${KEEP:-0}" == 1 ]] && log "callgrind.out files kept in $WORK"
exit 0
