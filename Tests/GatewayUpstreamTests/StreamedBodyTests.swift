#if canImport(Glibc)
import Glibc
#endif
import GatewayHTTP
import GatewayTestSupport
@testable import GatewayUpstream
import Synchronization
import Testing

/// Streamed 2xx bodies: libcurl against a real socket whose answer is written piece by piece, and
/// `UpstreamEndpoint.stream` with its policy around it.
@Suite struct StreamedBodyTests {
    /// `count` bytes of a pattern a test can check at any offset without holding the whole.
    static func patternByte(at offset: Int) -> UInt8 { UInt8(truncatingIfNeeded: offset &* 31 &+ offset / 251) }

    static func pattern(from start: Int, count: Int) -> [UInt8] { (start..<(start + count)).map(patternByte(at:)) }

    /// Writes `total` pattern bytes in pieces of `piece`.
    static func patternAnswer(total: Int, piece: Int = 16 * 1024, framing: ScriptedSocketServer.Framing? = nil) -> ScriptedSocketServer.Answer {
        ScriptedSocketServer.Answer(headers: [], framing: framing ?? .contentLength(total)) { writer in
            var offset = 0
            while offset < total {
                let count = min(piece, total - offset)
                guard writer.write(pattern(from: offset, count: count)) else { return }
                offset += count
            }
        }
    }

    /// Checks each chunk against the pattern as it arrives; holds only the count.
    final class PatternCheck: Sendable {
        private let state = Mutex<(received: Int, mismatches: Int, chunks: Int)>((0, 0, 0))

        var received: Int { state.withLock { $0.received } }
        var mismatches: Int { state.withLock { $0.mismatches } }
        var chunks: Int { state.withLock { $0.chunks } }

        func check(_ chunk: [UInt8]) {
            state.withLock { state in
                if chunk != StreamedBodyTests.pattern(from: state.received, count: chunk.count) { state.mismatches += 1 }
                state.received += chunk.count
                state.chunks += 1
            }
        }
    }

    func withServer<T>(
        _ handler: @escaping @Sendable (ScriptedSocketServer.Request) -> ScriptedSocketServer.Answer,
        _ body: (ScriptedSocketServer, CurlHTTPClient) async throws -> T
    ) async throws -> T {
        let server = try ScriptedSocketServer(handler)
        let client = try CurlHTTPClient()
        defer {
            client.shutdown()
            server.stop()
        }
        return try await body(server, client)
    }

    /// A generous deadline: a retry is only tried within it, and a loaded machine is slow.
    func endpoint(_ client: CurlHTTPClient, maxRetries: Int = 2) -> UpstreamEndpoint {
        UpstreamEndpoint(
            name: "streamed", policy: fastPolicy(maxRetries: maxRetries, timeout: 120 * second), transport: client, jitter: { _ in 0 })
    }

    // MARK: - The transport

    @Test func aSlowConsumerPausesTheTransferWhichGoesOnWhenItCatchesUp() async throws {
        let total = 2 * 1024 * 1024
        try await withServer({ _ in Self.patternAnswer(total: total) }) { server, client in
            let stream = UpstreamBodyStream(bufferLimitBytes: 64 * 1024)
            let check = PatternCheck()
            let consumer = Task {
                var chunksTaken = 0
                var pausesSeen = 0
                while let chunk = await stream.next() {
                    check.check(chunk)
                    chunksTaken += 1
                    // The first chunks are held until the transfer has paused again behind them.
                    if chunksTaken <= 5 {
                        let target = pausesSeen + 1
                        pausesSeen = target
                        #expect(await waitUntil { stream.statistics.producerPauses >= target })
                    }
                }
            }
            let result: Result<UpstreamResponse, UpstreamError>
            do throws(UpstreamError) {
                // A deadline no load reaches: the test is about pausing, and it holds the transfer on purpose.
                result = .success(try await client.execute(
                    UpstreamRequest(url: server.baseURL + "/big", timeoutNanoseconds: 600 * second, maxResponseBodyBytes: total),
                    streamingSuccessBodyInto: stream))
            } catch {
                result = .failure(error)
            }
            stream.end(transferFailed: (try? result.get()) == nil)
            await consumer.value
            let response = try result.get()
            #expect(response.status == 200)
            #expect(response.body.isEmpty)
            #expect(check.received == total)
            #expect(check.mismatches == 0)
            let statistics = stream.statistics
            #expect(statistics.producerPauses >= 5)
            #expect(statistics.bytesHandedOut == total)
            // The client never held more than one buffer of the answer.
            #expect(statistics.peakBufferedBytes <= 64 * 1024)
            #expect(client.clientStatistics().inFlight == 0)
        }
    }

