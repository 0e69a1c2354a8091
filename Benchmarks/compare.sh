#!/usr/bin/env bash
# Measures two consentd binaries side by side in one run, alternating them, with the same
# consentctl bench, store and request pool: sequential Checks (depth 1), pipelined Checks
# (depth 64) and CheckBatch (64 items, 2 connections, depth 4). Prints one line per run and the
# machine load before each, so a before/after comparison is a ratio measured under the same
# conditions. Usage:
#   Benchmarks/compare.sh BEFORE/consentd AFTER/consentd [ROUNDS] [SECONDS]
# e.g. build the old commit with `git worktree add`, `swift build -c release`, copy its consentd.
# COMPARE_POLICIES=DIR uses that policy set for both (one the older binary can read) instead of ./Policies.
set -euo pipefail
before=$(realpath "$1"); after=$(realpath "$2"); rounds=${3:-2}; seconds=${4:-5}
cd "$(dirname "$0")/.."
ctl=$(swift build -c release --show-bin-path)/consentctl
work=$(mktemp -d /tmp/consentd-compare.XXXXXX)
trap 'pkill -f "$work/" 2>/dev/null || true; rm -rf "$work"' EXIT
cp -r "${COMPARE_POLICIES:-Policies}" "$work/Policies"
start() {  # $1 binary, $2 store
    (cd "$work" && "$1" --log-level warning --store "$2" --socket "$work/s.sock" >/dev/null 2>&1 &)
    for _ in $(seq 100); do [ -S "$work/s.sock" ] && return; sleep 0.1; done
    echo "daemon did not start" >&2; exit 1
}
stop() { pkill -TERM -f "$work/s.sock" || true; for _ in $(seq 100); do [ -S "$work/s.sock" ] || return 0; sleep 0.1; done; }
# The population, recorded once through the old daemon; each daemon gets its own copy.
start "$before" "$work/seed.sqlite"
"$ctl" bench --socket "$work/s.sock" --policies "$work/Policies" --subjects 100000 --duration 1 --warmup 0 --no-floor >/dev/null
stop
run() {  # $1 label, $2 binary, rest: bench arguments
    local label=$1 binary=$2; shift 2
    cp "$work/seed.sqlite" "$work/$label.sqlite"
    rm -f "$work/$label.sqlite-wal" "$work/$label.sqlite-shm"
    start "$binary" "$work/$label.sqlite"
    local load; load=$(cut -d' ' -f1-3 /proc/loadavg)
    local line
    line=$("$ctl" bench --socket "$work/s.sock" --policies "$work/Policies" --subjects 100000 --skip-load \
        --duration "$seconds" --warmup 1 --no-floor --json "$work/out.json" "$@" >/dev/null && python3 -c '
import json,sys
r=json.load(open(sys.argv[1]))
def get(o, name):
    return o[name] if name in o else o["".join("_" + c.lower() if c.isupper() else c for c in name)]
d=get(r, "daemon"); l=get(d, "latencyMicroseconds")
print("decisions/s %9.0f  requests/s %8.0f  p50 %7.1f us  p99 %8.1f us" % (get(d, "decisionsPerSecond"), get(d, "requestsPerSecond"), l["p50"], l["p99"]))
' "$work/out.json")
    stop
    printf '%-8s %-28s load %s  %s\n' "$label" "$*" "$load" "$line"
}
for round in $(seq "$rounds"); do
    for args in "--connections 1 --depth 1" "--connections 1 --depth 64" "--connections 2 --depth 4 --batch 64"; do
        # shellcheck disable=SC2086
        run before "$before" $args
        # shellcheck disable=SC2086
        run after "$after" $args
    done
done
