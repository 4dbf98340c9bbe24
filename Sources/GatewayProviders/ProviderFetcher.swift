public import GatewayCache
import GatewayCrypto
import GatewayEventLoop
import GatewayHTTP
import GatewayJSON
public import GatewayUpstream
import Synchronization

/// How long upstream answers stay fresh in the shared response cache (docs/configuration.md, cache).
public struct ProviderCachePolicy: Sendable, Equatable {
    /// List pages (Kaizen's list, a Kapso workflow page, a B3OS window, Kapso's workflow list).
    public var listTTL: Duration { didSet { listTTLNanoseconds = listTTL.saturatingNanoseconds } }
    /// Detail of an execution that may still change (queued, running, waiting, paused, unmapped).
    public var activeDetailTTL: Duration { didSet { activeDetailTTLNanoseconds = activeDetailTTL.saturatingNanoseconds } }
    /// Detail of a finished execution (succeeded, failed, cancelled).
    public var terminalDetailTTL: Duration {
        didSet { terminalDetailTTLNanoseconds = terminalDetailTTL.saturatingNanoseconds }
    }
    /// How long after expiry an entry may still be served when the upstream fails or is paused.
    public var staleIfError: Duration { didSet { staleIfErrorNanoseconds = staleIfError.saturatingNanoseconds } }

    // The durations converted once, for the cache's nanosecond clock (saturating, never trapping).
    public private(set) var listTTLNanoseconds: UInt64
    public private(set) var activeDetailTTLNanoseconds: UInt64
    public private(set) var terminalDetailTTLNanoseconds: UInt64
    public private(set) var staleIfErrorNanoseconds: UInt64

    public init(
        listTTL: Duration = .seconds(5),
        activeDetailTTL: Duration = .seconds(2),
        terminalDetailTTL: Duration = .seconds(3600),
        staleIfError: Duration = .seconds(300)
    ) {
        self.listTTL = listTTL
        self.activeDetailTTL = activeDetailTTL
        self.terminalDetailTTL = terminalDetailTTL
        self.staleIfError = staleIfError
        listTTLNanoseconds = listTTL.saturatingNanoseconds
        activeDetailTTLNanoseconds = activeDetailTTL.saturatingNanoseconds
        terminalDetailTTLNanoseconds = terminalDetailTTL.saturatingNanoseconds
        staleIfErrorNanoseconds = staleIfError.saturatingNanoseconds
    }

    /// The detail TTL for an execution in `status`; an unmapped status counts as active.
    public func detailTTLNanoseconds(for status: ExecutionStatus?) -> UInt64 {
        status?.isTerminal == true ? terminalDetailTTLNanoseconds : activeDetailTTLNanoseconds
    }
}

/// Where a provider type expects the credential.
public enum CredentialPlacement: Sendable, Equatable {
    /// `Authorization: Bearer <credential>` (Kaizen, B3OS).
    case bearer
    /// `<name>: <credential>` (Kapso: `X-API-Key`).
    case header(name: String)
}

/// Counts the real upstream calls made on behalf of one gateway request, for the access log.
///
/// Pass one with the request's calls (`UpstreamCallContext.upstreamCalls`); every fetcher call made
/// with it that reaches the network (including a load that other requests then share) adds one.
/// Answers from cache, and calls refused before sending (paused, circuit open), add nothing.
/// Retries inside one call count once.
public final class UpstreamCallCounter: Sendable {
    private let count = Atomic<Int>(0)

    public init() {}

    public var value: Int { count.load(ordering: .relaxed) }

    func increment() { count.add(1, ordering: .relaxed) }
}

/// Until when every upstream answer read on behalf of one gateway request stays fresh.
///
/// Bind one with `ProviderFetcher.$partFreshness.withValue(freshness) { ... }` around building
/// something derived from those answers (a rendered page): it may then be kept until `earliest`
/// and no longer, whether each answer came from cache or from the network. Times are in the
/// response cache's clock.
public final class PartFreshness: Sendable {
    private let state = Mutex<(earliest: UInt64, parts: Int)>((.max, 0))

