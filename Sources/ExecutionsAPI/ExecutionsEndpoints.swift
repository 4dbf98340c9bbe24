public import GatewayHTTP
public import GatewayServer
public import GatewayProviders
import Synchronization

/// The HTTP face of `ExecutionsService`: `GET /executions` and `GET /executions/{id}`.
public struct ExecutionsEndpoints: Sendable {
    public let service: ExecutionsService
    /// Names this gateway in `Cache-Status` (RFC 9211).
    public let cacheName: String

    public init(service: ExecutionsService, cacheName: String = "ExecutionsGateway") {
        self.service = service
        self.cacheName = cacheName
    }

    public func register(on router: inout Router) {
        router.get("/executions") { request, context in await self.list(request, context: context) }
        router.get("/executions/{id}") { request, context in await self.detail(request, context: context) }
    }

    public nonisolated(nonsending) func list(_ request: HTTPRequest, context: RequestContext) async -> HTTPResponse {
        let facts = Self.facts(for: request, context: context)
        let client = context[GatewayClientKey.self] ?? .anonymous
        let outcome = await service.list(request.queryItems, rawQuery: request.query ?? "", client: client, facts: facts)
        return listResponse(outcome, to: request, facts: facts)
    }

    private func listResponse(_ outcome: Result<ExecutionsAnswer, Problem>, to request: HTTPRequest, facts: RequestFacts) -> HTTPResponse {
        switch outcome {
        case .success(let answer):
            // Only a conditional request's answer depends on the request.
            if let shared = answer.sharedResponse, !facts.bypassCache, request.headers["If-None-Match"] == nil {
                return shared.response { listResponse(answer, to: request, bypassCache: false) }
            }
            return listResponse(answer, to: request, bypassCache: facts.bypassCache)
        case .failure(let problem):
            return problem.response(requestID: facts.requestID)
        }
    }

    private func listResponse(_ answer: ExecutionsAnswer, to request: HTTPRequest, bypassCache: Bool) -> HTTPResponse {
        var response = respond(with: answer, to: request, bypassCache: bypassCache)
        if let next = answer.nextCursor, response.status == .ok || response.status == .notModified {
            response.headers.add(name: "Link", value: "</executions?cursor=\(Self.queryValue(next))>; rel=\"next\"")
        }
        return response
    }

    public nonisolated(nonsending) func detail(_ request: HTTPRequest, context: RequestContext) async -> HTTPResponse {
        let facts = Self.facts(for: request, context: context)
        let client = context[GatewayClientKey.self] ?? .anonymous
        if let query = request.query, !query.isEmpty {
            let names = Array(Set(request.queryItems.map(\.name))).sorted()
            return Problem.invalidParameters(names.map { .init(name: $0, reason: "is not a parameter of this endpoint") })
                .response(requestID: facts.requestID)
        }
        switch await service.detail(id: context.pathParameters["id"] ?? "", client: client, facts: facts) {
        case .success(let answer):
            return respond(with: answer, to: request, bypassCache: facts.bypassCache)
        case .failure(let problem):
            return problem.response(requestID: facts.requestID)
        }
    }

    private func respond(with answer: ExecutionsAnswer, to request: HTTPRequest, bypassCache: Bool) -> HTTPResponse {
        var headers: HTTPHeaders = [
            "Content-Type": "application/json",
            "Cache-Control": "private",
            "ETag": answer.entityTag,
            "Cache-Status": cacheStatus(answer.cache, bypassCache: bypassCache),
            "Vary": "Authorization, X-API-Key",
        ]
        if Self.ifNoneMatch(request.headers.values(for: "If-None-Match"), matches: answer.entityTag) {
            headers.remove(name: "Content-Type")
            return HTTPResponse(status: .notModified, headers: headers)
        }
        return HTTPResponse(status: .ok, headers: headers, body: answer.body)
    }

    /// Cursors are base64url and `.`, which need no percent-encoding: skip the per-character
    /// encoder for them (it showed up at ~10% of a cache-hit page's CPU time).
    static func queryValue(_ text: String) -> String {
        var text = text
        let unreserved = text.withUTF8 { bytes in bytes.allSatisfy(Self.isUnreserved) }
        return unreserved ? text : percentEncode(text)
    }

    /// RFC 3986 unreserved characters. Comparisons rather than a static table: a static read
    /// inside the loop costs a `swift_once` check per byte.
    @inline(__always)
    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: "_"), UInt8(ascii: "~"):
            true
        default:
            false
        }
    }

    /// RFC 9211: `hit` when every part came from fresh cache; otherwise why it was forwarded.
    func cacheStatus(_ disposition: CacheDisposition, bypassCache: Bool) -> String {
        var value = cacheName
        switch disposition {
        case .hit: value += "; hit"
        case .miss, .stale: value += bypassCache ? "; fwd=request" : "; fwd=miss"
        }
        if disposition == .stale { value += "; detail=stale" }
        return value
    }

    /// Weak comparison (RFC 9110 §13.1.2): `*` or any listed tag equal after removing `W/`.
    static func ifNoneMatch(_ values: [String], matches entityTag: String) -> Bool {
        let wanted = entityTag.hasPrefix("W/") ? String(entityTag.dropFirst(2)) : entityTag
        for value in values {
            for candidate in value.split(separator: ",") {
                var tag = candidate.trimmingASCIISpaces()
                if tag == "*" { return true }
                if tag.hasPrefix("W/") { tag = tag.dropFirst(2) }
                if tag == wanted { return true }
            }
        }
        return false
    }

    static func facts(for request: HTTPRequest, context: RequestContext) -> RequestFacts {
        let trace = context[RequestTraceKey.self]
        // One pass over the fields: this runs for every request, and almost none carry either header.
        var bypassCache = false
        for field in request.headers where !bypassCache {
            if field.hasCanonicalName("cache-control") {
                bypassCache = commaSeparatedTokens(field.value).contains {
                    $0 == "no-cache" || $0.hasPrefix("no-cache=") || $0 == "no-store" || $0 == "max-age=0"
                }
            } else if field.hasCanonicalName("pragma") {
                bypassCache = field.value.lowercased().contains("no-cache")
            }
        }
        return RequestFacts(
            requestID: trace?.requestID ?? "",
            traceparent: trace?.traceparent ?? "",
            bypassCache: bypassCache,
            upstreamCallBudget: context[UpstreamCallBudgetKey.self],
            upstreamCalls: context[UpstreamCallCounterKey.self]
        )
    }
}

/// The client's budget of upstream calls, as the rate-limiting layer found it for this request.
public enum UpstreamCallBudgetKey: RequestContextKey {
    public typealias Value = UpstreamCallBudget
}

/// Where the request's upstream calls are counted, for its access line (put there by the layer
/// that writes the line).
public enum UpstreamCallCounterKey: RequestContextKey {
    public typealias Value = UpstreamCallCounter
}

/// The HTTP response for an answer served many times unchanged (a stored page's hit), built by the
/// first request that serves it and reused by the rest.
final class SharedResponse: Sendable {
    private final class Built: Sendable {
        let response: HTTPResponse
        init(_ response: HTTPResponse) { self.response = response }
    }

    private let built = AtomicLazyReference<Built>()

    func response(orBuild build: () -> HTTPResponse) -> HTTPResponse {
        if let known = built.load() { return known.response }
        // Two requests may build at once; both responses are the same, and the first stored wins.
        return built.storeIfNil(Built(build())).response
    }
}
