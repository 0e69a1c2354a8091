// swift-tools-version: 6.1
import PackageDescription

// Layering (see README "Modules"): ConsentModel <- PolicyEngine <- executables.
// The decision core never imports NIO, GRDB or SwiftProtobuf.
let package = Package(
    name: "consentd",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "ConsentModel", targets: ["ConsentModel"]),
        .library(name: "PolicyEngine", targets: ["PolicyEngine"]),
        .library(name: "ConsentStore", targets: ["ConsentStore"]),
        .executable(name: "consentctl", targets: ["consentctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
    ],
    targets: [
        .target(name: "ConsentModel"),
        .target(
            name: "PolicyEngine",
            dependencies: [
                "ConsentModel",
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
            ]
        ),
        .executableTarget(
            name: "consentctl",
            dependencies: [
                "ConsentModel",
                "PolicyEngine",
                "ConsentStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "ConsentModelTests", dependencies: ["ConsentModel"]),
        .testTarget(
            name: "PolicyEngineTests",
            dependencies: ["PolicyEngine", "ConsentModel"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(name: "ConsentStoreTests", dependencies: ["ConsentStore", "ConsentModel"]),
        .testTarget(
            name: "consentctlTests",
            dependencies: ["consentctl", "ConsentStore", "ConsentModel"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
