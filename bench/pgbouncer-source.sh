#!/usr/bin/env bash
# Builds PgBouncer 1.24.1 from Debian's own source package (trixie's pgbouncer_1.24.1.orig.tar.gz, checked
# against the SHA-256 in trixie's Sources index) into a prefix, for comparisons Debian 12's PgBouncer 1.18
# cannot make: protocol-level prepared statements in transaction mode (max_prepared_statements, 1.21+).
# Prints the binary's path; use it as PGBOUNCER_BIN=... bench/run.sh.
#
#   PREFIX=/tmp/pgbouncer-1.24  (default)      bench/pgbouncer-source.sh
set -euo pipefail
PREFIX="${PREFIX:-/tmp/pgbouncer-1.24}"
VERSION=1.24.1
SHA256=da72a3aba13072876d055a3e58dd4aba4a5de4ed6148e73033185245598fd3e0
URL="http://deb.debian.org/debian/pool/main/p/pgbouncer/pgbouncer_${VERSION}.orig.tar.gz"

if [[ -x "$PREFIX/bin/pgbouncer" ]] && "$PREFIX/bin/pgbouncer" --version | grep -q "$VERSION"; then
    echo "$PREFIX/bin/pgbouncer"; exit 0
fi
need=()
for pkg in build-essential pkg-config libevent-dev libssl-dev curl; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
    echo "pgbouncer-source: installing ${need[*]}" >&2
    apt-get install -y -q "${need[@]}" >&2
fi
src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
curl -fsS -o "$src/pgbouncer.tar.gz" "$URL"
echo "$SHA256  $src/pgbouncer.tar.gz" | sha256sum -c --quiet - >&2
tar -xzf "$src/pgbouncer.tar.gz" -C "$src"
cd "$src/pgbouncer-$VERSION"
./configure --prefix="$PREFIX" --without-cares --without-systemd >"$src/configure.log" 2>&1 \
    || { tail -20 "$src/configure.log" >&2; exit 1; }
make -j"$(nproc)" >"$src/make.log" 2>&1 || { tail -20 "$src/make.log" >&2; exit 1; }
make install >"$src/install.log" 2>&1 || { tail -20 "$src/install.log" >&2; exit 1; }
echo "$PREFIX/bin/pgbouncer"
