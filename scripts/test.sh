#!/usr/bin/env bash
# The test command: installs dependencies, builds (debug), runs the unit tests (swift test), then
# the integration tests (pytest, Tests/IntegrationTests) against a throwaway primary + replica.
# Exits non-zero if any stage fails. Environment knobs:
#   SKIP_DEPS=1           do not run scripts/deps.sh
#   SKIP_UNIT=1           do not run swift test
#   PYTEST_ARGS="..."     extra pytest arguments (e.g. "-k auth -x")
set -uo pipefail

cd "$(dirname "$0")/.."
REPO="$(pwd)"

if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi

declare -a STAGE_NAMES=() STAGE_RESULTS=() STAGE_TIMES=()
FAILED=0

banner() { printf '\n===== %s =====\n' "$*"; }

# run_stage NAME CMD...: runs CMD, records PASS/FAIL and the time taken.
run_stage() {
    local name="$1"; shift
    banner "$name"
    local t0=$SECONDS rc=0
    "$@" || rc=$?
    STAGE_NAMES+=("$name")
    STAGE_TIMES+=("$((SECONDS - t0))s")
    if (( rc == 0 )); then
        STAGE_RESULTS+=("PASS")
    else
        STAGE_RESULTS+=("FAIL (exit $rc)")
        FAILED=1
    fi
    return $rc
}

skip_stage() {
    STAGE_NAMES+=("$1"); STAGE_RESULTS+=("NOT RUN ($2)"); STAGE_TIMES+=("-")
    FAILED=1
}

summary() {
    banner "summary"
    local i
    for i in "${!STAGE_NAMES[@]}"; do
        printf '  %-20s %-28s %s\n' "${STAGE_NAMES[$i]}" "${STAGE_RESULTS[$i]}" "${STAGE_TIMES[$i]}"
    done
    if (( FAILED )); then
        echo "RESULT: FAILED"
    else
        echo "RESULT: OK"
    fi
}

CLUSTER_DIR=""
cleanup() {
    if [[ -n "$CLUSTER_DIR" ]]; then
        "$REPO/scripts/cluster.sh" stop "$CLUSTER_DIR" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM

# ---- 1. dependencies ----
if [[ "${SKIP_DEPS:-0}" != 1 ]]; then
    run_stage "deps" scripts/deps.sh || { summary; exit 1; }
fi

# ---- 2. build ----
BUILD_OK=0
run_stage "swift build" swift build && BUILD_OK=1

# ---- 3. unit tests ----
if [[ "${SKIP_UNIT:-0}" == 1 ]]; then
    :
elif (( BUILD_OK )); then
    run_stage "swift test" swift test
else
    skip_stage "swift test" "build failed"
fi

# ---- 4. integration tests ----
integration() {
    local bin_dir
    bin_dir="$(swift build --show-bin-path)" || return 1
    export SWITCHYARD_BIN="$bin_dir/switchyard"
    echo "SWITCHYARD_BIN=$SWITCHYARD_BIN"

    CLUSTER_DIR="$(mktemp -d /tmp/sy-test.XXXXXX)"
    chmod 755 "$CLUSTER_DIR"
    scripts/cluster.sh start "$CLUSTER_DIR" || return 1
    set -a
    # shellcheck disable=SC1091
    . "$CLUSTER_DIR/cluster.env"
    set +a

    # pytest-timeout bounds each test; `timeout` bounds the whole run (CI has 90 minutes).
    # shellcheck disable=SC2086
    timeout --signal=INT --kill-after=30 1500 \
        python3 -m pytest -q -p no:cacheprovider -p no:hypothesispytest --timeout=180 -rfE ${PYTEST_ARGS:-} Tests/IntegrationTests
}
if (( BUILD_OK )); then
    run_stage "integration tests" integration
else
    skip_stage "integration tests" "build failed"
fi

summary
exit "$FAILED"
