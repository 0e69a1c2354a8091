// swift-tools-version: 6.1
// Builds protoc-gen-swift from swift-protobuf, for scripts/generate-protos.sh. Not part of the
// main build: the generated code is committed.
import PackageDescription

let package = Package(
    name: "protoc-gen-swift-tool",
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0"),
    ],
    targets: [
        .target(name: "Anchor", path: "Anchor"),
    ]
)
