import ExecutionsAPI
import GatewayCache
public import GatewayConfig
import GatewayCrypto
import GatewayEventLoop
import GatewayHTTP
import GatewayOpenAPI
import GatewayIndex
import GatewayProviders
import GatewayRateLimit
import GatewayRedis
import GatewayReplicas
public import GatewayServer
import GatewayUpstream
public import Logging
public import ServiceLifecycle
import Synchronization

/// Why the gateway could not start. Each names what to fix.
public enum GatewayStartupError: Error, Sendable, CustomStringConvertible {
    case configuration(String)
    case upstreamClient(String)
    case listen(String)

    public var description: String {
        switch self {
        case .configuration(let detail): "configuration: \(detail)"
        case .upstreamClient(let detail): "upstream client: \(detail)"
        case .listen(let detail): "cannot listen: \(detail)"
        }
    }
}

/// One gateway, assembled from a validated configuration: the upstream client, the cache, one
/// endpoint and adapter per provider, the clients and their limits, the API, and the HTTP server.
public final class GatewayRuntime: Service, Sendable {
    public let configuration: GatewayConfiguration
    public let server: HTTPServer
    public let metrics: GatewayMetrics
    private let httpClient: CurlHTTPClient
    private let responseCache: ResponseCache
    private let endpoints: [(name: String, endpoint: UpstreamEndpoint)]
    private let exported = LockedValue<[String: Int]>([:])
    private let clients: ClientDirectory
    private let unauthenticatedLimiter: UnauthenticatedLimiter
    private let replicas: SharedReplicaState?
    private let logger: Logger

