import ExecutionsAPI
public import GatewayHTTP
import GatewayProviders
public import GatewayRateLimit
public import GatewayServer
import Synchronization

/// Where a request really comes from: the peer, or — only when the peer is a trusted proxy — the
/// nearest untrusted address in `X-Forwarded-For`.
public struct ClientAddressResolver: Sendable {
    private let isTrustedProxy: @Sendable (String) -> Bool
    private let peerTrust: PeerTrustMemo

    public init(isTrustedProxy: @escaping @Sendable (String) -> Bool) {
        self.isTrustedProxy = isTrustedProxy
        peerTrust = PeerTrustMemo(isTrusted: isTrustedProxy)
    }

    /// Walks `X-Forwarded-For` from the right (the hops this side appended) and stops at the
    /// first address not in the trusted set; a client cannot forge its way past a trusted proxy.
    public func clientAddress(peer: String, headers: HTTPHeaders) -> String {
        guard peerTrust.isTrusted(peer) else { return peer }
        let hops = headers.values(for: "X-Forwarded-For")
            .flatMap { $0.split(separator: ",") }
            .map { String($0.trimmingOptionalWhitespace()) }
        var candidate = peer
        for hop in hops.reversed() {
            guard isPlausibleAddress(hop) else { return candidate }
            candidate = hop
            if !isTrustedProxy(hop) { return hop }
        }
        return candidate
    }

    private func isPlausibleAddress(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 45
            && text.utf8.allSatisfy { ($0 >= 48 && $0 <= 58) || ($0 >= 65 && $0 <= 70) || ($0 >= 97 && $0 <= 102) || $0 == 46 }
    }
}

/// Whether recently seen peers are trusted proxies. Peers are socket addresses, few and
/// recurring (a proxy's connections, a client's keep-alive requests), while judging one parses
/// the address and walks the CIDR list on every request. The list is fixed for the resolver's
/// life, so a remembered answer stays right; the memo is emptied when full, so it stays small
/// however many peers come.
final class PeerTrustMemo: Sendable {
    static let capacity = 256
    private let isTrustedUncached: @Sendable (String) -> Bool
    private let known = Mutex<[String: Bool]>([:])

    init(isTrusted: @escaping @Sendable (String) -> Bool) {
        isTrustedUncached = isTrusted
    }

    func isTrusted(_ peer: String) -> Bool {
        if let answer = known.withLock({ $0[peer] }) { return answer }
        let answer = isTrustedUncached(peer)
        known.withLock { known in
            if known.count >= Self.capacity { known.removeAll(keepingCapacity: true) }
            known[peer] = answer
        }
        return answer
    }

    var count: Int { known.withLock { $0.count } }
}

public enum ClientAddressKey: RequestContextKey {
    public typealias Value = String
}

/// Resolves the client address once per request, for logs and anonymous limits.
public struct ClientAddressMiddleware: HTTPMiddleware {
    let resolver: ClientAddressResolver

    public init(resolver: ClientAddressResolver) { self.resolver = resolver }

    public nonisolated(nonsending) func handle<Next: HTTPResponder>(_ request: HTTPRequest, context: consuming RequestContext, next: Next) async -> HTTPResponse {
        context[ClientAddressKey.self] = resolver.clientAddress(peer: context.remoteAddress, headers: request.headers)
        return await next.respond(to: request, context: consume context)
    }
}

/// Each client's second bucket, of the upstream calls its requests cause, and the ceiling of one request.
public struct UpstreamCallLimits: Sendable {
    public var defaultPolicy: RateLimitPolicy
    public var policies: [String: RateLimitPolicy]
    public var maxCallsPerRequest: Int

    public init(defaultPolicy: RateLimitPolicy, policies: [String: RateLimitPolicy], maxCallsPerRequest: Int) {
        self.defaultPolicy = defaultPolicy
        self.policies = policies
        self.maxCallsPerRequest = maxCallsPerRequest
    }
}

/// Each client's token bucket: `RateLimit-*` headers on every response to a client, `429` with
/// `Retry-After` over the limit. Anonymous callers (`auth.mode: none`) are limited per address.
/// An admitted request also gets its client's budget of upstream calls, which the API charges
/// call by call (a `429` for a spent budget carries that budget's `RateLimit-*` instead).
public struct RateLimitMiddleware: HTTPMiddleware {
    let store: any RateLimitStore
    let policy: @Sendable (String) -> RateLimitPolicy
    let upstreamCallLimits: @Sendable () -> UpstreamCallLimits?
    let onLimited: @Sendable (String) -> Void
    /// Called with the client's id each time its budget of upstream calls refuses a call.
    let onCallBudgetSpent: @Sendable (String) -> Void

    public init(
        store: any RateLimitStore,
        defaultPolicy: RateLimitPolicy,
        policies: [String: RateLimitPolicy],
        onLimited: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.store = store
        self.policy = { policies[$0] ?? defaultPolicy }
        self.upstreamCallLimits = { nil }
        self.onLimited = onLimited
        self.onCallBudgetSpent = { _ in }
    }

    /// Reads the current limits of `directory` on every request (configuration reloads).
    public init(
        store: any RateLimitStore,
        directory: ClientDirectory,
        onLimited: @escaping @Sendable (String) -> Void = { _ in },
        onCallBudgetSpent: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.store = store
        self.policy = { client in
            let entries = directory.current
            return entries.policies[client] ?? entries.defaultPolicy
        }
        self.upstreamCallLimits = { directory.current.upstreamCalls }
        self.onLimited = onLimited
        self.onCallBudgetSpent = onCallBudgetSpent
    }

