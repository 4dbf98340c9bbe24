import GatewayEventLoop
import GatewayIndex
import GatewayRedis
import GatewayReplicas
import GatewayTestSupport
import Testing

@Suite(.enabled(if: RedisServer.shouldRun, Comment(rawValue: RedisServer.skipMessage)))
struct IndexSharingTests {
    static func publication(_ marker: UInt8, segments: [[UInt8]]) -> IndexPublication {
        IndexPublication(version: 0, header: [1, marker], segments: segments, ageNanoseconds: 2_000_000_000, refreshedAtUnixSeconds: 1_790_000_000)
    }

    static func sharing(_ harness: RedisHarness, lease: Duration = .seconds(10)) -> RedisIndexSharing {
        RedisIndexSharing(client: harness.client, keyPrefix: "t:", lease: lease, retention: .seconds(300))
    }

    @Test("One lease per index: the others are refused until it is released or lapses, and tokens only grow")
    func leaseIsExclusiveAndFenced() async throws {
        let server = try await RedisServer.start()
        let replicas = try await ReplicaSet.make(count: 3, url: server.url(), prefix: "t:")
        // Long leases: however slow the machine, the three attempts race for one lease; the lapse
        // is made below by cutting the holder's lease short in Redis.
        let sharings = replicas.harnesses.map { Self.sharing($0, lease: .seconds(60)) }
        let attempts = await withTaskGroup(of: LeaseAttempt.self) { group in
            for sharing in sharings { group.addTask { await sharing.acquireLease("kapso:abc") } }
            return await group.reduce(into: []) { $0.append($1) }
        }
        let granted = attempts.compactMap { attempt -> IndexLease? in if case .acquired(let lease) = attempt { lease } else { nil } }
        #expect(granted.count == 1 && attempts.filter { $0 == .heldByAnother }.count == 2)
        let first = try #require(granted.first)
        #expect(await sharings[0].acquireLease("kapso:other") != .heldByAnother, "leases are per index")

        // The holder stalls past its lease: another takes over with a larger token, and the
        // stalled holder can neither renew nor publish over its successor.
        #expect(await sharings[1].acquireLease("kapso:abc") == .heldByAnother)
        #expect(try await replicas.harnesses[0].client.send(["PEXPIRE", "t:ix:kapso:abc:lease", "1"]) == .integer(1))
        try await Task.sleep(for: .milliseconds(20))
        // The successor's lease is long: a loaded machine must not let it lapse within the test.
        let successor = Self.sharing(replicas.harnesses[1], lease: .seconds(60))
        guard case .acquired(let second) = await successor.acquireLease("kapso:abc") else {
            Issue.record("the lapsed lease was not taken over")
            await replicas.shutdown()
            return
        }
        #expect(second.token > first.token)
        #expect(await sharings[2].renewLease(first) == false)
        #expect(await sharings[2].publish("kapso:abc", Self.publication(1, segments: [[9]]), lease: first) == nil)
        #expect(await successor.publish("kapso:abc", Self.publication(2, segments: [[9]]), lease: second) != nil)
        #expect(await successor.renewLease(second))
        await successor.releaseLease(second)
        guard case .acquired = await sharings[0].acquireLease("kapso:abc") else {
            Issue.record("a released lease was not free")
            await replicas.shutdown()
            return
        }
        await replicas.shutdown()
    }

