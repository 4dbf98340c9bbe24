import GatewayJSON
@testable import GatewayProviders
import Testing

/// Upstream data is input: impossible instants, durations, counts and offsets read as null (or
/// as no offset hint), never as a trap, and never spoil the other records of the answer.
@Suite struct HostileRecordTests {
    static let earliest = "1678-01-01T00:00:00Z"
    static let latest = "2262-04-01T00:00:00Z"

    static func json(_ text: String) throws -> JSONValue {
        try JSONParser.parse(text)
    }

    @Test func aSpanWiderThanInt64NanosecondsHasNoDuration() throws {
        let start = try #require(Timestamp(rfc3339: Self.earliest))
        let end = try #require(Timestamp(rfc3339: Self.latest))
        #expect(elapsedMilliseconds(from: start, to: end) == nil)
        let extremes = (Timestamp(nanosecondsSinceEpoch: .min), Timestamp(nanosecondsSinceEpoch: .max))
        #expect(elapsedMilliseconds(from: extremes.0, to: extremes.1) == nil)
        #expect(elapsedMilliseconds(from: end, to: start) == nil)
        #expect(elapsedMilliseconds(from: start, to: start) == 0)
    }

    @Test func b3osItemFrom1678To2262IsListedWithANullDurationBesideTheOthers() throws {
        let answer = try Self.json("""
            {"code": 0, "data": {"hasMore": false, "items": [
              {"id": "exec_ok", "createdAt": "2026-11-20T10:00:02Z", "startedAt": "2026-11-20T10:00:02Z",
               "finishedAt": "2026-11-20T10:00:03.5Z", "status": "workflow_succeeded"},
              {"id": "exec_hostile", "createdAt": "\(Self.earliest)", "startedAt": "\(Self.earliest)",
               "finishedAt": "\(Self.latest)", "status": "workflow_succeeded"}
            ]}}
            """)
        let window = try B3OSProvider.window(answer, offset: 0, skipped: .discarding(provider: "b3os"))
        #expect(window.executions.map(\.durationMs) == [1500, nil])
        #expect(window.executions.map(\.endedAt?.rfc3339) == ["2026-11-20T10:00:03.5Z", Self.latest])
    }

    @Test func kapsoExecutionFrom1678To2262HasANullDuration() throws {
        let answer = try Self.json("""
            {"data": [{"id": "k1", "started_at": "\(Self.earliest)", "ended_at": "\(Self.latest)", "status": "ended"},
                      {"id": "k2", "started_at": "2026-11-20T10:00:00Z", "ended_at": "2026-11-20T10:00:04Z", "status": "ended"}]}
            """)
        let page = try KapsoProvider.workflowPage(answer, listedUnderStatus: nil, skipped: .discarding(provider: "kapso"))
        #expect(page.executions.map(\.durationMs) == [nil, 4000])
        let detail = try KapsoProvider.detail(try Self.json("""
            {"data": {"id": "k1", "started_at": "\(Self.earliest)", "ended_at": "\(Self.latest)", "status": "ended"}}
            """), provider: "kapso")
        #expect(detail.execution.durationMs == nil)
    }

    @Test func kaizenWithoutDurationMsFrom1678To2262HasANullDuration() throws {
        let answer = try Self.json("""
            {"executions": [{"id": "z1", "startTime": "\(Self.earliest)", "endTime": "\(Self.latest)", "status": "Completed"}]}
            """)
        #expect(try KaizenProvider.listAnswer(answer, skipped: .discarding(provider: "kaizen")).map(\.durationMs) == [nil])
    }

    @Test func kaizenNegativeDurationAndAttemptsAreImpossibleAndReadAsMissing() throws {
        let answer = try Self.json("""
            {"executions": [
              {"id": "z1", "startTime": "2026-11-20T10:00:00Z", "endTime": "2026-11-20T10:00:02Z", "status": "Completed",
               "durationMs": -5, "attempts": -1},
              {"id": "z2", "startTime": "\(Self.earliest)", "endTime": "\(Self.latest)", "status": "Failed",
               "durationMs": -9223372036854775808, "attempts": 3}
            ]}
            """)
        let executions = try KaizenProvider.listAnswer(answer, skipped: .discarding(provider: "kaizen"))
        // A negative duration falls back to the instants when they give one.
        #expect(executions.map(\.durationMs) == [2000, nil])
        #expect(executions.map(\.attempts) == [nil, 3])
    }

    @Test func b3osWindowReadNearIntMaxGivesRowsPastItNoOffset() throws {
        let answer = try Self.json("""
            {"code": 0, "data": {"hasMore": true, "items": [
              {"id": "a", "createdAt": "2026-11-20T10:00:03Z"},
              {"id": "b", "createdAt": "2026-11-20T10:00:02Z"},
              {"id": "c", "createdAt": "2026-11-20T10:00:01Z"}
            ]}}
            """)
        let window = try B3OSProvider.window(answer, offset: Int.max - 1, skipped: .discarding(provider: "b3os"))
        #expect(window.executions.map(\.sourceOffset) == [Int.max - 1, Int.max, nil])
    }

    @Test func unreadableListItemsAreSkippedAndTheOthersKeepTheirPlaces() throws {
        // No id; a creation instant past 2262 (not representable); not an object; then a readable row.
        let rows = """
            {"createdAt": "2026-11-20T10:00:04Z"},
            {"id": "late", "createdAt": "9999-12-31T23:59:59Z"},
            "junk",
            {"id": "fine", "createdAt": "2026-11-20T10:00:01Z"}
            """
        let window = try B3OSProvider.window(
            try Self.json(#"{"data": {"hasMore": true, "items": [\#(rows)]}}"#), offset: 200, skipped: .discarding(provider: "b3os")
        )
        #expect(window.executions.map(\.providerExecutionID) == ["fine"])
        #expect(window.executions.map(\.sourceOffset) == [203])
        #expect(window.rowCount == 4)
        let kaizen = try KaizenProvider.listAnswer(
            try Self.json(#"{"executions": [{"id": "z0"}, {"id": "z1", "startTime": "2026-11-20T10:00:00Z"}]}"#),
            skipped: .discarding(provider: "kaizen")
        )
        #expect(kaizen.map(\.providerExecutionID) == ["z1"])
        let kapso = try KapsoProvider.workflowPage(
            try Self.json(#"{"data": [{"id": "k0", "started_at": "0000-01-01T00:00:00Z"}, {"id": "k1", "started_at": "2026-11-20T10:00:00Z"}]}"#),
            listedUnderStatus: nil, skipped: .discarding(provider: "kapso")
        )
        #expect(kapso.executions.map(\.providerExecutionID) == ["k1"])
    }
}
