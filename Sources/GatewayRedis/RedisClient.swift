public import GatewayEventLoop
import Synchronization

/// Whether a client (or an invalidation listener) has a usable connection to Redis.
public enum RedisMode: String, Sendable, Equatable {
    case connected
    case disconnected
}

/// A Redis client on one connection, driven by one of the gateway's event loops (no thread or
/// event loop of its own): hiredis writes and parses, the loop's epoll says when, and the loop's
/// timers give every command its deadline.
///
/// - Commands from any task are pipelined on the connection; replies come back in order and
///   hiredis hands each to the callback of the command it answers.
/// - Deadline: a command without a reply by its deadline fails with `RedisError.timeout`. Its reply
///   may still come (hiredis keeps replies in order, so it is matched to the command and dropped),
///   and the command may have run. A caller that must know the outcome (a rate-limit decision, a
///   lock) sends with `waitPastDeadline` and keeps waiting for that reply instead: deciding without
///   it could count a request twice or admit it twice.
/// - Stall: a late reply is normal on a busy machine, but a connection that has not answered a
///   command `stallTimeout` after its deadline is stuck (Redis blocked, network gone). It is dropped
///   and made again; every command still in flight on it fails with `connectionLost` (they may or
///   may not have run). Dropping at the first late reply instead would turn every burst of latency
///   into a reconnect, and fail every decision in flight with it.
/// - Reconnects by itself, with `RedisBackoff`. While it has no connection, commands wait for the
///   next attempt (within their own deadline); after `breakerThreshold` connection failures in a
///   row (failed connects, lost or stalled connections) the breaker opens and they are refused at
///   once (`unavailable`) until Redis answers again.
/// - `mode` and `onModeChange` report connected / disconnected.
///
/// Call `shutdown()` when done: until then the client keeps its connection (and reconnects).
public final class RedisClient: @unchecked Sendable {
    // @unchecked: `published` is behind its Mutex and `nextID` is atomic; every other stored
    // property is touched only on `loop`'s thread.

    public let configuration: RedisClientConfiguration
    public let loop: EventLoop

    private let random: @Sendable (UInt64) -> UInt64
    private let setupSteps: [SetupStep]
    private let nextID = Atomic<UInt64>(1)
    /// Runs in `send` after its cancellation handler is installed and before the command is handed
    /// to the loop: lets a test cancel the caller exactly there.
    private let beforeSubmitting: @Sendable () -> Void

    private struct Published {
        var mode: RedisMode = .disconnected
        var lastFailure: RedisError?
        var breakerOpen = false
        var observers: [@Sendable (RedisMode, RedisError?) -> Void] = []
    }
    private let published = Mutex(Published())

    // MARK: Loop-thread state

    private enum State {
        case idle
        case connecting(RedisConnection, deadline: TimerID)
        case connected(RedisConnection)
        case waiting(TimerID)
        case stopped
    }

    private struct PendingCommand {
        /// Set while the command waits for a connection; nil once sent.
        var queuedArguments: [[UInt8]]?
        /// nil once the caller has been answered: a command past its deadline stays here, without a
        /// caller, until its late reply comes (or its connection is dropped as stalled).
        var complete: ((Result<RedisReply, RedisError>) -> Void)?
        /// The caller keeps waiting past the deadline for the reply (`send(waitPastDeadline:)`).
        var waitsPastDeadline = false
        /// The deadline's timer, then (once it passed) the stall check's.
        var deadline: TimerID?
        var connection: ObjectIdentifier?
        /// Sent by the client itself while setting a connection up (no effect on the breaker).
        var isSetup = false
        /// A subscription: after its confirmation, every message on its channel goes here.
        var onMessage: ((RedisReply) -> Void)?
        var confirmed = false
    }

    private var state: State = .idle
    private var pending: [UInt64: PendingCommand] = [:]
    private var queued: [UInt64] = []
    private var consecutiveFailures = 0
    private var latestFailure: RedisError = .connectionFailed(reason: "not connected yet")

