// swift-tools-version: 6.2
import PackageDescription

// Benchmarks live in their own package so that Hummingbird (the server we compare against) never
// enters the product's dependency graph or CI's build.
let package = Package(
    name: "ExecutionsGatewayBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "ExecutionsGateway", path: ".."),
        .package(url: "https://github.com/hummingbird-project/hummingbird", exact: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // swift-configuration is reached twice (the gateway enables its YAML trait, Hummingbird none) and
        // SwiftPM then fails to resolve the trait-only dependency unless it is named here too.
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0", traits: ["YAML", "Reloading"]),
    ],
    targets: [
        .executableTarget(
            name: "ServerComparison",
            dependencies: [
                .product(name: "GatewayServer", package: "ExecutionsGateway"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
