#!/usr/bin/env bash
# Encodes the golden wire vectors: every Tests/ConsentWireTests/Vectors/NAME.txtpb (protobuf text
# format; its first line names the message, `# proto-message: consentd.v1.Request`) becomes
# NAME.binpb, the message's bytes as Debian's protoc (the C++ implementation) writes them — an
# encoder that shares no code with consentd. The Swift codec (both answer paths) and the C client
# must read and write exactly these bytes (Tests/ConsentWireTests/GoldenVectorTests.swift,
# clients/c/tests/test_vectors.c).
#   scripts/generate-vectors.sh          (re)write every .binpb
#   scripts/generate-vectors.sh --check  fail if a committed .binpb differs or is missing
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler libprotobuf-dev" >&2; exit 1; }
wkt=/usr/include
[ -f "$wkt/google/protobuf/timestamp.proto" ] || { echo "google/protobuf/timestamp.proto not found in $wkt: apt-get install libprotobuf-dev" >&2; exit 1; }
vectors=Tests/ConsentWireTests/Vectors
check=0
[ "${1:-}" = "--check" ] && check=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stale=0
count=0
for text in "$vectors"/*.txtpb; do
    name=$(basename "$text" .txtpb)
    message=$(sed -n '1s/^# proto-message: *//p' "$text")
    [ -n "$message" ] || { echo "$text: the first line must be '# proto-message: consentd.v1.…'" >&2; exit 1; }
    protoc --proto_path=Protos --proto_path="$wkt" --encode="$message" consentd/v1/consentd.proto \
        < "$text" > "$work/$name.binpb"
    count=$((count + 1))
    if [ $check -eq 1 ]; then
        cmp -s "$work/$name.binpb" "$vectors/$name.binpb" || { echo "stale or missing: $vectors/$name.binpb" >&2; stale=1; }
    else
        cp "$work/$name.binpb" "$vectors/$name.binpb"
    fi
done
for binary in "$vectors"/*.binpb; do
    [ -f "${binary%.binpb}.txtpb" ] || { echo "$binary has no .txtpb beside it" >&2; stale=1; }
done
if [ $check -eq 1 ]; then
    [ $stale -eq 0 ] || { echo "golden vectors are out of date: run scripts/generate-vectors.sh and commit" >&2; exit 1; }
    echo "$count golden vectors match their text form"
else
    [ $stale -eq 0 ] || exit 1
    echo "wrote $count golden vectors in $vectors"
fi
