import GatewayEventLoop
import GatewayRedis
import GatewayTestSupport
import Synchronization
import Testing

@Suite(.enabled(if: RedisServer.shouldRun, Comment(rawValue: RedisServer.skipMessage)))
struct RedisScriptTests {
    static let incrementBy = RedisScript(
        library: "gateway_test_v1", function: "gateway_test_incrby",
        body: "return redis.call('INCRBY', keys[1], args[1])")

    @Test func runsAsAFunctionAndReloadsItAfterAFlushAndARestart() async throws {
        let server = try await RedisServer.start()
        let harness = try RedisHarness.make(url: server.url())
        let client = harness.client
        let script = RedisScript(library: Self.incrementBy.library, function: Self.incrementBy.function, body: Self.incrementBy.body)
        let key = [Array("counter".utf8)]

        #expect(try await script.run(on: client, keys: key, arguments: [Array("5".utf8)]) == .integer(5))
        #expect(script.usesFunctions)
        #expect(try await client.send(["FUNCTION", "LIST", "LIBRARYNAME", "gateway_test_v1"]) != .array([]))

        #expect(try await client.send(["FUNCTION", "FLUSH"]) == .status("OK"))
        #expect(try await script.run(on: client, keys: key, arguments: [Array("5".utf8)]) == .integer(10))

        try await server.restart()
        let afterRestart = try await eventually { try await script.run(on: client, keys: key, arguments: [Array("2".utf8)]) }
        #expect(afterRestart == .integer(2))
        #expect(script.usesFunctions)
        await harness.shutdown()
        await server.kill()
    }

    @Test func fallsBackToEvalshaAndEvalWhereFunctionsCannotBeLoaded() async throws {
        let server = try await RedisServer.start()
        let admin = try RedisHarness.make(url: server.url())
        // A user that may call scripts but not FUNCTION LOAD, as on a server without functions.
        #expect(try await admin.client.send(["ACL", "SETUSER", "scripts", "on", ">script-pass", "~*", "+@all", "-function"]) == .status("OK"))
        let harness = try RedisHarness.make(url: "redis://scripts:script-pass@127.0.0.1:\(server.port)/0")
        let client = harness.client
        let script = RedisScript(library: Self.incrementBy.library, function: Self.incrementBy.function, body: Self.incrementBy.body)
        let key = [Array("counter".utf8)]

        #expect(try await script.run(on: client, keys: key, arguments: [Array("3".utf8)]) == .integer(3))
        #expect(!script.usesFunctions)
        #expect(try await script.run(on: client, keys: key, arguments: [Array("3".utf8)]) == .integer(6))

        #expect(try await admin.client.send(["SCRIPT", "FLUSH"]) == .status("OK"))
        #expect(try await script.run(on: client, keys: key, arguments: [Array("4".utf8)]) == .integer(10))
        let scripts = try await admin.client.send(["INFO", "memory"]).text ?? ""
        #expect(scripts.contains("number_of_cached_scripts:1"))
        await harness.shutdown()
        await admin.shutdown()
        await server.kill()
    }
}

@Suite(.enabled(if: RedisServer.shouldRun, Comment(rawValue: RedisServer.skipMessage)))
struct RedisInvalidationListenerTests {
    @Test func aWriteThroughAnotherConnectionInvalidatesTrackedKeysAndALossIsReported() async throws {
        let server = try await RedisServer.start()
        let writer = try RedisHarness.make(url: server.url())
        let received = Mutex<[RedisInvalidation]>([])
        let listener = RedisInvalidationListener(
            configuration: RedisClientConfiguration(endpoint: try RedisEndpoint(url: server.url()), connectTimeout: .seconds(10)),
            prefixes: [Array("cache:".utf8)], loop: writer.loop
        ) { invalidation in
            received.withLock { $0.append(invalidation) }
        }
        #expect(await waitUntil(seconds: 20) { listener.mode == .connected })

        #expect(try await writer.client.send(["SET", "other:key", "1"]) == .status("OK"))
        #expect(try await writer.client.send(["SET", "cache:entry", "1"]) == .status("OK"))
        #expect(await waitUntil(seconds: 20) { received.withLock { $0.contains(.keys([Array("cache:entry".utf8)])) } })
        // Only keys under the tracked prefix.
        #expect(!received.withLock { $0 }.contains { if case .keys(let keys) = $0 { keys.contains(Array("other:key".utf8)) } else { false } })

        #expect(try await writer.client.send(["FLUSHALL"]) == .status("OK"))
        #expect(await waitUntil(seconds: 20) { received.withLock { $0.contains(.everything) } })

        // Only what follows the kill: on a loaded machine the listener may already have dropped a
        // connection that answered too slowly, and reported that loss.
        received.withLock { $0 = [] }
        await server.kill()
        #expect(await waitUntil(seconds: 20) { received.withLock { $0.contains(.connectionLost) } })
        #expect(await waitUntil(seconds: 20) { listener.mode == .disconnected })

        // Back by itself, tracking again.
        try await server.start()
        #expect(await waitUntil(seconds: 20) { listener.mode == .connected })
        received.withLock { $0 = [] }
        #expect(try await eventually { try await writer.client.send(["SET", "cache:again", "1"]) } == .status("OK"))
        #expect(await waitUntil(seconds: 20) { received.withLock { $0.contains(.keys([Array("cache:again".utf8)])) } })

        await listener.shutdown()
        await writer.shutdown()
        await server.kill()
    }
}
