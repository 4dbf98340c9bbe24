public import GatewayHTTP
import GatewayEventLoop

/// Everything the server needs to know; the app fills it from `server.*` in the config file, whose
/// defaults are these.
public struct HTTPServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// Event loops (threads); 0 means one per core.
    public var workers: Int
    /// Connections beyond this are answered `503` and closed at once.
    public var maxConnections: Int
    public var backlog: Int32
    public var parserLimits: HTTPParserLimits
    /// How long a client may take to send a whole request (head and body) once it has started,
    /// and to send the first request on a new connection (slowloris protection).
    public var headerTimeout: Duration { didSet { headerTimeoutNanoseconds = headerTimeout.saturatingNanoseconds } }
    /// How long a keep-alive connection may sit idle between requests. The default is longer than
    /// nginx's upstream `keepalive_timeout` (60 s): the proxy closes an idle connection first, so it
    /// never reuses one the server is closing at that moment (a 502).
    public var idleTimeout: Duration { didSet { idleTimeoutNanoseconds = idleTimeout.saturatingNanoseconds } }
    /// How long writing one response may take once the socket makes it wait (a slow reader), in
    /// total, however much progress it makes meanwhile.
    public var writeTimeout: Duration { didSet { writeTimeoutNanoseconds = writeTimeout.saturatingNanoseconds } }
    /// How long shutdown waits for in-flight requests before closing what is left.
    public var shutdownGrace: Duration { didSet { shutdownGraceNanoseconds = shutdownGrace.saturatingNanoseconds } }
    /// How long a closing connection keeps draining the peer's unread input, so the kernel sends
    /// FIN rather than RST and the peer can read the last response (nginx's lingering close).
    public var linger: Duration { didSet { lingerNanoseconds = linger.saturatingNanoseconds } }
    /// Apply the `TransportFault` a response asks for (the provider simulator's servers and server
    /// tests); false everywhere else, the gateway's server included.
    public var injectsTransportFaults: Bool

    // The durations above converted once, for the per-connection timers (never trapping: a
    // duration past `UInt64` nanoseconds saturates).
    private(set) var headerTimeoutNanoseconds: UInt64
    private(set) var idleTimeoutNanoseconds: UInt64
    private(set) var writeTimeoutNanoseconds: UInt64
    private(set) var shutdownGraceNanoseconds: UInt64
    private(set) var lingerNanoseconds: UInt64

    public init(
        host: String = "127.0.0.1",
        port: Int = 8080,
        workers: Int = 0,
        maxConnections: Int = 10_000,
        backlog: Int32 = 1024,
        parserLimits: HTTPParserLimits = HTTPParserLimits(),
        headerTimeout: Duration = .seconds(10),
        idleTimeout: Duration = .seconds(75),
        writeTimeout: Duration = .seconds(30),
        shutdownGrace: Duration = .seconds(10),
        linger: Duration = .seconds(2),
        injectsTransportFaults: Bool = false
    ) {
        self.host = host
        self.port = port
        self.workers = workers
        self.maxConnections = maxConnections
        self.backlog = backlog
        self.parserLimits = parserLimits
        self.headerTimeout = headerTimeout
        self.headerTimeoutNanoseconds = headerTimeout.saturatingNanoseconds
        self.idleTimeout = idleTimeout
        self.idleTimeoutNanoseconds = idleTimeout.saturatingNanoseconds
        self.writeTimeout = writeTimeout
        self.writeTimeoutNanoseconds = writeTimeout.saturatingNanoseconds
        self.shutdownGrace = shutdownGrace
        self.shutdownGraceNanoseconds = shutdownGrace.saturatingNanoseconds
        self.linger = linger
        self.lingerNanoseconds = linger.saturatingNanoseconds
        self.injectsTransportFaults = injectsTransportFaults
    }
}
