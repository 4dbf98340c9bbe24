// swift-tools-version: 6.2
import PackageDescription

// Module map (dependencies point downwards only):
//
//   ExecutionsGatewayCLI / ProviderSimulatorCLI      command lines (the demo's wiring of the simulator too)
//   GatewayApp                                       wiring: config -> server + API + middleware
//   GatewayConfig                                    the YAML file, typed; defaults from the runtime types below
//   GatewayReplicas                                  what replicas share through Redis (limits, budgets, indexes)
//   ExecutionsAPI                                    unified API: query, merge, cursor, enrichment
//   GatewayIndex                                     provider indexes kept in sync with the upstreams
//   GatewayProviders                                 Kaizen / Kapso / B3OS adapters, unified model
//   GatewayUpstream                                  async HTTP client on libcurl
//   GatewayCache, GatewayRateLimit                   cross-cutting pieces behind small protocols
//   GatewayRedis                                     Redis client on hiredis, driven by the event loop
//   ProviderSimulator                                simulated upstreams (demo + tests)
//   GatewayServer                                    listeners, connections, router, middleware
//   GatewayHTTP                                      HTTP/1.1 types, strict resumable parser (no I/O)
//   GatewayEventLoop                                 sockets, epoll, eventfd, timerfd, executor, randomness
//   GatewayCrypto                                    SHA-256, HMAC, base64url (libssl)
//   CGatewaySystem, CCurl, COpenSSL, CHiredis, CZlib C shims

