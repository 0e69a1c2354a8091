#!/usr/bin/env bash
# The load generator measured against itself, side by side in one run: the echo floor (a server
# that answers each frame with no work) and the daemon, closed loop and open loop at two rates,
# with the open-loop generator's own send lag. The acceptance of issue 15: the open-loop floor's
# p50 within 3x of the closed-loop floor's at 5 k/s on one connection.
#   Benchmarks/open-loop.sh [SECONDS] [REPORT_DIR]
# Uses the release consentd and consentctl (swift build -c release), ./Policies, 10 000 subjects.
# Each bench invocation runs the floor first, then the daemon, with the same shape; the closed
# loop is one connection at depth 1 (one request in flight: the round trip). REPORT_DIR, when
# given, receives each run's --report page.
set -euo pipefail
seconds=${1:-10}; reports=${2:-}
cd "$(dirname "$0")/.."
bin=$(swift build -c release --show-bin-path)
work=$(mktemp -d /tmp/consentd-openloop.XXXXXX)
trap 'pkill -f "$work/" 2>/dev/null || true; rm -rf "$work"' EXIT
cp -r Policies "$work/Policies"
(cd "$work" && "$bin/consentd" --log-level warning --store "$work/c.sqlite" --socket "$work/c.sock" >/dev/null 2>&1 &)
for _ in $(seq 100); do [ -S "$work/c.sock" ] && break; sleep 0.1; done
"$bin/consentctl" bench --socket "$work/c.sock" --policies "$work/Policies" --subjects 10000 --duration 1 --warmup 0 --no-floor >/dev/null
run() {  # $1 label, rest: bench arguments
    local label=$1; shift
    local extra=()
    [ -n "$reports" ] && extra=(--report "$reports/$label.html")
    echo "$label $(cut -d' ' -f1-3 /proc/loadavg)" >"$work/$label.load"
    "$bin/consentctl" bench --socket "$work/c.sock" --policies "$work/Policies" --subjects 10000 --skip-load \
        --duration "$seconds" --warmup 1 --json "$work/$label.json" "${extra[@]}" "$@" >"$work/$label.txt"
}
[ -n "$reports" ] && mkdir -p "$reports"
run closed-1 --connections 1 --depth 1
run open-5k-1 --connections 1 --rate 5000
run open-20k-4 --connections 4 --rate 20000
run closed-4 --connections 4 --depth 1
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
def read(label):
    r = json.load(open(f"{work}/{label}.json"))
    return r, open(f"{work}/{label}.load").read().split()[1:]
print(f"{'run':<34}{'floor p50':>10}{'floor p99':>10}{'daemon p50':>11}{'daemon p99':>11}{'req/s':>9}{'lag p50':>9}{'lag p99':>9}{'lag max':>9}   load")
rows = [("closed loop, 1 connection, depth 1", "closed-1"), ("open loop, 5 000/s, 1 connection", "open-5k-1"),
        ("closed loop, 4 connections, depth 1", "closed-4"), ("open loop, 20 000/s, 4 connections", "open-20k-4")]
figures = {}
for name, label in rows:
    r, load = read(label)
    f, d = r["floor"]["latency_microseconds"], r["daemon"]["latency_microseconds"]
    lag = r["daemon"].get("send_lag_microseconds")
    lagtext = "".join(f"{lag[k]:>9.1f}" for k in ("p50", "p99", "max")) if lag else f"{'-':>9}" * 3
    print(f"{name:<34}{f['p50']:>10.1f}{f['p99']:>10.1f}{d['p50']:>11.1f}{d['p99']:>11.1f}{r['daemon']['requests_per_second']:>9.0f}{lagtext}   {' '.join(load)}")
    figures[label] = (f, d)
print()
print("open-loop floor p50 at 5 000/s on one connection / closed-loop floor p50: %.2fx (acceptance: within 3x)" % (figures["open-5k-1"][0]["p50"] / figures["closed-1"][0]["p50"]))
print("open-loop floor p50 at 20 000/s on four connections / closed-loop floor p50 on four: %.2fx" % (figures["open-20k-4"][0]["p50"] / figures["closed-4"][0]["p50"]))
PY