    public init() {}

    /// The earliest end of freshness recorded, or nil when no answer was recorded.
    public var earliest: UInt64? { state.withLock { $0.parts == 0 ? nil : $0.earliest } }

    public func record(freshUntil: UInt64) {
        state.withLock {
            $0.earliest = min($0.earliest, freshUntil)
            $0.parts += 1
        }
    }
}

/// How an upstream call made by a fetcher ended; the label set for metrics.
public enum ProviderCallOutcome: String, Sendable, CaseIterable, Hashable {
    case success
    /// 404 on a detail call.
    case notFound
    /// 401 or 403.
    case credentialRejected
    /// 429 or 503 with Retry-After.
    case rateLimited
    /// Any other non-2xx status.
    case httpError
    case timeout
    /// Connection refused, reset, truncated, or the transport could not send.
    case unreachable
    /// Not JSON, or not the shape the adapter reads.
    case malformedResponse
}

/// What one provider's fetcher has done since start, for `/metrics`.
public struct ProviderFetchStatistics: Sendable, Equatable {
    /// Calls that went upstream, by how they ended (every outcome present, zero included).
    public var upstreamCalls: [ProviderCallOutcome: Int]
    /// Answers served from fresh cache without a call.
    public var cacheHits: Int
    /// Answers that waited for an identical call another request had started.
    public var coalescedWaits: Int
    /// Answers served from an expired entry because the upstream failed or was paused.
    public var staleServes: Int
    /// Reads refused without a call because the credential was paused (Retry-After) and no
    /// cached copy could be served.
    public var pausedRefusals: Int
    /// Reads refused without a call because the endpoint's circuit breaker was open.
    public var circuitOpenRefusals: Int

    public init() {
        upstreamCalls = Dictionary(uniqueKeysWithValues: ProviderCallOutcome.allCases.map { ($0, 0) })
        cacheHits = 0
        coalescedWaits = 0
        staleServes = 0
        pausedRefusals = 0
        circuitOpenRefusals = 0
    }

    /// Every call that went upstream, whatever its outcome.
    public var totalUpstreamCalls: Int { upstreamCalls.values.reduce(0, +) }
}

/// One upstream read as an adapter describes it; the fetcher adds base URL, credential and
/// correlation headers.
struct ProviderRequest: Sendable {
    var method: HTTPMethod
    /// Starts with `/`; path segments taken from data must already be percent-encoded.
    var path: String
    var query: [(name: String, value: String)]
    var jsonBody: JSONValue?

    init(method: HTTPMethod = .get, path: String, query: [(name: String, value: String)] = [], jsonBody: JSONValue? = nil) {
        self.method = method
        self.path = path
        self.query = query
        self.jsonBody = jsonBody
    }
}

/// What an upstream read is for, which decides how long its answer stays fresh and what a 404 means.
enum ReadPurpose: Sendable {
    /// A listing: fresh for the list TTL; 404 is an error status like any other.
    case list
    /// One execution's record: fresh for the detail TTL of its status; 404 means the provider
    /// does not know the id.
    case detail
}

/// A decoded upstream answer and how it was obtained.
public struct Fetched<Value: Sendable>: Sendable {
    public var value: Value
    public var cache: CacheDisposition
}

/// The one path every upstream read of a provider takes: request building, the shared response
/// cache (keyed by provider, request and credential identity, never the credential), TTL choice,
/// Retry-After pauses, stale-if-error, error mapping and call accounting.
///
/// Cache dispositions: `hit` only when the answer came from a fresh entry; a caller that waited
/// for an identical in-flight call (coalesced) reports `miss`, because its data was fetched during
/// its request; `stale` when an expired entry was served because the upstream failed or was paused.
/// Non-2xx answers and answers the adapter cannot decode are never cached.
public final class ProviderFetcher: Sendable {
    /// How long the answers read for the current gateway request stay fresh; see `PartFreshness`.
    @TaskLocal public static var partFreshness: PartFreshness?

