public import GatewayEventLoop
import GatewayHTTP
public import Logging
public import ServiceLifecycle
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public enum HTTPServerError: Error, Sendable, CustomStringConvertible {
    case alreadyStarted
    /// `shutdown()` ran while `start()` was setting up; nothing is left listening.
    case shutDownWhileStarting
    case cannotListen(SystemError)

    public var description: String {
        switch self {
        case .alreadyStarted: "the server was already started"
        case .shutDownWhileStarting: "the server was shut down while it started"
        case .cannotListen(let error): "cannot listen: \(error)"
        }
    }
}

/// Counters the server keeps for metrics and tests.
public final class ServerCounters: Sendable {
    let open = Atomic<Int>(0)
    let accepted = Atomic<Int>(0)
    let refused = Atomic<Int>(0)
    let malformed = Atomic<Int>(0)
    let timeouts = Atomic<Int>(0)
    let acceptErrors = Atomic<Int>(0)
    let answeredWithoutSuspending = Atomic<Int>(0)
    let answeredAfterSuspending = Atomic<Int>(0)

    public var openConnections: Int { open.load(ordering: .relaxed) }
    public var acceptedConnections: Int { accepted.load(ordering: .relaxed) }
    /// Connections turned away because `maxConnections` were open.
    public var refusedConnections: Int { refused.load(ordering: .relaxed) }
    public var malformedRequests: Int { malformed.load(ordering: .relaxed) }
    public var timedOutConnections: Int { timeouts.load(ordering: .relaxed) }
    /// Accept failures such as EMFILE, after which accepting pauses briefly.
    public var acceptFailures: Int { acceptErrors.load(ordering: .relaxed) }
    /// Requests whose response was ready before their task's creation returned: answered on the
    /// loop thread, with no suspension and nothing enqueued (cache hits, rejections).
    public var responsesWithoutSuspending: Int { answeredWithoutSuspending.load(ordering: .relaxed) }
    /// Requests whose task suspended before answering (an upstream call, a shared store).
    public var responsesAfterSuspending: Int { answeredAfterSuspending.load(ordering: .relaxed) }

    func recordMalformed() { malformed.add(1, ordering: .relaxed) }
    func recordTimeout() { timeouts.add(1, ordering: .relaxed) }
}

/// The gateway's HTTP/1.1 server: one event loop per worker, each with its own `SO_REUSEPORT`
/// listener, connections pinned to the loop that accepted them.
///
/// Use it directly (`start()` / `shutdown()`) or as a swift-service-lifecycle `Service`, whose
/// graceful shutdown (SIGTERM/SIGINT) drains it.
public final class HTTPServer: Service, Sendable {
    public let configuration: HTTPServerConfiguration
    public let counters = ServerCounters()
    let responder: any HTTPResponder
    let logger: Logger

    private struct State: ~Copyable {
        var group: EventLoopGroup?
        var loops: [LoopBound<ServerLoop>] = []
        var port: Int = 0
        var stopped = false
    }
    private let state = Mutex(State())
    private let draining = Atomic<Bool>(false)
    private let nextConnectionID = Atomic<UInt64>(1)
    private let stoppedWaiters = Mutex<[CheckedContinuation<Void, Never>]?>([])
    /// Runs in `start()` between building the loops and publishing them: lets a test shut the
    /// server down exactly there.
    private let beforePublishing: @Sendable () -> Void

    public convenience init(
        configuration: HTTPServerConfiguration,
        responder: any HTTPResponder,
        logger: Logger = Logger(label: "executions-gateway.server")
    ) {
        self.init(configuration: configuration, responder: responder, logger: logger, beforePublishing: {})
    }

    init(
        configuration: HTTPServerConfiguration,
        responder: any HTTPResponder,
        logger: Logger,
        beforePublishing: @escaping @Sendable () -> Void
    ) {
        self.configuration = configuration
        self.responder = responder
        self.logger = logger
        self.beforePublishing = beforePublishing
    }

    /// The bound port (useful with `port: 0`). Zero before `start()`.
    public var localPort: Int { state.withLock { $0.port } }

    /// True from the start of shutdown: readiness probes should fail and responses close connections.
    public var isDraining: Bool { draining.load(ordering: .relaxed) }

