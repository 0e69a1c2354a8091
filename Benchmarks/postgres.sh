#!/usr/bin/env bash
# The PostgreSQL store measured in one run, beside SQLite:
#   1. the decision path: pipelined Checks (depth 64) on a PostgreSQL-backed daemon and on an
#      SQLite-backed one, the same population, alternating, as a ratio per round and its median;
#   2. write throughput: RecordConsent (one record each, 4 connections) through one daemon, then
#      through two daemons on the same database at once (their sum);
#   3. cross-daemon visibility: grants through daemon A at a steady rate, each followed by Checks
#      on daemon B until it allows: the delay from A's acknowledgement to B's first allow.
#   Benchmarks/postgres.sh [ROUNDS] [SECONDS]
# Needs CONSENTD_BENCH_POSTGRES (or CONSENTD_TEST_POSTGRES): the URI of a database on a server
# where it may create and drop databases (e.g. postgresql:///postgres?host=/tmp/pg&port=54329&user=consentd),
# and psql. Uses the release consentd and consentctl (swift build -c release) and ./Policies.
# Prints the machine load before each run: the machine is shared, read the ratios.
set -euo pipefail
rounds=${1:-3}; seconds=${2:-5}
server=${CONSENTD_BENCH_POSTGRES:-${CONSENTD_TEST_POSTGRES:-}}
[ -n "$server" ] || { echo "set CONSENTD_BENCH_POSTGRES to a PostgreSQL URI (see the header of this script)" >&2; exit 2; }
cd "$(dirname "$0")/.."
bin=$(swift build -c release --show-bin-path)
work=$(mktemp -d /tmp/consentd-pgbench.XXXXXX)
db="consentd_bench_$$"
# The database's URI: the server's with the database name replaced.
uri=$(python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(p.scheme + "://" + p.netloc + "/" + sys.argv[2] + ("?" + p.query if p.query else ""))' "$server" "$db")
psql_server() { python3 - "$server" "$@" <<'PY'
import sys, subprocess, urllib.parse as u
p = u.urlsplit(sys.argv[1]); q = dict(u.parse_qsl(p.query))
args = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", p.path.lstrip("/") or "postgres"]
host = q.get("host") or p.hostname
if host: args += ["-h", host]
port = q.get("port") or p.port
if port: args += ["-p", str(port)]
user = q.get("user") or p.username
if user: args += ["-U", user]
subprocess.run(args + sys.argv[2:], check=True)
PY
}
cleanup() {
    pkill -f "$work/" 2>/dev/null || true
    sleep 0.5
    psql_server -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
psql_server -c "CREATE DATABASE $db"
cp -r Policies "$work/Policies"
start() {  # $1 name, $2 store
    (cd "$work" && "$bin/consentd" --log-level warning --store "$2" --socket "$work/$1.sock" >"$work/$1.log" 2>&1 &)
    for _ in $(seq 200); do [ -S "$work/$1.sock" ] && return; sleep 0.1; done
    echo "daemon $1 did not start:"; cat "$work/$1.log"; exit 1
}
load() { cut -d' ' -f1-3 /proc/loadavg; }
field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["daemon"]; print(d.get(sys.argv[2]) or d.get(sys.argv[3]))' "$@"; }

start pg "$uri"
start lite "$work/lite.sqlite"
for d in pg lite; do
    "$bin/consentctl" bench --socket "$work/$d.sock" --policies "$work/Policies" --subjects 100000 --duration 1 --warmup 0 --no-floor >/dev/null
done
echo "== decision path: pipelined Checks, depth 64, 100 000 subjects"
: >"$work/ratios"
for round in $(seq "$rounds"); do
    for d in pg lite; do
        l=$(load)
        "$bin/consentctl" bench --socket "$work/$d.sock" --policies "$work/Policies" --subjects 100000 --skip-load \
            --connections 1 --depth 64 --duration "$seconds" --warmup 1 --no-floor --json "$work/$d.json" >/dev/null
        printf '%-5s round %s  load %s  decisions/s %9.0f\n' "$d" "$round" "$l" "$(field "$work/$d.json" decisionsPerSecond decisions_per_second)"
    done
    python3 -c 'import sys; print(float(sys.argv[1]) / float(sys.argv[2]))' \
        "$(field "$work/pg.json" decisionsPerSecond decisions_per_second)" "$(field "$work/lite.json" decisionsPerSecond decisions_per_second)" >>"$work/ratios"
done
python3 -c 'import sys, statistics; r=[float(x) for x in open(sys.argv[1])]; print("PostgreSQL-backed / SQLite-backed pipelined Checks: median %.2fx (%s)" % (statistics.median(r), " ".join("%.2f" % x for x in r)))' "$work/ratios"

echo "== write throughput: RecordConsent, one record each, 4 connections per daemon"
l=$(load)
"$bin/consentctl" bench --socket "$work/pg.sock" --policies "$work/Policies" --mix record=1 --subjects 100000 --skip-load \
    --connections 4 --depth 1 --duration "$seconds" --warmup 1 --no-floor --json "$work/w1.json" >/dev/null
printf 'one daemon   load %s  writes/s %7.0f  p50 %6.0f us  p99 %6.0f us\n' "$l" "$(field "$work/w1.json" requestsPerSecond requests_per_second)" \
    "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["daemon"]; l=d.get("latencyMicroseconds") or d.get("latency_microseconds"); print(l["p50"])' "$work/w1.json")" \
    "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["daemon"]; l=d.get("latencyMicroseconds") or d.get("latency_microseconds"); print(l["p99"])' "$work/w1.json")"
start pg2 "$uri"
l=$(load)
for d in pg pg2; do
    "$bin/consentctl" bench --socket "$work/$d.sock" --policies "$work/Policies" --mix record=1 --subjects 100000 --skip-load \
        --connections 4 --depth 1 --duration "$seconds" --warmup 1 --no-floor --seed "$([ $d = pg ] && echo 3 || echo 4)" --json "$work/w2-$d.json" >/dev/null &
done
wait
printf 'two daemons  load %s  writes/s %7.0f (%s + %s)\n' "$l" \
    "$(python3 -c 'import sys; print(float(sys.argv[1]) + float(sys.argv[2]))' "$(field "$work/w2-pg.json" requestsPerSecond requests_per_second)" "$(field "$work/w2-pg2.json" requestsPerSecond requests_per_second)")" \
    "$(field "$work/w2-pg.json" requestsPerSecond requests_per_second)" "$(field "$work/w2-pg2.json" requestsPerSecond requests_per_second)"

echo "== cross-daemon visibility (NOTIFY; heartbeat poll 1 s)"
for rate in 50 200; do
    printf 'load %s  ' "$(load)"
    "$bin/consentctl" bench --socket "$work/pg.sock" --visibility "$work/pg2.sock" --policies "$work/Policies" --rate "$rate" --duration "$seconds"
done