    @Test func anErrorStatusIsReadWholeWithinTheClientsLimitNotTheStreamedOne() async throws {
        try await withServer({ _ in
            ScriptedSocketServer.Answer.whole(status: 500, #"{"error":"boom"}"#)
        }) { server, client in
            let stream = UpstreamBodyStream()
            let response = try await client.execute(
                UpstreamRequest(url: server.baseURL + "/fails", maxResponseBodyBytes: 1 << 30), streamingSuccessBodyInto: stream)
            stream.end(transferFailed: false)
            #expect(response.status == 500)
            #expect(response.body == Array(#"{"error":"boom"}"#.utf8))
            #expect(stream.statistics.bytesHandedOut == 0)
            #expect(await stream.next() == nil)
        }
        let bigError = 2 * 1024 * 1024
        let server = try ScriptedSocketServer { _ in
            var answer = Self.patternAnswer(total: bigError)
            answer.status = 503
            return answer
        }
        defer { server.stop() }
        let client = try CurlHTTPClient(configuration: CurlHTTPClientConfiguration(maxResponseBodyBytes: 64 * 1024))
        defer { client.shutdown() }
        await #expect(throws: UpstreamError.bodyTooLarge(limitBytes: 64 * 1024)) {
            try await client.execute(
                UpstreamRequest(url: server.baseURL + "/fails", maxResponseBodyBytes: 1 << 30), streamingSuccessBodyInto: UpstreamBodyStream())
        }
    }

    // MARK: - The endpoint

    @Test func theEndpointHandsTheBodyOverChunkByChunkAndReportsItsPassage() async throws {
        let total = 3 * 1024 * 1024 + 17
        try await withServer({ _ in Self.patternAnswer(total: total, piece: 1000, framing: .chunked(terminated: true)) }) { server, client in
            let check = PatternCheck()
            let streamed = try await endpoint(client).stream(
                UpstreamRequest(url: server.baseURL + "/list", maxResponseBodyBytes: total), options: makeOptions()
            ) { chunk throws(UpstreamError) in check.check(chunk) }
            #expect(streamed.status == 200)
            #expect(streamed.body.bytesHandedOut == total)
            #expect(check.received == total)
            #expect(check.mismatches == 0)
            #expect(streamed.body.peakBufferedBytes <= UpstreamBodyStream.defaultBufferLimitBytes)
        }
    }