    /// Binds, listens and starts the loops. Connections that arrive before a loop has registered its
    /// listener wait in the kernel's backlog, so the server is usable as soon as this returns.
    public func start() throws(HTTPServerError) {
        let alreadyStarted = state.withLock { $0.group != nil || $0.stopped }
        if alreadyStarted { throw .alreadyStarted }
        let group: EventLoopGroup
        // Each loop gets its own listener; one that throws on the way drops (and so closes) those
        // bound before it.
        var serverLoops: [ServerLoop] = []
        let listeningAddress: SocketAddress
        do throws(SystemError) {
            group = try EventLoopGroup(count: configuration.workers, namePrefix: "http")
            do throws(SystemError) {
                let reusePort = group.loops.count > 1
                let address = try SocketAddress(host: configuration.host, port: configuration.port)
                if reusePort && configuration.port != 0 { try ListeningSocket.probeUnused(address) }
                let first = try ListeningSocket.bind(
                    to: address,
                    backlog: configuration.backlog,
                    reusePort: reusePort
                )
                listeningAddress = first.address
                serverLoops.append(ServerLoop(server: self, loop: group.loops[0], listener: first))
                for loop in group.loops.dropFirst() {
                    let listener = try ListeningSocket.bind(
                        to: try SocketAddress(host: configuration.host, port: listeningAddress.port),
                        backlog: configuration.backlog,
                        reusePort: true
                    )
                    serverLoops.append(ServerLoop(server: self, loop: loop, listener: listener))
                }
            } catch {
                serverLoops.removeAll()
                for loop in group.loops { loop.stop() }
                throw error
            }
        } catch {
            throw .cannotListen(error)
        }
        var bound = serverLoops.map { LoopBound($0, loop: $0.loop) }
        beforePublishing()
        // A shutdown() since the check above found no group to stop and returned: serving now would
        // outlive it.
        let published = state.withLock { state -> Bool in
            if state.stopped { return false }
            state.group = group
            state.loops = bound
            state.port = listeningAddress.port
            return true
        }
        guard published else {
            // No loop has seen the listeners yet: dropping them closes them here and now.
            bound.removeAll()
            serverLoops.removeAll()
            for loop in group.loops { loop.stop() }
            throw .shutDownWhileStarting
        }
        // Queued only now, so a shutdown() may drain a loop before it starts accepting:
        // `startAccepting` then finds the server draining and the listener closed.
        for handle in bound { handle.loop.execute { handle.value.startAccepting() } }
        logger.info("listening", metadata: [
            "address": "\(listeningAddress)", "workers": "\(group.loops.count)",
        ])
    }

    /// Graceful shutdown: stop accepting, close idle connections, let in-flight requests finish (their
    /// responses carry `Connection: close`) within the grace period, then close whatever is left.
    public func shutdown() async {
        let (group, loops, first) = state.withLock { state -> (EventLoopGroup?, [LoopBound<ServerLoop>], Bool) in
            if state.stopped { return (nil, [], false) }
            state.stopped = true
            return (state.group, state.loops, true)
        }
        guard let group else {
            // Never started (or a start() still setting up, which now gives up): nothing to drain,
            // and no other shutdown() to wait for.
            if first {
                releaseStoppedWaiters()
            } else {
                await waitUntilStopped()
            }
            return
        }
        draining.store(true, ordering: .relaxed)
        logger.info("draining", metadata: ["open": "\(counters.openConnections)"])
        for handle in loops { handle.loop.execute { handle.value.beginDrain() } }
        let deadline = monotonicNanoseconds() &+ configuration.shutdownGraceNanoseconds
        while counters.openConnections > 0 && monotonicNanoseconds() < deadline {
            try? await Task.sleep(nanoseconds: 5_000_000)
        }
        if counters.openConnections > 0 {
            logger.warning("grace period over; closing connections", metadata: ["open": "\(counters.openConnections)"])
            for handle in loops { handle.loop.execute { handle.value.closeAll() } }
            while counters.openConnections > 0 { try? await Task.sleep(nanoseconds: 1_000_000) }
        }
        await group.shutdown()
        logger.info("stopped")
        releaseStoppedWaiters()
    }