    public let providerName: String
    /// Without a trailing slash.
    public let baseURL: String
    public let credentialPlacement: CredentialPlacement
    /// B3OS `X-Org-ID`.
    public let organizationID: String?
    public let endpoint: UpstreamEndpoint
    public let cache: ResponseCache
    public let cachePolicy: ProviderCachePolicy
    private let counters = Mutex(ProviderFetchStatistics())

    public init(
        providerName: String,
        baseURL: String,
        credentialPlacement: CredentialPlacement,
        organizationID: String? = nil,
        endpoint: UpstreamEndpoint,
        cache: ResponseCache,
        cachePolicy: ProviderCachePolicy
    ) {
        self.providerName = providerName
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.credentialPlacement = credentialPlacement
        self.organizationID = organizationID
        self.endpoint = endpoint
        self.cache = cache
        self.cachePolicy = cachePolicy
    }

    public func statistics() -> ProviderFetchStatistics { counters.withLock { $0 } }

    // MARK: - Fetching

    /// Reads a listing (Kaizen's list, a Kapso workflow page or workflow list, a B3OS window)
    /// through the cache. `decode` turns the JSON into what the adapter needs and throws for a
    /// shape it cannot read (the answer is then not cached).
    func fetchListing<Value: Sendable>(
        _ request: ProviderRequest,
        call: UpstreamCallContext,
        decode: @escaping @Sendable (JSONValue) throws(ProviderError) -> Value
    ) async throws(ProviderError) -> Fetched<Value> {
        try await fetch(request, purpose: .list, call: call, decode: decode, ttl: { [policy = cachePolicy] _ in policy.listTTLNanoseconds })
    }

    /// Reads one execution's record through the cache, fresh for as long as the `status` of the
    /// decoded record allows (a finished execution no longer changes).
    func fetchDetail<Value: Sendable>(
        _ request: ProviderRequest,
        call: UpstreamCallContext,
        decode: @escaping @Sendable (JSONValue) throws(ProviderError) -> Value,
        status: @escaping @Sendable (Value) -> ExecutionStatus?
    ) async throws(ProviderError) -> Fetched<Value> {
        try await fetch(request, purpose: .detail, call: call, decode: decode, ttl: { [policy = cachePolicy] value in
            policy.detailTTLNanoseconds(for: status(value))
        })
    }

