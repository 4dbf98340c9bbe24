import GatewayEventLoop
public import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public struct CurlHTTPClientConfiguration: Sendable {
    /// Idle connections libcurl keeps for reuse (CURLMOPT_MAXCONNECTS).
    public var maxCachedConnections: Int
    /// Open connections per host; 0 = unlimited. Excess transfers wait inside libcurl.
    public var maxConnectionsPerHost: Int
    /// Open connections in total; 0 = unlimited.
    public var maxTotalConnections: Int
    /// An idle connection older than this is not reused (CURLOPT_MAXAGE_CONN, whole seconds).
    public var maxIdleConnectionAge: Duration {
        didSet { maxIdleConnectionAgeSeconds = Self.wholeSeconds(maxIdleConnectionAge) }
    }
    /// For a request that sets no timeout of its own.
    public var defaultTimeout: Duration { didSet { defaultTimeoutNanoseconds = defaultTimeout.saturatingNanoseconds } }
    public var defaultConnectTimeout: Duration {
        didSet { defaultConnectTimeoutNanoseconds = defaultConnectTimeout.saturatingNanoseconds }
    }
    public var maxResponseBodyBytes: Int
    /// More response header fields than this is a malformed response.
    public var maxResponseHeaderFields: Int
    public var userAgent: String
    /// PEM bundle to verify servers against instead of the system's; verification itself is always on.
    public var caBundlePath: String?

    // The durations above converted once, as the transfers hand them to libcurl (never trapping).
    private(set) var maxIdleConnectionAgeSeconds: Int
    private(set) var defaultTimeoutNanoseconds: UInt64
    private(set) var defaultConnectTimeoutNanoseconds: UInt64

    public init(
        maxCachedConnections: Int = 64,
        maxConnectionsPerHost: Int = 0,
        maxTotalConnections: Int = 0,
        maxIdleConnectionAge: Duration = .seconds(60),
        defaultTimeout: Duration = .seconds(30),
        defaultConnectTimeout: Duration = .seconds(5),
        maxResponseBodyBytes: Int = 16 * 1024 * 1024,
        maxResponseHeaderFields: Int = 256,
        userAgent: String = "ExecutionsGateway",
        caBundlePath: String? = nil
    ) {
        self.maxCachedConnections = maxCachedConnections
        self.maxConnectionsPerHost = maxConnectionsPerHost
        self.maxTotalConnections = maxTotalConnections
        self.maxIdleConnectionAge = maxIdleConnectionAge
        self.maxIdleConnectionAgeSeconds = Self.wholeSeconds(maxIdleConnectionAge)
        self.defaultTimeout = defaultTimeout
        self.defaultTimeoutNanoseconds = defaultTimeout.saturatingNanoseconds
        self.defaultConnectTimeout = defaultConnectTimeout
        self.defaultConnectTimeoutNanoseconds = defaultConnectTimeout.saturatingNanoseconds
        self.maxResponseBodyBytes = maxResponseBodyBytes
        self.maxResponseHeaderFields = maxResponseHeaderFields
        self.userAgent = userAgent
        self.caBundlePath = caBundlePath
    }

    /// Whole seconds, at least 0 and at most `Int.max`.
    private static func wholeSeconds(_ duration: Duration) -> Int {
        Int(clamping: max(0, duration.components.seconds))
    }
}

public struct CurlClientStatistics: Sendable, Equatable {
    /// New connections libcurl opened (CURLINFO_NUM_CONNECTS summed over finished transfers).
    public var connectionsOpened = 0
    public var transfersStarted = 0
    /// Transfers that ended with an HTTP response, whatever its status.
    public var responsesReceived = 0
    public var transfersFailed = 0
    public var transfersCancelled = 0
    public var inFlight = 0

    public init() {}
}

/// An HTTP client on libcurl's multi interface: one dedicated thread drives every transfer, so
/// any number of requests run at once without a thread each. Connections are kept alive and
/// reused per host, HTTP/2 is used where the server offers it over TLS, and TLS is always verified.
public final class CurlHTTPClient: UpstreamTransport, Sendable {
    public let configuration: CurlHTTPClientConfiguration
    private let loop: CurlMultiLoop
    private let nextTransferID = Atomic<UInt64>(1)
    /// The loop thread until `shutdown` joins it.
    private let thread: Mutex<pthread_t?>

    public init(
        configuration: CurlHTTPClientConfiguration = CurlHTTPClientConfiguration(),
        logger: Logger = Logger(label: "gateway.upstream.curl")
    ) throws(UpstreamError) {
        self.configuration = configuration
        let loop = try CurlMultiLoop(configuration: configuration, logger: logger)
        self.loop = loop

        var thread = pthread_t()
        let context = Unmanaged.passRetained(loop).toOpaque()
        let result = pthread_create(
            &thread, nil,
            { context in
                guard let context else { return nil }
                let loop = Unmanaged<CurlMultiLoop>.fromOpaque(context).takeRetainedValue()
                loop.run()
                return nil
            }, context)
        guard result == 0 else {
            Unmanaged<CurlMultiLoop>.fromOpaque(context).release()
            loop.requestStop()
            throw .clientUnavailable(reason: "could not start the libcurl thread (error \(result))")
        }
        self.thread = Mutex(thread)
    }

    deinit { shutdown() }

    public func execute(_ request: UpstreamRequest) async throws(UpstreamError) -> UpstreamResponse {
        try await perform(request, streamedBody: nil)
    }

    /// A 2xx body goes to `streamedBody` chunk by chunk; while its buffer is full the transfer is
    /// paused (libcurl stops reading the socket), and it goes on when the consumer has made room.
    /// The streamed body's limit is `request.maxResponseBodyBytes`; any other status's body is
    /// read whole, within the client's `maxResponseBodyBytes`.
    public func execute(_ request: UpstreamRequest, streamingSuccessBodyInto streamedBody: UpstreamBodyStream)
        async throws(UpstreamError) -> UpstreamResponse
    {
        try await perform(request, streamedBody: streamedBody)
    }

    private func perform(_ request: UpstreamRequest, streamedBody: UpstreamBodyStream?) async throws(UpstreamError)
        -> UpstreamResponse
    {
        let id = nextTransferID.wrappingAdd(1, ordering: .relaxed).oldValue
        let transfer = try CurlTransfer(id: id, request: request, configuration: configuration, streamedBody: streamedBody)
        let loop = self.loop
        streamedBody?.whenRoomAvailable { [weak transfer] in
            if let transfer { loop.resume(transfer) }
        }
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                loop.submit(transfer, continuation: continuation)
            }
        } onCancel: {
            loop.cancel(transfer)
        }
        return try result.get()
    }

    /// Stops the loop thread and waits for it. Requests still running fail with `.shutdown`;
    /// later calls fail at once with `.shutdown`. Safe to call more than once.
    public func shutdown() {
        loop.requestStop()
        let thread = self.thread.withLock { thread in
            defer { thread = nil }
            return thread
        }
        if let thread { pthread_join(thread, nil) }
    }

    public func clientStatistics() -> CurlClientStatistics {
        loop.shared.withLock { $0.statistics }
    }
}