    /// A command a new connection runs before it serves anyone (after `AUTH` and `SELECT`).
    struct SetupStep: Sendable {
        /// The command, built from the previous step's reply (nil for the first step).
        let command: @Sendable (_ previous: RedisReply?) -> [[UInt8]]
        /// nil when the reply lets set-up go on; otherwise why the connection is unusable.
        let check: @Sendable (RedisReply) -> RedisError?
        /// For `SUBSCRIBE`: every message after the confirmation.
        var onMessage: (@Sendable (RedisReply) -> Void)?
    }

    /// Starts connecting at once (on `loop`); commands sent meanwhile wait for the connection.
    /// - Parameter random: a uniformly random value in `0...upperBound`, for the backoff's jitter.
    public convenience init(
        configuration: RedisClientConfiguration,
        loop: EventLoop,
        random: @escaping @Sendable (_ upperBound: UInt64) -> UInt64 = { UInt64.random(in: 0...$0) }
    ) {
        self.init(configuration: configuration, loop: loop, random: random, extraSetup: [])
    }

    init(
        configuration: RedisClientConfiguration,
        loop: EventLoop,
        random: @escaping @Sendable (UInt64) -> UInt64,
        extraSetup: [SetupStep],
        beforeSubmitting: @escaping @Sendable () -> Void = {}
    ) {
        self.configuration = configuration
        self.loop = loop
        self.random = random
        self.beforeSubmitting = beforeSubmitting
        self.setupSteps = Self.loginSteps(configuration.endpoint) + extraSetup
        loop.execute { self.connect() }
    }

    private static func loginSteps(_ endpoint: RedisEndpoint) -> [SetupStep] {
        var steps: [SetupStep] = []
        if let password = endpoint.password {
            let arguments = [Array("AUTH".utf8)] + (endpoint.username.map { [Array($0.utf8)] } ?? []) + [Array(password.utf8)]
            steps.append(SetupStep(command: { _ in arguments }, check: { reply in
                reply.errorMessage.map { .authenticationFailed(message: $0) }
            }))
        }
        if endpoint.database != 0 {
            let database = endpoint.database
            steps.append(SetupStep(command: { _ in [Array("SELECT".utf8), Array(String(database).utf8)] }, check: { reply in
                reply.errorMessage.map { .connectionFailed(reason: "SELECT \(database): \($0)") }
            }))
        }
        return steps
    }

    // MARK: - Public API

    public var mode: RedisMode { published.withLock { $0.mode } }

    /// Why the last connection attempt, connection or command failed; nil before any failure.
    public var lastFailure: RedisError? { published.withLock { $0.lastFailure } }

    /// True while commands are refused at once because Redis failed `breakerThreshold` times in a row.
    public var isBreakerOpen: Bool { published.withLock { $0.breakerOpen } }

    /// Calls `observer` on the loop thread with the mode as it is now (a client connects as soon as
    /// it is made, possibly before anyone registers), then at each change of `mode`, with the
    /// failure that caused a disconnect. For logging and metrics; keep it short.
    public func onModeChange(_ observer: @escaping @Sendable (RedisMode, RedisError?) -> Void) {
        loop.execute {
            // On the loop thread, where modes change: no change can slip between the two steps.
            let (mode, failure) = self.published.withLock { published in
                published.observers.append(observer)
                return (published.mode, published.mode == .connected ? nil : published.lastFailure)
            }
            observer(mode, failure)
        }
    }

