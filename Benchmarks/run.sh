#!/usr/bin/env bash
# Builds the in-process benchmarks in release mode and runs them with the malloc interposer
# preloaded, so that allocation counts are real. Arguments are passed to the benchmark binary,
# e.g. ./run.sh decide --subjects 1000000 --duration 5
set -euo pipefail
cd "$(dirname "$0")"
swift build -c release --product consentd-benchmarks >&2
bin=$(swift build -c release --show-bin-path)
LD_PRELOAD="$bin/libMallocInterposerSwift.so" "$bin/consentd-benchmarks" "$@"