    /// `ttl` picks the freshness of a decoded answer.
    /// - Parameter afterAnotherRequestsRefusal: this is the second try of a caller that waited for
    ///   another request's call, which that request's own budget or ceiling refused.
    private func fetch<Value: Sendable>(
        _ request: ProviderRequest,
        purpose: ReadPurpose,
        call: UpstreamCallContext,
        decode: @escaping @Sendable (JSONValue) throws(ProviderError) -> Value,
        ttl: @escaping @Sendable (Value) -> UInt64,
        afterAnotherRequestsRefusal: Bool = false
    ) async throws(ProviderError) -> Fetched<Value> {
        let url = self.url(for: request)
        let body = encodedBody(of: request)
        let key = cacheKey(method: request.method, url: url, body: body, credentialIdentity: call.credentialIdentity)

        if let pausedUntil = endpoint.pausedUntil(credentialKey: call.credentialIdentity) {
            if !call.bypassCache, !call.bypassesResponseCache, let cached = try await storedCopy(key: key, decode: decode) {
                return cached
            }
            throw refusalWhilePaused(until: pausedUntil)
        }

        let outbound = upstreamRequest(request, url: url, body: body, call: call)
        let options = callOptions(call)
        if call.bypassesResponseCache {
            try await chargeAllowance(call)
            let response = try await send(purpose: purpose, call: call) { () async throws(UpstreamError) in
                try await self.endpoint.execute(outbound, options: options)
            }
            let value = try await decodedAnswer(response.body, decode: decode)
            count(.success)
            return Fetched(value: value, cache: .miss)
        }
        let decodedHere = DecodedBox<Value>()
        let refusedHere = DecodedBox<Bool>()
        let result: CacheResult
        do {
            result = try await cache.fetch(
                key: key, staleIfErrorNanoseconds: cachePolicy.staleIfErrorNanoseconds, bypassCache: call.bypassCache
            ) { [self] in
                // Charged here, where the call is really made: a hit or a coalesced wait costs nothing.
                do {
                    try await self.chargeAllowance(call)
                } catch {
                    refusedHere.store(true)
                    throw error
                }
                let response = try await self.send(purpose: purpose, call: call) { () async throws(UpstreamError) in
                    try await self.endpoint.execute(outbound, options: options)
                }
                let value = try await self.decodedAnswer(response.body, decode: decode)
                self.count(.success)
                decodedHere.store(value)
                return CacheLoad(value: response.body, ttlNanoseconds: ttl(value))
            }
        } catch let error as ProviderError where error.isCallLimitRefusal && refusedHere.value == nil && !afterAnotherRequestsRefusal {
            // The call this request waited for was refused on another request's account: make it on its own.
            return try await fetch(request, purpose: purpose, call: call, decode: decode, ttl: ttl, afterAnotherRequestsRefusal: true)
        } catch ProviderError.callBudgetSpent(let refusal) {
            // Over budget, the client gets what the cache holds, stale or not, even after `no-cache`.
            if let cached = try await storedCopy(key: key, decode: decode) { return cached }
            throw .callBudgetSpent(refusal)
        } catch let error as ProviderError {
            throw error
        } catch is CancellationError {
            throw .unreachable(reason: "the request was cancelled")
        } catch {
            throw .unreachable(reason: "unexpected failure: \(type(of: error))")
        }

        let disposition: CacheDisposition
        switch result.outcome {
        case .hit:
            disposition = .hit
            counters.withLock { $0.cacheHits += 1 }
        case .miss:
            disposition = .miss
        case .coalesced:
            disposition = .miss
            counters.withLock { $0.coalescedWaits += 1 }
        case .stale:
            disposition = .stale
            counters.withLock { $0.staleServes += 1 }
        }
        Self.partFreshness?.record(freshUntil: result.freshUntil)
        if result.outcome == .miss, let value = decodedHere.value {
            return Fetched(value: value, cache: disposition)
        }
        return Fetched(value: try await decodeCached(result.value, decode: decode), cache: disposition)
    }

    /// An answer just received, parsed and decoded (off the loops when large); an answer that
    /// cannot be read counts as the call's outcome.
    private func decodedAnswer<Value>(
        _ body: [UInt8], decode: (JSONValue) throws(ProviderError) -> Value
    ) async throws(ProviderError) -> Value {
        try await BulkWork.perform(inputBytes: body.count) { () throws(ProviderError) -> Value in
            let json: JSONValue
            do throws(JSONParseError) {
                json = try JSONParser.parse(body)
            } catch {
                count(.malformedResponse)
                throw .malformedResponse(reason: "the answer is not JSON (\(error.reason) at byte \(error.offset))")
            }
            do throws(ProviderError) {
                return try decode(json)
            } catch {
                count(error.callOutcome)
                throw error
            }
        }
    }

    /// The stored answer for `key` without a call, fresh (`hit`) or within its stale window (`stale`).
    private func storedCopy<Value>(
        key: String, decode: (JSONValue) throws(ProviderError) -> Value
    ) async throws(ProviderError) -> Fetched<Value>? {
        guard let cached = await cache.staleValue(key: key) else { return nil }
        let value = try await decodeCached(cached.value, decode: decode)
        let disposition: CacheDisposition = cached.outcome == .hit ? .hit : .stale
        counters.withLock { if disposition == .hit { $0.cacheHits += 1 } else { $0.staleServes += 1 } }
        Self.partFreshness?.record(freshUntil: cached.freshUntil)
        return Fetched(value: value, cache: disposition)
    }

