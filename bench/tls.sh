#!/usr/bin/env bash
# TLS benchmark: Switchyard and PgBouncer (Debian's) side by side, both with client_tls_sslmode = require and
# the same throwaway certificate, in interleaved rounds. Two workloads through each proxy with sslmode=require:
#   connect  pgbench -S -C: a new TLS connection (handshake + authentication + one SELECT) per transaction,
#            so TPS is the handshake rate; the proxy's CPU µs per connection.
#   select   pgbench -S on persistent TLS connections: TPS and the proxy's CPU µs per transaction.
# CPU is utime+stime from /proc/PID/stat over each run. Medians of the rounds, and Switchyard/PgBouncer ratios.
#
# Knobs (environment):
#   ROUNDS=3  DURATION=10  CLIENTS=16  CONNECT_CLIENTS=8  THREADS=2  SCALE=1  PROTOCOL=simple
#   AUTH=scram-sha-256 (or trust, md5)   auth_type of both proxies
#   CLUSTER_ENV=path/to/cluster.env      use a running cluster (scripts/cluster.sh) instead of a new one
#   SKIP_BUILD=1  SKIP_INIT=1 (reuse pgbench tables)  BENCH_OUT=file.md (also write the summary there)
set -euo pipefail

cd "$(dirname "$0")/.."
REPO="$(pwd)"

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
CLIENTS="${CLIENTS:-16}"
CONNECT_CLIENTS="${CONNECT_CLIENTS:-8}"
THREADS="${THREADS:-2}"
SCALE="${SCALE:-1}"
PROTOCOL="${PROTOCOL:-simple}"
AUTH="${AUTH:-scram-sha-256}"
POOL_SIZE=$((CLIENTS + 4))
TARGETS="pgbouncer switchyard"
WORKLOADS="connect select"

if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi

log() { echo "bench-tls: $*" >&2; }
die() { echo "bench-tls: error: $*" >&2; exit 1; }

WORK="$(mktemp -d /tmp/sy-bench-tls.XXXXXX)"
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
    rm -rf "$WORK/logs" "$WORK/certs"
}
trap cleanup EXIT

# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"

cpu_ticks() { # pid -> utime+stime in clock ticks (fields 14, 15 of /proc/PID/stat, after the comm)
    sed -e 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}

# ---- 1. build, cluster, certificates ----
command -v pgbouncer >/dev/null || die "pgbouncer is not installed (scripts/deps.sh)"
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then swift build -c release >&2; fi
SY_BIN="$(swift build -c release --show-bin-path)/switchyard"
[[ -x "$SY_BIN" ]] || die "no release binary at $SY_BIN"

use_cluster
init_pgbench "$SCALE"

CERTS="$WORK/certs"
mkdir -p "$CERTS"
(
    cd "$CERTS"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt \
        -days 2 -subj "/CN=bench CA" >/dev/null 2>&1
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr \
        -subj "/CN=localhost" >/dev/null 2>&1
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -set_serial 1 -days 2 -extfile server.ext \
        -out server.crt >/dev/null 2>&1
    chmod 600 server.key
) || die "openssl could not make the certificates"

cat >"$WORK/userlist.txt" <<'EOF'
"sy_scram" "scram-pass"
EOF

# ---- 2. PgBouncer (runs as postgres: it refuses root) ----
PGB_PORT="$(free_port)"
cat >"$WORK/pgbouncer.ini" <<EOF
[databases]
sydb = host=127.0.0.1 port=$PRIMARY_PORT dbname=sydb

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = $AUTH
auth_file = $WORK/userlist.txt
pool_mode = session
default_pool_size = $POOL_SIZE
max_client_conn = 1000
server_reset_query = DISCARD ALL
log_connections = 0
log_disconnections = 0
client_tls_sslmode = require
client_tls_cert_file = $CERTS/server.crt
client_tls_key_file = $CERTS/server.key
EOF
PGB_CMD=(pgbouncer "$WORK/pgbouncer.ini")
if [[ "$(id -u)" == 0 ]]; then
    chown -R postgres: "$WORK"
    PGB_CMD=(setpriv --reuid=postgres --regid=postgres --init-groups "${PGB_CMD[@]}")
fi
"${PGB_CMD[@]}" >"$WORK/pgbouncer.log" 2>&1 </dev/null &
PGB_PID=$!
wait_port "$PGB_PORT" "$PGB_PID" pgbouncer "$WORK/pgbouncer.log"
log "pgbouncer $(pgbouncer --version | head -1 | awk '{print $2}') on $PGB_PORT (pid $PGB_PID)"

# ---- 3. Switchyard ----
SY_PORT="$(free_port)"
cat >"$WORK/proxy.conf" <<EOF
[proxy]
listen_addr = 127.0.0.1
listen_port = $SY_PORT
pool_mode = session
auth_type = $AUTH
auth_file = $WORK/userlist.txt
default_pool_size = $POOL_SIZE
max_client_conn = 1000
server_reset_query = DISCARD ALL
log_level = warning
client_tls_sslmode = require
client_tls_cert_file = $CERTS/server.crt
client_tls_key_file = $CERTS/server.key

[primary]
host = 127.0.0.1
port = $PRIMARY_PORT
EOF
"$SY_BIN" --config "$WORK/proxy.conf" >"$WORK/switchyard.log" 2>&1 </dev/null &
SY_PID=$!
wait_port "$SY_PORT" "$SY_PID" switchyard "$WORK/switchyard.log"
log "switchyard $("$SY_BIN" --version 2>&1 | head -1) on $SY_PORT (pid $SY_PID)"