    /// Sends one command (binary-safe arguments) and returns its reply; Redis's own error replies
    /// are `.error` replies, not thrown. `timeout` defaults to `configuration.commandTimeout`.
    ///
    /// - Parameter waitPastDeadline: for a command whose effect the caller must know. Past the
    ///   deadline it still counts as late (the connection is watched for a stall), but the caller
    ///   waits for the reply, and gets `connectionLost` only if the connection is dropped first
    ///   (stalled, at most `configuration.stallTimeout` later, or lost).
    public func send(_ arguments: [[UInt8]], timeout: Duration? = nil, waitPastDeadline: Bool = false) async throws(RedisError) -> RedisReply {
        guard !arguments.isEmpty else { throw .invalidCommand(reason: "no arguments") }
        guard Int32(exactly: arguments.count) != nil else { throw .invalidCommand(reason: "too many arguments") }
        if Task.isCancelled { throw .cancelled }
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        let timeoutNanoseconds = (timeout ?? configuration.commandTimeout).saturatingNanoseconds
        // A cancellation that comes before the submit reaches the loop queues its `cancel` ahead of
        // the submit, and that cancel finds no command: the submit must see the mark and not send,
        // or the caller waits out the deadline.
        let cancelled = CancellationMark()
        let result: Result<RedisReply, RedisError> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                beforeSubmitting()
                loop.execute {
                    if cancelled.isSet.load(ordering: .acquiring) {
                        continuation.resume(returning: .failure(.cancelled))
                        return
                    }
                    self.submit(id: id, arguments: arguments, timeoutNanoseconds: timeoutNanoseconds, waitPastDeadline: waitPastDeadline) {
                        continuation.resume(returning: $0)
                    }
                }
            }
        } onCancel: {
            cancelled.isSet.store(true, ordering: .releasing)
            loop.execute { self.cancel(id) }
        }
        return try result.get()
    }

    /// `send` with UTF-8 text arguments.
    public func send(_ arguments: [String], timeout: Duration? = nil, waitPastDeadline: Bool = false) async throws(RedisError) -> RedisReply {
        try await send(arguments.map { Array($0.utf8) }, timeout: timeout, waitPastDeadline: waitPastDeadline)
    }

    /// Closes the connection, stops reconnecting and fails every waiting command with `.shutdown`.
    public func shutdown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            loop.execute {
                self.stop()
                continuation.resume()
            }
        }
    }

    /// One per `send`: its cancellation handler sets it before queueing the `cancel`, its submit reads it.
    private final class CancellationMark: Sendable {
        let isSet = Atomic<Bool>(false)
    }

    // MARK: - Commands (loop thread)

    private var breakerOpen: Bool { consecutiveFailures >= configuration.breakerThreshold }

    private func submit(
        id: UInt64, arguments: [[UInt8]], timeoutNanoseconds: UInt64, waitPastDeadline: Bool,
        complete: @escaping (Result<RedisReply, RedisError>) -> Void
    ) {
        switch state {
        case .stopped:
            complete(.failure(.shutdown))
        case .connected(let connection):
            var command = PendingCommand(complete: complete, connection: ObjectIdentifier(connection))
            command.waitsPastDeadline = waitPastDeadline
            command.deadline = scheduleDeadline(id, timeoutNanoseconds)
            pending[id] = command
            if !connection.send(arguments, id: id) {
                finish(id, .failure(.connectionLost(reason: "the connection is closing")))
            }
        case .idle, .connecting, .waiting:
            guard !breakerOpen else {
                complete(.failure(.unavailable(lastFailure: latestFailure.description)))
                return
            }
            var command = PendingCommand(queuedArguments: arguments, complete: complete)
            command.waitsPastDeadline = waitPastDeadline
            command.deadline = scheduleDeadline(id, timeoutNanoseconds)
            pending[id] = command
            queued.append(id)
        }
    }

    private func scheduleDeadline(_ id: UInt64, _ timeoutNanoseconds: UInt64) -> TimerID {
        loop.scheduleTimer(at: monotonicNanoseconds().addingClamped(timeoutNanoseconds)) { self.commandExpired(id) }
    }

    private func finish(_ id: UInt64, _ result: Result<RedisReply, RedisError>) {
        guard let command = pending.removeValue(forKey: id) else { return }
        if let deadline = command.deadline { loop.cancelTimer(deadline) }
        command.complete?(result)
    }

    private func cancel(_ id: UInt64) {
        guard pending[id] != nil else { return }
        queued.removeAll { $0 == id }
        // A reply that still comes finds no command and is dropped; hiredis keeps the order.
        finish(id, .failure(.cancelled))
    }

    private func commandExpired(_ id: UInt64) {
        guard var command = pending[id] else { return }
        if command.queuedArguments != nil {
            // Never sent: nothing ran, and no connection is to blame.
            pending[id] = nil
            queued.removeAll { $0 == id }
            command.complete?(.failure(.timeout))
            return
        }
        if !command.waitsPastDeadline {
            command.complete?(.failure(.timeout))
            command.complete = nil
        }
        command.deadline = loop.scheduleTimer(at: monotonicNanoseconds().addingClamped(configuration.stallTimeout.saturatingNanoseconds)) {
            self.commandStalled(id)
        }
        pending[id] = command
    }

    /// Still no reply `stallTimeout` past the deadline: the connection is stuck.
    private func commandStalled(_ id: UInt64) {
        guard let command = pending[id] else { return }
        if case .connected(let connection) = state, command.connection == ObjectIdentifier(connection) {
            connectionFailed(connection, .stalled)
        } else {
            // Its connection is already gone, and with it the reply.
            finish(id, .failure(.connectionLost(reason: "the connection was replaced")))
        }
    }

    private func replyArrived(_ id: UInt64, _ result: Result<RedisReply, RedisError>) {
        guard var command = pending[id] else { return }
        if let onMessage = command.onMessage {
            switch result {
            case .success(let reply) where command.confirmed:
                onMessage(reply)
            case .success:
                command.confirmed = true
                pending[id] = command
                consecutiveFailures = 0
                publishBreaker()
                command.complete?(result)
            case .failure:
                finish(id, result)
            }
            return
        }
        // A late reply too: the connection answers, however slowly.
        if case .success = result, !command.isSetup {
            consecutiveFailures = 0
            publishBreaker()
        }
        finish(id, result)
    }

    // MARK: - Connection life cycle (loop thread)

    private func connect() {
        switch state {
        case .idle, .waiting: break
        case .connecting, .connected, .stopped: return
        }
        let connection: RedisConnection
        do {
            connection = try RedisConnection.open(host: configuration.endpoint.host, port: configuration.endpoint.port, loop: loop)
        } catch {
            attemptFailed(nil, error)
            return
        }
        let identity = ObjectIdentifier(connection)
        let deadline = loop.scheduleTimer(at: monotonicNanoseconds().addingClamped(configuration.connectTimeout.saturatingNanoseconds)) {
            self.attemptFailed(identity, .connectionFailed(reason: "no connection within \(self.configuration.connectTimeout)"))
        }
        state = .connecting(connection, deadline: deadline)
        connection.onConnected = { failure in
            if let failure {
                self.attemptFailed(identity, failure)
            } else {
                self.runSetup(identity, step: 0, previous: nil)
            }
        }
        connection.onReply = { id, result in self.replyArrived(id, result) }
        connection.onEnded = { reason in self.connectionEnded(identity, reason: reason) }
    }

    private func connectingConnection(_ identity: ObjectIdentifier) -> RedisConnection? {
        if case .connecting(let connection, _) = state, ObjectIdentifier(connection) == identity { return connection }
        return nil
    }

    private func runSetup(_ identity: ObjectIdentifier, step index: Int, previous: RedisReply?) {
        guard let connection = connectingConnection(identity) else { return }
        guard index < setupSteps.count else {
            becameConnected(connection)
            return
        }
        let step = setupSteps[index]
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        var command = PendingCommand(complete: { result in
            switch result {
            case .success(let reply):
                if let failure = step.check(reply) {
                    self.attemptFailed(identity, failure)
                } else {
                    self.runSetup(identity, step: index + 1, previous: reply)
                }
            case .failure(let failure):
                self.attemptFailed(identity, .connectionFailed(reason: "\(failure)"))
            }
        }, connection: identity, isSetup: true)
        command.onMessage = step.onMessage
        pending[id] = command
        if !connection.send(step.command(previous), id: id) {
            pending[id] = nil
            attemptFailed(identity, .connectionFailed(reason: "hiredis refused a set-up command"))
        }
    }

    private func becameConnected(_ connection: RedisConnection) {
        if case .connecting(_, let deadline) = state { loop.cancelTimer(deadline) }
        state = .connected(connection)
        let identity = ObjectIdentifier(connection)
        let waiting = queued
        queued = []
        for id in waiting {
            guard var command = pending[id], let arguments = command.queuedArguments else { continue }
            command.queuedArguments = nil
            command.connection = identity
            pending[id] = command
            if !connection.send(arguments, id: id) {
                finish(id, .failure(.connectionLost(reason: "the connection is closing")))
            }
        }
        publish(mode: .connected)
    }

    /// A connect attempt (TCP or set-up) failed; `identity` nil when no connection was created.
    private func attemptFailed(_ identity: ObjectIdentifier?, _ failure: RedisError) {
        if let identity {
            guard let connection = connectingConnection(identity) else { return }
            if case .connecting(_, let deadline) = state { loop.cancelTimer(deadline) }
            connection.close()
        }
        recordFailure(failure)
        // The waiting commands learn why (a wrong password, a refused connection) rather than
        // waiting out their deadlines for an attempt that cannot come sooner.
        let waiting = queued
        queued = []
        for id in waiting { finish(id, .failure(failure)) }
        scheduleReconnect()
    }

    /// The connection that served commands stalled or ended (EOF, reset).
    private func connectionFailed(_ connection: RedisConnection, _ failure: RedisError) {
        connection.close()
        recordFailure(failure)
        publish(mode: .disconnected)
        scheduleReconnect()
    }

    private func connectionEnded(_ identity: ObjectIdentifier, reason: String) {
        switch state {
        case .connected(let connection) where ObjectIdentifier(connection) == identity:
            connectionFailed(connection, .connectionLost(reason: reason))
        case .connecting(let connection, _) where ObjectIdentifier(connection) == identity:
            attemptFailed(identity, .connectionFailed(reason: reason))
        default:
            // Already handled when it was dropped or replaced.
            break
        }
    }

    private func recordFailure(_ failure: RedisError) {
        consecutiveFailures = consecutiveFailures == Int.max ? Int.max : consecutiveFailures + 1
        latestFailure = failure
        published.withLock { $0.lastFailure = failure }
        publishBreaker()
    }

    private func scheduleReconnect() {
        if breakerOpen {
            let waiting = queued
            queued = []
            for id in waiting { finish(id, .failure(.unavailable(lastFailure: latestFailure.description))) }
        }
        let delay = configuration.reconnectBackoff.delayNanoseconds(afterFailures: consecutiveFailures, random: random)
        let timer = loop.scheduleTimer(at: monotonicNanoseconds().addingClamped(delay)) { self.connect() }
        state = .waiting(timer)
    }

    private func stop() {
        switch state {
        case .connecting(let connection, let deadline):
            loop.cancelTimer(deadline)
            connection.close()
        case .connected(let connection):
            connection.close()
        case .waiting(let timer):
            loop.cancelTimer(timer)
        case .idle, .stopped:
            break
        }
        state = .stopped
        let commands = pending
        pending = [:]
        queued = []
        for command in commands.values {
            if let deadline = command.deadline { loop.cancelTimer(deadline) }
            if command.onMessage == nil || !command.confirmed { command.complete?(.failure(.shutdown)) }
        }
        publish(mode: .disconnected)
    }

    private func publishBreaker() {
        let open = breakerOpen
        published.withLock { $0.breakerOpen = open }
    }

    private func publish(mode: RedisMode) {
        let failure = mode == .connected ? nil : latestFailure
        let observers = published.withLock { published -> [@Sendable (RedisMode, RedisError?) -> Void] in
            guard published.mode != mode else { return [] }
            published.mode = mode
            return published.observers
        }
        for observer in observers { observer(mode, failure) }
    }
}