    private func decodeCached<Value>(
        _ bytes: [UInt8], decode: (JSONValue) throws(ProviderError) -> Value
    ) async throws(ProviderError) -> Value {
        try await BulkWork.perform(inputBytes: bytes.count) { () throws(ProviderError) -> Value in
            let json: JSONValue
            do throws(JSONParseError) {
                json = try JSONParser.parse(bytes)
            } catch {
                throw .malformedResponse(reason: "a cached answer is not JSON")
            }
            return try decode(json)
        }
    }

    /// Reads a listing that is too large to hold whole (Kaizen's unpaged list at an organisation's
    /// size) as a stream, never through the cache: the array at `location` is parsed as the body
    /// arrives, and each element is passed to `decode` as soon as it is complete and then let go;
    /// what `decode` returns is kept, nil skips the element. The answer may reach `maxAnswerBytes`,
    /// each element `maxElementBytes`. A truncated, malformed or oversize answer is an error, never
    /// a shorter list. Parsing runs off the event loops and off the HTTP client's thread.
    ///
    /// Request building, credential, Retry-After pauses, the request's allowance (charged once),
    /// call accounting and error mapping are those of every other read.
    func streamListing<Element: Sendable>(
        _ request: ProviderRequest,
        call: UpstreamCallContext,
        arrayAt location: JSONArrayLocation,
        maxAnswerBytes: Int,
        maxElementBytes: Int,
        decode: @escaping @Sendable (JSONValue) -> Element?
    ) async throws(ProviderError) -> StreamedListing<Element> {
        if let pausedUntil = endpoint.pausedUntil(credentialKey: call.credentialIdentity) {
            throw refusalWhilePaused(until: pausedUntil)
        }
        var outbound = upstreamRequest(request, url: url(for: request), body: encodedBody(of: request), call: call)
        outbound.maxResponseBodyBytes = maxAnswerBytes
        let options = callOptions(call)
        try await chargeAllowance(call)
        let reader = StreamedArrayReader(location: location, maxElementBytes: maxElementBytes, decode: decode)
        let response = try await send(purpose: .list, call: call) { () async throws(UpstreamError) in
            try await self.endpoint.stream(outbound, options: options) { chunk throws(UpstreamError) in
                try await BulkWork.perform(offLoop: true) { () throws(UpstreamError) in try reader.feed(chunk) }
            }
        }
        let elements: [Element]
        do throws(UpstreamError) {
            elements = try reader.finish()
        } catch {
            let mapped = mapError(error, purpose: .list)
            count(mapped.callOutcome)
            throw mapped
        }
        count(.success)
        return StreamedListing(
            elements: elements, elementsRead: reader.elementsRead, answerBytes: response.body.bytesHandedOut,
            peakBufferedBytes: response.body.peakBufferedBytes)
    }

    private func encodedBody(of request: ProviderRequest) -> [UInt8] {
        request.jsonBody.map { value in
            var writer = JSONWriter(capacity: 256)
            writer.write(value)
            return writer.bytes
        } ?? []
    }

    private func callOptions(_ call: UpstreamCallContext) -> UpstreamCallOptions {
        UpstreamCallOptions(
            credentialKey: call.credentialIdentity, isIdempotent: true, requestId: call.requestID, traceparent: call.traceparent,
            clientID: call.clientID, deadlineNanoseconds: call.deadlineNanoseconds
        )
    }

    /// A read refused, without a call, because the credential is paused (Retry-After) until `until`.
    private func refusalWhilePaused(until: UInt64) -> ProviderError {
        counters.withLock { $0.pausedRefusals += 1 }
        return .paused(retryAfterSeconds: endpoint.retryAfterSeconds(for: .paused(untilNanoseconds: until)) ?? 1)
    }

    /// Takes one call from the request's allowance just before it is made, unless the endpoint
    /// would refuse it on the spot (paused credential, open circuit): a call that never leaves costs nothing.
    private func chargeAllowance(_ call: UpstreamCallContext) async throws(ProviderError) {
        guard endpoint.refusalBeforeCalling(credentialKey: call.credentialIdentity) == nil else { return }
        try await call.allowance?.take()
    }

