#!/usr/bin/env bash
# Read/write-splitting bench: `pgbench -S` through Switchyard with two streaming replicas, beside PgBouncer
# (which cannot split: primary only) and Pgpool-II (streaming-replication mode, load balancing), with the
# classifier microbenchmark. Only defaults: the work is bench/run.sh's, and all its knobs apply.
set -euo pipefail
export REPLICAS="${REPLICAS:-2}"
export POOL_MODE="${POOL_MODE:-transaction}"
export SCRIPTS="${SCRIPTS:-select-only}"
export TARGETS="${TARGETS:-direct pgbouncer pgpool switchyard}"
exec "$(dirname "$0")/run.sh" "$@"
