#!/usr/bin/env bash
# Regenerates the committed code for Protos/:
#   Swift  Sources/ConsentWire/Generated   system protoc + protoc-gen-swift built (release) from the
#                                          pinned swift-protobuf in Tools/protoc-gen-swift
#   C      clients/c/generated             protoc-c (Debian protobuf-c-compiler)
#   scripts/generate-protos.sh          regenerate both
#   scripts/generate-protos.sh --check  fail if the committed code differs from the protos
#
# protoc-c 1.4 (Debian 12) predates proto3 `optional`. Such a field is, on the wire and in
# protoc's own descriptors, a one-field oneof named after it; the C code is generated from a
# copy of the protos with each `optional T name = N;` spelled that way (`oneof _name { T name = N; }`),
# which encodes and decodes exactly the same bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler libprotobuf-dev" >&2; exit 1; }
command -v protoc-c >/dev/null || { echo "protoc-c not found: apt-get install protobuf-c-compiler libprotobuf-c-dev" >&2; exit 1; }
wkt=/usr/include
[ -f "$wkt/google/protobuf/timestamp.proto" ] || { echo "google/protobuf/timestamp.proto not found in $wkt: apt-get install libprotobuf-dev" >&2; exit 1; }

swift build -c release --package-path Tools/protoc-gen-swift --product protoc-gen-swift >&2
plugin="$(swift build -c release --package-path Tools/protoc-gen-swift --show-bin-path)/protoc-gen-swift"
swift_out=Sources/ConsentWire/Generated
c_out=clients/c/generated
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
protos=$(cd Protos && ls consentd/v1/*.proto)

swift_target=$swift_out
c_target=$c_out
if [ "${1:-}" = "--check" ]; then
    swift_target=$work/swift
    c_target=$work/c
fi
mkdir -p "$swift_target" "$c_target"

protoc --proto_path=Protos --plugin=protoc-gen-swift="$plugin" \
    --swift_opt=Visibility=Public --swift_opt=FileNaming=DropPath \
    --swift_out="$swift_target" $protos

mkdir -p "$work/protos-c"
for proto in $protos; do
    mkdir -p "$work/protos-c/$(dirname "$proto")"
    sed -E 's/^([[:space:]]*)optional[[:space:]]+([A-Za-z0-9_.]+)[[:space:]]+([A-Za-z0-9_]+)[[:space:]]*=[[:space:]]*([0-9]+);/\1oneof _\3 { \2 \3 = \4; }/' \
        "Protos/$proto" > "$work/protos-c/$proto"
done
if [ "$c_target" = "$c_out" ]; then rm -rf "$c_out"/consentd "$c_out"/google; mkdir -p "$c_out"; fi
c_target_abs=$(cd "$c_target" && pwd)
(cd "$work/protos-c" && protoc-c --proto_path=. --proto_path="$wkt" --c_out="$c_target_abs" $protos google/protobuf/timestamp.proto)

if [ "${1:-}" = "--check" ]; then
    stale=0
    diff -ru -x README.md "$swift_out" "$swift_target" || stale=1
    diff -ru -x README.md "$c_out" "$c_target" || stale=1
    if [ $stale -ne 0 ]; then
        echo "generated code is out of date: run scripts/generate-protos.sh and commit" >&2
        exit 1
    fi
    echo "generated Swift and C match Protos/"
fi