    /// One call through the endpoint (`perform`), with accounting and error mapping.
    private func send<Response>(
        purpose: ReadPurpose, call: UpstreamCallContext, _ perform: () async throws(UpstreamError) -> Response
    ) async throws(ProviderError) -> Response {
        do throws(UpstreamError) {
            let response = try await perform()
            call.upstreamCalls?.increment()
            return response
        } catch {
            let mapped = mapError(error, purpose: purpose)
            switch error {
            case .paused:
                counters.withLock { $0.pausedRefusals += 1 }
            case .circuitOpen:
                counters.withLock { $0.circuitOpenRefusals += 1 }
            case .overloaded, .minuteBudgetSpent, .invalidRequest, .shutdown, .clientUnavailable:
                // Refused locally: nothing reached the upstream.
                count(.unreachable)
            default:
                call.upstreamCalls?.increment()
                count(mapped.callOutcome)
            }
            throw mapped
        }
    }

    private func count(_ outcome: ProviderCallOutcome) {
        counters.withLock { $0.upstreamCalls[outcome, default: 0] += 1 }
    }

    // MARK: - Requests

    func url(for request: ProviderRequest) -> String {
        var url = baseURL + request.path
        if !request.query.isEmpty {
            // Sorted by name (stable for repeated names) so equal requests share one cache entry.
            let items = request.query.enumerated()
                .sorted { $0.element.name != $1.element.name ? $0.element.name < $1.element.name : $0.offset < $1.offset }
                .map { percentEncode($0.element.name) + "=" + percentEncode($0.element.value) }
            url += "?" + items.joined(separator: "&")
        }
        return url
    }

    private func upstreamRequest(_ request: ProviderRequest, url: String, body: [UInt8], call: UpstreamCallContext) -> UpstreamRequest {
        var headers = HTTPHeaders()
        headers.add(name: "Accept", value: "application/json")
        switch credentialPlacement {
        case .bearer: headers.add(name: "Authorization", value: "Bearer " + call.credential)
        case .header(let name): headers.add(name: name, value: call.credential)
        }
        if let organizationID { headers.add(name: "X-Org-ID", value: organizationID) }
        headers.add(name: "X-Request-Id", value: call.requestID)
        headers.add(name: "traceparent", value: call.traceparent)
        if request.jsonBody != nil { headers.add(name: "Content-Type", value: "application/json") }
        return UpstreamRequest(method: request.method, url: url, headers: headers, body: body)
    }

    /// Provider, request and credential identity; the body is hashed so long filters make short keys.
    private func cacheKey(method: HTTPMethod, url: String, body: [UInt8], credentialIdentity: String) -> String {
        var key = providerName + " " + credentialIdentity + " " + method.rawValue + " " + url
        if !body.isEmpty { key += " body-sha256=" + Hex.encode(SHA256.hash(body)) }
        return key
    }

    // MARK: - Errors

    /// Never carries upstream bodies or headers into the error: they may echo the credential.
    func mapError(_ error: UpstreamError, purpose: ReadPurpose) -> ProviderError {
        switch error {
        case .timeout:
            return .timeout
        case .connection(let reason):
            return .unreachable(reason: reason)
        case .httpStatus(let status, _, let retryAfter):
            if (status == 429 || status == 503), let retryAfter {
                return .paused(retryAfterSeconds: max(1, retryAfter))
            }
            if status == 401 || status == 403 { return .credentialRejected(status: status) }
            if status == 404 && purpose == .detail { return .notFound }
            return .upstreamStatus(status: status, detail: HTTPStatus.standardReasonPhrase(for: status))
        case .malformedResponse(let reason):
            return .malformedResponse(reason: reason)
        case .bodyTooLarge(let limit):
            return .malformedResponse(reason: "the answer is larger than \(limit) bytes")
        case .circuitOpen, .paused, .minuteBudgetSpent:
            let seconds = endpoint.retryAfterSeconds(for: error) ?? 1
            if case .paused = error { return .paused(retryAfterSeconds: seconds) }
            if case .minuteBudgetSpent = error { return .minuteBudgetSpent(retryAfterSeconds: seconds) }
            return .circuitOpen(retryAfterSeconds: seconds)
        case .overloaded:
            return .unreachable(reason: "too many calls are already waiting for this provider")
        case .cancelled:
            return .unreachable(reason: "the call was cancelled")
        case .invalidRequest(let reason):
            return .unreachable(reason: "the request could not be sent: \(reason)")
        case .shutdown:
            return .unreachable(reason: "the gateway's HTTP client is shutting down")
        case .clientUnavailable(let reason):
            return .unreachable(reason: "the gateway's HTTP client is unavailable: \(reason)")
        }
    }
}

