import GatewayEventLoop
@testable import GatewayRedis
import GatewayTestSupport
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A started event loop and a client on it, for one test; shut down in order afterwards.
struct RedisHarness {
    let loop: EventLoop
    let client: RedisClient

    /// Generous deadlines by default: the tests that are not about deadlines must not fail because a
    /// loaded 2-core machine delayed the loop by a few milliseconds.
    static func make(
        url: String, commandTimeout: Duration = .seconds(60), stallTimeout: Duration = .seconds(1),
        backoffMaximum: Duration = .milliseconds(200), beforeSubmitting: @escaping @Sendable () -> Void = {}
    ) throws -> RedisHarness {
        let loop = try EventLoop(name: "redis-test")
        try loop.start()
        let configuration = RedisClientConfiguration(
            endpoint: try RedisEndpoint(url: url), commandTimeout: commandTimeout, connectTimeout: .seconds(10),
            stallTimeout: stallTimeout, reconnectBackoff: RedisBackoff(base: .milliseconds(5), maximum: backoffMaximum))
        let client = RedisClient(
            configuration: configuration, loop: loop, random: { UInt64.random(in: 0...$0) }, extraSetup: [],
            beforeSubmitting: beforeSubmitting)
        return RedisHarness(loop: loop, client: client)
    }

    func shutdown() async {
        await client.shutdown()
        loop.stop()
        await loop.waitUntilStopped()
    }
}