    public init(configuration: GatewayConfiguration, logger: Logger, accessLogger: Logger? = nil) throws(GatewayStartupError) {
        self.configuration = configuration
        self.logger = logger
        let metrics = GatewayMetrics()
        self.metrics = metrics

        let cursorSecret: String
        if let configured = configuration.auth.cursorSecret {
            cursorSecret = configured
        } else {
            cursorSecret = Base64URL.encode(secureRandomBytes(count: 32))
            logger.warning("auth.cursorSecret is not set and GATEWAY_CURSOR_SECRET is unset: using a random per-process secret; cursors will not survive a restart or work across replicas")
        }

        do {
            httpClient = try CurlHTTPClient(logger: logger)
        } catch {
            throw .upstreamClient("\(error)")
        }
        let memoryStore = MemoryLRUStore(maxBytes: configuration.cache.maxBytes)
        let replicas: SharedReplicaState?
        if let redis = configuration.redis {
            do {
                replicas = try SharedReplicaState(
                    settings: redis, cacheL1: memoryStore, indexRetention: configuration.cache.listTTL + configuration.cache.staleIfError,
                    metrics: metrics, logger: logger)
            } catch {
                throw .configuration("redis: cannot start its event loop: \(error)")
            }
        } else {
            replicas = nil
        }
        self.replicas = replicas

        let cacheSettings = configuration.cache
        responseCache = ResponseCache(store: replicas?.sharedCache ?? memoryStore)
        let ttls = ProviderCachePolicy(
            listTTL: cacheSettings.listTTL, activeDetailTTL: cacheSettings.activeDetailTTL,
            terminalDetailTTL: cacheSettings.terminalDetailTTL, staleIfError: cacheSettings.staleIfError
        )

        let indexes = IndexStore(maxBytes: cacheSettings.indexMaxBytes, sharing: replicas?.indexSharing)
        let indexFreshness = IndexFreshness(
            refreshAfterNanoseconds: ttls.listTTLNanoseconds, staleIfErrorNanoseconds: ttls.staleIfErrorNanoseconds
        )
        var bindings: [ProviderBinding] = []
        var endpoints: [(name: String, endpoint: UpstreamEndpoint)] = []
        for settings in configuration.providers {
            var policy = UpstreamPolicy()
            policy.timeout = settings.timeout
            policy.maxConcurrency = settings.maxConcurrency
            policy.requestsPerSecond = settings.requestsPerSecond
            policy.requestsPerMinute = settings.requestsPerMinute > 0 ? settings.requestsPerMinute : nil
            // A page's detail calls go out together; pacing still holds the long-run rate.
            policy.burst = max(1, settings.maxConcurrency)
            let transport = MeteredTransport(inner: httpClient, provider: settings.name, metrics: metrics)
            let endpoint = UpstreamEndpoint(
                name: settings.name, policy: policy, transport: transport, logger: logger, sharedBudget: replicas?.callBudget)
            endpoints.append((settings.name, endpoint))
            let provider: any ExecutionProvider
            do {
                provider = indexes.indexing(try ProviderFactory.make(
                    name: settings.name,
                    type: settings.type,
                    baseURL: settings.baseURL,
                    workflowIDs: settings.workflowIds,
                    organizationID: settings.orgId,
                    maxListAnswerBytes: settings.type == .kaizen ? settings.maxListAnswerBytes : nil,
                    endpoint: endpoint,
                    cache: responseCache,
                    cachePolicy: ttls,
                    logger: logger
                ), freshness: indexFreshness, logger: logger)
            } catch {
                throw .configuration(error.description)
            }
            bindings.append(ProviderBinding(provider: provider, credential: UpstreamCredential(secret: settings.credential)))
        }
        self.endpoints = endpoints

        let service = ExecutionsService(
            providers: bindings, cursorSecret: cursorSecret, now: monotonicNanoseconds,
            requestTimeoutNanoseconds: configuration.server.requestTimeout.saturatingNanoseconds,
            logger: logger, maxPageBytes: configuration.server.maxResponseBytes
        )

        var router = Router()
        ExecutionsEndpoints(service: service).register(on: &router)
        let serverHolder = LockedValue<HTTPServer?>(nil)
        let serverConfiguration = Self.serverConfiguration(configuration.server)
        let directory: ClientDirectory
        do {
            directory = ClientDirectory(try Self.clientEntries(configuration))
        } catch {
            throw .configuration("\(error)")
        }
        self.clients = directory
        let cache = responseCache
        let upstreams = endpoints
        let exportedTotals = exported
        let logOutputs = Self.distinctLogOutputs([logger, accessLogger ?? logger])
        OperationalEndpoints(
            metrics: metrics,
            isDraining: { serverHolder.withLock { $0?.isDraining ?? false } },
            refreshGauges: {
                await Self.refreshMetrics(
                    metrics: metrics, cache: cache, pages: service.pageCacheStatistics, indexes: indexes.statistics(), endpoints: upstreams,
                    server: serverHolder.withLock { $0 }, logOutputs: logOutputs, exported: exportedTotals
                )
            },
            openAPIDocument: OpenAPIDocument.served(
                requiringClientKey: configuration.auth.mode == .apiKey, providerNames: configuration.providers.map(\.name)
            )
        ).register(on: &router)

        // Copied after every route is registered: metrics and logs label requests by template.
        let routeLookup = router
        let trustedProxies = configuration.server.trustedProxies
        let unauthenticatedLimiter = UnauthenticatedLimiter(
            policy: try Self.policyOrStartupError(configuration.rateLimit.unauthenticated),
            onLimited: { metrics.increment("gateway_unauthenticated_rate_limited_total") }
        )
        self.unauthenticatedLimiter = unauthenticatedLimiter
        let chain = MiddlewareChain {
            // Outermost: it sees the head as complete as this side builds it.
            ResponseHeadBudgetMiddleware()
            RequestTraceMiddleware()
            ClientAddressMiddleware(resolver: ClientAddressResolver(isTrustedProxy: { address in
                CIDRRange.any(of: trustedProxies, contains: address)
            }))
            ObservabilityMiddleware(logger: accessLogger ?? logger, metrics: metrics, routedMethods: routeLookup.routedMethods, routeTemplate: { method, path in
                routeLookup.match(method: method == .head ? .get : method, path: path)?.template ?? "unmatched"
            })
            AuthenticationMiddleware(
                directory: directory, publicPaths: OperationalEndpoints.paths, unauthenticatedLimiter: unauthenticatedLimiter
            )
            RateLimitMiddleware(
                store: replicas?.rateLimits ?? MemoryRateLimitStore(), directory: directory,
                onLimited: { client in metrics.increment("gateway_rate_limited_total", [("client", client)]) },
                onCallBudgetSpent: { client in
                    metrics.increment("gateway_upstream_call_budget_refused_total", [("client", client)])
                }
            )
            router
        }
        // Called from here, where the chain's whole type is known: the closure runs the specialized
        // chain (direct calls down to the router), where the chain handed over as `any HTTPResponder`
        // would run its generic code.
        server = HTTPServer(
            configuration: serverConfiguration,
            responder: ClosureResponder { request, context in await chain.respond(to: request, context: consume context) },
            logger: logger
        )
        serverHolder.withLock { $0 = server }
    }