# ---- 4. interleaved rounds ----
CLK_TCK="$(getconf CLK_TCK)"
RESULTS="$WORK/results.tsv"
printf 'round\tworkload\ttarget\ttps\tlat_avg_ms\ttx\tcpu_us_per_tx\n' >"$RESULTS"
mkdir -p "$WORK/logs"
export PGSSLMODE=require

run_one() { # round workload target
    local round="$1" workload="$2" target="$3" port pid args=()
    case "$target" in
        pgbouncer) port="$PGB_PORT"; pid="$PGB_PID" ;;
        switchyard) port="$SY_PORT"; pid="$SY_PID" ;;
    esac
    case "$workload" in
        connect) args=(-S -C -c "$CONNECT_CLIENTS") ;;
        select) args=(-S -c "$CLIENTS") ;;
    esac
    local before after out
    before="$(cpu_ticks "$pid")"
    if ! out="$("$PGBENCH" -n "${args[@]}" -M "$PROTOCOL" -j "$THREADS" -T "$DURATION" -p "$port" 2>&1)"; then
        echo "$out" >&2
        log "WARNING: pgbench failed for $target/$workload round $round"
        return 0
    fi
    after="$(cpu_ticks "$pid")"
    python3 - "$round" "$workload" "$target" "$((after - before))" "$CLK_TCK" "$out" >>"$RESULTS" <<'EOF'
import re, sys
rnd, workload, target, ticks, clk, out = sys.argv[1:7]
# With -C, "including connections" is the rate that counts each connection's handshake.
which = "including" if workload == "connect" else "without"
m = re.search(r"tps = ([\d.]+) \((?:%s) initial connection time\)" % which, out) or re.search(r"tps = ([\d.]+)", out)
tps = float(m.group(1))
lat = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))
tx = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))
failed = re.search(r"number of failed transactions: (\d+)", out)
if failed and int(failed.group(1)):
    print(f"bench-tls: WARNING: {failed.group(1)} failed transactions ({target}/{workload})", file=sys.stderr)
cpu = "" if tx == 0 else f"{int(ticks) * 1e6 / int(clk) / tx:.2f}"
print(f"{rnd}\t{workload}\t{target}\t{tps:.1f}\t{lat:.3f}\t{tx}\t{cpu}")
EOF
    tail -n 1 "$RESULTS" | awk -F'\t' '{printf "bench-tls:   round %s %-8s %-10s tps=%-10s avg=%sms cpu/tx=%sus\n", $1, $2, $3, $4, $5, $7}' >&2
}

log "$ROUNDS rounds x {$WORKLOADS} x {$TARGETS}, ${DURATION}s each, sslmode=require, auth $AUTH, -j $THREADS -M $PROTOCOL"
for round in $(seq 1 "$ROUNDS"); do
    for workload in $WORKLOADS; do
        for target in $TARGETS; do
            run_one "$round" "$workload" "$target"
        done
    done
done

# ---- 5. summary ----
SUMMARY="$WORK/summary.md"
python3 - "$RESULTS" "$ROUNDS" "$DURATION" "$CLIENTS" "$CONNECT_CLIENTS" "$THREADS" "$PROTOCOL" "$AUTH" >"$SUMMARY" <<'EOF'
import csv, statistics, sys
path, rounds, dur, clients, cclients, threads, proto, auth = sys.argv[1:9]
rows = list(csv.DictReader(open(path), delimiter="\t"))
def med(vals):
    vals = [float(v) for v in vals if v not in ("", None)]
    return statistics.median(vals) if vals else None
def fmt(v, nd=1):
    return "—" if v is None else f"{v:,.{nd}f}"
print(f"sslmode=require to both proxies (TLS 1.3, same certificate), auth_type = {auth}, session pooling, "
      f"pgbench -M {proto} -j {threads}, {dur}s runs; medians of {rounds} interleaved rounds\n")
print("| workload | target | TPS | avg latency (ms) | proxy CPU µs/tx |")
print("|---|---|---:|---:|---:|")
labels = {"connect": f"connect (-S -C, {cclients} clients): TPS = TLS connections/s",
          "select": f"select (-S, {clients} persistent TLS clients)"}
tps, cpu = {}, {}
for w in ("connect", "select"):
    for t in ("pgbouncer", "switchyard"):
        sel = [r for r in rows if r["workload"] == w and r["target"] == t]
        if not sel:
            continue
        tps[(w, t)] = med(r["tps"] for r in sel)
        cpu[(w, t)] = med(r["cpu_us_per_tx"] for r in sel)
        print(f"| {labels[w]} | {t} | {fmt(tps[(w, t)])} | {fmt(med(r['lat_avg_ms'] for r in sel), 3)} | {fmt(cpu[(w, t)], 2)} |")
print()
for w in ("connect", "select"):
    a, b = tps.get((w, "switchyard")), tps.get((w, "pgbouncer"))
    c, d = cpu.get((w, "switchyard")), cpu.get((w, "pgbouncer"))
    if a and b and c and d:
        print(f"- {w}: Switchyard/PgBouncer TPS = **{a / b:.2f}**, CPU µs per transaction = **{c / d:.2f}**")
EOF
echo
cat "$SUMMARY"
if [[ -n "${BENCH_OUT:-}" ]]; then
    cp "$SUMMARY" "$BENCH_OUT"
    log "summary written to $BENCH_OUT"
fi
log "raw results: $RESULTS"