/// True once Redis shows a client held by `CLIENT PAUSE` (`blocked_clients` above 0), within 30 s.
func redisHoldsACommand(_ client: RedisClient) async -> Bool {
    let deadline = ContinuousClock.now + .seconds(30)
    while ContinuousClock.now < deadline {
        if let info = try? await client.send(["INFO", "clients"]).text,
           info.split(whereSeparator: \.isNewline).contains(where: { $0.hasPrefix("blocked_clients:") && !$0.hasSuffix(":0") }) {
            return true
        }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return false
}

/// Runs `body` while Redis holds every write it receives (`CLIENT PAUSE … WRITE`, sent by
/// `pauser`), then resumes Redis. `UNPAUSE` is not a write: it is never held behind the commands
/// the pause holds, so the order of events does not depend on how loaded the machine is.
@discardableResult
func whileRedisHoldsWrites<Result>(pausedBy pauser: RedisClient, _ body: () async throws -> Result) async throws -> Result {
    #expect(try await pauser.send(["CLIENT", "PAUSE", "60000", "WRITE"]) == .status("OK"))
    let result: Result
    do {
        result = try await body()
    } catch {
        _ = try? await pauser.send(["CLIENT", "UNPAUSE"])
        throw error
    }
    #expect(try await pauser.send(["CLIENT", "UNPAUSE"]) == .status("OK"))
    return result
}

/// The result of `write`, a command (or commands) that writes, after Redis held it until well past
/// a 50 ms deadline.
func heldInRedisPastItsDeadline<Result: Sendable>(
    pausedBy pauser: RedisClient, _ write: @escaping @Sendable () async throws -> Result
) async throws -> Result {
    let pending = try await whileRedisHoldsWrites(pausedBy: pauser) {
        let pending = Task { try await write() }
        #expect(await redisHoldsACommand(pauser))
        try await Task.sleep(for: .milliseconds(300))
        return pending
    }
    return try await pending.value
}

/// Retries `body` until it succeeds, for up to `seconds`: for waiting until a client has
/// reconnected, where each failed try is itself bounded by the command deadline.
func eventually<T>(seconds: Int = 20, _ body: () async throws -> T) async throws -> T {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while true {
        do {
            return try await body()
        } catch {
            if ContinuousClock.now > deadline { throw error }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }
}

@Suite(.enabled(if: RedisServer.shouldRun, Comment(rawValue: RedisServer.skipMessage)))
struct RedisClientTests {
    @Test func typedRepliesAndBinarySafeBulkStrings() async throws {
        let server = try await RedisServer.start()
        let harness = try RedisHarness.make(url: server.url())
        let client = harness.client

        #expect(try await client.send(["PING"]) == .status("PONG"))
        let binaryKey: [UInt8] = [0, 13, 10, 255, 32]
        let binaryValue = (0...255).map { UInt8($0) } + [13, 10, 0]
        #expect(try await client.send([Array("SET".utf8), binaryKey, binaryValue]) == .status("OK"))
        #expect(try await client.send([Array("GET".utf8), binaryKey]) == .bulk(binaryValue))
        #expect(try await client.send([Array("SET".utf8), Array("empty".utf8), []]) == .status("OK"))
        #expect(try await client.send(["GET", "empty"]) == .bulk([]))
        #expect(try await client.send(["GET", "missing"]) == .null)
        #expect(try await client.send(["INCRBY", "counter", "-7"]) == .integer(-7))
        #expect(try await client.send(["RPUSH", "list", "a", "b"]) == .integer(2))
        #expect(try await client.send(["LRANGE", "list", "0", "-1"]) == .array([.bulk(Array("a".utf8)), .bulk(Array("b".utf8))]))
        let wrongType = try await client.send(["INCR", "list"])
        #expect(wrongType.errorMessage?.hasPrefix("WRONGTYPE") == true)
        #expect(try await client.send(["EVAL", "return {1, 'x', {2}, false}", "0"])
            == .array([.integer(1), .bulk(Array("x".utf8)), .array([.integer(2)]), .null]))
        await #expect(throws: RedisError.invalidCommand(reason: "no arguments")) { try await client.send([[UInt8]]()) }
        #expect(client.mode == .connected)
        await client.shutdown()
        await #expect(throws: RedisError.shutdown) { try await client.send(["PING"]) }
        #expect(client.mode == .disconnected)
        await harness.shutdown()
        await server.kill()
    }

    @Test func thousandConcurrentCommandsEachGetTheirOwnReply() async throws {
        let server = try await RedisServer.start()
        let harness = try RedisHarness.make(url: server.url(), commandTimeout: .seconds(30))
        let client = harness.client
        let mismatches = try await withThrowingTaskGroup(of: Int.self) { group in
            for task in 0..<50 {
                group.addTask {
                    var mismatches = 0
                    // 20 commands per task, sent without waiting for each other's replies.
                    try await withThrowingTaskGroup(of: Bool.self) { inner in
                        for index in 0..<20 {
                            inner.addTask {
                                let payload = "task-\(task)-command-\(index)"
                                return try await client.send(["ECHO", payload]) == .bulk(Array(payload.utf8))
                            }
                        }
                        for try await matched in inner where !matched { mismatches += 1 }
                    }
                    return mismatches
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(mismatches == 0)
        // One connection carried them all.
        let clients = try await client.send(["CLIENT", "LIST"]).text ?? ""
        #expect(clients.split(separator: "\n").count == 1)
        await harness.shutdown()
        await server.kill()
    }

    @Test("An observer registered after the client connected learns the mode at once, and only once")
    func lateObserverLearnsTheCurrentMode() async throws {
        let server = try await RedisServer.start()
        let harness = try RedisHarness.make(url: server.url())
        #expect(try await harness.client.send(["PING"]) == .status("PONG"))
        let modes = Mutex<[RedisMode]>([])
        harness.client.onModeChange { mode, _ in modes.withLock { $0.append(mode) } }
        // A round trip through the loop: the registration ran before this reply was handled.
        #expect(try await harness.client.send(["PING"]) == .status("PONG"))
        #expect(modes.withLock { $0 } == [.connected])
        await harness.shutdown()
        await server.kill()
    }

    @Test func aCommandPastItsDeadlineFailsWithTimeoutAndTheClientReconnects() async throws {
        let server = try await RedisServer.start()
        let harness = try RedisHarness.make(url: server.url())
        let other = try RedisHarness.make(url: server.url())
        let client = harness.client
        let modes = Mutex<[RedisMode]>([])
        let causes = Mutex<[RedisError]>([])
        client.onModeChange { mode, cause in
            modes.withLock { $0.append(mode) }
            if let cause { causes.withLock { $0.append(cause) } }
        }
        #expect(try await client.send(["PING"]) == .status("PONG"))

        // Every command Redis receives from now on waits 15 s: far longer than the deadline plus
        // anything a loaded machine adds (the whole suite shares 2 cores), so only the deadline
        // can end the command first.
        #expect(try await other.client.send(["CLIENT", "PAUSE", "15000", "ALL"]) == .status("OK"))
        let started = ContinuousClock.now
        await #expect(throws: RedisError.timeout) { try await client.send(["PING"], timeout: .milliseconds(100)) }
        let elapsed = ContinuousClock.now - started
        #expect(elapsed >= .milliseconds(90))
        #expect(elapsed < .seconds(12))

        // Still no reply a stall timeout later: the connection was dropped; a new one serves once
        // Redis resumes.
        #expect(try await eventually(seconds: 40) { try await client.send(["PING"], timeout: .seconds(5)) } == .status("PONG"))
        #expect(client.mode == .connected)
        #expect(Array(modes.withLock { $0 }.suffix(2)) == [.disconnected, .connected])
        // The change is reported with its cause, for the log line.
        #expect(causes.withLock { $0 }.first == .stalled)
        await other.shutdown()
        await harness.shutdown()
        await server.kill()
    }

    @Test func aLateReplyIsNotAStallTheConnectionStaysAndServesTheNextCommand() async throws {
        let server = try await RedisServer.start()
        // A stall bound no pause here comes near, so only a drop on the deadline could end the connection.
        let harness = try RedisHarness.make(url: server.url(), stallTimeout: .seconds(120))
        let other = try RedisHarness.make(url: server.url())
        let client = harness.client
        let identity = try await client.send(["CLIENT", "ID"])
        let modes = Mutex<[RedisMode]>([])
        client.onModeChange { mode, _ in modes.withLock { $0.append(mode) } }

        // Writes wait until UNPAUSE, which is not a write: the order below holds however loaded the
        // machine is.
        try await whileRedisHoldsWrites(pausedBy: other.client) {
            await #expect(throws: RedisError.timeout) { try await client.send(["INCR", "late"], timeout: .milliseconds(50)) }
        }
        // The command ran once Redis resumed, and its reply went to no one: the next reply is the
        // next command's own, on the same connection.
        #expect(try await client.send(["GET", "late"]) == .bulk(Array("1".utf8)))
        #expect(try await client.send(["CLIENT", "ID"]) == identity)
        #expect(modes.withLock { $0 } == [.connected])
        await other.shutdown()
        await harness.shutdown()
        await server.kill()
    }

    @Test func aCommandThatWaitsPastItsDeadlineGetsItsLateReply() async throws {
        let server = try await RedisServer.start()
        let harness = try RedisHarness.make(url: server.url(), stallTimeout: .seconds(120))
        let other = try RedisHarness.make(url: server.url())
        #expect(try await harness.client.send(["PING"]) == .status("PONG"))

        let client = harness.client
        let decided = try await heldInRedisPastItsDeadline(pausedBy: other.client) {
            try await client.send(["INCR", "decided"], timeout: .milliseconds(50), waitPastDeadline: true)
        }
        #expect(decided == .integer(1))
        #expect(harness.client.mode == .connected)
        await other.shutdown()
        await harness.shutdown()
        await server.kill()
    }

    @Test func aConnectionThatStopsAnsweringIsDroppedAtTheStallBoundFailingItsWaitingCommands() async throws {
        let server = try await RedisServer.start()
        let harness = try RedisHarness.make(url: server.url(), stallTimeout: .milliseconds(300))
        let other = try RedisHarness.make(url: server.url())
        let client = harness.client
        let causes = Mutex<[RedisError]>([])
        client.onModeChange { _, cause in if let cause { causes.withLock { $0.append(cause) } } }
        #expect(try await client.send(["PING"]) == .status("PONG"))

        // Held far longer than deadline plus stall bound.
        try await whileRedisHoldsWrites(pausedBy: other.client) {
            let started = ContinuousClock.now
            let failure = await #expect(throws: RedisError.self) {
                try await client.send(["INCR", "stalled"], timeout: .milliseconds(50), waitPastDeadline: true)
            }
            if case .connectionLost = failure {} else { Issue.record("expected connectionLost, got \(String(describing: failure))") }
            #expect(ContinuousClock.now - started >= .milliseconds(340))
            #expect(causes.withLock { $0 }.first == .stalled)
        }
        await other.shutdown()
        await harness.shutdown()
        await server.kill()
    }

    @Test func aCancelledCommandEndsAtOnceAndItsLateReplyReachesNoOneElse() async throws {
        let server = try await RedisServer.start()
        let harness = try RedisHarness.make(url: server.url())
        let other = try RedisHarness.make(url: server.url())
        let client = harness.client
        #expect(try await client.send(["PING"]) == .status("PONG"))

        #expect(try await other.client.send(["CLIENT", "PAUSE", "1000", "ALL"]) == .status("OK"))
        let cancelled = Task { try await client.send(["ECHO", "cancelled"]) }
        let following = Task { try await client.send(["ECHO", "following"]) }
        cancelled.cancel()
        await #expect(throws: RedisError.cancelled) { try await cancelled.value }
        // Once Redis resumes, both replies come in order on the same connection: the first is
        // dropped, the second reaches its own caller.
        #expect(try await following.value == .bulk(Array("following".utf8)))
        #expect(client.mode == .connected)
        await other.shutdown()
        await harness.shutdown()
        await server.kill()
    }

    /// A caller cancelled after its cancellation handler is in place but before its command reaches
    /// the loop ends with `cancelled` at once. (Its cancel used to reach the loop first and find no
    /// command; the command was then sent anyway, and the caller waited out its deadline.)
    @Test(.timeLimit(.minutes(1)))
    func aCallerCancelledBeforeItsCommandReachesTheLoopEndsAtOnce() async throws {
        // Connections complete in the kernel's backlog and nothing ever answers: only the
        // cancellation can end the command before its 60 s deadline.
        let (listener, port) = try boundLoopbackSocket(listening: true)
        defer { close(listener) }
        let harness = try RedisHarness.make(url: "redis://127.0.0.1:\(port)/0", beforeSubmitting: {
            withUnsafeCurrentTask { $0?.cancel() }
        })
        let sending = Task { try await harness.client.send(["PING"], timeout: .seconds(60)) }
        // A lost cancellation fails the test with `shutdown` after 20 s rather than running into the
        // time limit.
        let watchdog = Task {
            try await Task.sleep(for: .seconds(20))
            await harness.client.shutdown()
        }
        await #expect(throws: RedisError.cancelled) { try await sending.value }
        watchdog.cancel()
        await harness.shutdown()
    }

    @Test func logsInWithThePasswordAndTypesAWrongOne() async throws {
        let server = try await RedisServer.start(password: "test-secret")

        let good = try RedisHarness.make(url: server.url())
        #expect(try await good.client.send(["SET", "k", "v"]) == .status("OK"))
        #expect(try await good.client.send(["GET", "k"]) == .bulk(Array("v".utf8)))
        await good.shutdown()

        let wrong = try RedisHarness.make(url: "redis://:not-the-password@127.0.0.1:\(server.port)/0")
        let failure = await #expect(throws: RedisError.self) { try await wrong.client.send(["GET", "k"]) }
        guard case .authenticationFailed(let message) = failure else {
            Issue.record("expected authenticationFailed, got \(String(describing: failure))")
            await wrong.shutdown()
            return
        }
        #expect(message.hasPrefix("WRONGPASS"))
        #expect(wrong.client.mode == .disconnected)
        await wrong.shutdown()

        let none = try RedisHarness.make(url: "redis://127.0.0.1:\(server.port)/0")
        #expect(try await none.client.send(["GET", "k"]).errorMessage?.hasPrefix("NOAUTH") == true)
        await none.shutdown()
        await server.kill()
    }

    @Test func selectsTheDatabaseFromTheURL() async throws {
        let server = try await RedisServer.start()
        let third = try RedisHarness.make(url: server.url(database: 3))
        let first = try RedisHarness.make(url: server.url(database: 0))
        #expect(try await third.client.send(["SET", "where", "db3"]) == .status("OK"))
        #expect(try await first.client.send(["GET", "where"]) == .null)
        #expect(try await third.client.send(["GET", "where"]) == .bulk(Array("db3".utf8)))
        #expect(try await first.client.send(["SELECT", "3"]) == .status("OK"))
        #expect(try await first.client.send(["GET", "where"]) == .bulk(Array("db3".utf8)))
        await third.shutdown()
        await first.shutdown()
        await server.kill()
    }

    @Test func failsFastWhileRedisIsDownAndReconnectsAfterARestart() async throws {
        let server = try await RedisServer.start()
        let harness = try RedisHarness.make(url: server.url(), commandTimeout: .seconds(5))
        let client = harness.client
        #expect(try await client.send(["SET", "before", "1"]) == .status("OK"))

        await server.kill()
        // Every command ends with an error well before its 5 s deadline: none hangs (20 waiting
        // out their deadlines would take 100 s; a loaded machine adds seconds, not that).
        let started = ContinuousClock.now
        for _ in 0..<20 {
            await #expect(throws: RedisError.self) { try await client.send(["GET", "before"]) }
        }
        #expect(ContinuousClock.now - started < .seconds(20))
        #expect(await waitUntil { client.isBreakerOpen })
        let refusedAt = ContinuousClock.now
        let refusal = await #expect(throws: RedisError.self) { try await client.send(["PING"]) }
        if case .unavailable = refusal {} else { Issue.record("expected unavailable, got \(String(describing: refusal))") }
        // Refused on the spot, not after the 5 s deadline (with room for a loaded machine).
        #expect(ContinuousClock.now - refusedAt < .seconds(4))
        #expect(client.mode == .disconnected)
        #expect(client.lastFailure != nil)

        try await server.start()
        #expect(try await eventually { try await client.send(["GET", "before"]) } == .null)
        #expect(client.mode == .connected)
        #expect(!client.isBreakerOpen)
        await harness.shutdown()
        await server.kill()
    }
}