let strictSwift: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "ExecutionsGateway",
    // Linux only: the server is built on epoll, eventfd and timerfd. The macOS entry only sets the
    // minimum for tools that resolve the package there; the event loop does not build on Darwin.
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "executions-gateway", targets: ["ExecutionsGatewayCLI"]),
        .executable(name: "provider-simulator", targets: ["ProviderSimulatorCLI"]),
        // The HTTP server on its own, for embedding and for the benchmark package.
        .library(name: "GatewayServer", targets: ["GatewayServer", "GatewayHTTP"]),
        // The libcurl client on its own, for the gateway benchmarks' upstream driver (Benchmarks/Gateway).
        .library(name: "GatewayUpstream", targets: ["GatewayUpstream"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0", traits: ["YAML", "Reloading"]),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        // Already pulled in by swift-configuration's YAML trait; GatewayConfig uses its node API directly
        // (line numbers, lists of mappings, strict key checks).
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        // MARK: C shims
        .target(name: "CGatewaySystem"),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CHiredis", pkgConfig: "hiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        // MARK: Core: sockets, HTTP, server (knows nothing of executions)
        .target(
            name: "GatewayEventLoop",
            dependencies: ["CGatewaySystem", .product(name: "HeapModule", package: "swift-collections")],
            swiftSettings: strictSwift
        ),
        .target(name: "GatewayHTTP", swiftSettings: strictSwift),
        .target(name: "GatewayJSON", swiftSettings: strictSwift),
        .target(name: "GatewayOpenAPI", swiftSettings: strictSwift),
        .target(
            name: "GatewayServer",
            dependencies: [
                "GatewayEventLoop", "GatewayHTTP", "GatewayJSON",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),

        // MARK: Cross-cutting pieces behind small protocols
        .target(name: "GatewayCrypto", dependencies: ["COpenSSL"], swiftSettings: strictSwift),
        .target(name: "GatewayCache", dependencies: ["GatewayEventLoop", "GatewayRedis", "CZlib"], swiftSettings: strictSwift),
        .target(name: "GatewayRateLimit", dependencies: ["GatewayEventLoop"], swiftSettings: strictSwift),
        .target(
            name: "GatewayUpstream",
            dependencies: [
                "CCurl", "GatewayHTTP", "GatewayEventLoop",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: strictSwift
        ),
        .target(name: "GatewayRedis", dependencies: ["CHiredis", "GatewayEventLoop"], swiftSettings: strictSwift),
        // What replicas share through Redis: client limits, upstream budgets, the replica count.
        .target(
            name: "GatewayReplicas",
            dependencies: [
                "GatewayRedis", "GatewayRateLimit", "GatewayUpstream", "GatewayIndex", "GatewayCrypto", "GatewayEventLoop",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),

        .target(
            name: "GatewayConfig",
            dependencies: [
                // Runtime modules whose types and defaults the configuration reads (never the reverse).
                "GatewayEventLoop", "GatewayHTTP", "GatewayServer", "GatewayUpstream", "GatewayProviders", "GatewayRedis",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),

        // MARK: The product: providers, unified API, app, command lines
        .target(
            name: "GatewayProviders",
            dependencies: [
                "GatewayJSON", "GatewayHTTP", "GatewayEventLoop", "GatewayUpstream", "GatewayCache", "GatewayCrypto",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        .target(
            name: "GatewayIndex",
            dependencies: [
                "GatewayProviders", "GatewayUpstream", "GatewayEventLoop",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        .target(
            name: "ExecutionsAPI",
            dependencies: [
                "GatewayProviders", "GatewayJSON", "GatewayHTTP", "GatewayServer", "GatewayCrypto", "GatewayCache", "GatewayEventLoop",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        .target(
            name: "GatewayApp",
            dependencies: [
                "ExecutionsAPI", "GatewayServer", "GatewayHTTP", "GatewayJSON", "GatewayCrypto", "GatewayRateLimit",
                "GatewayEventLoop", "GatewayConfig", "GatewayProviders", "GatewayUpstream", "GatewayCache",
                "GatewayIndex", "GatewayOpenAPI", "GatewayRedis", "GatewayReplicas",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),

        .executableTarget(
            name: "ExecutionsGatewayCLI",
            dependencies: [
                // The demo's simulated upstreams live here, not in the library a deployment links.
                "GatewayApp", "GatewayConfig", "GatewayCrypto", "GatewayEventLoop", "GatewayServer", "ProviderSimulator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),

        // MARK: Simulated upstreams (demo and tests)
        .target(name: "ProviderSimulator", dependencies: ["GatewayJSON", "GatewayHTTP", "GatewayServer", "GatewayEventLoop"], swiftSettings: strictSwift),
        .executableTarget(
            name: "ProviderSimulatorCLI",
            dependencies: [
                "ProviderSimulator", "GatewayServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),

        // MARK: Tests
        // Helpers several test targets share; never linked into a product.
        .target(name: "GatewayTestSupport", dependencies: ["GatewayEventLoop"], path: "Tests/GatewayTestSupport", swiftSettings: strictSwift),
        .testTarget(name: "GatewayEventLoopTests", dependencies: ["GatewayEventLoop", "GatewayTestSupport"], swiftSettings: strictSwift),
        .testTarget(name: "GatewayHTTPTests", dependencies: ["GatewayHTTP", "GatewayTestSupport"], swiftSettings: strictSwift),
        .testTarget(name: "GatewayJSONTests", dependencies: ["GatewayJSON", "GatewayEventLoop", "GatewayTestSupport"], swiftSettings: strictSwift),
        .testTarget(name: "GatewayOpenAPITests", dependencies: ["GatewayOpenAPI"], swiftSettings: strictSwift),
        .testTarget(
            name: "GatewayServerTests",
            dependencies: [
                "GatewayServer", "GatewayHTTP", "GatewayEventLoop", "GatewayTestSupport", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(name: "GatewayCryptoTests", dependencies: ["GatewayCrypto", "GatewayTestSupport"], swiftSettings: strictSwift),
        .testTarget(name: "GatewayCacheTests", dependencies: ["GatewayCache", "GatewayTestSupport"], swiftSettings: strictSwift),
        .testTarget(
            name: "GatewayCacheRedisTests",
            dependencies: ["GatewayCache", "GatewayRedis", "GatewayEventLoop", "GatewayTestSupport"],
            swiftSettings: strictSwift
        ),
        .testTarget(name: "GatewayRateLimitTests", dependencies: ["GatewayRateLimit"], swiftSettings: strictSwift),
        .testTarget(
            name: "GatewayUpstreamTests",
            dependencies: [
                "GatewayUpstream", "GatewayHTTP", "GatewayServer", "GatewayTestSupport", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        // The Redis client and what replicas share through it, against real redis-server processes.
        .testTarget(
            name: "GatewayRedisTests",
            dependencies: [
                "GatewayRedis", "GatewayReplicas", "GatewayRateLimit", "GatewayUpstream", "GatewayIndex", "GatewayHTTP",
                "GatewayEventLoop", "GatewayTestSupport",
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "GatewayConfigTests",
            dependencies: [
                "GatewayConfig", "GatewayProviders", "GatewayHTTP", "GatewayServer", "GatewayUpstream",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // Fixture files are read from the source tree (also by the CLI's check-config test), not bundled.
            exclude: ["Fixtures"],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "GatewayProvidersTests",
            dependencies: [
                "GatewayProviders", "GatewayIndex", "GatewayJSON", "GatewayHTTP", "GatewayUpstream", "GatewayCache", "GatewayServer", "GatewayCrypto",
                "GatewayEventLoop", "ProviderSimulator", "ExecutionsAPI", "GatewayTestSupport", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(name: "GatewayIndexTests", dependencies: ["GatewayIndex", "GatewayProviders", "GatewayUpstream", "GatewayTestSupport"], swiftSettings: strictSwift),
        .testTarget(
            name: "ExecutionsAPITests",
            dependencies: ["ExecutionsAPI", "GatewayProviders", "GatewayJSON", "GatewayHTTP", "GatewayCache", "GatewayUpstream", "GatewayTestSupport"],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "GatewayAppTests",
            dependencies: [
                "GatewayApp", "ExecutionsAPI", "GatewayServer", "GatewayHTTP", "GatewayJSON", "GatewayCrypto", "GatewayRateLimit",
                "GatewayConfig", "GatewayUpstream", "GatewayProviders", "ProviderSimulator", "GatewayEventLoop", "GatewayOpenAPI", "GatewayTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(name: "ExecutionsGatewayCLITests", dependencies: ["ExecutionsGatewayCLI", "GatewayTestSupport"], swiftSettings: strictSwift),
        .testTarget(
            name: "ProviderSimulatorTests",
            dependencies: ["ProviderSimulator", "GatewayJSON", "GatewayServer", "GatewayHTTP", "GatewayTestSupport"],
            exclude: ["Schemas"],
            swiftSettings: strictSwift
        ),
    ]
)

// The provider-answer fuzz target exists only for scripts/fuzz-provider-answers, which sets
// GATEWAY_FUZZ=1 and builds it with libFuzzer and AddressSanitizer into its own scratch path:
// libFuzzer supplies its `main`, so an ordinary build could not link it.
if Context.environment["GATEWAY_FUZZ"] == "1" {
    package.targets.append(.executableTarget(
        name: "ProviderAnswersFuzz",
        dependencies: ["ExecutionsAPI", "GatewayProviders", "GatewayJSON"],
        path: "Fuzz/ProviderAnswers",
        swiftSettings: strictSwift + [.unsafeFlags(["-parse-as-library"])]
    ))
}