    @Test func aBodyPastTheStreamedLimitFailsNamingTheLimitWithOrWithoutContentLength() async throws {
        let limit = 100_000
        for framing in [ScriptedSocketServer.Framing.chunked(terminated: true), .contentLength(limit + 1)] {
            try await withServer({ _ in Self.patternAnswer(total: limit + 1, framing: framing) }) { server, client in
                await #expect(throws: UpstreamError.bodyTooLarge(limitBytes: limit)) {
                    try await endpoint(client).stream(
                        UpstreamRequest(url: server.baseURL + "/huge", maxResponseBodyBytes: limit), options: makeOptions()
                    ) { _ throws(UpstreamError) in }
                }
                // The limit is the upstream's doing, never retried.
                #expect(server.requests == 1)
            }
        }
        // Exactly at the limit is fine.
        try await withServer({ _ in Self.patternAnswer(total: limit, framing: .chunked(terminated: true)) }) { server, client in
            let streamed = try await endpoint(client).stream(
                UpstreamRequest(url: server.baseURL + "/huge", maxResponseBodyBytes: limit), options: makeOptions()
            ) { _ throws(UpstreamError) in }
            #expect(streamed.body.bytesHandedOut == limit)
        }
    }

    @Test func aTruncatedBodyFailsAndIsNotRetriedOnceBytesWereHandedOut() async throws {
        for framing in [ScriptedSocketServer.Framing.contentLength(500_000), .chunked(terminated: false)] {
            try await withServer({ _ in Self.patternAnswer(total: 200_000, framing: framing) }) { server, client in
                let check = PatternCheck()
                await #expect {
                    try await endpoint(client, maxRetries: 3).stream(
                        UpstreamRequest(url: server.baseURL + "/cut", maxResponseBodyBytes: 1_000_000), options: makeOptions()
                    ) { chunk throws(UpstreamError) in check.check(chunk) }
                } throws: { error in
                    guard case .connection = error as? UpstreamError else { return false }
                    return true
                }
                #expect(check.received > 0)
                #expect(server.requests == 1)
            }
        }
    }

    @Test func anAttemptThatFailsBeforeAnyBodyByteIsRetried() async throws {
        let total = 300_000
        try await withServer({ request in
            // The first answer ends right after its head: nothing was handed out, so a retry is safe.
            request.index == 0
                ? ScriptedSocketServer.Answer(headers: [], framing: .contentLength(total)) { _ in }
                : Self.patternAnswer(total: total)
        }) { server, client in
            let check = PatternCheck()
            let streamed = try await endpoint(client, maxRetries: 2).stream(
                UpstreamRequest(url: server.baseURL + "/flaky", maxResponseBodyBytes: total), options: makeOptions()
            ) { chunk throws(UpstreamError) in check.check(chunk) }
            #expect(streamed.body.bytesHandedOut == total)
            #expect(check.received == total)
            #expect(check.mismatches == 0)
            #expect(server.requests == 2)
        }
    }

    @Test func aConsumerErrorAbortsTheTransferAndIsTheCallsError() async throws {
        let total = 16 * 1024 * 1024
        try await withServer({ _ in Self.patternAnswer(total: total) }) { server, client in
            let endpoint = endpoint(client)
            await #expect(throws: UpstreamError.malformedResponse(reason: "not what was expected")) {
                try await endpoint.stream(
                    UpstreamRequest(url: server.baseURL + "/bad", maxResponseBodyBytes: total), options: makeOptions()
                ) { _ throws(UpstreamError) in throw .malformedResponse(reason: "not what was expected") }
            }
            // The server gave up writing long before the end: the client went away.
            #expect(await waitUntil { server.answersFinished == 1 })
            #expect(client.clientStatistics().inFlight == 0)
            #expect(endpoint.statistics().inFlight == 0)
            #expect(server.requests == 1)
        }
    }

    @Test func anAnswerItsConsumerCannotReadDoesNotCountAgainstTheBreaker() async throws {
        try await withServer({ _ in Self.patternAnswer(total: 100_000) }) { server, client in
            var policy = fastPolicy(maxRetries: 0, timeout: 120 * second)
            policy.circuitBreaker = CircuitBreakerPolicy(failureThreshold: 2, openDuration: .seconds(60))
            let endpoint = UpstreamEndpoint(name: "unreadable", policy: policy, transport: client)
            for _ in 0..<3 {
                await #expect(throws: UpstreamError.malformedResponse(reason: "unreadable")) {
                    try await endpoint.stream(
                        UpstreamRequest(url: server.baseURL + "/list", maxResponseBodyBytes: 100_000), options: makeOptions()
                    ) { _ throws(UpstreamError) in throw .malformedResponse(reason: "unreadable") }
                }
            }
            // As when a whole answer cannot be decoded: the upstream is up, so the circuit stays closed.
            #expect(endpoint.statistics().circuitState == .closed)
            #expect(server.requests == 3)
        }
    }

    @Test func a429WithRetryAfterPausesTheCredentialAndNothingIsHandedOut() async throws {
        try await withServer({ _ in
            ScriptedSocketServer.Answer.whole(status: 429, headers: [("Retry-After", "7")], #"{"error":"slow down"}"#)
        }) { server, client in
            let endpoint = endpoint(client)
            let consumed = Mutex(0)
            let request = UpstreamRequest(url: server.baseURL + "/limited", maxResponseBodyBytes: 1 << 20)
            await #expect {
                try await endpoint.stream(request, options: makeOptions()) { chunk throws(UpstreamError) in
                    consumed.withLock { $0 += chunk.count }
                }
            } throws: { error in
                guard case .httpStatus(429, _, 7) = error as? UpstreamError else { return false }
                return true
            }
            // The pause holds for the credential: the next call is refused without reaching the server.
            await #expect {
                try await endpoint.stream(request, options: makeOptions()) { _ throws(UpstreamError) in }
            } throws: { error in
                guard case .paused = error as? UpstreamError else { return false }
                return true
            }
            #expect(server.requests == 1)
            #expect(consumed.withLock { $0 } == 0)
            #expect(endpoint.pausedUntil(credentialKey: "cred-a") != nil)
        }
    }

    @Test func pacingAndTheConcurrencySlotApplyToStreamedCalls() async throws {
        let clock = TestClock()
        let transport = ScriptedTransport { _, _ throws(UpstreamError) in
            UpstreamResponse(status: 200, body: Array(#"{"executions":[]}"#.utf8))
        }
        var policy = fastPolicy(requestsPerSecond: 1)
        policy.maxConcurrency = 1
        let endpoint = UpstreamEndpoint(name: "paced", policy: policy, transport: transport, clock: clock, jitter: { _ in 0 })
        var received: [[UInt8]] = []
        for _ in 0..<3 {
            let chunks = Mutex<[[UInt8]]>([])
            let streamed = try await endpoint.stream(UpstreamRequest(url: "http://upstream.test/list"), options: makeOptions()) {
                chunk throws(UpstreamError) in chunks.withLock { $0.append(chunk) }
            }
            #expect(streamed.body.bytesHandedOut == 17)
            received += chunks.withLock { $0 }
        }
        #expect(received == Array(repeating: Array(#"{"executions":[]}"#.utf8), count: 3))
        // One call a second: the second and third waited for their pacing slots.
        #expect(clock.sleepDeadlines.count == 2)
        #expect(endpoint.statistics().inFlight == 0)
    }

    /// A streamed answer may take longer than the call's timeout as long as bytes keep coming
    /// (a 100 MB list is slower than a page), and fails once they stop for that long.
    @Test func theCallTimeoutBoundsAStallNotAFlowingAnswer() async throws {
        let total = 12 * 1024
        try await withServer({ request in
            let stalls = request.head.contains("/stalls ")
            return ScriptedSocketServer.Answer(headers: [], framing: .contentLength(total)) { writer in
                for piece in 0..<12 {
                    guard writer.write(Self.pattern(from: piece * 1024, count: 1024)) else { return }
                    // Flowing: 12 pieces 300 ms apart, 3.3 s in all. Stalling: 15 s after the first.
                    usleep(stalls ? (piece == 0 ? 15_000_000 : 0) : 300_000)
                }
            }
        }) { server, client in
            let endpoint = UpstreamEndpoint(name: "slow", policy: fastPolicy(maxRetries: 0, timeout: 2 * second), transport: client)
            let check = PatternCheck()
            let flowing = try await endpoint.stream(
                UpstreamRequest(url: server.baseURL + "/flows", maxResponseBodyBytes: total), options: makeOptions()
            ) { chunk throws(UpstreamError) in check.check(chunk) }
            #expect(flowing.status == 200)
            #expect(check.received == total && check.mismatches == 0)

            let started = ContinuousClock.now
            await #expect(throws: UpstreamError.timeout) {
                try await endpoint.stream(
                    UpstreamRequest(url: server.baseURL + "/stalls", maxResponseBodyBytes: total), options: makeOptions()
                ) { _ throws(UpstreamError) in }
            }
            // Had the stall not ended the call, the answer would have completed when the stall did
            // (15 s); libcurl measures speed over its last few seconds, so a stall shows a few seconds
            // late, and a loaded machine adds more (a CI run took 11.6 s): before the stall's end is
            // what this checks, not how soon.
            #expect(ContinuousClock.now - started < .seconds(15), "failed while the upstream still stalled")
        }
    }

}
