public import GatewayProviders

/// Kaizen lists the whole organisation in one answer and has no paging: a head refresh reads it
/// all (as a stream) and replaces the index whole, so the index always covers everything and
/// status changes are caught by every refresh.
public struct KaizenIndexSync: OrganisationListingSynchronizer {
    public let provider: KaizenProvider

    public init(provider: KaizenProvider) {
        self.provider = provider
    }


    public func refreshHead(_ index: inout ExecutionIndex, memo: inout Void, call: UpstreamCallContext) async throws(ProviderError) {
        let list = try await provider.fullList(call: call)
        var fresh = ExecutionIndex()
        fresh.upsert(list.executions)
        fresh.setCoverage(.everything, of: Self.source)
        index = fresh
    }

    /// Only reached before a first refresh completed: the whole list is the one stretch.
    public func deepen(_ source: String, in index: ExecutionIndex, memo: Void, call: UpstreamCallContext) async throws(ProviderError) -> SourceRead<Void> {
        let list = try await provider.fullList(call: call)
        return SourceRead(source: source, executions: list.executions, coverage: .everything)
    }
}