    public nonisolated(nonsending) func handle<Next: HTTPResponder>(_ request: HTTPRequest, context: consuming RequestContext, next: Next) async -> HTTPResponse {
        guard let client = context[GatewayClientKey.self] else { return await next.respond(to: request, context: consume context) }
        // An in-memory store decides without suspending; a shared one suspends for its round trip.
        let bucketKey = Self.bucketKey(client, context: context)
        let decision = await store.acquire(key: bucketKey, policy: policy(client.id), cost: 1)
        var response: HTTPResponse
        if decision.allowed {
            context[UpstreamCallBudgetKey.self] = upstreamCallBudget(for: client, bucketKey: bucketKey)
            response = await next.respond(to: request, context: consume context)
        } else {
            response = refusal(client, decision: decision, context: context)
        }
        Self.addHeaders(of: decision, to: &response)
        return response
    }

    private static func bucketKey(_ client: GatewayClient, context: RequestContext) -> String {
        client == .anonymous
            ? "ip:" + (context[ClientAddressKey.self] ?? context.remoteAddress)
            : "client:" + client.id
    }

    private func upstreamCallBudget(for client: GatewayClient, bucketKey: String) -> UpstreamCallBudget? {
        guard let limits = upstreamCallLimits() else { return nil }
        let policy = limits.policies[client.id] ?? limits.defaultPolicy
        return UpstreamCallBudget(maxCallsPerRequest: limits.maxCallsPerRequest) { [store, onCallBudgetSpent] in
            // Built only when a call is charged: most requests (cache hits) never are.
            let decision = await store.acquire(key: "calls:" + bucketKey, policy: policy, cost: 1)
            if decision.allowed { return nil }
            onCallBudgetSpent(client.id)
            return UpstreamCallBudgetRefusal(
                limit: decision.limit, resetSeconds: decision.resetSeconds, retryAfterSeconds: decision.retryAfterSeconds ?? 1)
        }
    }

    private func refusal(_ client: GatewayClient, decision: RateLimitDecision, context: RequestContext) -> HTTPResponse {
        onLimited(client.id)
        let retryAfter = decision.retryAfterSeconds ?? 1
        return Problem(
            .rateLimited, status: .tooManyRequests, title: "Too many requests",
            detail: "Client '\(client.id)' is over its rate limit; retry in \(retryAfter) s.",
            retryAfterSeconds: retryAfter
        ).response(requestID: context[RequestTraceKey.self]?.requestID ?? "")
    }

    /// `decision.headerFields`, written without building that array: this runs on every response.
    static func addHeaders(of decision: RateLimitDecision, to response: inout HTTPResponse) {
        // A refusal for the spent upstream-call budget already describes that budget.
        if response.status == .tooManyRequests && response.headers["RateLimit-Limit"] != nil { return }
        response.headers.replaceOrAdd(Self.limitField, value: String(decision.limit))
        response.headers.replaceOrAdd(Self.remainingField, value: String(decision.remaining))
        response.headers.replaceOrAdd(Self.resetField, value: String(decision.resetSeconds))
        if let retryAfter = decision.retryAfterSeconds {
            response.headers.replaceOrAdd(Self.retryAfterField, value: String(retryAfter))
        }
    }

    private static let limitField = HTTPFieldName("RateLimit-Limit")
    private static let remainingField = HTTPFieldName("RateLimit-Remaining")
    private static let resetField = HTTPFieldName("RateLimit-Reset")
    private static let retryAfterField = HTTPFieldName("Retry-After")
}

/// The budget of requests refused before authentication, per client address (the forwarded one
/// behind a trusted proxy). Its table holds at most `maxTrackedAddresses` addresses, so a flood
/// from many addresses cannot grow it; the budget follows configuration reloads.
public final class UnauthenticatedLimiter: Sendable {
    /// About 2 MiB of buckets at most.
    public static let maxTrackedAddresses = 16_384

    private let store: MemoryRateLimitStore
    private let policy: Mutex<RateLimitPolicy>
    private let onLimited: @Sendable () -> Void

    public init(
        policy: RateLimitPolicy,
        maxTrackedAddresses: Int = UnauthenticatedLimiter.maxTrackedAddresses,
        now: (@Sendable () -> UInt64)? = nil,
        onLimited: @escaping @Sendable () -> Void = {}
    ) {
        store = if let now { MemoryRateLimitStore(maxKeys: maxTrackedAddresses, now: now) } else { MemoryRateLimitStore(maxKeys: maxTrackedAddresses) }
        self.policy = Mutex(policy)
        self.onLimited = onLimited
    }

    public func replacePolicy(with newPolicy: RateLimitPolicy) { policy.withLock { $0 = newPolicy } }

    /// Spends one token of `address`'s bucket: nil while within the budget, else the `429` to send.
    func refusal(address: String, requestID: String) -> HTTPResponse? {
        let decision = store.acquire(key: address, policy: policy.withLock { $0 }, cost: 1)
        guard !decision.allowed else { return nil }
        onLimited()
        let retryAfter = decision.retryAfterSeconds ?? 1
        var response = Problem(
            .rateLimited, status: .tooManyRequests, title: "Too many requests",
            detail: "Too many requests without a valid API key from this address; retry in \(retryAfter) s.",
            retryAfterSeconds: retryAfter
        ).response(requestID: requestID)
        RateLimitMiddleware.addHeaders(of: decision, to: &response)
        return response
    }
}