    @Test("A publication reaches the other replicas whole, versions grow, and unchanged segments are not written again")
    func publicationsRoundTrip() async throws {
        let server = try await RedisServer.start()
        let replicas = try await ReplicaSet.make(count: 2, url: server.url(), prefix: "t:")
        let publisher = Self.sharing(replicas.harnesses[0])
        let follower = Self.sharing(replicas.harnesses[1])
        #expect(await follower.latest("b3os:id", newerThan: 0) == nil)

        guard case .acquired(let lease) = await publisher.acquireLease("b3os:id") else {
            Issue.record("no lease")
            await replicas.shutdown()
            return
        }
        let segments: [[UInt8]] = [Array(repeating: 1, count: 300_000), [2, 2], []]
        let first = try #require(await publisher.publish("b3os:id", Self.publication(7, segments: segments), lease: lease))
        let read = try #require(await follower.latest("b3os:id", newerThan: 0))
        #expect(read.version == first && read.header == [1, 7] && read.segments == segments)
        #expect(read.refreshedAtUnixSeconds == 1_790_000_000)
        #expect(read.ageNanoseconds >= 2_000_000_000 && read.ageNanoseconds < 60_000_000_000)
        #expect(await follower.latest("b3os:id", newerThan: first) == nil, "nothing newer than what is held")

        // The second publication writes only its new segment: the big one is there already.
        let written = try await replicas.harnesses[1].client.send(["INFO", "commandstats"]).text ?? ""
        let setsBefore = Self.calls(of: "set", in: written)
        let changed = [segments[0], [3, 3, 3]]
        let second = try #require(await publisher.publish("b3os:id", Self.publication(8, segments: changed), lease: lease))
        #expect(second > first)
        let setsAfter = Self.calls(of: "set", in: try await replicas.harnesses[1].client.send(["INFO", "commandstats"]).text ?? "")
        #expect(setsAfter - setsBefore == 1)
        #expect(try #require(await follower.latest("b3os:id", newerThan: first)).segments == changed)

        // A segment altered in Redis does not match its digest: the publication is not adopted.
        let keys = try await replicas.harnesses[1].client.send(["KEYS", "t:ix:b3os:id:seg:*"])
        guard case .array(let names) = keys, !names.isEmpty else {
            Issue.record("no segment keys")
            await replicas.shutdown()
            return
        }
        for name in names.compactMap(\.text) {
            #expect(try await replicas.harnesses[1].client.send(["SET", name, "tampered", "KEEPTTL"]) == .status("OK"))
        }
        #expect(await follower.latest("b3os:id", newerThan: 0) == nil)
        // Every key the sharing wrote expires.
        guard case .array(let all) = try await replicas.harnesses[1].client.send(["KEYS", "t:ix:*"]) else { return }
        for key in all.compactMap(\.text) {
            let ttl = try await replicas.harnesses[1].client.send(["PTTL", key])
            #expect(ttl != .integer(-1), "\(key) has no TTL")
        }
        await replicas.shutdown()
    }

    @Test("Versions keep growing across a Redis restart that lost them, so replicas holding older ones adopt the next")
    func versionsSurviveARestart() async throws {
        let server = try await RedisServer.start()
        let replicas = try await ReplicaSet.make(count: 1, url: server.url(), prefix: "t:", commandTimeout: .seconds(2))
        let sharing = Self.sharing(replicas.harnesses[0])
        guard case .acquired(let lease) = await sharing.acquireLease("k") else { Issue.record("no lease"); return }
        let before = try #require(await sharing.publish("k", Self.publication(1, segments: [[1]]), lease: lease))
        try await server.restart()
        let after = try await eventually { () async throws -> UInt64 in
            guard case .acquired(let lease) = await sharing.acquireLease("k"),
                  let version = await sharing.publish("k", Self.publication(2, segments: [[2]]), lease: lease)
            else { throw RedisError.timeout }
            return version
        }
        #expect(after > before)
        #expect(await sharing.latest("k", newerThan: before)?.header == [1, 2])
        await replicas.shutdown()
    }

    @Test("Without Redis, a lease is unavailable (the replica syncs alone) and nothing is read")
    func unavailableStore() async throws {
        let server = try await RedisServer.start()
        let replicas = try await ReplicaSet.make(count: 1, url: server.url(), prefix: "t:", commandTimeout: .milliseconds(200))
        let sharing = Self.sharing(replicas.harnesses[0])
        await server.kill()
        #expect(await sharing.acquireLease("k") == .unavailable)
        #expect(await sharing.latest("k", newerThan: 0) == nil)
        await replicas.shutdown()
    }

    static func calls(of command: String, in info: String) -> Int {
        for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix("cmdstat_\(command):calls=") {
            return Int(line.dropFirst("cmdstat_\(command):calls=".count).prefix { $0.isNumber }) ?? 0
        }
        return 0
    }
}