    static func serverConfiguration(_ settings: ServerSettings) -> HTTPServerConfiguration {
        HTTPServerConfiguration(
            host: settings.host,
            port: settings.port,
            workers: settings.workers,
            maxConnections: settings.maxConnections,
            parserLimits: HTTPParserLimits(
                maxHeaderBytes: settings.maxHeaderBytes,
                maxHeaderFields: settings.maxHeaderFields,
                maxBodyBytes: settings.maxBodyBytes,
                // A GET-only API: a request announcing a body is refused from its head, before
                // authentication, rate limiting or reading the body (and so before `100 Continue`).
                acceptsBodies: false
            ),
            headerTimeout: settings.headerTimeout,
            idleTimeout: settings.idleTimeout,
            writeTimeout: settings.writeTimeout,
            shutdownGrace: settings.shutdownGrace
        )
    }

    /// Clients, their keys' digests and their limits, as the middleware needs them.
    static func clientEntries(_ configuration: GatewayConfiguration) throws -> ClientDirectory.Entries {
        let records = configuration.clients.map { client in
            ClientCredentialRecord(
                client: GatewayClient(
                    id: client.id,
                    allowedProviders: client.providers.map(Set.init),
                    upstreamCredentials: client.credentials.mapValues(UpstreamCredential.init(secret:))
                ),
                keyDigest: Hex.decode(client.keySHA256) ?? []
            )
        }
        var policies: [String: GatewayRateLimit.RateLimitPolicy] = [:]
        var callPolicies: [String: GatewayRateLimit.RateLimitPolicy] = [:]
        for client in configuration.clients {
            policies[client.id] = try policy(configuration.effectiveRateLimit(for: client))
            callPolicies[client.id] = try upstreamCallPolicy(configuration.effectiveRateLimit(for: client))
        }
        return ClientDirectory.Entries(
            authenticator: ClientAuthenticator(mode: configuration.auth.mode == .none ? .none : .apiKey, clients: records),
            defaultPolicy: try policy(configuration.rateLimit.default),
            policies: policies,
            upstreamCalls: UpstreamCallLimits(
                defaultPolicy: try upstreamCallPolicy(configuration.rateLimit.default), policies: callPolicies,
                maxCallsPerRequest: configuration.rateLimit.maxUpstreamCallsPerRequest)
        )
    }

    /// Applies a reloaded configuration: clients, their keys, credentials and rate limits change at
    /// once; other sections need a restart and are reported instead.
    public func applyReloaded(_ new: GatewayConfiguration, previous: GatewayConfiguration) {
        let needsRestart = new.sectionsRequiringRestart(comparedTo: previous)
        if !needsRestart.isEmpty {
            logger.warning("configuration reloaded; these sections change only on restart", metadata: [
                "sections": .string(needsRestart.joined(separator: ", ")),
            ])
        }
        do {
            clients.replace(with: try Self.clientEntries(new))
            unauthenticatedLimiter.replacePolicy(with: try Self.policy(new.rateLimit.unauthenticated))
            metrics.increment("gateway_config_reloads_total", [("result", "applied")])
            logger.info("configuration reloaded: clients and rate limits applied", metadata: ["clients": "\(new.clients.count)"])
        } catch {
            metrics.increment("gateway_config_reloads_total", [("result", "rejected")])
            logger.error("reloaded configuration not applied", metadata: ["error": "\(error)"])
        }
    }

    static func policyOrStartupError(_ settings: ClientRateLimit) throws(GatewayStartupError) -> GatewayRateLimit.RateLimitPolicy {
        do {
            return try policy(settings)
        } catch {
            throw .configuration("\(error)")
        }
    }

    static func policy(_ settings: ClientRateLimit) throws -> GatewayRateLimit.RateLimitPolicy {
        try GatewayRateLimit.RateLimitPolicy(requestsPerSecond: settings.requestsPerSecond, burst: settings.burst)
    }

