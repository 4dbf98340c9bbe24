import ExecutionsAPI
import GatewayEventLoop
import GatewayProviders
public import GatewayHTTP
public import GatewayServer
public import Logging
import Metrics
public import Prometheus
import Synchronization

/// Every metric the gateway exports, named `gateway_*`, on one Prometheus registry.
///
/// Metrics go through swift-metrics with an explicit Prometheus factory (no global bootstrap), so
/// several gateways in one process (tests) keep separate registries.
public final class GatewayMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    /// Read on every request, written once per new series: each loop reads its own copy.
    private let requestSeries = LoopCachedValue<[RequestSeries: RequestSeriesMetrics]>([:])
    private let requestTimers = Mutex<[String: Metrics.Timer]>([:])
    private let namedCounters = Mutex<[String: Metrics.Counter]>([:])
    private let gauges = Mutex<[String: Metrics.Gauge]>([:])
    private let upstreamTimers = Mutex<[String: Metrics.Timer]>([:])

    public init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // From 50 µs: a cache hit is answered in tens of microseconds, and its latency must be readable.
        factory.defaultDurationHistogramBuckets = [
            .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
            .milliseconds(2500), .seconds(5), .seconds(10),
        ]
        self.factory = factory
    }

    /// `gateway_http_requests_total{method,route,status}` and `gateway_http_request_duration_seconds{route}`.
    ///
    /// Every label comes from a bounded set, so no request can add series: `method` is a method the
    /// server routes or `OTHER`, `route` a route template (or `unmatched`), and `status` a status
    /// code with a standard name or else its class (`2xx`…`5xx`, `other`).
    public func recordRequest(method: String, route: String, status: Int, durationNanoseconds: UInt64) {
        // One lookup by a composite key, no string building: this runs for every request.
        let key = RequestSeries(method: method, route: route, status: Self.boundedStatus(status))
        let series = requestSeries.value[key] ?? requestSeries.update { known -> RequestSeriesMetrics in
            if let existing = known[key] { return existing }
            let counter = Metrics.Counter(
                label: "gateway_http_requests_total",
                dimensions: [("method", method), ("route", route), ("status", Self.statusLabel(bounded: key.status))],
                factory: factory
            )
            let timer = requestTimers.withLock { timers in
                if let existing = timers[route] { return existing }
                let created = Metrics.Timer(label: "gateway_http_request_duration_seconds", dimensions: [("route", route)], factory: factory)
                timers[route] = created
                return created
            }
            let created = RequestSeriesMetrics(counter: counter, timer: timer)
            known[key] = created
            return created
        }
        series.counter.increment()
        series.timer.recordNanoseconds(Int64(clamping: durationNanoseconds))
    }

    /// The code itself when the server knows it by name (a fixed set), else its class as a
    /// negative number (-2 for 2xx), or 0 outside 100...599: a series key from a bounded set.
    static func boundedStatus(_ code: Int) -> Int {
        guard (100...599).contains(code) else { return 0 }
        return HTTPStatus.knownReasonPhrase(for: code) == nil ? -(code / 100) : code
    }

    static func statusLabel(bounded: Int) -> String {
        bounded > 0 ? String(bounded) : bounded == 0 ? "other" : "\(-bounded)xx"
    }

    private struct RequestSeriesMetrics: Sendable {
        var counter: Metrics.Counter
        var timer: Metrics.Timer
    }

    private struct RequestSeries: Hashable {
        var method: String
        var route: String
        var status: Int
    }

    /// `gateway_upstream_requests_total{provider,outcome}` and `gateway_upstream_request_duration_seconds{provider}`.
    public func recordUpstreamCall(provider: String, outcome: String, durationNanoseconds: UInt64) {
        increment("gateway_upstream_requests_total", [("provider", provider), ("outcome", outcome)])
        let timer = upstreamTimers.withLock { timers in
            if let existing = timers[provider] { return existing }
            let created = Metrics.Timer(label: "gateway_upstream_request_duration_seconds", dimensions: [("provider", provider)], factory: factory)
            timers[provider] = created
            return created
        }
        timer.recordNanoseconds(Int64(clamping: durationNanoseconds))
    }

    public func increment(_ name: String, _ dimensions: [(String, String)] = [], by amount: Int64 = 1) {
        let key = name + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        let counter = namedCounters.withLock { counters in
            if let existing = counters[key] { return existing }
            let created = Metrics.Counter(label: name, dimensions: dimensions, factory: factory)
            counters[key] = created
            return created
        }
        counter.increment(by: amount)
    }

    public func setGauge(_ name: String, _ value: Double, _ dimensions: [(String, String)] = []) {
        let key = name + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        let gauge = gauges.withLock { gauges in
            if let existing = gauges[key] { return existing }
            let created = Metrics.Gauge(label: name, dimensions: dimensions, factory: factory)
            gauges[key] = created
            return created
        }
        gauge.record(value)
    }

    /// The Prometheus text exposition (format 0.0.4).
    public func exposition() -> [UInt8] { registry.emitToBuffer() }
}

/// Facts inner layers learn about a request that the access log (the outermost layer) reports.
public final class RequestRecord: Sendable {
    /// Monotonic nanoseconds when the access-log layer first saw the request.
    public let startedAt: UInt64
    private let client = Mutex<String?>(nil)

    public init() {
        startedAt = monotonicNanoseconds()
    }

    public var clientID: String? {
        get { client.withLock { $0 } }
        set { client.withLock { $0 = newValue } }
    }

}

public enum RequestRecordKey: RequestContextKey {
    public typealias Value = RequestRecord
}

