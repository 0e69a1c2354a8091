// swift-tools-version: 6.1
import PackageDescription

// Layering (see README "Modules"): ConsentModel <- PolicyEngine, ConsentStore, ConsentWire
// <- ConsentTransport, ConsentReceipts <- ConsentServer (the daemon) <- consentd. consentctl links
// everything but ConsentServer; ConsentTesting (test support) is in no library product.
// The decision core never imports NIO, GRDB or SwiftProtobuf.
let package = Package(
    name: "consentd",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "ConsentModel", targets: ["ConsentModel"]),
        .library(name: "PolicyEngine", targets: ["PolicyEngine"]),
        .library(name: "ConsentSignals", targets: ["ConsentSignals"]),
        .library(name: "ConsentStore", targets: ["ConsentStore"]),
        .library(name: "ConsentWire", targets: ["ConsentWire"]),
        .library(name: "ConsentTransport", targets: ["ConsentTransport"]),
        .library(name: "ConsentReceipts", targets: ["ConsentReceipts"]),
        .library(name: "ConsentServer", targets: ["ConsentServer"]),
        .library(name: "ConsentClient", targets: ["ConsentClient"]),
        // Seeded workloads (synthetic populations, the generator's RNG) for consentctl's load
        // tests and generators and the Benchmarks package.
        .library(name: "ConsentWorkload", targets: ["ConsentWorkload"]),
        .executable(name: "consentd", targets: ["consentd"]),
        .executable(name: "consentctl", targets: ["consentctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0", traits: []),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
    ],
    targets: [
        .target(name: "ConsentModel"),
        // TCF, GPP and US Privacy strings, read in place (pure Swift, no dependencies but the model).
        .target(name: "ConsentSignals", dependencies: ["ConsentModel"]),
        .target(
            name: "PolicyEngine",
            dependencies: [
                "ConsentModel", "ConsentSignals",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "ConsentStore",
            dependencies: [
                "ConsentModel",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .target(
            name: "ConsentWire",
            dependencies: [
                "ConsentModel",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: ["Generated/README.md"]
        ),
        .target(
            name: "ConsentTransport",
            dependencies: [
                "ConsentWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        .target(
            name: "ConsentReceipts",
            dependencies: [
                "ConsentModel", "PolicyEngine", "ConsentStore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                // gzip of closed receipts files (the system's zlib).
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            // Receipts are encoded on the event loops (see ConsentServer's setting).
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        .target(
            name: "ConsentServer",
            dependencies: [
                "ConsentModel", "ConsentSignals", "PolicyEngine", "ConsentStore", "ConsentWire", "ConsentReceipts", "ConsentTransport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            // The handlers are classes on one event loop each; dynamic exclusivity checks on
            // their stored properties cost ~8 % of the hot path in release builds.
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        .target(
            name: "ConsentClient",
            dependencies: ["ConsentModel", "ConsentWire", .product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
        .target(name: "ConsentWorkload", dependencies: ["ConsentModel"]),
        .target(
            name: "ConsentTesting",
            dependencies: [
                "ConsentWorkload", "ConsentModel", "PolicyEngine", "ConsentStore", "ConsentWire", "ConsentServer", "ConsentClient", "ConsentReceipts",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ]
        ),
        .executableTarget(
            name: "consentd",
            dependencies: [
                "ConsentServer",
                "PolicyEngine",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .executableTarget(
            name: "consentctl",
            dependencies: [
                "ConsentReceipts",
                "ConsentModel",
                "ConsentSignals",
                "PolicyEngine",
                "ConsentStore",
                "ConsentClient",
                "ConsentWire",
                "ConsentTransport",
                "ConsentWorkload",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // libFuzzer targets: build with `swift build --sanitize=fuzzer --product fuzz-…` (scripts/fuzz.sh).
        .executableTarget(name: "fuzz-frames", dependencies: ["ConsentTesting"], path: "Fuzz/frames"),
        .executableTarget(name: "fuzz-policy", dependencies: ["ConsentTesting"], path: "Fuzz/policy"),
        .executableTarget(name: "fuzz-write", dependencies: ["ConsentTesting"], path: "Fuzz/write"),
        .executableTarget(name: "fuzz-signals", dependencies: ["ConsentSignals"], path: "Fuzz/signals"),
        .testTarget(name: "ConsentModelTests", dependencies: ["ConsentModel"]),
        .testTarget(
            name: "ConsentSignalsTests",
            dependencies: ["ConsentSignals", "ConsentModel", "ConsentWorkload"],
            exclude: ["Vectors"]  // reference-suite vectors, read from the source tree (SignalVectorTests)
        ),
        .testTarget(
            name: "PolicyEngineTests",
            dependencies: ["PolicyEngine", "ConsentModel", "ConsentWorkload"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "ConsentStoreTests",
            dependencies: ["ConsentStore", "ConsentModel", "ConsentWorkload", "ConsentTesting", .product(name: "Crypto", package: "swift-crypto"), .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .testTarget(
            name: "ConsentWireTests",
            dependencies: ["ConsentWire", "ConsentModel", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["Vectors"]  // golden wire vectors, read from the source tree (GoldenVectorTests)
        ),
        .testTarget(
            name: "ConsentServerTests",
            dependencies: [
                "ConsentServer", "ConsentClient", "ConsentWire", "ConsentModel", "ConsentStore", "PolicyEngine", "ConsentTesting", "ConsentWorkload", "ConsentReceipts",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "ConsentReceiptsTests",
            dependencies: [
                "ConsentReceipts", "ConsentServer", "ConsentClient", "ConsentWire", "ConsentModel", "ConsentStore", "ConsentTesting",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "consentctlTests",
            dependencies: ["consentctl", "ConsentReceipts", "ConsentServer", "ConsentStore", "ConsentModel", "ConsentWire", "ConsentClient", "ConsentWorkload", .product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
