public import ExecutionsAPI
import GatewayCrypto
import GatewayEventLoop
public import GatewayHTTP
public import GatewayServer
public import GatewayRateLimit
import Synchronization

/// A configured client as the authenticator needs it.
public struct ClientCredentialRecord: Sendable {
    public var client: GatewayClient
    /// SHA-256 of the client's API key (32 bytes).
    public var keyDigest: [UInt8]

    public init(client: GatewayClient, keyDigest: [UInt8]) {
        self.client = client
        self.keyDigest = keyDigest
    }
}

/// Turns the key a request carries into a `GatewayClient`.
///
/// Keys are compared by SHA-256 digest, against every configured client with a constant-time
/// comparison and no early exit, so response timing reveals neither which client nor how much of
/// a key matched. A key that matched is remembered with its client, as the header value that
/// carried it, so that a client's requests after its first cost one table lookup of that value
/// instead of parsing it, a digest and a pass over every client. Only matched keys sent in their
/// one canonical form (`Bearer <key>`, or the bare key in `X-API-Key`) are remembered, so the
/// table holds at most two entries per configured client whatever keys or spellings a caller
/// tries; it goes with the authenticator when the configuration is reloaded.
public struct ClientAuthenticator: Sendable {
    public enum Mode: Sendable { case apiKey, none }

    public let mode: Mode
    private let records: [ClientCredentialRecord]
    /// Header values that carried a key matching a configured client, with that client.
    private let matchedKeys = LoopCachedValue<[SentKey: GatewayClient]>([:])

    /// A key as a request carried it: which header, and that header's whole value.
    private struct SentKey: Hashable, Sendable {
        var inAuthorization: Bool
        var value: String
    }

    public init(mode: Mode, clients: [ClientCredentialRecord]) {
        self.mode = mode
        self.records = clients
    }

    public enum Failure: Error, Sendable, Equatable {
        case missingKey
        case unknownKey
        case malformedAuthorization
    }

    public func authenticate(_ headers: HTTPHeaders) -> Result<GatewayClient, Failure> {
        if mode == .none { return .success(.anonymous) }
        let sent: SentKey
        if let authorization = headers["Authorization"] {
            sent = SentKey(inAuthorization: true, value: authorization)
        } else if let apiKey = headers["X-API-Key"] {
            sent = SentKey(inAuthorization: false, value: apiKey)
        } else {
            return .failure(.missingKey)
        }
        // Only ASCII values are remembered: `String` equality is canonical equivalence, under which
        // two different byte strings (`é` and `e` + U+0301) would match one remembered value.
        let rememberable = Self.isASCII(sent.value)
        if rememberable, let known = matchedKeys.value[sent] { return .success(known) }
        let key: Substring
        if sent.inAuthorization {
            guard let token = Self.bearerToken(sent.value) else { return .failure(.malformedAuthorization) }
            key = token
        } else {
            key = Substring(sent.value).trimmingOptionalWhitespace()
        }
        guard !key.isEmpty else { return .failure(.missingKey) }
        let digest = SHA256.hash(Array(key.utf8))
        var found: GatewayClient?
        for record in records where constantTimeEquals(record.keyDigest, digest) && found == nil {
            found = record.client
        }
        guard let found else { return .failure(.unknownKey) }
        // The canonical spelling only: every other spelling of the same key (case of the scheme,
        // spaces, tabs) would otherwise add an entry of its own.
        let canonicalCount = key.utf8.count + (sent.inAuthorization ? Self.canonicalScheme.utf8.count : 0)
        let canonical = sent.value.utf8.count == canonicalCount && (!sent.inAuthorization || sent.value.hasPrefix(Self.canonicalScheme))
        if rememberable && canonical { matchedKeys.update { $0[sent] = found } }
        return .success(found)
    }

    private static let canonicalScheme = "Bearer "

    private static func isASCII(_ value: String) -> Bool {
        var value = value
        return value.withUTF8 { bytes in
            var combined: UInt8 = 0
            for byte in bytes { combined |= byte }
            return combined < 0x80
        }
    }

    /// How many header values are remembered (at most two per configured client: one per header).
    public var rememberedKeys: Int { matchedKeys.value.count }

    /// The token of `Bearer <token>` (scheme in any case, spaces or tabs around the token), or nil
    /// when the value does not use the Bearer scheme. Reads the value in place.
    static func bearerToken(_ value: String) -> Substring? {
        let rest = Substring(value).trimmingOptionalWhitespace().utf8
        let scheme = "bearer".utf8
        guard rest.count > scheme.count, zip(rest, scheme).allSatisfy({ $0 | 0x20 == $1 }) else { return nil }
        // By bytes, not characters: a combining mark after the scheme is no separator.
        let afterScheme = rest.index(rest.startIndex, offsetBy: scheme.count)
        guard rest[afterScheme] == UInt8(ascii: " ") else { return nil }
        return Substring(rest[afterScheme...]).trimmingOptionalWhitespace()
    }
}

