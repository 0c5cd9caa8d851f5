#!/usr/bin/env bash
# Installs what building and testing Switchyard needs on Debian 12 with Swift already present:
# C libraries, PostgreSQL 15 server+client, PgBouncer (for bench/), and the Python test clients.
# Safe to run repeatedly: it installs only what is missing.
set -euo pipefail

APT_PACKAGES=(libevent-dev libssl-dev libpq-dev libpg-query-dev pkg-config postgresql-15 postgresql-client-15 pgbouncer python3-pip openssl)
PY_MODULES=(pytest psycopg asyncpg pytest_timeout)       # import names
PIP_PACKAGES=(pytest 'psycopg[binary]' asyncpg pytest-timeout prometheus_client)

log() { echo "deps.sh: $*" >&2; }
die() { echo "deps.sh: error: $*" >&2; exit 1; }

SUDO=()
if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo: cannot install packages"
    SUDO=(sudo)
fi

# ---- Debian packages ----------------------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
    # python3-pip is only needed when the python3 on PATH has no pip (e.g. a pyenv python has its own).
    if [[ "$p" == python3-pip ]] && command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
        continue
    fi
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
command -v python3 >/dev/null 2>&1 || missing+=(python3)

if (( ${#missing[@]} > 0 )); then
    log "installing: ${missing[*]}"
    # Never let the postgresql package create (and start) the system cluster on port 5432:
    # our throwaway clusters (scripts/cluster.sh) use their own directories and free ports.
    "${SUDO[@]}" mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" | "${SUDO[@]}" tee /etc/postgresql-common/createcluster.d/switchyard.conf >/dev/null
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # pgbouncer's package may start its own service on 6432; stop it (bench/ runs its own instance).
    if command -v service >/dev/null 2>&1; then
        "${SUDO[@]}" service pgbouncer stop >/dev/null 2>&1 || true
    fi
else
    log "Debian packages present"
fi

# A system cluster that some earlier install started is harmless (we use free ports) but
# costs memory; stop it when it was created by the package and is running.
if command -v pg_lsclusters >/dev/null 2>&1; then
    while read -r ver name port status _; do
        if [[ "$status" == online* ]]; then
            log "stopping Debian system cluster $ver/$name on port $port (not needed)"
            "${SUDO[@]}" pg_ctlcluster "$ver" "$name" stop >/dev/null 2>&1 || true
        fi
    done < <(pg_lsclusters -h 2>/dev/null || true)
fi

# ---- Python test clients ------------------------------------------------------------------
have_modules() {
    local m
    for m in "${PY_MODULES[@]}"; do
        python3 -c "import $m" >/dev/null 2>&1 || return 1
    done
}
if have_modules; then
    log "Python modules present"
else
    log "pip installing: ${PIP_PACKAGES[*]}"
    pip_err="$(mktemp)"
    # A pyenv/venv python takes plain pip; Debian's python refuses it (PEP 668) without the flag.
    if ! python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "${PIP_PACKAGES[@]}" 2>"$pip_err"; then
        if grep -q externally-managed "$pip_err"; then
            python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
                --break-system-packages "${PIP_PACKAGES[@]}" || die "pip install failed"
        else
            cat "$pip_err" >&2
            die "pip install failed"
        fi
    fi
    have_modules || die "Python modules still missing after pip install: ${PY_MODULES[*]}"
fi

# ---- Swift --------------------------------------------------------------------------------
if ! command -v swift >/dev/null 2>&1; then
    die "swift is not on PATH (this script does not install the toolchain; add e.g. /opt/swift/usr/bin to PATH)"
fi
log "ok"
