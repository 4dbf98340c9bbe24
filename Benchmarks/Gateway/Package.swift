// swift-tools-version: 6.2
import PackageDescription

// Drivers for the gateway's own benchmarks (scripts/bench-upstream, bench-cache, bench-api). A nested
// package so that benchmark code never enters the product's build or CI.
let package = Package(
    name: "ExecutionsGatewayGatewayBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        // Named explicitly: a path dependency is otherwise identified by its folder (a worktree, a clone).
        .package(name: "ExecutionsGateway", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "UpstreamClientBench",
            dependencies: [.product(name: "GatewayUpstream", package: "ExecutionsGateway")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
