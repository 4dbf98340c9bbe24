public import GatewayHTTP

/// Everything the server needs to know; the app fills it from `server.*` in the config file.
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
    public var headerTimeoutNanoseconds: UInt64
    /// How long a keep-alive connection may sit idle between requests. The default is longer than
    /// nginx's upstream `keepalive_timeout` (60 s): the proxy closes an idle connection first, so it
    /// never reuses one the server is closing at that moment (a 502).
    public var idleTimeoutNanoseconds: UInt64
    /// How long writing one response may take once the socket makes it wait (a slow reader), in
    /// total, however much progress it makes meanwhile.
    public var writeTimeoutNanoseconds: UInt64
    /// How long shutdown waits for in-flight requests before closing what is left.
    public var shutdownGraceNanoseconds: UInt64
    /// How long a closing connection keeps draining the peer's unread input, so the kernel sends
    /// FIN rather than RST and the peer can read the last response (nginx's lingering close).
    public var lingerNanoseconds: UInt64

    public init(
        host: String = "127.0.0.1",
        port: Int = 8080,
        workers: Int = 0,
        maxConnections: Int = 10_000,
        backlog: Int32 = 1024,
        parserLimits: HTTPParserLimits = HTTPParserLimits(),
        headerTimeoutNanoseconds: UInt64 = 10_000_000_000,
        idleTimeoutNanoseconds: UInt64 = 75_000_000_000,
        writeTimeoutNanoseconds: UInt64 = 30_000_000_000,
        shutdownGraceNanoseconds: UInt64 = 10_000_000_000,
        lingerNanoseconds: UInt64 = 2_000_000_000
    ) {
        self.host = host
        self.port = port
        self.workers = workers
        self.maxConnections = maxConnections
        self.backlog = backlog
        self.parserLimits = parserLimits
        self.headerTimeoutNanoseconds = headerTimeoutNanoseconds
        self.idleTimeoutNanoseconds = idleTimeoutNanoseconds
        self.writeTimeoutNanoseconds = writeTimeoutNanoseconds
        self.shutdownGraceNanoseconds = shutdownGraceNanoseconds
        self.lingerNanoseconds = lingerNanoseconds
    }
}
