public import GatewayHTTP

/// One outbound HTTP request. The credential travels in `headers`, which nothing in this module
/// ever prints: descriptions show the method, the URL without its query and the header names only.
public struct UpstreamRequest: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    public var method: HTTPMethod
    /// Absolute `http` or `https` URL. User info (`user:pass@`) is refused: credentials belong in headers.
    public var url: String
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// Whole-transfer limit; nil means the client's default.
    public var timeoutNanoseconds: UInt64?
    /// Limit for establishing the connection (TCP + TLS); nil means the client's default.
    public var connectTimeoutNanoseconds: UInt64?
    /// Largest response body accepted; nil means the client's default.
    public var maxResponseBodyBytes: Int?
    /// When set, the transfer fails as a timeout once no byte arrived for this long, whatever
    /// its total: a streamed answer of hundreds of megabytes may take longer than a call's
    /// timeout, but must not stall for longer. libcurl measures the speed over its last few
    /// seconds, so a stall is noticed up to about 5 s late; a transfer paused because its reader
    /// is behind is not stalled.
    public var stallTimeoutNanoseconds: UInt64?

    public init(
        method: HTTPMethod = .get,
        url: String,
        headers: HTTPHeaders = HTTPHeaders(),
        body: [UInt8] = [],
        timeoutNanoseconds: UInt64? = nil,
        connectTimeoutNanoseconds: UInt64? = nil,
        maxResponseBodyBytes: Int? = nil
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeoutNanoseconds = timeoutNanoseconds
        self.connectTimeoutNanoseconds = connectTimeoutNanoseconds
        self.maxResponseBodyBytes = maxResponseBodyBytes
    }

    public var description: String {
        "\(method) \(redactedURL(url)) (headers: \(headers.map(\.name).joined(separator: ", ")); body \(body.count) bytes)"
    }

    public var debugDescription: String { description }
}

/// A complete upstream answer, whatever its status.
public struct UpstreamResponse: Sendable, CustomStringConvertible {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// From handing the request to the transport until the last body byte arrived.
    public var durationNanoseconds: UInt64

    public init(status: Int, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = [], durationNanoseconds: UInt64 = 0) {
        self.status = status
        self.headers = headers
        self.body = body
        self.durationNanoseconds = durationNanoseconds
    }

    public var description: String { "HTTP \(status) (\(body.count) body bytes)" }
}

/// Why an upstream call produced no usable response.
///
/// Descriptions are written for operators and never contain request headers or response bodies,
/// so an upstream that echoes a credential back cannot leak it through a log line or problem detail.
public enum UpstreamError: Error, Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The overall deadline, a per-attempt timeout or the connect timeout passed.
    case timeout
    /// No HTTP exchange completed: refused, reset, DNS, TLS handshake or verification, truncated body.
    case connection(reason: String)
    /// The upstream answered with a status outside 2xx. `retryAfterSeconds` is its `Retry-After`, if valid.
    case httpStatus(status: Int, body: [UInt8], retryAfterSeconds: Int?)
    /// The upstream's bytes were not what the protocol or the caller's decoder expects.
    case malformedResponse(reason: String)
    /// The endpoint's circuit breaker is open; calls are refused until about `retryAtNanoseconds` (monotonic).
    case circuitOpen(retryAtNanoseconds: UInt64)
    /// The upstream asked (Retry-After) that calls with this credential wait until `untilNanoseconds` (monotonic).
    case paused(untilNanoseconds: UInt64)
    /// The provider's `requestsPerMinute` has no slot before the call's deadline; the next one is
    /// at `retryAtNanoseconds` (monotonic). Nothing was sent.
    case minuteBudgetSpent(retryAtNanoseconds: UInt64)
    /// Too many calls are already waiting for a concurrency slot to this upstream.
    case overloaded
    /// The calling task was cancelled; the transfer was aborted.
    case cancelled
    /// The response body exceeded the configured limit.
    case bodyTooLarge(limitBytes: Int)
    /// The request cannot be sent as given (bad URL, scheme, header syntax). Nothing was sent.
    case invalidRequest(reason: String)
    /// The client was shut down before the request completed.
    case shutdown
    /// The client could not be started (libcurl initialisation or its thread failed).
    case clientUnavailable(reason: String)

    public var description: String {
        switch self {
        case .timeout: "upstream timed out"
        case .connection(let reason): "upstream connection failed: \(reason)"
        case .httpStatus(let status, let body, let retryAfter):
            "upstream answered HTTP \(status) (\(body.count) body bytes"
                + (retryAfter.map { ", Retry-After \($0) s)" } ?? ")")
        case .malformedResponse(let reason): "upstream response malformed: \(reason)"
        case .circuitOpen: "upstream circuit breaker is open"
        case .paused: "upstream asked to pause calls (Retry-After in force)"
        case .minuteBudgetSpent: "the provider's budget of requests per minute is spent"
        case .overloaded: "too many calls waiting for this upstream"
        case .cancelled: "upstream call cancelled"
        case .bodyTooLarge(let limit): "upstream response body larger than \(limit) bytes"
        case .invalidRequest(let reason): "upstream request invalid: \(reason)"
        case .shutdown: "upstream client shut down"
        case .clientUnavailable(let reason): "upstream client unavailable: \(reason)"
        }
    }

    public var debugDescription: String { description }

    /// Whether the error says the upstream itself is unhealthy, as a circuit breaker counts failures.
    /// Statuses below 500 mean the upstream is up and answering, so they do not count.
    public var indicatesUpstreamFailure: Bool {
        switch self {
        case .timeout, .connection, .malformedResponse: true
        case .httpStatus(let status, _, _): status >= 500
        case .circuitOpen, .paused, .minuteBudgetSpent, .overloaded, .cancelled, .bodyTooLarge, .invalidRequest,
            .shutdown, .clientUnavailable:
            false
        }
    }
}

