import GatewayCache
import GatewayCrypto
import GatewayHTTP
import GatewayJSON
@testable import GatewayProviders
import GatewayServer
import GatewayTestSupport
import GatewayUpstream
import Logging
import ProviderSimulator
import Synchronization
import Testing

/// 2025-11-20T10:00:00Z, the simulator's wall clock in the tests.
let simulatorEpochMilliseconds: Int64 = 1_763_632_800_000

/// One fake monotonic clock for the response cache and the upstream endpoint, plus the
/// simulator's wall clock; tests move them explicitly, nothing waits on real time.
final class TestClocks: UpstreamClock {
    private let monotonic = Mutex<UInt64>(1_000_000_000_000)
    private let wallMilliseconds = Mutex<Int64>(simulatorEpochMilliseconds)

    func now() -> UInt64 { monotonic.withLock { $0 } }
    func unixTimeSeconds() -> Int64 { wallMilliseconds.withLock { $0 } / 1000 }

    /// Pacing and backoff would sleep here; time simply moves on.
    func sleep(until deadline: UInt64) async throws(CancellationError) {
        if Task.isCancelled { throw CancellationError() }
        monotonic.withLock { $0 = max($0, deadline) }
    }

    var simulatorNow: Int64 { wallMilliseconds.withLock { $0 } }

    /// Moves both clocks on.
    func advance(milliseconds: Int64) {
        monotonic.withLock { $0 += UInt64(milliseconds) * 1_000_000 }
        wallMilliseconds.withLock { $0 += milliseconds }
    }
}

/// What the simulated upstream received, observed on the way in (the simulator answers).
final class RequestLog: Sendable {
    struct Entry: Sendable {
        var method: String
        var target: String
        var headers: HTTPHeaders
        var body: [UInt8]
    }

    private let entries = Mutex<[Entry]>([])

    var all: [Entry] { entries.withLock { $0 } }
    var last: Entry? { entries.withLock { $0.last } }
    func record(_ entry: Entry) { entries.withLock { $0.append(entry) } }
}

struct ObservedResponder: HTTPResponder {
    let inner: any HTTPResponder
    let log: RequestLog

    func respond(to request: HTTPRequest, context: consuming RequestContext) async -> HTTPResponse {
        log.record(.init(method: request.method.rawValue, target: request.target, headers: request.headers, body: request.body))
        return await inner.respond(to: request, context: context)
    }
}

/// The real simulator behind the project's HTTP server on an ephemeral port, reached through
/// libcurl, an `UpstreamEndpoint` and a `ResponseCache` — the whole path the gateway uses.
final class SimulatorHarness: Sendable {
    let clocks = TestClocks()
    let simulator: ProviderSimulator
    let held = Gate()
    /// A latency fault of `heldLatencyMilliseconds` holds its request until this opens.
    let heldLatency = Gate()
    static let heldLatencyMilliseconds = 777_777
    let cache: ResponseCache
    let client: CurlHTTPClient
    let cachePolicy: ProviderCachePolicy
    let log = RequestLog()
    private let servers = Mutex<[SimulatedProvider: HTTPServer]>([:])

    static let listTTLMilliseconds: Int64 = 5_000
    static let activeDetailTTLMilliseconds: Int64 = 2_000
    static let terminalDetailTTLMilliseconds: Int64 = 3_600_000
    static let staleIfErrorMilliseconds: Int64 = 300_000

    init(executions: Int = 40, workflows: Int = 4, seed: UInt64 = 11) throws {
        let clocks = self.clocks
        let held = self.held
        let heldLatency = self.heldLatency
        simulator = ProviderSimulator(configuration: SimulatorConfiguration(
            seed: seed,
            executionsPerOrganization: executions,
            workflowsPerOrganization: workflows,
            kapsoRequestsPerMinute: 1_000_000,
            timeoutFaultMilliseconds: 3_600_000,
            now: { clocks.simulatorNow },
            // A timeout fault holds its request until the test ends; other waits are skipped.
            sleep: { milliseconds in
                if milliseconds >= 3_600_000 { await held.wait() }
                if milliseconds == SimulatorHarness.heldLatencyMilliseconds { await heldLatency.wait() }
            }
        ))
        let now: @Sendable () -> UInt64 = { clocks.now() }
        cache = ResponseCache(store: MemoryLRUStore(maxBytes: 16 * 1024 * 1024, now: now), now: now)
        client = try CurlHTTPClient(configuration: CurlHTTPClientConfiguration(), logger: Self.quietLogger("test.curl"))
        cachePolicy = ProviderCachePolicy(
            listTTL: .milliseconds(Self.listTTLMilliseconds),
            activeDetailTTL: .milliseconds(Self.activeDetailTTLMilliseconds),
            terminalDetailTTL: .milliseconds(Self.terminalDetailTTLMilliseconds),
            staleIfError: .milliseconds(Self.staleIfErrorMilliseconds)
        )
    }