    /// Releases `waitUntilStopped()`, now and for good.
    private func releaseStoppedWaiters() {
        let waiters = stoppedWaiters.withLock { waiters -> [CheckedContinuation<Void, Never>] in
            defer { waiters = nil }
            return waiters ?? []
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Suspends until `shutdown()` has completed.
    public func waitUntilStopped() async {
        await withCheckedContinuation { continuation in
            let done = stoppedWaiters.withLock { waiters -> Bool in
                guard waiters != nil else { return true }
                waiters?.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// `Service` entry point: serves until the service group's graceful shutdown, or until the
    /// task is cancelled (a group cancels its services when one of them fails), then drains.
    public func run() async throws {
        if state.withLock({ $0.group == nil && !$0.stopped }) {
            try start()
        }
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await waitUntilStopped()
            } onGracefulShutdown: {
                Task { await self.shutdown() }
            }
        } onCancel: {
            Task { await self.shutdown() }
        }
    }

    func makeConnectionID() -> UInt64 { nextConnectionID.add(1, ordering: .relaxed).oldValue }
}

/// The part of the server that lives on one loop: its listener and its connections.
final class ServerLoop: IOEventHandler {
    unowned let server: HTTPServer
    let loop: EventLoop
    /// The listener's number for accept and epoll calls; `listener` owns it.
    private let listenerFD: Int32
    /// Taken and closed when the server starts draining.
    private var listener: FileDescriptor?
    private var listening = false
    private var connections: [UInt64: Connection] = [:]
    /// Shared by every connection on this loop: reads land here and are parsed in place, so idle
    /// connections hold no read buffer. Raw memory rather than an array: it is handed to `read` and
    /// to the parser on every request, with no copy-on-write or exclusivity bookkeeping in the way.
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536, alignment: 16)
    var encoder = ResponseEncoder()

    private static let refusal = Array(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\nContent-Length: 106\r\nConnection: close\r\nRetry-After: 1\r\n\r\n{\"type\":\"about:blank\",\"title\":\"Service Unavailable\",\"status\":503,\"detail\":\"Too many open connections.\"}".utf8
    )

    init(server: HTTPServer, loop: EventLoop, listener: consuming ListeningSocket) {
        self.server = server
        self.loop = loop
        self.listenerFD = listener.descriptor.rawValue
        self.listener = .some(listener.takeDescriptor())
    }

    deinit {
        readBuffer.deallocate()
    }

    func startAccepting() {
        // Drained already (a shutdown() right after start()): the listener is closed.
        guard !server.isDraining else { return }
        do {
            try loop.register(listenerFD, interest: .readable, handler: self)
            listening = true
        } catch {
            server.logger.error("cannot register listener", metadata: ["error": "\(error)"])
        }
    }

    func handle(_ events: IOEvents) {
        acceptPending()
    }

    private func acceptPending() {
        // Bounded per wake-up so an accept storm cannot starve existing connections.
        for _ in 0..<128 {
            guard listening else { return }
            let pending: AcceptedSocket?
            do {
                pending = try SocketIO.accept(listenerFD)
            } catch {
                handleAcceptFailure(error)
                return
            }
            guard let accepted = pending else { return }
            let fd = accepted.descriptor.rawValue
            server.counters.accepted.add(1, ordering: .relaxed)
            let open = server.counters.open.add(1, ordering: .relaxed).newValue
            if open > server.configuration.maxConnections {
                server.counters.open.subtract(1, ordering: .relaxed)
                server.counters.refused.add(1, ordering: .relaxed)
                Self.refusal.withUnsafeBytes { _ = try? SocketIO.write(fd, $0) }
                SocketIO.shutdownWrite(fd)
                accepted.takeDescriptor().close()
                continue
            }
            SocketOptions.disableNagle(fd)
            let remoteAddress = accepted.peer.host
            let connection = Connection(
                id: server.makeConnectionID(),
                socket: accepted.takeDescriptor(),
                remoteAddress: remoteAddress,
                loop: loop,
                owner: self,
                configuration: server.configuration,
                responder: server.responder,
                logger: server.logger
            )
            do {
                try loop.register(fd, interest: .readable, handler: connection)
                connections[connection.id] = connection
            } catch {
                server.counters.open.subtract(1, ordering: .relaxed)
                connection.close()
            }
        }
    }

    /// Out of descriptors (EMFILE/ENFILE) or memory: the pending connection stays in the backlog and
    /// the listener would report readable forever, so stop watching it for a moment instead of spinning.
    private func handleAcceptFailure(_ error: SystemError) {
        server.counters.acceptErrors.add(1, ordering: .relaxed)
        switch error.errno {
        case ECONNABORTED, EPROTO, EPERM:
            return
        default:
            server.logger.warning("accept failed; pausing accepts for 100 ms", metadata: ["error": "\(error)"])
            loop.unregister(listenerFD)
            listening = false
            loop.scheduleTimer(at: monotonicNanoseconds() + 100_000_000) { [weak self] in
                self?.startAccepting()
            }
        }
    }

    func connectionClosed(_ connection: Connection) {
        if connections.removeValue(forKey: connection.id) != nil {
            server.counters.open.subtract(1, ordering: .relaxed)
        }
    }

    func beginDrain() {
        if listening { loop.unregister(listenerFD) }
        listening = false
        if let listener = listener.take() { listener.close() }
        for connection in Array(connections.values) { connection.drain() }
    }

    func closeAll() {
        for connection in Array(connections.values) { connection.close() }
    }
}
