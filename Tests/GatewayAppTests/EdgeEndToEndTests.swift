import GatewayConfig
import GatewayHTTP
import GatewayTestSupport
import Testing

/// The gateway as `serve` assembles it: bodies refused before authentication, heads within 4 KiB,
/// and the unauthenticated budget following reloads.
@Suite struct EdgeEndToEndTests {
    static func exchange(_ harness: GatewayHarness, _ request: String) async throws -> [UInt8] {
        let client = try RawClient(port: harness.runtime.port)
        try await client.send(request)
        let bytes = await client.readUntilClose().bytes
        client.shutdownWrite()
        return bytes
    }

    @Test func aRequestWithABodyGets413BeforeAuthenticationAndNo100Continue() async throws {
        let harness = try await GatewayHarness()
        defer { Task { await harness.stop() } }
        let bytes = try await Self.exchange(harness,
            "POST /executions HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        #expect(TestResponse.parseAll(bytes).map(\.status) == [413])
    }

    @Test func aWorstCaseCursorKeepsTheHeadWithinNginxsDefaultBuffer() async throws {
        let harness = try await GatewayHarness()
        defer { Task { await harness.stop() } }
        // Two terms that match (ids contain digits) and 8 of 100 control characters that do not
        // (10 terms of at most 100 characters are allowed): each is 6 bytes once JSON-escaped, so
        // the cursor runs to some 6 KB.
        let filler = (0..<8).map { "q=" + String(repeating: "%01", count: 98) + "\($0 + 10)" }
        let target = "/executions?limit=1&q=1&q=2&" + filler.joined(separator: "&")
        let bytes = try await Self.exchange(harness,
            "GET \(target) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(GatewayHarness.webKey)\r\nConnection: close\r\n\r\n")
        let text = String(decoding: bytes, as: UTF8.self)
        let head = (text.components(separatedBy: "\r\n\r\n").first ?? "") + "\r\n\r\n"
        let response = try #require(TestResponse.parseAll(bytes).first)
        #expect(response.status == 200)
        let cursor = try #require(GatewayHarness.Answer(status: 200, headers: [:], body: response.body).nextCursor)
        #expect(cursor.utf8.count > 4096, "the cursor is large enough to matter: \(cursor.utf8.count) bytes")
        #expect(head.utf8.count <= 4096)
        #expect(!head.contains("\r\nLink:"))
    }

    @Test func theUnauthenticatedBudgetFollowsReloads() async throws {
        let harness = try await GatewayHarness { $0.rateLimit.unauthenticated = ClientRateLimit(requestsPerSecond: 0.001, burst: 100) }
        defer { Task { await harness.stop() } }
        #expect(try await harness.get("/executions", key: nil).status == 401)
        var reloaded = harness.runtime.configuration
        reloaded.rateLimit.unauthenticated = ClientRateLimit(requestsPerSecond: 0.001, burst: 1)
        harness.runtime.applyReloaded(reloaded, previous: harness.runtime.configuration)
        let refused = try await harness.get("/executions", key: nil)
        #expect(refused.status == 429)
        #expect(refused.headers["RateLimit-Limit"] == "1")
        #expect(refused.headers["Retry-After"] != nil)
    }
}