    static func quietLogger(_ label: String) -> Logger {
        var logger = Logger(label: label)
        logger.logLevel = .critical
        return logger
    }

    /// The base URL of `provider`'s simulated API, starting its server on first use.
    func baseURL(_ provider: SimulatedProvider) throws -> String {
        let server = try servers.withLock { servers throws -> HTTPServer in
            if let running = servers[provider] { return running }
            let server = HTTPServer(
                configuration: HTTPServerConfiguration(
                    host: "127.0.0.1", port: 0, workers: 1,
                    shutdownGrace: .nanoseconds(50_000_000), linger: .nanoseconds(10_000_000),
                    injectsTransportFaults: true
                ),
                responder: ObservedResponder(inner: simulator.responder(for: provider), log: log),
                logger: Self.quietLogger("test.server")
            )
            try server.start()
            servers[provider] = server
            return server
        }
        let base = "http://127.0.0.1:\(server.localPort)"
        return provider == .kapso ? base + "/platform/v1" : base
    }

    func endpoint(_ name: String, policy: UpstreamPolicy = SimulatorHarness.policy()) -> UpstreamEndpoint {
        UpstreamEndpoint(name: name, policy: policy, transport: client, clock: clocks, logger: Self.quietLogger("test.endpoint"))
    }

    /// No pacing, no retries (each fault shows as itself), a breaker that stays closed.
    static func policy(timeoutMilliseconds: UInt64 = 5_000, maxRetries: Int = 0, failureThreshold: Int = 1_000) -> UpstreamPolicy {
        UpstreamPolicy(
            timeout: .milliseconds(timeoutMilliseconds),
            connectTimeout: .seconds(2),
            requestsPerSecond: nil,
            maxRetries: maxRetries,
            circuitBreaker: CircuitBreakerPolicy(failureThreshold: failureThreshold, openDuration: .seconds(10))
        )
    }

    func kaizen(name: String = "kaizen", policy: UpstreamPolicy = SimulatorHarness.policy()) throws -> KaizenProvider {
        try #require(make(name: name, type: .kaizen, base: baseURL(.kaizen), policy: policy) as? KaizenProvider)
    }

    func kapso(name: String = "kapso", workflowIDs: [String] = [], policy: UpstreamPolicy = SimulatorHarness.policy()) throws -> KapsoProvider {
        try #require(make(name: name, type: .kapso, base: baseURL(.kapso), workflowIDs: workflowIDs, policy: policy) as? KapsoProvider)
    }

    func b3os(name: String = "b3os", organizationID: String? = nil, policy: UpstreamPolicy = SimulatorHarness.policy()) throws -> B3OSProvider {
        try #require(make(name: name, type: .b3os, base: baseURL(.b3os), organizationID: organizationID, policy: policy) as? B3OSProvider)
    }

    private func make(
        name: String, type: ProviderType, base: String, workflowIDs: [String] = [], organizationID: String? = nil, policy: UpstreamPolicy
    ) throws -> any UpstreamBackedProvider {
        try ProviderFactory.make(
            name: name, type: type, baseURL: base, workflowIDs: workflowIDs, organizationID: organizationID,
            endpoint: endpoint(name, policy: policy), cache: cache, cachePolicy: cachePolicy,
            logger: Self.quietLogger("test.providers")
        )
    }

    func call(_ credential: String, requestID: String = "req-test-1", bypassCache: Bool = false) -> UpstreamCallContext {
        UpstreamCallContext(
            credential: credential, credentialIdentity: SHA256.hexDigest(of: credential), requestID: requestID,
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", bypassCache: bypassCache
        )
    }

    func shutdown() async {
        held.open()
        heldLatency.open()
        client.shutdown()
        let running = servers.withLock { servers in
            defer { servers = [:] }
            return Array(servers.values)
        }
        for server in running { await server.shutdown() }
    }
}

