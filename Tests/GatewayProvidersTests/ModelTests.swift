import GatewayJSON
import GatewayProviders
import Testing

@Suite struct TimestampTests {
    @Test(arguments: [
        ("2026-11-20T10:00:00Z", "2026-11-20T10:00:00Z"),
        ("2026-11-20T10:00:00.5Z", "2026-11-20T10:00:00.5Z"),
        ("2026-11-20T11:00:00.123456789+01:00", "2026-11-20T10:00:00.123456789Z"),
        ("2026-11-20t09:30:00-00:30", "2026-11-20T10:00:00Z"),
        ("2024-02-29T00:00:00Z", "2024-02-29T00:00:00Z"),
        ("1969-12-31T23:59:59.9Z", "1969-12-31T23:59:59.9Z"),
        ("2023-11-07T05:31:56.1234567891Z", "2023-11-07T05:31:56.123456789Z"),
    ])
    func parsesAndNormalises(_ input: String, _ expected: String) throws {
        let timestamp = try #require(Timestamp(rfc3339: input))
        #expect(timestamp.rfc3339 == expected)
        #expect(Timestamp(rfc3339: timestamp.rfc3339) == timestamp)
    }

    @Test func theWholeRepresentableRangeRendersWithoutOverflow() throws {
        for nanoseconds in [Int64.min, Int64.min + 1, -1, 0, 1, Int64.max - 1, Int64.max] {
            let text = Timestamp(nanosecondsSinceEpoch: nanoseconds).rfc3339
            #expect(Timestamp(rfc3339: text) == Timestamp(nanosecondsSinceEpoch: nanoseconds), "\(nanoseconds) -> \(text)")
        }
        #expect(Timestamp(nanosecondsSinceEpoch: -1).rfc3339 == "1969-12-31T23:59:59.999999999Z")
        // Just past the end of the range is refused, not wrapped.
        #expect(Timestamp(rfc3339: "2262-04-11T23:47:16.854775808Z") == nil)
        #expect(Timestamp(rfc3339: "1677-09-21T00:12:43.145224191Z") == nil)
    }

    @Test(arguments: [
        "", "2026-11-20", "2026-11-20T10:00:00", "2026-13-01T00:00:00Z", "2023-02-29T00:00:00Z",
        "2026-11-20T24:00:00Z", "2026-11-20T10:00:00.Z", "2026-11-20T10:00:00+0100", "2026-11-20T10:00:00Zjunk",
        "2026-11-20T10:00:00+24:00", "20261120T100000Z", "2026-11-20T10:60:00Z",
    ])
    func rejectsMalformedInstants(_ input: String) {
        #expect(Timestamp(rfc3339: input) == nil)
    }
}

@Suite struct OrderAndFilterTests {
    func execution(_ provider: String, _ id: String, _ createdAt: String, status: ExecutionStatus? = .running,
                   isTest: Bool? = nil, workflow: String? = "wf", values: [String] = []) -> UnifiedExecution {
        UnifiedExecution(
            provider: provider, providerExecutionID: id,
            workflow: workflow.map { WorkflowReference(id: $0, name: nil) }, name: nil,
            status: status, providerStatus: status?.rawValue,
            createdAt: Timestamp(rfc3339: createdAt) ?? Timestamp(nanosecondsSinceEpoch: 0),
            startedAt: nil, endedAt: nil, durationMs: nil, isTest: isTest, attempts: nil,
            searchableValues: values, raw: .null
        )
    }

    @Test func ordersByCreatedAtThenIdDescending() {
        let items = [
            execution("kapso", "b", "2026-01-01T00:00:00Z"),
            execution("kaizen", "z", "2026-01-01T00:00:00Z"),
            execution("b3os", "a", "2026-01-02T00:00:00Z"),
            execution("kapso", "c", "2026-01-01T00:00:00Z"),
        ]
        let sorted = items.sorted { $0.sortKey.precedes($1.sortKey) }
        #expect(sorted.map(\.id) == ["b3os:a", "kapso:c", "kapso:b", "kaizen:z"])
        #expect(!sorted[0].sortKey.precedes(sorted[0].sortKey))
    }

    @Test func filterMeansTheSameForEveryProvider() {
        let filter = ExecutionFilter(statuses: [.failed, .succeeded])
        #expect(filter.matches(execution("k", "1", "2026-01-01T00:00:00Z", status: .failed)))
        #expect(!filter.matches(execution("k", "1", "2026-01-01T00:00:00Z", status: .running)))
        #expect(!filter.matches(execution("k", "1", "2026-01-01T00:00:00Z", status: nil)))

        // isTest on a provider without the notion: only isTest=false matches.
        #expect(!ExecutionFilter(isTest: true).matches(execution("kapso", "1", "2026-01-01T00:00:00Z")))
        #expect(ExecutionFilter(isTest: false).matches(execution("kapso", "1", "2026-01-01T00:00:00Z")))

        let window = ExecutionFilter(
            createdAfter: Timestamp(rfc3339: "2026-01-01T00:00:00Z"),
            createdBefore: Timestamp(rfc3339: "2026-01-02T00:00:00Z")
        )
        #expect(window.matches(execution("k", "1", "2026-01-01T00:00:00Z")))
        #expect(window.matches(execution("k", "1", "2026-01-02T00:00:00Z")))
        #expect(!window.matches(execution("k", "1", "2026-01-02T00:00:00.000000001Z")))

        let search = ExecutionFilter(searchTerms: ["INVOICE", "ex_9"])
        #expect(search.matches(execution("k", "1", "2026-01-01T00:00:00Z", values: ["monthly invoice run"])))
        #expect(search.matches(execution("k", "ex_99", "2026-01-01T00:00:00Z")))
        #expect(!search.matches(execution("k", "ex_1", "2026-01-01T00:00:00Z", values: ["payroll"])))
        #expect(ExecutionFilter(statuses: []).isUnsatisfiable)
    }
}
