#!/usr/bin/env bash
# Side-by-side benchmark: pgbench select-only (-S) and TPC-B-like through direct Postgres,
# PgBouncer (Debian's, session pooling) and Switchyard, in interleaved rounds. Reports median TPS,
# average and p99 latency, and the proxy's CPU microseconds per transaction (utime+stime).
#
# Knobs (environment):
#   ROUNDS=3  DURATION=15  CLIENTS=16  THREADS=2  SCALE=10  PROTOCOL=simple
#   POOL_SIZE=CLIENTS+4    same default_pool_size for PgBouncer and Switchyard
#   TARGETS="direct pgbouncer switchyard"
#   SCRIPTS="select-only tpcb"
#   CLUSTER_ENV=path/to/cluster.env   use a running cluster (scripts/cluster.sh) instead of a new one
#   SKIP_DEPS=1  SKIP_BUILD=1  SKIP_INIT=1 (reuse pgbench tables)
#   BENCH_REPLICA=1                   give Switchyard the replica too (with POOL_MODE=transaction reads go there)
#   POOL_MODE=session|transaction     pool mode of both proxies
#   BENCH_OUT=file.md                 also write the Markdown summary there
set -euo pipefail

cd "$(dirname "$0")/.."
REPO="$(pwd)"

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-15}"
CLIENTS="${CLIENTS:-16}"
THREADS="${THREADS:-2}"
SCALE="${SCALE:-10}"
PROTOCOL="${PROTOCOL:-simple}"
POOL_MODE="${POOL_MODE:-session}"   # session | transaction, the same for PgBouncer and Switchyard
POOL_SIZE="${POOL_SIZE:-$((CLIENTS + 4))}"
TARGETS="${TARGETS:-direct pgbouncer switchyard}"
SCRIPTS="${SCRIPTS:-select-only tpcb}"

if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi

log() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }

WORK="$(mktemp -d /tmp/sy-bench.XXXXXX)"
chmod 755 "$WORK"
CLUSTER_DIR=""
PGB_PID=""
SY_PID=""

cleanup() {
    local pid
    for pid in "$PGB_PID" "$SY_PID"; do
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    if [[ -n "$CLUSTER_DIR" ]]; then
        "$REPO/scripts/cluster.sh" stop "$CLUSTER_DIR" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK/logs"
}
trap cleanup EXIT

free_port() {
    python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1]); s.close()"
}

wait_port() { # port pid name logfile
    local i
    for i in $(seq 1 100); do
        kill -0 "$2" 2>/dev/null || { tail -n 20 "$4" >&2; die "$3 exited at startup (log: $4)"; }
        python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 0.2).close()" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    tail -n 20 "$4" >&2
    die "$3 is not listening on $1"
}

cpu_ticks() { # pid -> utime+stime in clock ticks (fields 14, 15 of /proc/PID/stat, after the comm)
    sed -e 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}

# ---- 1. dependencies and build ----
[[ "${SKIP_DEPS:-0}" == 1 ]] || scripts/deps.sh
SY_BIN=""
if [[ " $TARGETS " == *" switchyard "* ]]; then
    if [[ "${SKIP_BUILD:-0}" == 1 ]] || swift build -c release; then
        SY_BIN="$(swift build -c release --show-bin-path)/switchyard"
    fi
    if [[ ! -x "$SY_BIN" ]]; then
        log "WARNING: no release binary; leaving Switchyard out"
        TARGETS="${TARGETS//switchyard/}"
    fi
fi

# ---- 2. cluster ----
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

export PGUSER=sy_scram PGPASSWORD=scram-pass PGDATABASE=sydb PGHOST=127.0.0.1
if [[ "${SKIP_INIT:-0}" != 1 ]]; then
    log "pgbench -i -s $SCALE (direct to the primary on $PRIMARY_PORT)"
    "$PGBENCH" -i -q -s "$SCALE" -p "$PRIMARY_PORT" >"$WORK/init.log" 2>&1 || { cat "$WORK/init.log" >&2; die "pgbench -i failed"; }
fi

cat >"$WORK/userlist.txt" <<'EOF'
"sy_scram" "scram-pass"
EOF

# ---- 3. PgBouncer (runs as postgres: it refuses root) ----
PGB_PORT=""
if [[ " $TARGETS " == *" pgbouncer "* ]]; then
    command -v pgbouncer >/dev/null || die "pgbouncer is not installed (scripts/deps.sh)"
    PGB_PORT="$(free_port)"
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
EOF
    PGB_CMD=(pgbouncer "$WORK/pgbouncer.ini")
    if [[ "$(id -u)" == 0 ]]; then
        chown postgres: "$WORK" "$WORK/pgbouncer.ini" "$WORK/userlist.txt"
        PGB_CMD=(setpriv --reuid=postgres --regid=postgres --init-groups "${PGB_CMD[@]}")
    fi
    "${PGB_CMD[@]}" >"$WORK/pgbouncer.log" 2>&1 </dev/null &
    PGB_PID=$!
    wait_port "$PGB_PORT" "$PGB_PID" pgbouncer "$WORK/pgbouncer.log"
    log "pgbouncer $(pgbouncer --version | head -1 | awk '{print $2}') on $PGB_PORT (pid $PGB_PID)"
fi

