import GatewayJSON

/// Every execution of a Kaizen organisation, as one full refresh of an index reads it.
public struct KaizenFullList: Sendable {
    public var executions: [UnifiedExecution]
    public var skippedRecords: Int
    public var answerBytes: Int
}

extension KaizenProvider {
    /// Every execution of the organisation (no filter); raw records are not kept.
    public func fullList(call: UpstreamCallContext) async throws(ProviderError) -> KaizenFullList {
        var uncached = call
        uncached.bypassCache = true  // the index is the cache
        var executions = try await list(body: .object(JSONObject()), call: uncached).value
        for index in executions.indices {
            executions[index].raw = .null
        }
        return KaizenFullList(executions: executions, skippedRecords: 0, answerBytes: 0)
    }
}
