// swift-tools-version: 6.2
import PackageDescription

// Module map (dependencies point downwards only):
//
//   ExecutionsGatewayCLI / ProviderSimulatorCLI      command lines
//   GatewayApp                                       wiring: config -> server + API + middleware
//   ExecutionsAPI                                    unified API: query, merge, cursor, enrichment
//   GatewayProviders                                 Kaizen / Kapso / B3OS adapters, unified model
//   GatewayUpstream                                  async HTTP client on libcurl
//   GatewayCache, GatewayRateLimit, GatewayConfig    cross-cutting pieces behind small protocols
//   ProviderSimulator                                simulated upstreams (demo + tests)
//   GatewayServer                                    listeners, connections, router, middleware
//   GatewayHTTP                                      HTTP/1.1 types, strict resumable parser (no I/O)
//   GatewayEventLoop                                 sockets, epoll, eventfd, timerfd, executor
//   GatewayCrypto                                    SHA-256, HMAC, random bytes (libssl)
//   CGatewaySystem, CCurl, COpenSSL                  C shims

let strictSwift: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "ExecutionsGateway",
    platforms: [.macOS(.v15)],
    products: [
        // The HTTP server on its own, for embedding and for the benchmark package.
        .library(name: "GatewayServer", targets: ["GatewayServer", "GatewayHTTP"]),
        .executable(name: "provider-simulator", targets: ["ProviderSimulatorCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0", traits: ["YAML", "Reloading"]),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
    ],
    targets: [
        // MARK: C shims
        .target(name: "CGatewaySystem"),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),

        // MARK: Core (knows nothing of executions)
        .target(
            name: "GatewayEventLoop",
            dependencies: ["CGatewaySystem", .product(name: "HeapModule", package: "swift-collections")],
            swiftSettings: strictSwift
        ),
        .target(name: "GatewayHTTP", swiftSettings: strictSwift),
        .target(name: "GatewayJSON", swiftSettings: strictSwift),
        .target(
            name: "GatewayServer",
            dependencies: [
                "GatewayEventLoop", "GatewayHTTP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),
        .target(name: "GatewayCrypto", dependencies: ["COpenSSL"], swiftSettings: strictSwift),
        .target(name: "GatewayCache", swiftSettings: strictSwift),
        .target(name: "GatewayRateLimit", swiftSettings: strictSwift),

        // MARK: Product
        .target(
            name: "GatewayProviders",
            dependencies: [
                "GatewayJSON", "GatewayHTTP", "GatewayUpstream", "GatewayCache", "GatewayCrypto",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        .target(
            name: "ExecutionsAPI",
            dependencies: ["GatewayProviders", "GatewayJSON", "GatewayHTTP", "GatewayServer", "GatewayCrypto"],
            swiftSettings: strictSwift
        ),

        .target(
            name: "GatewayUpstream",
            dependencies: [
                "CCurl",
                "GatewayHTTP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: strictSwift
        ),

        // MARK: Provider simulator (demo + tests)
        .target(name: "ProviderSimulator", dependencies: ["GatewayHTTP", "GatewayServer"], swiftSettings: strictSwift),
        .executableTarget(
            name: "ProviderSimulatorCLI",
            dependencies: [
                "ProviderSimulator",
                "GatewayServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),

        // MARK: Tests
        .testTarget(name: "GatewayHTTPTests", dependencies: ["GatewayHTTP"], swiftSettings: strictSwift),
        .testTarget(name: "GatewayJSONTests", dependencies: ["GatewayJSON"], swiftSettings: strictSwift),
        .testTarget(name: "ExecutionsAPITests", dependencies: ["ExecutionsAPI", "GatewayProviders", "GatewayJSON"], swiftSettings: strictSwift),
        .testTarget(
            name: "GatewayProvidersTests",
            dependencies: [
                "GatewayProviders", "GatewayJSON", "GatewayHTTP", "GatewayUpstream", "GatewayCache", "GatewayServer", "ExecutionsAPI",
                "ProviderSimulator", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "GatewayServerTests",
            dependencies: ["GatewayServer", "GatewayHTTP", "GatewayEventLoop", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSwift
        ),
        .testTarget(name: "GatewayCryptoTests", dependencies: ["GatewayCrypto"], swiftSettings: strictSwift),
        .testTarget(name: "GatewayCacheTests", dependencies: ["GatewayCache"], swiftSettings: strictSwift),
        .testTarget(name: "GatewayRateLimitTests", dependencies: ["GatewayRateLimit"], swiftSettings: strictSwift),
        .testTarget(
            name: "GatewayUpstreamTests",
            dependencies: ["GatewayUpstream", "GatewayHTTP", "GatewayServer", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "ProviderSimulatorTests",
            dependencies: ["ProviderSimulator", "GatewayServer", "GatewayHTTP"],
            exclude: ["Schemas"],
            swiftSettings: strictSwift
        ),
    ]
)
