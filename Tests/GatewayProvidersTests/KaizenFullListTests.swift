import GatewayJSON
@testable import GatewayProviders
import GatewayTestSupport
import GatewayUpstream
import ProviderSimulator
import Synchronization
import Testing

/// `KaizenProvider.fullList`: the whole organisation read as a stream, through libcurl and the
/// endpoint's policy, from a real socket.
@Suite struct KaizenFullListTests {
    static let key = DemoCredential.kaizen

    /// One list item in Kaizen's shape, padded with parameters to about `size` bytes.
    static func record(_ index: Int, size: Int = 1_100) -> String {
        let seconds = 1_700_000_000 - index * 7
        let startTime = Timestamp(nanosecondsSinceEpoch: Int64(seconds) * 1_000_000_000).rfc3339
        let statuses = ["Completed", "Failed", "InProgress", "Enqueued", "Paused"]
        let status = statuses[index % statuses.count]
        let finished = status == "Completed" || status == "Failed"
        let endTime = Timestamp(nanosecondsSinceEpoch: Int64(seconds + 5) * 1_000_000_000).rfc3339
        var text = #"{"id":"exe_\#(index)","name":"Run \#(index)","status":"\#(status)","startTime":"\#(startTime)","#
        if finished { text += #""endTime":"\#(endTime)","durationMs":5000,"# }
        text += #""workflow":{"id":"wf_\#(index % 13)","name":"Workflow \#(index % 13)"},"isTest":\#(index % 2 == 0),"attempts":1,"#
        let padding = String(repeating: "x", count: max(0, size - text.utf8.count - 40))
        text += #""params":{"customer":"cust_\#(index)","note":"\#(padding)"}}"#
        return text
    }

    /// Kaizen's list answer of `count` generated records, generated as it is written (`piece(n)`
    /// bytes in the n-th write) and never held whole; with `cutAfterRecords` it stops 100 bytes
    /// into that record.
    static func listAnswer(
        count: Int, piece: @escaping @Sendable (Int) -> Int = { _ in 64 * 1024 }, terminated: Bool = true,
        cutAfterRecords: Int? = nil
    ) -> ScriptedSocketServer.Answer {
        ScriptedSocketServer.Answer(framing: .chunked(terminated: terminated)) { writer in
            var pending: [UInt8] = Array(#"{"executions":["#.utf8)
            var writes = 0
            func flush(all: Bool) -> Bool {
                while !pending.isEmpty {
                    let size = piece(writes)
                    if !all && pending.count < size { return true }
                    writes += 1
                    guard writer.write(Array(pending.prefix(size))) else { return false }
                    pending.removeFirst(min(size, pending.count))
                }
                return true
            }
            for index in 0..<count {
                if let cutAfterRecords, index == cutAfterRecords {
                    pending += Array(("," + record(index)).utf8.prefix(100))
                    _ = flush(all: true)
                    return
                }
                if index > 0 { pending.append(UInt8(ascii: ",")) }
                pending += Array(record(index).utf8)
                guard flush(all: false) else { return }
            }
            pending += Array(#"],"total":\#(count)}"#.utf8)
            _ = flush(all: true)
        }
    }

    /// An allowance of 10 calls, and the count of what its budget was charged.
    static func countingAllowance() -> (UpstreamCallAllowance, UpstreamCallCounter) {
        let charges = UpstreamCallCounter()
        let allowance = UpstreamCallAllowance(UpstreamCallBudget(maxCallsPerRequest: 10) {
            charges.increment()
            return nil
        })
        return (allowance, charges)
    }

    func kaizen(
        _ harness: SimulatorHarness, base: String, maxListAnswerBytes: Int? = nil, timeoutMilliseconds: UInt64 = 120_000
    ) throws -> KaizenProvider {
        let provider = try ProviderFactory.make(
            name: "kz", type: .kaizen, baseURL: base, maxListAnswerBytes: maxListAnswerBytes,
            endpoint: harness.endpoint("kz", policy: SimulatorHarness.policy(timeoutMilliseconds: timeoutMilliseconds)),
            cache: harness.cache, cachePolicy: harness.cachePolicy, logger: SimulatorHarness.quietLogger("test.providers"))
        return try #require(provider as? KaizenProvider)
    }

    @discardableResult
    func withScriptedKaizen<T>(
        maxListAnswerBytes: Int? = nil,
        _ handler: @escaping @Sendable (ScriptedSocketServer.Request) -> ScriptedSocketServer.Answer,
        _ body: (KaizenProvider, ScriptedSocketServer, SimulatorHarness) async throws -> T
    ) async throws -> T {
        let server = try ScriptedSocketServer(handler)
        defer { server.stop() }
        return try await withSimulator { harness in
            try await body(try kaizen(harness, base: server.baseURL, maxListAnswerBytes: maxListAnswerBytes), server, harness)
        }
    }

    // MARK: - Through the simulator

    @Test func fullListReturnsEveryExecutionOfTheSimulatedOrganisation() async throws {
        try await withSimulator(executions: 1_000) { harness in
            // A generous timeout: the debug-built simulator renders a 1 MB answer slowly under load.
            let provider = try kaizen(harness, base: harness.baseURL(.kaizen))
            let raw = await KaizenProviderTests.rawList(harness)
            #expect(raw.count == 1_000)
            let (allowance, charges) = Self.countingAllowance()
            var call = harness.call(Self.key)
            call.allowance = allowance
            let counter = UpstreamCallCounter()
            call.upstreamCalls = counter
            let list = try await provider.fullList(call: call)
            #expect(list.executions.count == 1_000)
            #expect(list.skippedRecords == 0)
            #expect(list.executions.map(\.providerExecutionID) == raw.compactMap { $0.objectValue?["id"]?.stringValue })
            #expect(list.executions.allSatisfy { $0.raw == .null && $0.sourceOffset == nil && $0.provider == "kz" })
            // Mapped as a page maps them, the raw record aside.
            let mapped = try raw.map { item throws(ProviderError) in
                var execution = try KaizenProvider.execution(from: item, provider: "kz")
                execution.raw = .null
                return execution
            }
            #expect(list.executions == mapped)
            #expect(list.answerBytes > 1_000 * 500)
            // One call, charged once, counted once; nothing cached, so a second read calls again.
            #expect(allowance.callsTaken == 1)
            #expect(charges.value == 1)
            #expect(counter.value == 1)
            #expect(provider.fetcher.statistics().upstreamCalls[.success] == 1)
            #expect(harness.log.all.filter { $0.target == "/executions/list" }.count == 1)
            #expect(harness.log.last.map { String(decoding: $0.body, as: UTF8.self) } == "{}")
            // Handed over one at a time instead (what an index builds from): the same records, in order.
            let received = Mutex<[UnifiedExecution]>([])
            let count = try await provider.fullList(call: harness.call(Self.key)) { execution in received.withLock { $0.append(execution) } }
            #expect(count == 1_000 && received.withLock { $0 } == list.executions)
            #expect(harness.log.all.filter { $0.target == "/executions/list" }.count == 2)
        }
    }

    // MARK: - Scripted answers

    @Test func anAnswerWrittenInTinyPiecesIsReadWhole() async throws {
        try await withScriptedKaizen({ _ in Self.listAnswer(count: 60, piece: { 1 + $0 % 7 }) }) { provider, _, harness in
            let list = try await provider.fullList(call: harness.call(Self.key))
            #expect(list.executions.map(\.providerExecutionID) == (0..<60).map { "exe_\($0)" })
            #expect(list.executions[1].status == .failed)
            #expect(list.executions[2].endedAt == nil)
            #expect(list.skippedRecords == 0)
        }
    }

    @Test func aLargeAnswerIsReadWithoutEverBeingHeld() async throws {
        let count = 50_000
        try await withScriptedKaizen({ _ in Self.listAnswer(count: count) }) { provider, server, harness in
            let list = try await provider.fullList(call: harness.call(Self.key))
            #expect(list.executions.count == count)
            #expect(list.executions.first?.providerExecutionID == "exe_0")
            #expect(list.executions.last?.providerExecutionID == "exe_\(count - 1)")
            #expect(list.answerBytes > 50_000_000)
            // About 55 MB went through a buffer that never held more than a quarter of a mebibyte.
            #expect(list.peakBufferedBytes <= UpstreamBodyStream.defaultBufferLimitBytes)
            #expect(list.peakBufferedBytes * 100 < list.answerBytes)
            #expect(server.requests == 1)
        }
    }

    @Test func unreadableRecordsAreSkippedAndCounted() async throws {
        let answer = #"{"executions":[\#(Self.record(0)),{"id":"broken"},\#(Self.record(1)),42],"total":4}"#
        try await withScriptedKaizen({ _ in .whole(answer) }) { provider, _, harness in
            let list = try await provider.fullList(call: harness.call(Self.key))
            #expect(list.executions.map(\.providerExecutionID) == ["exe_0", "exe_1"])
            #expect(list.skippedRecords == 2)
            #expect(list.answerBytes == answer.utf8.count)
        }
    }

    @Test func aTruncatedAnswerIsAnErrorNeverAShorterList() async throws {
        // The transfer itself is cut.
        try await withScriptedKaizen({ _ in Self.listAnswer(count: 3_000, terminated: false, cutAfterRecords: 2_000) }) {
            provider, _, harness in
            await #expect {
                try await provider.fullList(call: harness.call(Self.key))
            } throws: { error in
                guard case .unreachable = error as? ProviderError else { return false }
                return true
            }
        }
        // The transfer ends properly but the document does not.
        try await withScriptedKaizen({ _ in Self.listAnswer(count: 3_000, cutAfterRecords: 2_000) }) { provider, _, harness in
            await #expect {
                try await provider.fullList(call: harness.call(Self.key))
            } throws: { error in
                guard case .malformedResponse(let reason) = error as? ProviderError else { return false }
                return reason.contains("ended early")
            }
            #expect(provider.fetcher.statistics().upstreamCalls[.malformedResponse] == 1)
            #expect(provider.fetcher.statistics().upstreamCalls[.success] == 0)
        }
    }

    @Test(arguments: [
        #"{"executions":[{"id":"a","startTime":"2025-01-01T00:00:00Z"} {"id":"b"}]}"#,
        #"{"executions":[tru]}"#,
        #"{"executions":5}"#,
        #"{"total":0}"#,
        #"[]"#,
        #"{"executions":[]}garbage"#,
    ])
    func aMalformedAnswerIsAnError(answer: String) async throws {
        try await withScriptedKaizen({ _ in .whole(answer) }) { provider, _, harness in
            await #expect {
                try await provider.fullList(call: harness.call(Self.key))
            } throws: { error in
                guard case .malformedResponse = error as? ProviderError else { return false }
                return true
            }
        }
    }

