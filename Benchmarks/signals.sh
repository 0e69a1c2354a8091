#!/usr/bin/env bash
# Pipelined Checks carrying a consent signal string against the same Checks without one, on one
# daemon, alternating, in one run: the cost of reading the string on every request, as a ratio.
# "tc" repeats one TC string (a customer's page of ad requests: the daemon reads it once per
# connection and compares bytes after that); "tc-16" draws each request's from 16 different
# strings (every request a string the connection did not just read: the full reading each time).
#   Benchmarks/signals.sh [ROUNDS] [SECONDS] [DEPTH]
# Uses the release consentd and consentctl (swift build -c release), ./Policies, 100 000 subjects.
# SIGNALS_BEFORE=/path/to/consentd also runs an older daemon beside it (its own store and socket,
# the same requests), each round alternating the two, for a before/after of the ratios.
# Prints each run with the machine load and the daemon's CPU time per decision (user + system,
# from /proc, over the run and its warm-up second), then the median ratios over the rounds: of
# the rates, and of the decisions per daemon CPU-second (what the daemon itself pays for the
# string; the rate also carries the client's cost of sending ten-times-larger frames on the same
# two cores). The plain rate itself moves by half between rounds on this shared machine: read the
# medians.
# The TC string is iabtcf-es's test string with several hundred vendors (bitfield consents, range
# legitimate interests); the GPP string a US national section with its GPC subsection.
set -euo pipefail
rounds=${1:-3}; seconds=${2:-5}; depth=${3:-64}
cd "$(dirname "$0")/.."
bin=$(swift build -c release --show-bin-path)
work=$(mktemp -d /tmp/consentd-signals.XXXXXX)
trap 'pkill -f "$work/" 2>/dev/null || true; rm -rf "$work"' EXIT
cp -r Policies "$work/Policies"
tc="CO4VGswO4VGswAfZCBDEAzCsAP_AAH_AAAigGUNf_X9fb2vj-_599_t0eY1f9_63t-wzjheMs-8NyZ-X_J4Wv2MyvB34JqQKGRgkunLBAQdtHGncTQgBwIlViTLMY02MjzNKJrJEilsbe2dYGH9vn8XT_ZKZ70-_v__7v3___33_5Ayhr_6_r7e18f3_Pvv9ujzGr_v_W9v2GccLxln3huTPy_5PC1-xmV4O_BNSBQyMEl05YICDto407iaEAOBEqsSZZjGmxkeZpRNZIkUtjb2zrAw_t8_i6f7JTPen39___d-___--__ICgKAOAAcAA4AFAAjgB6AEYALcGACAW0AtoJAHAAOAAcACgARwA9ACMAFuFABALaAW0GgDgAHAAOABQAI4AegBGAC3DgAgFtALaEQBwADgAHAAoAEcAPQAjABbiQAQC2gFtCoA4ABwADgAUACOAHoARgAtxYAIBbQC2hkAcAA4ABwAKABHAD0AIwAW40AEAtoBbQ6AOAAcAA4AFAAjgB6AEYALceACAW0AtohAHAAOAAcACgARwA9ACMAFuRABALaAW0SgDgAHAAOABQAI4AegBGAC3JgAgFtALaKQBwADgAHAAoAEcAPQAjABblQAQC2gFtA"
gpp="DBABLA~BVQqAAAAAgA.QA"
# 16 variants of the TC string: character 2 lies in the Created field, so each stays well formed.
variants=()
for c in A B C D E F G H I J K L M N O P; do variants+=(--tc-string "${tc:0:2}$c${tc:3}"); done
daemons=(after)
declare -A binary=([after]="$bin/consentd") pid=()
if [ -n "${SIGNALS_BEFORE:-}" ]; then daemons=(before after); binary[before]=$(realpath "$SIGNALS_BEFORE"); fi
for d in "${daemons[@]}"; do
    (cd "$work" && "${binary[$d]}" --log-level warning --store "$work/$d.sqlite" --socket "$work/$d.sock" >/dev/null 2>&1 &)
    for _ in $(seq 100); do [ -S "$work/$d.sock" ] && break; sleep 0.1; done
    pid[$d]=$(pgrep -f -- "--socket $work/$d.sock" | head -1)
    "$bin/consentctl" bench --socket "$work/$d.sock" --policies "$work/Policies" --subjects 100000 --duration 1 --warmup 0 --no-floor >/dev/null
