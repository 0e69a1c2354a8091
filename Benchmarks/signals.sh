#!/usr/bin/env bash
# Pipelined Checks carrying a consent signal string against the same Checks without one, on one
# daemon, alternating, in one run: the cost of reading the string on every request, as a ratio.
# "tc" repeats one TC string (a customer's page of ad requests: the daemon reads it once per
# connection and compares bytes after that); "tc-16" draws each request's from 16 different
# strings (every request a string the connection did not just read: the full reading each time).
#   Benchmarks/signals.sh [ROUNDS] [SECONDS] [DEPTH]
# Uses the release consentd and consentctl (swift build -c release), ./Policies, 100 000 subjects.
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
(cd "$work" && "$bin/consentd" --log-level warning --store "$work/s.sqlite" --socket "$work/s.sock" >/dev/null 2>&1 &)
for _ in $(seq 100); do [ -S "$work/s.sock" ] && break; sleep 0.1; done
"$bin/consentctl" bench --socket "$work/s.sock" --policies "$work/Policies" --subjects 100000 --duration 1 --warmup 0 --no-floor >/dev/null
run() {  # $1 label, rest: bench arguments
    local label=$1; shift
    local load; load=$(cut -d' ' -f1-3 /proc/loadavg)
    "$bin/consentctl" bench --socket "$work/s.sock" --policies "$work/Policies" --subjects 100000 --skip-load \
        --connections 1 --depth "$depth" --duration "$seconds" --warmup 1 --no-floor --json "$work/$label.json" "$@" >/dev/null
    python3 -c '
import json,sys
r=json.load(open(sys.argv[1])); d=r["daemon"]; l=d.get("latencyMicroseconds") or d.get("latency_microseconds")
rate=d.get("decisionsPerSecond") or d.get("decisions_per_second")
print("%-10s load %s  decisions/s %9.0f  p50 %7.1f us  p99 %8.1f us" % (sys.argv[2], sys.argv[3], rate, l["p50"], l["p99"]))
' "$work/$label.json" "$label" "$load"
}
rate() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["daemon"]; print(d.get("decisionsPerSecond") or d.get("decisions_per_second"))' "$1"; }
for round in $(seq "$rounds"); do
    run plain
    run tc --tc-string "$tc"
    run tc-16 "${variants[@]}"
    run gpp --gpp "$gpp"
    python3 -c 'import sys; p,t,v,g=map(float,sys.argv[1:5]); print("round %s: one TC string %.2fx, 16 TC strings %.2fx, the GPP string %.2fx the plain rate" % (sys.argv[5], t/p, v/p, g/p))' \
        "$(rate "$work/plain.json")" "$(rate "$work/tc.json")" "$(rate "$work/tc-16.json")" "$(rate "$work/gpp.json")" "$round"
done
