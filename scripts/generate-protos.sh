#!/usr/bin/env bash
# Regenerates the committed Swift code for Protos/ with the system protoc and protoc-gen-swift
# built (release) from the pinned swift-protobuf in Tools/protoc-gen-swift.
#   scripts/generate-protos.sh          regenerate Sources/ConsentWire/Generated
#   scripts/generate-protos.sh --check  fail if the committed code differs from the protos
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler" >&2; exit 1; }
swift build -c release --package-path Tools/protoc-gen-swift --product protoc-gen-swift >&2
plugin="$(swift build -c release --package-path Tools/protoc-gen-swift --show-bin-path)/protoc-gen-swift"
out=Sources/ConsentWire/Generated
target=$out
if [ "${1:-}" = "--check" ]; then
    target=$(mktemp -d)
    trap 'rm -rf "$target"' EXIT
fi
mkdir -p "$target"
protoc --proto_path=Protos --plugin=protoc-gen-swift="$plugin" \
    --swift_opt=Visibility=Public --swift_opt=FileNaming=DropPath \
    --swift_out="$target" $(cd Protos && ls consentd/v1/*.proto)
if [ "${1:-}" = "--check" ]; then
    if ! diff -ru -x README.md "$out" "$target"; then
        echo "generated Swift is out of date: run scripts/generate-protos.sh and commit" >&2
        exit 1
    fi
    echo "generated Swift matches Protos/"
fi