    /// A minute's calls may be spent at once, and come back evenly over the next minute.
    static func upstreamCallPolicy(_ settings: ClientRateLimit) throws -> GatewayRateLimit.RateLimitPolicy {
        try GatewayRateLimit.RateLimitPolicy(
            requestsPerSecond: Double(settings.upstreamCallsPerMinute) / 60, burst: settings.upstreamCallsPerMinute)
    }

    /// Binds and starts serving.
    public func start() throws(GatewayStartupError) {
        do {
            try server.start()
        } catch {
            throw .listen("\(error)")
        }
    }

    public var port: Int { server.localPort }

    /// Drains the server within the grace period, then stops the upstream client.
    public func shutdown() async {
        await server.shutdown()
        httpClient.shutdown()
        await replicas?.shutdown()
    }

    /// `Service`: serves until the service group's graceful shutdown (SIGTERM/SIGINT), then drains.
    /// Meanwhile hands free heap memory back to the kernel every `heapTrimInterval`.
    public func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.server.run() }
            group.addTask { await Self.trimHeapPeriodically() }
            if let replicas { group.addTask { await replicas.registry.run() } }
            defer { group.cancelAll() }
            try await group.next()
        }
        httpClient.shutdown()
        await replicas?.shutdown()
    }

    /// Long enough that the trim's walk over the arenas (about a millisecond per 100 MiB) costs
    /// nothing measurable; short enough that resident memory follows the cache's bound.
    static let heapTrimInterval = Duration.seconds(10)

    private static func trimHeapPeriodically() async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: heapTrimInterval)
            } catch {
                return
            }
            ProcessMemory.returnFreeHeapToKernel()
        }
    }

    // MARK: - Metrics mirrored from component statistics at scrape time

    static func refreshMetrics(
        metrics: GatewayMetrics,
        cache: ResponseCache,
        pages: PageCacheStatistics?,
        indexes: IndexStatistics,
        endpoints: [(name: String, endpoint: UpstreamEndpoint)],
        server: HTTPServer?,
        logOutputs: [JSONLogHandler.LogOutput],
        exported: LockedValue<[String: Int]>
    ) async {
        /// Counters are cumulative in the components; export only what grew since the last scrape.
        func exportTotal(_ name: String, _ dimensions: [(String, String)], _ total: Int) {
            let key = name + dimensions.map { "|\($0.1)" }.joined()
            let delta = exported.withLock { seen -> Int in
                let delta = total - (seen[key] ?? 0)
                seen[key] = total
                return delta
            }
            if delta > 0 { metrics.increment(name, dimensions, by: Int64(delta)) }
        }
        let statistics = await cache.statistics()
        exportTotal("gateway_cache_hits_total", [], statistics.hits)
        exportTotal("gateway_cache_misses_total", [], statistics.misses)
        exportTotal("gateway_cache_stale_served_total", [], statistics.staleServes)
        exportTotal("gateway_cache_coalesced_waiters_total", [], statistics.coalescedWaiters)
        exportTotal("gateway_cache_evictions_total", [], statistics.evictions)
        metrics.setGauge("gateway_cache_bytes", Double(statistics.bytesInUse))
        if let shared = (cache.store as? TieredCacheStore)?.sharedStatistics() {
            exportTotal("gateway_cache_l2_hits_total", [], shared.l2Hits)
            exportTotal("gateway_cache_l2_misses_total", [], shared.l2Misses)
            exportTotal("gateway_cache_l2_corrupt_total", [], shared.l2Corrupt)
            exportTotal("gateway_cache_l2_errors_total", [], shared.l2Errors)
            exportTotal("gateway_cache_l2_stores_total", [], shared.l2Stores)
            exportTotal("gateway_cache_lock_waits_total", [], shared.lockWaits)
            exportTotal("gateway_cache_coalesced_across_replicas_total", [], shared.loadsCoalescedAcrossReplicas)
            exportTotal("gateway_cache_invalidations_total", [("source", "other")], shared.invalidationReports)
            exportTotal("gateway_cache_invalidations_total", [("source", "own")], shared.ownWriteReports)
            exportTotal("gateway_cache_l1_flushes_total", [], shared.l1Flushes)
            metrics.setGauge("gateway_cache_invalidation_connected", shared.invalidationConnected ? 1 : 0)
        }
        metrics.setGauge("gateway_cache_entries", Double(statistics.entries))
        if let pages {
            exportTotal("gateway_page_cache_hits_total", [], pages.hits)
            exportTotal("gateway_page_cache_misses_total", [], pages.misses)
            exportTotal("gateway_page_cache_stores_total", [], pages.stores)
            exportTotal("gateway_page_cache_not_cacheable_total", [], pages.notCacheable)
            exportTotal("gateway_page_cache_coalesced_total", [], pages.coalesced)
        }
        metrics.setGauge("gateway_index_count", Double(indexes.indexes))
        metrics.setGauge("gateway_index_executions", Double(indexes.executions))
        metrics.setGauge("gateway_index_bytes", Double(indexes.bytes))
        exportTotal("gateway_index_evictions_total", [], indexes.evictions)
        exportTotal("gateway_index_syncs_total", [("outcome", "success")], indexes.syncs - indexes.syncFailures)
        exportTotal("gateway_index_syncs_total", [("outcome", "failure")], indexes.syncFailures)
        exportTotal("gateway_index_adoptions_total", [], indexes.adoptions)
        for (name, endpoint) in endpoints {
            let upstream = endpoint.statistics()
            exportTotal("gateway_upstream_retries_total", [("provider", name)], upstream.retries)
            metrics.setGauge("gateway_upstream_in_flight", Double(upstream.inFlight), [("provider", name)])
            let open: Double = if case .closed = upstream.circuitState { 0 } else { 1 }
            metrics.setGauge("gateway_upstream_circuit_open", open, [("provider", name)])
        }
        if let server {
            metrics.setGauge("gateway_connections_open", Double(server.counters.openConnections))
            exportTotal("gateway_connections_accepted_total", [], server.counters.acceptedConnections)
            exportTotal("gateway_connections_refused_total", [], server.counters.refusedConnections)
            exportTotal("gateway_http_malformed_requests_total", [], server.counters.malformedRequests)
        }
        exportTotal("gateway_log_lines_dropped_total", [], logOutputs.reduce(0) { $0 + $1.droppedLines })
    }

    /// The JSON outputs behind `loggers`, each once (the loggers usually share standard output).
    static func distinctLogOutputs(_ loggers: [Logger]) -> [JSONLogHandler.LogOutput] {
        var outputs: [JSONLogHandler.LogOutput] = []
        for logger in loggers {
            guard let output = (logger.handler as? JSONLogHandler)?.logOutput,
                  !outputs.contains(where: { $0 === output }) else { continue }
            outputs.append(output)
        }
        return outputs
    }
}