# ---- 4. Switchyard ----
SY_PORT=""
if [[ " $TARGETS " == *" switchyard "* ]]; then
    SY_PORT="$(free_port)"
    {
        cat <<EOF
[proxy]
listen_addr = 127.0.0.1
listen_port = $SY_PORT
pool_mode = $POOL_MODE
auth_type = scram-sha-256
auth_file = $WORK/userlist.txt
default_pool_size = $POOL_SIZE
max_client_conn = 1000
server_reset_query = DISCARD ALL
log_level = info
health_check_user = sy_scram
health_check_database = sydb

[primary]
host = 127.0.0.1
port = $PRIMARY_PORT
EOF
        if [[ "${BENCH_REPLICA:-0}" == 1 ]]; then
            # Probes (health, WAL positions) log in as the bench user; reads route to the replica in transaction mode.
            printf '\n[replica.r1]\nhost = 127.0.0.1\nport = %s\nweight = 1\n' "$REPLICA_PORT"
        fi
    } >"$WORK/proxy.conf"
    "$SY_BIN" --config "$WORK/proxy.conf" >"$WORK/switchyard.log" 2>&1 </dev/null &
    SY_PID=$!
    wait_port "$SY_PORT" "$SY_PID" switchyard "$WORK/switchyard.log"
    log "switchyard $("$SY_BIN" --version 2>&1 | head -1) on $SY_PORT (pid $SY_PID)"
fi

# ---- 5. interleaved rounds ----
CLK_TCK="$(getconf CLK_TCK)"
RESULTS="$WORK/results.tsv"
printf 'round\tscript\ttarget\ttps\tlat_avg_ms\tp99_ms\ttx\tcpu_us_per_tx\n' >"$RESULTS"
mkdir -p "$WORK/logs"

run_one() { # round script target
    local round="$1" script="$2" target="$3" port pid="" args=()
    case "$target" in
        direct) port="$PRIMARY_PORT" ;;
        pgbouncer) port="$PGB_PORT"; pid="$PGB_PID" ;;
        switchyard) port="$SY_PORT"; pid="$SY_PID" ;;
    esac
    case "$script" in
        select-only) args=(-S) ;;
        tpcb) args=() ;;
    esac
    local prefix="$WORK/logs/r${round}_${script}_${target}"
    local before=0 after=0
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
    python3 - "$prefix" "$round" "$script" "$target" "$((after - before))" "$CLK_TCK" "$out" >>"$RESULTS" <<'EOF'
import glob, re, sys
prefix, rnd, script, target, ticks, clk, out = sys.argv[1:8]
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
cpu = "" if target == "direct" or tx == 0 else f"{int(ticks) * 1e6 / int(clk) / tx:.2f}"
print(f"{rnd}\t{script}\t{target}\t{tps:.1f}\t{lat:.3f}\t{p99:.3f}\t{tx}\t{cpu}")
EOF
    rm -f "$prefix".*
    tail -n 1 "$RESULTS" | awk -F'\t' '{printf "bench:   round %s %-11s %-10s tps=%-10s avg=%sms p99=%sms cpu/tx=%s\n", $1, $2, $3, $4, $5, $6, ($8 == "" ? "-" : $8 "us")}' >&2
}

log "$ROUNDS rounds x {$SCRIPTS} x {$TARGETS}, ${DURATION}s each, -c $CLIENTS -j $THREADS -M $PROTOCOL, pool $POOL_SIZE"
for round in $(seq 1 "$ROUNDS"); do
    for script in $SCRIPTS; do
        for target in $TARGETS; do
            run_one "$round" "$script" "$target"
        done
    done
done

# ---- 6. summary ----
SUMMARY="$WORK/summary.md"
python3 - "$RESULTS" "$ROUNDS" "$DURATION" "$CLIENTS" "$THREADS" "$PROTOCOL" "$SCALE" "$POOL_SIZE" >"$SUMMARY" <<'EOF'
import csv, statistics, sys
path, rounds, dur, clients, threads, proto, scale, pool = sys.argv[1:9]
rows = list(csv.DictReader(open(path), delimiter="\t"))
def med(vals):
    vals = [float(v) for v in vals if v not in ("", None)]
    return statistics.median(vals) if vals else None
def fmt(v, nd=1):
    return "—" if v is None else f"{v:,.{nd}f}"
print(f"pgbench -M {proto} -c {clients} -j {threads}, {dur}s runs, scale {scale}, pool size {pool}; "
      f"medians of {rounds} interleaved rounds\n")
print("| workload | target | TPS | avg latency (ms) | p99 latency (ms) | proxy CPU µs/tx |")
print("|---|---|---:|---:|---:|---:|")
order = ["direct", "pgbouncer", "switchyard"]
cpu = {}
for script in dict.fromkeys(r["script"] for r in rows):
    for target in order:
        sel = [r for r in rows if r["script"] == script and r["target"] == target]
        if not sel:
            continue
        c = med(r["cpu_us_per_tx"] for r in sel)
        cpu[(script, target)] = c
        print(f"| {script} | {target} | {fmt(med(r['tps'] for r in sel))} | {fmt(med(r['lat_avg_ms'] for r in sel), 3)} "
              f"| {fmt(med(r['p99_ms'] for r in sel), 3)} | {fmt(c, 2)} |")
print()
for script in dict.fromkeys(r["script"] for r in rows):
    a, b = cpu.get((script, "switchyard")), cpu.get((script, "pgbouncer"))
    if a and b:
        print(f"- {script}: Switchyard/PgBouncer CPU µs per transaction = **{a / b:.2f}**")
EOF
echo
cat "$SUMMARY"
if [[ -n "${BENCH_OUT:-}" ]]; then
    cp "$SUMMARY" "$BENCH_OUT"
    log "summary written to $BENCH_OUT"
fi
log "raw results: $RESULTS"
