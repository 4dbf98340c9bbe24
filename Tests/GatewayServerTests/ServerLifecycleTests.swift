import Foundation
import GatewayHTTP
@testable import GatewayServer
import GatewayTestSupport
import Synchronization
import Testing

/// Timeouts, limits and shutdown: the behaviours that protect the server from its clients.
@Suite struct ServerLifecycleTests {
    static func quickTimeouts() -> HTTPServerConfiguration {
        var configuration = HTTPServerConfiguration.forTests(workers: 1)
        // Long enough that a loaded CI machine serves the well-behaved clients in time.
        configuration.headerTimeout = .nanoseconds(2_000_000_000)
        configuration.idleTimeout = .nanoseconds(2_000_000_000)
        configuration.writeTimeout = .nanoseconds(300_000_000)
        configuration.linger = .nanoseconds(200_000_000)
        return configuration
    }

    @Test func slowlorisGets408AndIsClosedWhileOthersAreServed() async throws {
        try await withServer(Self.quickTimeouts()) { server in
            let slow = try RawClient(port: server.localPort)
            try await slow.send("GET /hello HTTP/1.1\r\nHost: x\r\n")
            // Meanwhile another client on the same (single) loop is served at once.
            let fast = try RawClient(port: server.localPort)
            let answers = await fast.roundTrips(Array(repeating: "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", count: 5))
            #expect(answers.map { $0?.status } == Array(repeating: 200, count: 5))
            // Trickling does not extend the deadline. (If a loaded machine already let it pass while
            // the fast client was served, the connection is closed and there is nothing to send.)
            if server.counters.timedOutConnections == 0 { try? await slow.send("X-Trickle: 1\r\n") }
            let (bytes, end) = await slow.readUntilClose()
            #expect(TestResponse.parseAll(bytes).first?.status == 408)
            #expect(end == .closed)
        }
    }

    @Test func silentNewConnectionIsClosedAfterTheHeaderTimeout() async throws {
        try await withServer(Self.quickTimeouts()) { server in
            // The client gives up after 5 s; a close well before that is the server's header timeout.
            let silent = try RawClient(port: server.localPort)
            let (bytes, end) = await silent.readUntilClose()
            #expect(bytes.isEmpty)
            #expect(end == .closed)
        }
    }