/// The clients the gateway knows and their rate limits; replaced as a whole when the configuration
/// file is reloaded, so a request sees either the old set or the new one, never a mix.
public final class ClientDirectory: Sendable {
    /// One configuration's clients, immutable: a reader holds it by one reference.
    public final class Entries: Sendable {
        public let authenticator: ClientAuthenticator
        public let defaultPolicy: RateLimitPolicy
        public let policies: [String: RateLimitPolicy]
        /// The budgets of upstream calls; nil: unlimited.
        public let upstreamCalls: UpstreamCallLimits?

        public init(
            authenticator: ClientAuthenticator, defaultPolicy: RateLimitPolicy, policies: [String: RateLimitPolicy],
            upstreamCalls: UpstreamCallLimits? = nil
        ) {
            self.authenticator = authenticator
            self.defaultPolicy = defaultPolicy
            self.policies = policies
            self.upstreamCalls = upstreamCalls
        }
    }

    private let entries: LoopCachedValue<Entries>

    public init(_ entries: Entries) { self.entries = LoopCachedValue(entries) }

    /// Read on every request by authentication and rate limiting: from the loop's own copy.
    public var current: Entries { entries.value }

    public func replace(with newEntries: Entries) { entries.update { $0 = newEntries } }
}

/// Requires a client key on every route except the operational ones, and records the client on the
/// request context for the API and the rate limiter.
///
/// A request it refuses spends a token of its address's `unauthenticated` bucket, when a limiter is
/// given; over that budget the answer is `429` instead of `401`, so guessing keys or flooding
/// without one is as limited as a client's own traffic.
public struct AuthenticationMiddleware: HTTPMiddleware {
    let authenticator: @Sendable () -> ClientAuthenticator
    let publicPaths: Set<String>
    let unauthenticatedLimiter: UnauthenticatedLimiter?

    public init(authenticator: ClientAuthenticator, publicPaths: Set<String>, unauthenticatedLimiter: UnauthenticatedLimiter? = nil) {
        self.authenticator = { authenticator }
        self.publicPaths = publicPaths
        self.unauthenticatedLimiter = unauthenticatedLimiter
    }

    /// Reads the current clients of `directory` on every request (configuration reloads).
    public init(directory: ClientDirectory, publicPaths: Set<String>, unauthenticatedLimiter: UnauthenticatedLimiter? = nil) {
        self.authenticator = { directory.current.authenticator }
        self.publicPaths = publicPaths
        self.unauthenticatedLimiter = unauthenticatedLimiter
    }

    public nonisolated(nonsending) func handle<Next: HTTPResponder>(_ request: HTTPRequest, context: consuming RequestContext, next: Next) async -> HTTPResponse {
        if let refusal = authenticate(request, context: &context) { return refusal }
        return await next.respond(to: request, context: consume context)
    }

    /// Records the client in `context`, or answers `401` (`429` past the unauthenticated budget).
    private func authenticate(_ request: HTTPRequest, context: inout RequestContext) -> HTTPResponse? {
        if publicPaths.contains(request.path) { return nil }
        switch authenticator().authenticate(request.headers) {
        case .success(let client):
            context[GatewayClientKey.self] = client
            context[RequestRecordKey.self]?.clientID = client.id
            return nil
        case .failure(let failure):
            if let unauthenticatedLimiter,
               let refusal = unauthenticatedLimiter.refusal(
                   address: context[ClientAddressKey.self] ?? context.remoteAddress,
                   requestID: context[RequestTraceKey.self]?.requestID ?? ""
               ) {
                return refusal
            }
            let detail = switch failure {
            case .missingKey: "Send your API key as `Authorization: Bearer <key>` or `X-API-Key: <key>`."
            case .unknownKey: "The API key is not valid."
            case .malformedAuthorization: "The Authorization header must use the Bearer scheme."
            }
            let requestID = context[RequestTraceKey.self]?.requestID ?? ""
            var response = Problem(.unauthenticated, status: .unauthorized, title: "Unauthenticated", detail: detail)
                .response(requestID: requestID)
            response.headers.add(name: "WWW-Authenticate", value: "Bearer realm=\"executions-gateway\"")
            return response
        }
    }
}