/// Access log line and request metrics for every request, after the response is known.
public struct ObservabilityMiddleware: HTTPMiddleware {
    let logger: Logger
    /// The logger's handler when it is the gateway's JSON one: access lines skip swift-log's
    /// metadata dictionary and are written from typed fields (same bytes).
    private let directJSON: JSONLogHandler?
    let metrics: GatewayMetrics
    /// Maps a path to its route template, so metrics never get one label per execution id.
    let routeTemplate: @Sendable (HTTPMethod, String) -> String
    /// Methods labelled as themselves; any other method a request carries is counted as `OTHER`.
    let routedMethods: Set<HTTPMethod>

    public init(
        logger: Logger, metrics: GatewayMetrics, routedMethods: Set<HTTPMethod>,
        routeTemplate: @escaping @Sendable (HTTPMethod, String) -> String
    ) {
        self.logger = logger
        self.directJSON = logger.handler as? JSONLogHandler
        self.metrics = metrics
        self.routedMethods = routedMethods
        self.routeTemplate = routeTemplate
    }

    public nonisolated(nonsending) func handle<Next: HTTPResponder>(_ request: HTTPRequest, context: consuming RequestContext, next: Next) async -> HTTPResponse {
        let record = RequestRecord()
        context[RequestRecordKey.self] = record
        // What the line reports of the context, taken now: the context itself moves on to `next`
        // (moved, not copied, so that the layers inside add their facts without copying its slots).
        let facts = ReportedFacts(
            receivedAtNanoseconds: context.receivedAtNanoseconds,
            requestID: context[RequestTraceKey.self]?.requestID,
            remoteAddress: context[ClientAddressKey.self] ?? context.remoteAddress
        )
        // Carried down with the request (to every upstream call it makes), not bound as a task-local:
        // a binding costs a task-local push, a closure and its executor checks on every request,
        // cache hits included.
        let upstreamCalls = UpstreamCallCounter()
        context[UpstreamCallCounterKey.self] = upstreamCalls
        let response = await next.respond(to: request, context: consume context)
        report(request, response: response, facts: facts, record: record,
               route: routeTemplate(request.method, request.path), upstreamCalls: upstreamCalls.value)
        return response
    }

    private struct ReportedFacts {
        var receivedAtNanoseconds: UInt64
        var requestID: String?
        var remoteAddress: String
    }

    private func report(
        _ request: HTTPRequest,
        response: HTTPResponse,
        facts: ReportedFacts,
        record: RequestRecord,
        route: String,
        upstreamCalls: Int
    ) {
        // From when the loop learned of the request's bytes, not from when this layer ran: under load
        // a request waits behind the others of its loop iteration, and that is the gateway's time too.
        // (A context made without a server, as in tests, carries no instant.)
        let received = facts.receivedAtNanoseconds
        let startedAt = received > 0 ? min(received, record.startedAt) : record.startedAt
        let duration = monotonicNanoseconds().subtractingClamped(startedAt)
        let methodLabel = routedMethods.contains(request.method) ? request.method.rawValue : "OTHER"
        metrics.recordRequest(method: methodLabel, route: route, status: response.status.code, durationNanoseconds: duration)
        // Access lines are `info`: below that level, skip building them at all.
        guard logger.logLevel <= .info else { return }
        let line = AccessLine(
            // The id the trace layer (outside this one) puts on every response as `X-Request-Id`.
            requestID: facts.requestID ?? response.headers["X-Request-Id"] ?? "",
            method: request.method.rawValue,
            route: route,
            path: request.path,
            status: response.status.code,
            bytes: response.body.count,
            durationNanoseconds: duration,
            upstreamCalls: upstreamCalls,
            remoteAddress: facts.remoteAddress,
            clientID: record.clientID,
            cacheStatus: response.headers["Cache-Status"]
        )
        if let directJSON, directJSON.logAccess(line) { return }
        logger.info(Logger.Message(stringLiteral: AccessLine.message), metadata: line.metadata, source: "access")
    }
}

/// One access line's fields. Through swift-log they are metadata; a `JSONLogHandler` writes the
/// same line straight from these fields (every request writes one).
public struct AccessLine: Sendable {
    public static let message = "request"

    public var requestID: String
    public var method: String
    public var route: String
    public var path: String
    public var status: Int
    public var bytes: Int
    public var durationNanoseconds: UInt64
    public var upstreamCalls: Int
    public var remoteAddress: String
    public var clientID: String?
    public var cacheStatus: String?

    public init(
        requestID: String, method: String, route: String, path: String, status: Int, bytes: Int,
        durationNanoseconds: UInt64, upstreamCalls: Int, remoteAddress: String, clientID: String?, cacheStatus: String?
    ) {
        self.requestID = requestID
        self.method = method
        self.route = route
        self.path = path
        self.status = status
        self.bytes = bytes
        self.durationNanoseconds = durationNanoseconds
        self.upstreamCalls = upstreamCalls
        self.remoteAddress = remoteAddress
        self.clientID = clientID
        self.cacheStatus = cacheStatus
    }

    public var metadata: Logger.Metadata {
        var fields: Logger.Metadata = [
            "requestId": .string(requestID),
            "method": .string(method),
            "route": .string(route),
            "path": .string(path),
            "status": .stringConvertible(status),
            "bytes": .stringConvertible(bytes),
            "durationMs": .stringConvertible(LoggedMilliseconds(nanoseconds: durationNanoseconds)),
            "upstreamCalls": .stringConvertible(upstreamCalls),
            "remoteAddress": .string(remoteAddress),
        ]
        if let clientID { fields["clientId"] = .string(clientID) }
        if let cacheStatus { fields["cache"] = .string(cacheStatus) }
        return fields
    }
}
