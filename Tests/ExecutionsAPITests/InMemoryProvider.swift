import GatewayJSON
import GatewayProviders
import Synchronization

/// A provider whose upstream is a list in memory, honouring the `ExecutionProvider` contract
/// (keyset order, strictly after the position, filter applied). It lets the merge and cursor logic
/// be tested exhaustively; the adapters' own tests cover the real upstreams.
final class InMemoryProvider: ExecutionProvider {
    let name: String
    let type = "memory"
    let joinableFields: Set<JoinableField>
    private let state: Mutex<State>
    /// While non-nil, list calls wait here until `releaseListCalls()`.
    private let heldListCalls = Mutex<[CheckedContinuation<Void, Never>]?>(nil)

    struct State {
        var executions: [UnifiedExecution] = []
        var failuresRemaining = 0
        var failure: ProviderError = .timeout
        var listCalls = 0
        var detailCalls = 0
        var failingDetails: Set<String> = []
        /// How the answers say they were obtained (a real adapter's fetcher decides this).
        var listDisposition: CacheDisposition = .miss
        var detailDisposition: CacheDisposition = .miss
        /// Recorded for every list answer as a real fetcher records its cache entry's freshness.
        var listFreshUntil: UInt64?
        var credentialsSeen: [String] = []
    }

    init(name: String, joinableFields: Set<JoinableField> = [], executions: [UnifiedExecution] = []) {
        self.name = name
        self.joinableFields = joinableFields
        state = Mutex(State(executions: executions))
    }

    func insert(_ execution: UnifiedExecution) { state.withLock { $0.executions.append(execution) } }
    func failNext(_ count: Int, with error: ProviderError = .timeout) {
        state.withLock {
            $0.failuresRemaining = count
            $0.failure = error
        }
    }
    func failDetail(of id: String) { state.withLock { _ = $0.failingDetails.insert(id) } }
    func answer(list: CacheDisposition, detail: CacheDisposition) {
        state.withLock {
            $0.listDisposition = list
            $0.detailDisposition = detail
        }
    }
    func answerLists(freshUntil: UInt64?) { state.withLock { $0.listFreshUntil = freshUntil } }
    var credentialsSeen: [String] { state.withLock { $0.credentialsSeen } }
    func holdListCalls() { heldListCalls.withLock { $0 = [] } }
    var waitingListCalls: Int { heldListCalls.withLock { $0?.count ?? 0 } }
    func releaseListCalls() {
        let waiting = heldListCalls.withLock { held in
            defer { held = nil }
            return held ?? []
        }
        for continuation in waiting { continuation.resume() }
    }
    var listCalls: Int { state.withLock { $0.listCalls } }
    var detailCalls: Int { state.withLock { $0.detailCalls } }
    var all: [UnifiedExecution] { state.withLock { $0.executions } }

    func executions(matching filter: ExecutionFilter, after position: ProviderPosition?, limit: Int, call: UpstreamCallContext) async throws(ProviderError) -> ProviderPage {
        // As every adapter does: a filter nothing can meet is answered without a call.
        guard mayHoldMatches(filter) else { return .noMatches() }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let held = heldListCalls.withLock { held -> Bool in
                guard held != nil else { return false }
                held?.append(continuation)
                return true
            }
            if !held { continuation.resume() }
        }
        let result: Result<ProviderPage, ProviderError> = state.withLock { state in
            state.listCalls += 1
            state.credentialsSeen.append(call.credential)
            if state.failuresRemaining > 0 {
                state.failuresRemaining -= 1
                return .failure(state.failure)
            }
            let ordered = state.executions.filter(filter.matches).sorted { $0.sortKey.precedes($1.sortKey) }
            let after = ordered.filter { position == nil || position!.last.precedes($0.sortKey) }
            if let freshUntil = state.listFreshUntil { ProviderFetcher.partFreshness?.record(freshUntil: freshUntil) }
            return .success(ProviderPage(executions: Array(after.prefix(limit)), exhausted: after.count <= limit, cache: state.listDisposition))
        }
        return try result.get()
    }

    func detail(of providerExecutionID: String, call: UpstreamCallContext) async throws(ProviderError) -> ExecutionDetail {
        let result: Result<ExecutionDetail, ProviderError> = state.withLock { state in
            state.detailCalls += 1
            if state.failingDetails.contains(providerExecutionID) { return .failure(.upstreamStatus(status: 500, detail: "boom")) }
            guard let execution = state.executions.first(where: { $0.providerExecutionID == providerExecutionID }) else {
                return .failure(.notFound)
            }
            return .success(ExecutionDetail(
                execution: execution, downloads: ["files": [.string("f-\(providerExecutionID)")]], startBlock: nil,
                events: [.string("e-\(providerExecutionID)")], record: ["id": .string(providerExecutionID)], cache: state.detailDisposition
            ))
        }
        return try result.get()
    }
}


func makeExecution(provider: String, id: String, second: Int64, status: ExecutionStatus, isTest: Bool? = nil, workflow: String = "wf-1", values: [String] = []) -> UnifiedExecution {
    UnifiedExecution(
        provider: provider, providerExecutionID: id, workflow: WorkflowReference(id: workflow, name: "Workflow \(workflow)"),
        name: "run \(id)", status: status, providerStatus: status.rawValue,
        createdAt: Timestamp(nanosecondsSinceEpoch: 1_790_000_000_000_000_000 + second * 1_000_000_000),
        startedAt: nil, endedAt: nil, durationMs: nil, isTest: isTest, attempts: 1, searchableValues: values,
        raw: ["id": .string(id)]
    )
}