done
run() {  # $1 daemon, $2 label, rest: bench arguments
    local daemon=$1 label=$2; shift 2
    local load; load=$(cut -d' ' -f1-3 /proc/loadavg)
    local ticks; ticks=$(awk '{print $14 + $15}' "/proc/${pid[$daemon]}/stat")
    "$bin/consentctl" bench --socket "$work/$daemon.sock" --policies "$work/Policies" --subjects 100000 --skip-load \
        --connections 1 --depth "$depth" --duration "$seconds" --warmup 1 --no-floor --json "$work/$daemon-$label.json" "$@" >/dev/null
    echo $(( $(awk '{print $14 + $15}' "/proc/${pid[$daemon]}/stat") - ticks )) >"$work/$daemon-$label.ticks"
    python3 -c '
import json,sys
r=json.load(open(sys.argv[1])); d=r["daemon"]; l=d.get("latencyMicroseconds") or d.get("latency_microseconds")
rate=d.get("decisionsPerSecond") or d.get("decisions_per_second")
cpu=int(open(sys.argv[5]).read()) / 100 / (rate * (float(sys.argv[6]) + 1)) * 1e6
print("%-6s %-6s load %s  decisions/s %9.0f  p50 %7.1f us  p99 %8.1f us  daemon CPU %.2f us/decision" % (sys.argv[4], sys.argv[2], sys.argv[3], rate, l["p50"], l["p99"], cpu))
' "$work/$daemon-$label.json" "$label" "$load" "$daemon" "$work/$daemon-$label.ticks" "$seconds"
}
rate() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["daemon"]; print(d.get("decisionsPerSecond") or d.get("decisions_per_second"))' "$1"; }
for round in $(seq "$rounds"); do
    for d in "${daemons[@]}"; do
        run "$d" plain
        run "$d" tc --tc-string "$tc"
        run "$d" tc-16 "${variants[@]}"
        run "$d" gpp --gpp "$gpp"
        line="$d $round"
        for label in plain tc tc-16 gpp; do line+=" $(rate "$work/$d-$label.json") $(cat "$work/$d-$label.ticks")"; done
        echo "$line" >>"$work/rates"
    done
done
python3 - "$work/rates" <<'PY'
import sys, statistics
rows = {}
for line in open(sys.argv[1]):
    d, r, *v = line.split()
    (p, pt), (t, tt), (s, st), (g, gt) = [(float(v[i]), float(v[i + 1])) for i in range(0, 8, 2)]
    # Decisions per daemon CPU tick, as a ratio to plain's (the run lengths are equal).
    per = lambda rate, ticks: rate / ticks
    rows.setdefault(d, []).append((t / p, s / p, g / p, per(t, tt) / per(p, pt), per(s, st) / per(p, pt), per(g, gt) / per(p, pt)))
for d, ratios in rows.items():
    cols = list(zip(*ratios))
    fmt = lambda xs: "median %.2fx (%s)" % (statistics.median(xs), " ".join("%.2f" % x for x in xs))
    print("%s rate:      one TC string %s; 16 TC strings %s; the GPP string %s the plain rate" % (d, fmt(cols[0]), fmt(cols[1]), fmt(cols[2])))
    print("%s daemon CPU: one TC string %s; 16 TC strings %s; the GPP string %s the plain decisions per CPU-second" % (d, fmt(cols[3]), fmt(cols[4]), fmt(cols[5])))
PY
