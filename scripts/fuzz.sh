#!/usr/bin/env bash
# Builds and runs the libFuzzer targets.
#   scripts/fuzz.sh [--time SECONDS] [--jobs N] [frames|policy|write|signals ...]
# Each target runs for --time seconds (default 60) over a scratch corpus seeded from
# Fuzz/seeds/<target>; new crashing inputs land in Fuzz/artifacts/. A crash fails the script;
# turn each into a regression test (Tests/ConsentServerTests/FuzzRegressionTests.swift replays
# every file in Fuzz/regressions/<target>).
#
# Built with SwiftPM's own sanitizer flags (-Xswiftc -sanitize=fuzzer alone builds a binary that
# silently does not fuzz: nothing links libFuzzer), in release with AddressSanitizer, in
# .build-fuzz so the normal build is untouched. swiftc keeps only the last -sanitize= it is given,
# so SwiftPM's `--sanitize=fuzzer --sanitize=address` leaves Swift code with ASan and no coverage
# (libFuzzer then sees only the C dependencies); `-Xswiftc -sanitize=fuzzer,address`, which comes
# last, gives Swift code both. SWIFT_BACKTRACE=enable=no: the Swift backtracer trips ASan.
set -euo pipefail
cd "$(dirname "$0")/.."
time=60
jobs=1
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --time) time="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        frames|policy|write|signals) targets+=("$1"); shift ;;
        *) echo "unknown argument $1 (targets: frames, policy, write, signals)" >&2; exit 64 ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(frames policy write signals)
scratch=.build-fuzz
flags=(-c release --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address --scratch-path "$scratch")
for target in "${targets[@]}"; do
    swift build "${flags[@]}" --product "fuzz-$target" >&2
done
bin=$(swift build "${flags[@]}" --show-bin-path)
mkdir -p Fuzz/artifacts
status=0
for target in "${targets[@]}"; do
    corpus=$(mktemp -d)
    log=$(mktemp)
    echo "=== fuzz-$target for ${time}s (seeds: Fuzz/seeds/$target) ==="
    set +e
    seeds=("Fuzz/seeds/$target")
    [ -d "Fuzz/corpus/$target" ] && seeds+=("Fuzz/corpus/$target")
    SWIFT_BACKTRACE=enable=no LSAN_OPTIONS="suppressions=$PWD/Fuzz/lsan.supp" CONSENTD_FUZZ_POLICIES="$PWD/Policies" CONSENTD_FUZZ_TAXONOMY="$PWD/Fuzz/taxonomy.yaml" "$bin/fuzz-$target" "$corpus" "${seeds[@]}" \
        -max_total_time="$time" -print_final_stats=1 -max_len=4096 -timeout=60 -rss_limit_mb=4096 \
        -jobs="$jobs" -workers="$jobs" -artifact_prefix="Fuzz/artifacts/$target-" >"$log" 2>&1
    code=$?
    set -e
    if [ "$jobs" -gt 1 ]; then cat fuzz-*.log >>"$log" 2>/dev/null || true; rm -f fuzz-*.log; fi
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs|ERROR|SUMMARY|Test unit written" "$log" || true
    runs=$(grep -E "stat::number_of_executed_units" "$log" | awk '{s+=$2} END {print s+0}')
    echo "fuzz-$target: $runs executions, exit $code"
    if [ $code -ne 0 ]; then
        tail -50 "$log"
        status=1
    fi
    rm -rf "$corpus" "$log"
done
exit $status
