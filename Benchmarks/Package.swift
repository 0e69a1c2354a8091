// swift-tools-version: 6.1
// In-process benchmarks, in their own package so the main build never depends on them.
// Run with ./run.sh (release build, malloc interposer preloaded for allocation counts).
import Foundation
import PackageDescription

// A path dependency's identity is its folder's name, which differs between clones.
let parent = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()

let package = Package(
    name: "consentd-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: parent.path),
        .package(url: "https://github.com/ordo-one/malloc-interposer.git", from: "1.6.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0", traits: []),
    ],
    targets: [
        .executableTarget(
            name: "consentd-benchmarks",
            dependencies: [
                .product(name: "ConsentModel", package: parent.lastPathComponent),
                .product(name: "ConsentSignals", package: parent.lastPathComponent),
                .product(name: "PolicyEngine", package: parent.lastPathComponent),
                .product(name: "ConsentStore", package: parent.lastPathComponent),
                .product(name: "ConsentWire", package: parent.lastPathComponent),
                .product(name: "ConsentWorkload", package: parent.lastPathComponent),
                .product(name: "MallocInterposerSwift", package: "malloc-interposer"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
