import GatewayRedis
import Testing

@Suite struct RedisEndpointTests {
    @Test func parsesTheFullForm() throws {
        let endpoint = try RedisEndpoint(url: "redis://:s3cret@10.0.0.5:6380/2")
        #expect(endpoint == RedisEndpoint(host: "10.0.0.5", port: 6380, database: 2, username: nil, password: "s3cret"))
    }

    @Test func defaultsPortAndDatabase() throws {
        #expect(try RedisEndpoint(url: "redis://localhost") == RedisEndpoint(host: "localhost", port: 6379, database: 0))
        #expect(try RedisEndpoint(url: "REDIS://cache.internal:7000/") == RedisEndpoint(host: "cache.internal", port: 7000, database: 0))
    }

    @Test func acceptsAnACLUserAndPercentEncodedOrRawSpecialCharacters() throws {
        let encoded = try RedisEndpoint(url: "redis://gateway:p%40ss%3Aword@127.0.0.1/1")
        #expect(encoded.username == "gateway")
        #expect(encoded.password == "p@ss:word")
        // The user information ends at the last '@', so an unencoded '@', '/' or '?' stays in the password.
        let raw = try RedisEndpoint(url: "redis://:a@b/c?d@127.0.0.1:6379/0")
        #expect(raw.password == "a@b/c?d")
        #expect(raw.host == "127.0.0.1")
    }

    @Test func parsesBracketedIPv6() throws {
        #expect(try RedisEndpoint(url: "redis://[::1]:6390/4") == RedisEndpoint(host: "::1", port: 6390, database: 4))
    }

    @Test(arguments: [
        "", "redis://", "http://localhost:6379", "rediss://localhost:6379", "redis://:@localhost",
        "redis://password@localhost", "redis://localhost:0", "redis://localhost:65536", "redis://localhost:port",
        "redis://localhost/db", "redis://localhost/-1", "redis://localhost/1?timeout=5", "redis://localhost#x",
        "redis://:p%zzw@localhost", "redis://[::1", "redis://[zz]:1", "redis://local host", "redis://:6379",
    ])
    func rejectsInvalidURLs(_ url: String) {
        #expect(throws: RedisError.self) { try RedisEndpoint(url: url) }
    }

    @Test func neverShowsThePassword() throws {
        let secret = "hunter2-very-secret"
        let endpoint = try RedisEndpoint(url: "redis://admin:\(secret)@redis.internal:6379/3")
        #expect(endpoint.description == "redis://admin:<redacted>@redis.internal:6379/3")
        #expect(!"\(endpoint)".contains(secret))
        #expect(!String(reflecting: endpoint.description).contains(secret))
        #expect(try RedisEndpoint(url: "redis://:\(secret)@[::1]:1/0").description == "redis://:<redacted>@[::1]:1/0")
        #expect(try RedisEndpoint(url: "redis://127.0.0.1").description == "redis://127.0.0.1:6379/0")
        // Errors about the password name the part, never its text.
        do {
            _ = try RedisEndpoint(url: "redis://:\(secret)%g@localhost")
            Issue.record("expected an error")
        } catch {
            #expect(!error.description.contains(secret))
        }
    }
}

@Suite struct RedisBackoffTests {
    @Test func firstReconnectIsImmediateThenDoublesWithEqualJitterUpToTheMaximum() {
        let backoff = RedisBackoff(base: .milliseconds(10), maximum: .milliseconds(100))
        let lowest: (UInt64) -> UInt64 = { _ in 0 }
        let highest: (UInt64) -> UInt64 = { $0 }
        #expect(backoff.delayNanoseconds(afterFailures: 0, random: highest) == 0)
        #expect(backoff.delayNanoseconds(afterFailures: 1, random: highest) == 0)
        #expect(backoff.delayNanoseconds(afterFailures: 2, random: lowest) == 5_000_000)
        #expect(backoff.delayNanoseconds(afterFailures: 2, random: highest) == 10_000_000)
        #expect(backoff.delayNanoseconds(afterFailures: 3, random: highest) == 20_000_000)
        #expect(backoff.delayNanoseconds(afterFailures: 5, random: lowest) == 40_000_000)
        #expect(backoff.delayNanoseconds(afterFailures: 6, random: highest) == 100_000_000)
        #expect(backoff.delayNanoseconds(afterFailures: Int.max, random: lowest) == 50_000_000)
        // A random source that misbehaves cannot push the delay past the ceiling.
        #expect(backoff.delayNanoseconds(afterFailures: 3, random: { _ in .max }) == 20_000_000)
    }
}

@Suite struct RedisScriptTextTests {
    @Test func functionAndScriptRunTheSameBody() {
        let script = RedisScript(library: "gateway_v1", function: "gateway_incr", body: "return redis.call('INCR', keys[1])")
        #expect(script.librarySource == """
            #!lua name=gateway_v1
            redis.register_function('gateway_incr', function(keys, args)
            return redis.call('INCR', keys[1])
            end)

            """)
        #expect(script.scriptSource == "local keys, args = KEYS, ARGV\nreturn redis.call('INCR', keys[1])\n")
    }
}