/// Records every upstream attempt (outcome and latency) per provider, below retries and pacing.
struct MeteredTransport: UpstreamTransport {
    let inner: any UpstreamTransport
    let provider: String
    let metrics: GatewayMetrics

    func execute(_ request: UpstreamRequest) async throws(UpstreamError) -> UpstreamResponse {
        try await measured { () async throws(UpstreamError) in try await inner.execute(request) }
    }

    /// Passes the stream on, so a streamed answer stays streamed (never the buffering default).
    func execute(_ request: UpstreamRequest, streamingSuccessBodyInto streamedBody: UpstreamBodyStream)
        async throws(UpstreamError) -> UpstreamResponse
    {
        try await measured { () async throws(UpstreamError) in
            try await inner.execute(request, streamingSuccessBodyInto: streamedBody)
        }
    }

    private func measured(_ send: () async throws(UpstreamError) -> UpstreamResponse) async throws(UpstreamError)
        -> UpstreamResponse
    {
        let started = monotonicNanoseconds()
        do {
            let response = try await send()
            let outcome = (200..<300).contains(response.status) ? "success" : "http_\(response.status / 100)xx"
            metrics.recordUpstreamCall(provider: provider, outcome: outcome, durationNanoseconds: monotonicNanoseconds() &- started)
            return response
        } catch {
            let outcome = switch error {
            case .timeout: "timeout"
            case .connection: "connection_error"
            case .cancelled: "cancelled"
            case .bodyTooLarge: "body_too_large"
            default: "error"
            }
            metrics.recordUpstreamCall(provider: provider, outcome: outcome, durationNanoseconds: monotonicNanoseconds() &- started)
            throw error
        }
    }
}

/// A value behind a lock that closures can share (a `Mutex` itself cannot be captured).
final class LockedValue<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) { mutex = Mutex(value) }

    func withLock<Result: Sendable>(_ body: (inout Value) -> Result) -> Result {
        mutex.withLock { body(&$0) }
    }
}