/// Runs `body` with a fresh harness that is always shut down.
func withSimulator<T>(
    executions: Int = 40, workflows: Int = 4, seed: UInt64 = 11,
    _ body: (SimulatorHarness) async throws -> T
) async throws -> T {
    let harness = try SimulatorHarness(executions: executions, workflows: workflows, seed: seed)
    do {
        let result = try await body(harness)
        await harness.shutdown()
        return result
    } catch {
        await harness.shutdown()
        throw error
    }
}

extension ExecutionProvider {
    /// Walks every page through the protocol as the unified layer does with this provider alone:
    /// each page resumes after the last execution shown, with its source offset as the hint.
    func walk(
        filter: ExecutionFilter = ExecutionFilter(), limit: Int, call: UpstreamCallContext,
        between: (Int) async throws -> Void = { _ in }
    ) async throws -> [UnifiedExecution] {
        var shown: [UnifiedExecution] = []
        var position: ProviderPosition?
        for pageNumber in 0..<10_000 {
            let page = try await executions(matching: filter, after: position, limit: limit, call: call)
            #expect(expectPageInvariants(page, limit: limit))
            shown += page.executions
            if page.exhausted { return shown }
            guard let last = page.executions.last else { return shown }
            position = ProviderPosition(last: last.sortKey, offsetHint: last.sourceOffset.map { $0 + 1 } ?? position?.offsetHint)
            try await between(pageNumber)
        }
        return shown
    }
}

extension ExecutionProvider {
    /// Walking with each filter shows exactly the executions of `all` that the shared filter
    /// matches, in order, and each filter selects something (or it would prove nothing).
    func expectWalksShowWhatEachFilterMatches(
        _ filters: [(label: String, filter: ExecutionFilter)], in all: [UnifiedExecution], limit: Int, call: UpstreamCallContext,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        for (label, filter) in filters {
            let expected = all.filter(filter.matches)
            #expect(!expected.isEmpty, "\(label) should select something", sourceLocation: sourceLocation)
            let walked = try await walk(filter: filter, limit: limit, call: call)
            #expect(walked.map(\.id) == expected.map(\.id), "\(label)", sourceLocation: sourceLocation)
        }
    }

    /// The page after `position` (another provider's execution, say) holds the next `limit` of
    /// `all` after it, and is exhausted exactly when nothing else remains.
    func expectPageAfter(
        _ position: ProviderPosition, in all: [UnifiedExecution], limit: Int, call: UpstreamCallContext,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let page = try await executions(matching: ExecutionFilter(), after: position, limit: limit, call: call)
        let remaining = all.filter { position.last.precedes($0.sortKey) }
        #expect(page.executions.map(\.id) == remaining.prefix(limit).map(\.id), "after \(position.last)", sourceLocation: sourceLocation)
        #expect(page.exhausted == (remaining.count <= limit), sourceLocation: sourceLocation)
    }
}

/// Checks one page's own invariants: bounded, strictly ordered.
func expectPageInvariants(_ page: ProviderPage, limit: Int) -> Bool {
    guard page.executions.count <= limit else { return false }
    for (earlier, later) in zip(page.executions, page.executions.dropFirst()) where !earlier.sortKey.precedes(later.sortKey) {
        return false
    }
    return true
}

/// True when every execution is strictly before the next in the unified order.
func isStrictlyOrdered(_ executions: [UnifiedExecution]) -> Bool {
    zip(executions, executions.dropFirst()).allSatisfy { $0.sortKey.precedes($1.sortKey) }
}

extension HTTPResponse {
    var json: JSONValue { (try? JSONParser.parse(body)) ?? .null }
}

/// The simulator's own answer for a provider request, read without the gateway (the expected data).
func simulatorJSON(_ responder: any HTTPResponder, _ method: HTTPMethod, _ target: String, headers: [(String, String)], body: String? = nil) async -> JSONValue {
    var allHeaders = HTTPHeaders(headers)
    allHeaders.add(name: "Host", value: "sim.test")
    if body != nil { allHeaders.add(name: "Content-Type", value: "application/json") }
    let request = HTTPRequest(method: method, target: target, headers: allHeaders, body: Array((body ?? "").utf8))
    return await responder.respond(to: request, context: RequestContext()).json
}