    @Test func idleKeepAliveConnectionIsClosed() async throws {
        try await withServer(Self.quickTimeouts()) { server in
            let client = try RawClient(port: server.localPort)
            try await client.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await client.readResponse()?.status == 200)
            let (bytes, end) = await client.readUntilClose()
            #expect(bytes.isEmpty)
            #expect(end == .closed)
            #expect(server.counters.openConnections == 0)
        }
    }

    @Test func stalledReaderIsDroppedWithoutDelayingOthers() async throws {
        try await withServer(Self.quickTimeouts()) { server in
            let stalled = try RawClient(port: server.localPort)
            // 32 MiB cannot fit in socket buffers; the client never reads.
            try await stalled.send("GET /big/33554432 HTTP/1.1\r\nHost: x\r\n\r\n")
            let other = try RawClient(port: server.localPort)
            try await other.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await other.readResponse()?.status == 200)
            #expect(await waitUntil(seconds: 30) { server.counters.timedOutConnections > 0 })
            #expect(server.counters.timedOutConnections == 1)
            // The stalled reader finds its connection reset rather than left hanging.
            let (bytes, end) = await stalled.readUntilClose()
            #expect(end == .reset)
            #expect(bytes.count < 33_554_432)
        }
    }

    @Test func connectionsBeyondTheLimitAreRefusedWith503() async throws {
        var configuration = HTTPServerConfiguration.forTests(workers: 1)
        configuration.maxConnections = 2
        try await withServer(configuration) { server in
            let first = try RawClient(port: server.localPort)
            let second = try RawClient(port: server.localPort)
            try await first.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            try await second.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await first.readResponse()?.status == 200)
            #expect(await second.readResponse()?.status == 200)
            let third = try RawClient(port: server.localPort)
            let (bytes, end) = await third.readUntilClose()
            let refusal = TestResponse.parseAll(bytes).first
            #expect(refusal?.status == 503)
            #expect(refusal?.text.contains("Too many open connections") == true)
            #expect(end == .closed)
            #expect(server.counters.refusedConnections == 1)
            // The admitted connections keep working.
            try await first.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await first.readResponse()?.status == 200)
        }
    }

    @Test func expectContinueGetsAnInterimResponse() async throws {
        try await withServer { server in
            let client = try RawClient(port: server.localPort)
            try await client.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
            let interim = try #require(await client.readResponse(headOnly: true))
            #expect(interim.status == 100)
            try await client.send("ping")
            #expect(await client.readResponse()?.text == "ping")
        }
    }

    @Test func aBodyOwedAfter100ContinueIsUnderTheRequestTimeout() async throws {
        var configuration = Self.quickTimeouts()
        configuration.headerTimeout = .nanoseconds(300_000_000)
        configuration.idleTimeout = .nanoseconds(60_000_000_000)
        try await withServer(configuration) { server in
            let client = try RawClient(port: server.localPort)
            try await client.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
            #expect(await client.readResponse(headOnly: true)?.status == 100)
            // The body never comes: the request timeout (0.3 s) ends it, long before the idle one (60 s).
            let (bytes, end) = await client.readUntilClose()
            #expect(TestResponse.parseAll(bytes).first?.status == 408)
            #expect(end == .closed)
        }
    }

    @Test func gracefulShutdownFinishesInFlightRequestsAndClosesIdleOnes() async throws {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        var configuration = HTTPServerConfiguration.forTests(workers: 2)
        configuration.shutdownGrace = .nanoseconds(20_000_000_000)
        let held = HeldRequest()
        let server = HTTPServer(configuration: configuration, responder: held.router(), logger: logger)
        try server.start()
        let port = server.localPort

        let idle = try RawClient(port: port)
        try await idle.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(await idle.readResponse()?.status == 200)

        let busy = try RawClient(port: port)
        try await busy.send("GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
        // Waiting for the handler, not for a time, so a loaded machine cannot reorder the steps.
        await held.waitUntilStarted()

        let shutdown = Task { await server.shutdown() }
        #expect(await waitUntil { server.isDraining })

        // The idle keep-alive connection is closed without a response while the other request still runs.
        let (idleBytes, idleEnd) = await idle.readUntilClose()
        #expect(idleBytes.isEmpty)
        #expect(idleEnd == .closed)

        // The in-flight request completes, told that the connection closes.
        held.release()
        let answered = try #require(await busy.readResponse())
        #expect(answered.text == "released")
        #expect(answered.header("Connection") == "close")
        // The server then closes its side; once the client closes too, the lingering close ends
        // at once instead of after `linger`.
        #expect(await busy.readUntilClose().end == .closed)
        busy.shutdownWrite()
        await shutdown.value
        // Nothing listens any more.
        #expect(throws: (any Error).self) { _ = try RawClient(port: port) }
    }

    /// A server on 127.0.0.1 answering `testRouter()`, logging only criticals; not started.
    static func quietServer(port: Int = 0, workers: Int) -> HTTPServer {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return HTTPServer(
            configuration: HTTPServerConfiguration(host: "127.0.0.1", port: port, workers: workers), responder: testRouter(), logger: logger
        )
    }

    @Test func cancellingRunDrainsAndStops() async throws {
        let server = Self.quietServer(workers: 1)
        try server.start()
        let port = server.localPort
        // A service group cancels its other services when one fails: run() must then return.
        let running = Task { try await server.run() }
        let client = try RawClient(port: port)
        try await client.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(await client.readResponse()?.status == 200)
        running.cancel()
        try await running.value
        #expect(throws: (any Error).self) { _ = try RawClient(port: port) }
    }

    /// Shutting down a server that never started returns, and so does a wait for its stop. (Both
    /// used to wait for a stop that nothing would ever announce.)
    @Test(.timeLimit(.minutes(1)))
    func shuttingDownAServerThatNeverStartedReturns() async {
        let server = Self.quietServer(workers: 1)
        let finished = Flag()
        let shutdown = Task {
            await server.shutdown()
            await server.waitUntilStopped()
            finished.set()
        }
        // Bounded, so that a shutdown that hangs fails the test instead of running into the time limit.
        #expect(await waitUntil(seconds: 20) { finished.isSet })
        if finished.isSet { await shutdown.value }
        #expect(throws: HTTPServerError.self) { try server.start() }
    }

    /// A shutdown() that runs while start() has built its loops but not yet published them ends,
    /// and start() then gives up instead of serving past it: nothing listens afterwards. (The
    /// shutdown used to find no loops and wait forever, while start() went on serving.)
    @Test(.timeLimit(.minutes(1)))
    func aShutdownWhileTheServerStartsEndsItAndTheStartGivesUp() async throws {
        final class ShutdownInTheGap: Sendable {
            let server = Mutex<HTTPServer?>(nil)
            let finished = Flag()
        }
        let gap = ShutdownInTheGap()
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let port = try unusedLoopbackPort()
        let server = HTTPServer(
            configuration: HTTPServerConfiguration(host: "127.0.0.1", port: port, workers: 2), responder: testRouter(), logger: logger,
            beforePublishing: {
                // On start()'s own thread, so blocking here holds start() without taking a thread from
                // the pool the shutdown runs on; bounded, so that a shutdown that hangs fails the test.
                guard let server = gap.server.withLock({ $0 }) else { return }
                let done = DispatchSemaphore(value: 0)
                Task {
                    await server.shutdown()
                    gap.finished.set()
                    done.signal()
                }
                _ = done.wait(timeout: .now() + 20)
            })
        gap.server.withLock { $0 = server }
        let failure = await #expect(throws: HTTPServerError.self) { try await onOwnThread { try server.start() } }
        if case .shutDownWhileStarting = failure {} else { Issue.record("expected shutDownWhileStarting, got \(String(describing: failure))") }
        #expect(gap.finished.isSet, "the shutdown ended while start() waited")
        #expect(throws: (any Error).self) { _ = try RawClient(port: port) }
    }

    @Test func aSecondServerCannotJoinABusyPortThroughReusePort() async throws {
        let first = Self.quietServer(workers: 2)
        try first.start()
        // Both would set SO_REUSEPORT (two workers each): without the probe the kernel lets them share.
        let second = Self.quietServer(port: first.localPort, workers: 2)
        #expect(throws: HTTPServerError.self) { try second.start() }
        await first.shutdown()
        // Once the port is free again, the same configuration starts. Tests running alongside open
        // client sockets whose ephemeral ports can briefly take this very number, so the start is
        // retried for as long as that can last; a probe that kept refusing would fail here.
        var started = false
        for _ in 0..<100 where !started {
            do {
                try second.start()
                started = true
            } catch {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        #expect(started)
        await second.shutdown()
    }

    @Test func shutdownGraceBoundsAStuckRequest() async throws {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        var configuration = HTTPServerConfiguration.forTests(workers: 1)
        configuration.shutdownGrace = .nanoseconds(200_000_000)
        let held = HeldRequest()
        let server = HTTPServer(configuration: configuration, responder: held.router(), logger: logger)
        try server.start()
        let stuck = try RawClient(port: server.localPort)
        try await stuck.send("GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
        await held.waitUntilStarted()
        let started = ContinuousClock.now
        let finished = Flag()
        let shutdown = Task {
            await server.shutdown()
            finished.set()
        }
        // The request is never released while shutdown runs: only the grace period can end it. A
        // shutdown that waited for it would never finish (bounded here so the test cannot hang).
        #expect(await waitUntil(seconds: 60) { finished.isSet })
        #expect(ContinuousClock.now - started >= .milliseconds(200), "the grace period was given")
        let (_, end) = await stuck.readUntilClose()
        #expect(end != .timedOut)
        held.release()
        await shutdown.value
    }
}

import Logging