extension ProviderError {
    /// A refusal by the request's allowance of upstream calls, before any call.
    public var isCallLimitRefusal: Bool {
        switch self {
        case .callBudgetSpent, .callCeilingReached: true
        default: false
        }
    }

    var callOutcome: ProviderCallOutcome {
        switch self {
        case .timeout: .timeout
        case .unreachable: .unreachable
        case .upstreamStatus: .httpError
        case .malformedResponse: .malformedResponse
        case .paused: .rateLimited
        case .circuitOpen: .unreachable
        case .minuteBudgetSpent: .rateLimited
        case .notFound: .notFound
        case .credentialRejected: .credentialRejected
        // Refused before any call, so never counted as a call's outcome.
        case .callBudgetSpent, .callCeilingReached: .rateLimited
        }
    }
}

/// Hands a value decoded inside the cache's load back to the caller that started it, so a miss
/// is not parsed twice.
private final class DecodedBox<Value: Sendable>: Sendable {
    private let slot = Mutex<Value?>(nil)

    func store(_ value: Value) { slot.withLock { $0 = value } }
    var value: Value? { slot.withLock { $0 } }
}

/// A streamed listing's outcome (`ProviderFetcher.streamListing`).
struct StreamedListing<Element: Sendable>: Sendable {
    /// What `decode` kept, in answer order.
    var elements: [Element]
    /// Array elements read, the skipped ones included.
    var elementsRead: Int
    /// Body bytes received.
    var answerBytes: Int
    /// The most body bytes that waited at once between the HTTP client and the parser.
    var peakBufferedBytes: Int
}

/// Feeds a streamed answer's chunks, one after the other, into a `JSONArrayStream` and keeps what
/// `decode` makes of each element; only the stream's current element is held, never the answer.
private final class StreamedArrayReader<Element: Sendable>: Sendable {
    private struct State {
        var stream: JSONArrayStream
        var elements: [Element] = []
    }

    private let state: Mutex<State>
    private let decode: @Sendable (JSONValue) -> Element?

    init(location: JSONArrayLocation, maxElementBytes: Int, decode: @escaping @Sendable (JSONValue) -> Element?) {
        state = Mutex(State(stream: JSONArrayStream(arrayAt: location, maxElementBytes: maxElementBytes)))
        self.decode = decode
    }

    var elementsRead: Int { state.withLock { $0.stream.elementCount } }

    func feed(_ chunk: [UInt8]) throws(UpstreamError) {
        try state.withLock { state throws(UpstreamError) in
            let values: [JSONValue]
            do throws(JSONStreamError) {
                values = try state.stream.feed(chunk)
            } catch {
                throw Self.unreadable(error)
            }
            for value in values {
                if let element = decode(value) { state.elements.append(element) }
            }
        }
    }

    /// The elements kept, once the answer is confirmed complete.
    func finish() throws(UpstreamError) -> [Element] {
        try state.withLock { state throws(UpstreamError) -> [Element] in
            do throws(JSONStreamError) {
                try state.stream.finish()
            } catch {
                throw Self.unreadable(error)
            }
            defer { state.elements = [] }
            return state.elements
        }
    }

    private static func unreadable(_ error: JSONStreamError) -> UpstreamError {
        .malformedResponse(reason: "the answer cannot be read (\(error.reason) at byte \(error.offset))")
    }
}