/// Anything that can carry one request to an upstream and bring back its response.
/// `CurlHTTPClient` is the real one; tests of resilience policy plug in a scripted one.
public protocol UpstreamTransport: Sendable {
    func execute(_ request: UpstreamRequest) async throws(UpstreamError) -> UpstreamResponse

    /// Like `execute`, but a 2xx body is offered to `streamedBody` as it arrives, honouring its
    /// backpressure, and the returned response's body is empty; any other status's body comes back
    /// whole, as from `execute`. `request.maxResponseBodyBytes` bounds the streamed body; the
    /// caller ends `streamedBody` once this returns.
    func execute(_ request: UpstreamRequest, streamingSuccessBodyInto streamedBody: UpstreamBodyStream)
        async throws(UpstreamError) -> UpstreamResponse
}

extension UpstreamTransport {
    /// For transports that cannot stream (scripted ones in tests): the body arrives whole and is
    /// offered in one piece, which an empty stream always accepts.
    public func execute(_ request: UpstreamRequest, streamingSuccessBodyInto streamedBody: UpstreamBodyStream)
        async throws(UpstreamError) -> UpstreamResponse
    {
        var response = try await execute(request)
        guard (200..<300).contains(response.status) else { return response }
        if streamedBody.offer(response.body) == .closed { throw .cancelled }
        response.body = []
        return response
    }
}

/// How a streamed call ended: the answer's head and what its body cost on the way.
public struct UpstreamStreamedResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    /// From handing the request to the transport until the consumer had the last body byte.
    public var durationNanoseconds: UInt64
    /// The body's passage through the bounded buffer (bytes handed out, peak buffered, pauses).
    public var body: UpstreamBodyStream.Statistics

    public init(status: Int, headers: HTTPHeaders, durationNanoseconds: UInt64, body: UpstreamBodyStream.Statistics) {
        self.status = status
        self.headers = headers
        self.durationNanoseconds = durationNanoseconds
        self.body = body
    }
}

/// The URL without user info, query or fragment, safe to log.
func redactedURL(_ url: String) -> String {
    var end = url.endIndex
    if let index = url.firstIndex(where: { $0 == "?" || $0 == "#" }) { end = index }
    var result = String(url[..<end])
    // User info is refused before sending, but a description may be asked for earlier.
    if let authority = urlAuthorityBounds(result), let at = result[authority].lastIndex(of: "@") {
        result.replaceSubrange(authority.lowerBound...at, with: "")
    }
    return result
}

/// Where the authority of an absolute URL lies: after `scheme://`, up to the first `/`, `?` or `#`.
func urlAuthorityBounds(_ url: String) -> Range<String.Index>? {
    guard let colon = url.firstIndex(of: ":"), url[colon...].hasPrefix("://") else { return nil }
    let start = url.index(colon, offsetBy: 3)
    let end = url[start...].firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? url.endIndex
    return start..<end
}