    @Test func anOversizeAnswerOrRecordIsAnErrorNamingTheLimit() async throws {
        try await withScriptedKaizen(maxListAnswerBytes: 20_000, { _ in Self.listAnswer(count: 100) }) { provider, _, harness in
            await #expect(throws: ProviderError.malformedResponse(reason: "the answer is larger than 20000 bytes")) {
                try await provider.fullList(call: harness.call(Self.key))
            }
        }
        let hugeRecord = Self.record(1, size: KaizenProvider.maxListRecordBytes + 10)
        try await withScriptedKaizen({ _ in .whole(#"{"executions":[\#(Self.record(0)),\#(hugeRecord)]}"#) }) { provider, _, harness in
            await #expect {
                try await provider.fullList(call: harness.call(Self.key))
            } throws: { error in
                guard case .malformedResponse(let reason) = error as? ProviderError else { return false }
                return reason.contains("larger than \(KaizenProvider.maxListRecordBytes) bytes")
            }
        }
    }

    @Test func a429WithRetryAfterPausesTheCredentialAndLaterReadsCostNothing() async throws {
        try await withScriptedKaizen({ _ in
            .whole(status: 429, headers: [("Retry-After", "30")], #"{"error":"rate limited"}"#)
        }) { provider, server, harness in
            let (allowance, charges) = Self.countingAllowance()
            var call = harness.call(Self.key)
            call.allowance = allowance
            await #expect(throws: ProviderError.paused(retryAfterSeconds: 30)) { try await provider.fullList(call: call) }
            await #expect(throws: ProviderError.paused(retryAfterSeconds: 30)) { try await provider.fullList(call: call) }
            #expect(server.requests == 1)
            #expect(charges.value == 1)
            #expect(provider.fetcher.statistics().pausedRefusals == 1)
            #expect(provider.fetcher.statistics().upstreamCalls[.rateLimited] == 1)
        }
    }

    @Test func maxListAnswerBytesAppliesToKaizenOnly() throws {
        try withSimulatorHarness { harness in
            #expect(throws: ProviderConfigurationError.settingNotApplicable(provider: "b", setting: "maxListAnswerBytes", type: "b3os")) {
                try ProviderFactory.make(
                    name: "b", type: .b3os, baseURL: "http://127.0.0.1:1", maxListAnswerBytes: 1_000,
                    endpoint: harness.endpoint("b"), cache: harness.cache, cachePolicy: harness.cachePolicy)
            }
            let kaizen = try kaizen(harness, base: "http://127.0.0.1:1", maxListAnswerBytes: 12_345)
            #expect(kaizen.maxListAnswerBytes == 12_345)
            #expect(try self.kaizen(harness, base: "http://127.0.0.1:1").maxListAnswerBytes == 1_073_741_824)
        }
    }

    func withSimulatorHarness(_ body: (SimulatorHarness) throws -> Void) throws {
        let harness = try SimulatorHarness()
        defer { harness.client.shutdown() }
        try body(harness)
    }
}
