import GatewayEventLoop
import Synchronization
import GatewayCache
import GatewayCrypto
public import Logging
import GatewayHTTP
import GatewayJSON
public import GatewayProviders

/// Facts about the request being served that the service passes upstream.
public struct RequestFacts: Sendable {
    public var requestID: String
    public var traceparent: String
    public var bypassCache: Bool
    /// The client's budget of upstream calls; nil: unlimited.
    public var upstreamCallBudget: UpstreamCallBudget?
    /// Counts the request's calls that reach the network; nil: not counted.
    public var upstreamCalls: UpstreamCallCounter?

    public init(
        requestID: String, traceparent: String, bypassCache: Bool, upstreamCallBudget: UpstreamCallBudget? = nil,
        upstreamCalls: UpstreamCallCounter? = nil
    ) {
        self.requestID = requestID
        self.traceparent = traceparent
        self.bypassCache = bypassCache
        self.upstreamCallBudget = upstreamCallBudget
        self.upstreamCalls = upstreamCalls
    }
}

/// What bounds the upstream calls of one request: its deadline and its allowance of calls.
struct UpstreamCallScope: Sendable {
    var deadlineNanoseconds: UInt64?
    var allowance: UpstreamCallAllowance?

    static let unbounded = UpstreamCallScope(deadlineNanoseconds: nil, allowance: nil)
}

/// What one provider contributed to an answer, for `providers[]` and `Cache-Status`.
public struct ProviderReport: Sendable {
    public var name: String
    public var error: Problem?
    public var cache: CacheDisposition?
    public var durationMilliseconds: Int64
    public var exhausted: Bool
    /// The request's ceiling on upstream calls stopped this provider's scan early.
    public var scanCutShort = false
    /// When the provider's index was last brought up to date with the upstream (RFC 3339); nil
    /// when the data was read from the upstream for the request.
    public var dataAsOf: String?
}

/// A rendered answer of the executions API, before HTTP framing.
public struct ExecutionsAnswer: Sendable {
    /// The JSON document's bytes.
    public var body: [UInt8]
    /// A weak validator over what a client sees (data, page, complete), not over timings.
    public var entityTag: String
    public var cache: CacheDisposition
    public var nextCursor: String?
    /// Set on an answer handed out again and again unchanged (a stored page's hit): where the HTTP
    /// layer keeps the response it built for it, so that is built once too.
    var sharedResponse: SharedResponse?
}

/// `GET /executions` and `GET /executions/{id}` without HTTP: validation, cursors, the merge of
/// provider streams, detail joins and rendering.
public struct ExecutionsService: Sendable {
    private let bindings: [ProviderBinding]
    private let bindingsByName: [String: ProviderBinding]
    private let cursors: CursorCodec
    private let now: @Sendable () -> UInt64
    private let pageCache: RenderedPageCache?
    private let knownProviderNames: Set<String>
    private let planMemo = ListPlanMemo()
    private let requestTimeoutNanoseconds: UInt64?
    /// Where the internal side of a provider failure goes (libcurl's text, hosts, ports, what
    /// could not be read), under the request id; the client's problem says only what failed.
    private let logger: Logger
    /// The cap on a rendered list page's bytes (`server.maxResponseBytes`).
    private let maxPageBytes: Int

    /// - Parameters:
    ///   - now: monotonic nanoseconds, the clock of the providers' endpoints (request deadlines are in it).
    ///   - pageCaching: where rendered pages are kept (see `RenderedPageCache`); the default shares
    ///     the providers' response cache store, when they have one.
    ///   - requestTimeoutNanoseconds: the one deadline of a request's upstream work, slot waits
    ///     included; nil: each call has only its provider's timeout.
    public init(
        providers: [ProviderBinding],
        cursorSecret: String,
        now: @escaping @Sendable () -> UInt64,
        pageCaching: PageCaching = .sharedWithProviders,
        requestTimeoutNanoseconds: UInt64? = nil,
        logger: Logger = Logger(label: "gateway.executions"),
        maxPageBytes: Int = .max
    ) {
        self.requestTimeoutNanoseconds = requestTimeoutNanoseconds
        self.logger = logger
        self.maxPageBytes = maxPageBytes
        bindings = providers
        var byName: [String: ProviderBinding] = [:]
        for binding in providers { byName[binding.name] = binding }
        bindingsByName = byName
        knownProviderNames = Set(byName.keys)
        cursors = CursorCodec(secret: cursorSecret)
        self.now = now
        pageCache = RenderedPageCache.resolve(pageCaching, providers: providers, cursorSecret: cursorSecret)
    }

    /// The page cache's counters; nil when pages are not cached.
    public var pageCacheStatistics: PageCacheStatistics? { pageCache?.statistics }

    public var providerNames: [String] { bindings.map(\.name) }

    // MARK: - GET /executions

    /// What a list request resolves to before anything is fetched.
    /// Immutable and shared by reference: a remembered plan is handed out on every request of its
    /// query string, and a struct of this size cost five whole copies per cache hit.
    final class ListPlan: Sendable {
        let parsed: ParsedListParameters
        let query: ListQuery
        let states: [(name: String, state: ProviderCursorState)]
        /// Where the rendered page is (or will be) cached; nil when pages are not cached.
        let pageKey: String?

        init(parsed: ParsedListParameters, query: ListQuery, states: [(name: String, state: ProviderCursorState)], pageKey: String?) {
            self.parsed = parsed
            self.query = query
            self.states = states
            self.pageKey = pageKey
        }
    }

    /// Validation, the cursor, authorisation and the page key: everything a list request needs
    /// that involves no waiting.
    private func planList(
        _ items: [(name: String, value: String)],
        client: GatewayClient,
        facts: RequestFacts
    ) -> Result<ListPlan, Problem> {
        let parsed: ParsedListParameters
        switch ListParameterParser.parse(
            items, knownProviders: knownProviderNames, usableProviders: bindings.map(\.name).filter(client.mayUse)
        ) {
        case .success(let value): parsed = value
        case .failure(let problem): return .failure(problem)
        }

        var query = parsed.query
        var states: [(name: String, state: ProviderCursorState)]
        if let token = parsed.cursor {
            let payload: CursorPayload
            switch cursors.open(token) {
            case .success(let value): payload = value
            case .failure(let problem): return .failure(problem)
            }
            let mismatched = Self.differingParameters(given: parsed, recorded: payload.query)
            if !mismatched.isEmpty {
                return .failure(.invalidParameters(mismatched.map {
                    .init(name: $0, reason: "differs from the query the cursor was made with; omit it or send the same value")
                }))
            }
            query = payload.query
            states = payload.providers
            guard states.allSatisfy({ bindingsByName[$0.name] != nil }) else {
                return .failure(.invalidParameters([.init(name: "cursor", reason: "names a provider this gateway no longer has")]))
            }
        } else {
            let names = query.providers ?? bindings.map(\.name).filter(client.mayUse)
            states = names.map { ($0, ProviderCursorState(position: nil, exhausted: false)) }
        }

        let forbidden = states.map(\.name).filter { !client.mayUse($0) }
        if !forbidden.isEmpty {
            return .failure(.forbidden("Client '\(client.id)' may not use provider \(forbidden.map { "'\($0)'" }.joined(separator: ", "))."))
        }

        // Authorised above: a stored page is only ever served to a client that may use every provider in it.
        let pageKey = pageCache?.key(
            query: query, states: states,
            credentialIdentities: states.map { state in
                bindingsByName[state.name].map { callContext(for: $0, client: client, facts: facts).credentialIdentity } ?? ""
            }
        )
        return .success(ListPlan(parsed: parsed, query: query, states: states, pageKey: pageKey))
    }

    /// The page a list request asks for: from the page cache when it holds it fresh (an
    /// in-process cache answers without suspending), else built from the providers.
    ///
    /// - Parameter rawQuery: the request's query string as received, when `items` came from it:
    ///   the plan of a query string this client sent recently is reused rather than worked out
    ///   again (validation, the cursor's signature, the page key).
    public nonisolated(nonsending) func list(
        _ items: @autoclosure () -> [(name: String, value: String)],
        rawQuery: String? = nil,
        client: GatewayClient,
        facts: RequestFacts
    ) async -> Result<ExecutionsAnswer, Problem> {
        let plan: ListPlan
        if let rawQuery, let remembered = planMemo.plan(for: rawQuery, client: client) {
            plan = remembered
        } else {
            switch planList(items(), client: client, facts: facts) {
            case .success(let value): plan = value
            case .failure(let problem): return .failure(problem)
            }
            if let rawQuery { planMemo.remember(plan, for: rawQuery, client: client) }
        }
        let parsed = plan.parsed, query = plan.query, states = plan.states, pageKey = plan.pageKey
        if let pageCache, let pageKey, !facts.bypassCache, let answer = await pageCache.answer(pageKey, now: now) {
            return .success(answer)
        }
        let requestStarted = now()
        var buildingPage = false
        var storedPage: RenderedPage?
        defer { if buildingPage, let pageCache, let pageKey { pageCache.finishBuild(pageKey, storedPage: storedPage) } }
        if let pageCache, let pageKey, !facts.bypassCache {
            switch await pageCache.turn(for: pageKey) {
            case .build: buildingPage = true
            case .built(let page): return .success(page.answer(cache: .miss, durationNanoseconds: now() &- requestStarted))
            case .buildOwn: break
            }
        }
        let scope = upstreamCallScope(startedAt: requestStarted, facts: facts)

        // Sealing a worst-case cursor costs as much as the rest of a cache hit, so only a page
        // about to be built checks it: a stored first page passed this check when it was built.
        if parsed.cursor == nil, let tooLarge = cursors.problemIfTooLargeToPage(query, providers: states.map(\.name)) {
            return .failure(tooLarge)
        }

        // Fetch each provider's next matching executions concurrently.
        let partFreshness = PartFreshness()
        let fetched = await ProviderFetcher.$partFreshness.withValue(partFreshness) {
            await fetchPages(states: states, query: query, client: client, facts: facts, scope: scope)
        }

        // Merge the ordered streams and keep the first `limit`.
        var candidates: [(execution: UnifiedExecution, provider: Int)] = []
        for (index, outcome) in fetched.enumerated() {
            if case .success(let page) = outcome.result {
                candidates.append(contentsOf: page.executions.map { ($0, index) })
            }
        }
        candidates.sort { $0.execution.sortKey.precedes($1.execution.sortKey) }
        // A scan the call ceiling cut short knows nothing of its provider beyond where it stopped,
        // so nothing later is shown yet; a page not filled up to there still covers everything to
        // there, so every provider resumes from there.
        let scanFrontier = fetched.compactMap { outcome -> ExecutionSortKey? in
            guard case .success(let page)? = outcome.result else { return nil }
            return page.scanCut?.scannedThrough
        }.min { $0.precedes($1) }
        if let scanFrontier { candidates.removeAll { scanFrontier.precedes($0.execution.sortKey) } }
        let shown = Array(candidates.prefix(query.limit))
        let pageBoundary = (shown.count < query.limit ? scanFrontier : nil) ?? shown.last?.execution.sortKey

        // Advance each provider to the last execution it contributed; a failed provider stays put.
        var nextStates = states
        var failures: [Problem] = []
        var reports: [ProviderReport] = []
        for (index, outcome) in fetched.enumerated() {
            let fromThisProvider = shown.filter { $0.provider == index }.map(\.execution)
            var state = nextStates[index].state
            var report = ProviderReport(
                name: outcome.name, error: nil, cache: nil,
                durationMilliseconds: Int64(outcome.durationNanoseconds / 1_000_000), exhausted: state.exhausted
            )
            switch outcome.result {
            case .success(let page):
                report.cache = page.cache
                report.scanCutShort = page.scanCut != nil
                report.dataAsOf = page.dataAsOf?.rfc3339
                // Everything this provider holds before the page's last key has now been shown (or
                // did not exist when it was asked), so it resumes at that global boundary, even if it
                // contributed nothing: otherwise executions created since the walk began would
                // appear on a later page.
                // A position only ever moves forward: after a failed provider recovers, the page's
                // boundary can lie before where the others already stand.
                if let boundary = pageBoundary,
                   state.position.map({ $0.last.precedes(boundary) }) ?? true {
                    // A scan cut where the page ends says best where to look next.
                    let cutHint = page.scanCut.flatMap { $0.scannedThrough == boundary ? $0.offsetHint : nil }
                    let offsetHint = cutHint ?? fromThisProvider.last?.sourceOffset.flatMap(Self.offsetAfter) ?? state.position?.offsetHint
                    state.position = ProviderPosition(last: boundary, offsetHint: offsetHint)
                }
                state.exhausted = page.exhausted && fromThisProvider.count == page.executions.count
                report.exhausted = state.exhausted
            case .failure(let error):
                let problem = loggedProblem(for: error, provider: outcome.name, requestID: facts.requestID)
                report.error = problem
                failures.append(problem)
            case nil:
                break
            }
            nextStates[index].state = state
            reports.append(report)
        }
        // A client whose call budget is spent, with nothing any provider could answer from cache,
        // is told so rather than handed an empty page.
        if let spent = Self.budgetProblemIfNothingServed(fetched) { return .failure(spent) }
        // With allowPartial (the default) even a page on which every provider failed is a 200 with
        // complete: false; its cursor keeps every position, so the client can simply retry.
        if !failures.isEmpty && !query.allowPartial {
            return .failure(Self.combined(failures))
        }

        // Join detail records where `include` asks for them.
        let joined = await ProviderFetcher.$partFreshness.withValue(partFreshness) {
            await join(shown.map(\.execution), include: query.include, client: client, facts: facts, scope: scope)
        }
        if !query.allowPartial {
            let joinFailures = joined.compactMap(\.error)
            if !joinFailures.isEmpty { return .failure(Self.combined(joinFailures)) }
        }

        let hasMore = nextStates.contains { !$0.state.exhausted }
        let nextCursor = hasMore ? cursors.seal(CursorPayload(query: query, providers: nextStates)) : nil
        let complete = failures.isEmpty && joined.allSatisfy { $0.error == nil }
        var cache = reports.compactMap(\.cache).reduce(CacheDisposition.hit) { $0.merged(with: $1) }
        for item in joined { if let disposition = item.cache { cache = cache.merged(with: disposition) } }

        // Without `include`, a page is at most `limit` list-level records (tens of kilobytes); with
        // it, it carries upstream records of any size.
        let rendered = await BulkWork.perform(offLoop: !query.include.isEmpty) {
            Renderer.listDocument(
                items: joined, include: query.include, limit: query.limit, nextCursor: nextCursor,
                complete: complete, providers: reports, requestID: facts.requestID, maxBytes: maxPageBytes
            )
        }
        guard let rendered else {
            return .failure(.responseTooLarge(maxBytes: maxPageBytes, include: query.include))
        }
        // A cut-short page is not stored: a stored page renders no `scanCutShort`.
        if let pageCache, let pageKey, scanFrontier == nil {
            let page = RenderedPage(
                head: rendered.body.prefix(rendered.entityTaggedCount), entityTag: rendered.entityTag, nextCursor: nextCursor,
                providers: zip(fetched, reports).map {
                    .init(name: $1.name, called: $0.result != nil, exhausted: $1.exhausted, dataAsOf: $1.dataAsOf)
                }
            )
            let freshUntil = pageCache.freshUntil(
                requestStarted: requestStarted, complete: complete, reports: reports, joined: joined,
                partsFreshUntil: partFreshness.earliest
            )
            if await pageCache.store(page, key: pageKey, now: now(), freshUntil: freshUntil) { storedPage = page }
        }
        return .success(ExecutionsAnswer(body: rendered.body, entityTag: rendered.entityTag, cache: cache, nextCursor: nextCursor))
    }

    /// Names of parameters sent alongside a cursor whose value differs from the cursor's query.
    static func differingParameters(given: ParsedListParameters, recorded: ListQuery) -> [String] {
        let sent = given.query
        var differing: [String] = []
        for name in given.given.sorted() {
            let same: Bool = switch name {
            case "limit": sent.limit == recorded.limit
            case "provider": sent.providers == recorded.providers
            case "status": sent.filter.statuses == recorded.filter.statuses
            case "workflowId": sent.filter.workflowID == recorded.filter.workflowID
            case "createdAfter": sent.filter.createdAfter == recorded.filter.createdAfter
            case "createdBefore": sent.filter.createdBefore == recorded.filter.createdBefore
            case "q": sent.filter.searchTerms == recorded.filter.searchTerms
            case "isTest": sent.filter.isTest == recorded.filter.isTest
            case "include": sent.include == recorded.include
            case "allowPartial": sent.allowPartial == recorded.allowPartial
            default: true
            }
            if !same { differing.append(name) }
        }
        return differing
    }

    private struct FetchOutcome: Sendable {
        var name: String
        /// nil when the provider was not called (exhausted).
        var result: Result<ProviderPage, ProviderError>?
        var durationNanoseconds: UInt64
    }

    private func fetchPages(
        states: [(name: String, state: ProviderCursorState)],
        query: ListQuery,
        client: GatewayClient,
        facts: RequestFacts,
        scope: UpstreamCallScope
    ) async -> [FetchOutcome] {
        await withTaskGroup(of: (Int, FetchOutcome).self) { group in
            for (index, entry) in states.enumerated() {
                guard !entry.state.exhausted, let binding = bindingsByName[entry.name] else {
                    group.addTask { (index, FetchOutcome(name: entry.name, result: nil, durationNanoseconds: 0)) }
                    continue
                }
                var call = callContext(for: binding, client: client, facts: facts, scope: scope)
                call.needsRawRecords = query.include.contains(.raw)
                let position = entry.state.position
                group.addTask { [now] in
                    let started = now()
                    let result: Result<ProviderPage, ProviderError>
                    do throws(ProviderError) {
                        result = .success(try await binding.provider.executions(
                            matching: query.filter, after: position, limit: query.limit, call: call
                        ))
                    } catch {
                        result = .failure(error)
                    }
                    return (index, FetchOutcome(name: entry.name, result: result, durationNanoseconds: now() &- started))
                }
            }
            var outcomes = [FetchOutcome?](repeating: nil, count: states.count)
            for await (index, outcome) in group { outcomes[index] = outcome }
            return outcomes.compactMap { $0 }
        }
    }

    func callContext(
        for binding: ProviderBinding, client: GatewayClient, facts: RequestFacts, scope: UpstreamCallScope = .unbounded
    ) -> UpstreamCallContext {
        let credential = client.upstreamCredentials[binding.name] ?? binding.credential
        return UpstreamCallContext(
            credential: credential.secret, credentialIdentity: credential.identity,
            requestID: facts.requestID, traceparent: facts.traceparent, bypassCache: facts.bypassCache,
            clientID: client.id, deadlineNanoseconds: scope.deadlineNanoseconds, allowance: scope.allowance,
            upstreamCalls: facts.upstreamCalls
        )
    }

    /// The deadline and call allowance of a request that starts now.
    private func upstreamCallScope(startedAt: UInt64, facts: RequestFacts) -> UpstreamCallScope {
        UpstreamCallScope(
            deadlineNanoseconds: requestTimeoutNanoseconds.map { startedAt.addingClamped($0) },
            allowance: facts.upstreamCallBudget.map(UpstreamCallAllowance.init)
        )
    }

    /// The budget problem when no provider contributed and at least one was refused for the
    /// client's spent call budget (the soonest retry wins).
    private static func budgetProblemIfNothingServed(_ fetched: [FetchOutcome]) -> Problem? {
        var soonest: (refusal: UpstreamCallBudgetRefusal, provider: String)?
        for outcome in fetched {
            switch outcome.result {
            case .success?: return nil
            case .failure(.callBudgetSpent(let refusal))?:
                if soonest.map({ refusal.retryAfterSeconds < $0.refusal.retryAfterSeconds }) ?? true {
                    soonest = (refusal, outcome.name)
                }
            case .failure?, nil: continue
            }
        }
        return soonest.map { problem(for: .callBudgetSpent($0.refusal), provider: $0.provider) }
    }

    // MARK: - Detail joins

    struct JoinedExecution: Sendable {
        var execution: UnifiedExecution
        var detail: ExecutionDetail?
        var error: Problem?
        var cache: CacheDisposition?
    }

    /// Detail calls for the items whose provider can supply what `include` names: one per
    /// execution, all at once (each provider's endpoint bounds its own concurrency).
    private func join(
        _ executions: [UnifiedExecution],
        include: Set<IncludeField>,
        client: GatewayClient,
        facts: RequestFacts,
        scope: UpstreamCallScope
    ) async -> [JoinedExecution] {
        var joined = executions.map { JoinedExecution(execution: $0) }
        let wantsDetail = include.contains(.detail)
        let wantedJoins = Set(include.compactMap { JoinableField(rawValue: $0.rawValue) })
        var calls: [(index: Int, binding: ProviderBinding)] = []
        var seen = Set<String>()
        for (index, execution) in executions.enumerated() {
            guard let binding = bindingsByName[execution.provider] else { continue }
            let needed = wantsDetail || !wantedJoins.isDisjoint(with: binding.provider.joinableFields)
            if needed && seen.insert(execution.id).inserted { calls.append((index, binding)) }
        }
        guard !calls.isEmpty else { return joined }
        let results = await withTaskGroup(of: (Int, Result<ExecutionDetail, ProviderError>).self) { group in
            for (index, binding) in calls {
                let call = callContext(for: binding, client: client, facts: facts, scope: scope)
                let id = executions[index].providerExecutionID
                group.addTask {
                    // Assigned, then returned after the do/catch: returning the tuple from inside a
                    // `do throws(ProviderError)` in this closure crashed release builds (Swift 6.3,
                    // a garbage index reached `joined[index]`); debug builds were fine.
                    let result: Result<ExecutionDetail, ProviderError>
                    do throws(ProviderError) {
                        result = .success(try await binding.provider.detail(of: id, call: call))
                    } catch {
                        result = .failure(error)
                    }
                    return (index, result)
                }
            }
            var results: [(Int, Result<ExecutionDetail, ProviderError>)] = []
            for await result in group { results.append(result) }
            return results
        }
        for (index, result) in results {
            switch result {
            case .success(let detail):
                joined[index].detail = detail
                joined[index].cache = detail.cache
            case .failure(.notFound):
                // The list named it, the detail call did not know it: a provider inconsistency for
                // this item, never a 404 of the page.
                joined[index].error = Self.problem(
                    for: .upstreamStatus(status: 404, detail: "the detail record was not found"),
                    provider: executions[index].provider
                )
            case .failure(let error):
                joined[index].error = loggedProblem(for: error, provider: executions[index].provider, requestID: facts.requestID)
            }
        }
        return joined
    }

    // MARK: - GET /executions/{id}

    public func detail(id: String, client: GatewayClient, facts: RequestFacts) async -> Result<ExecutionsAnswer, Problem> {
        guard let colon = id.firstIndex(of: ":"), colon != id.startIndex, id.index(after: colon) != id.endIndex else {
            return .failure(.notFound("'\(id)' is not an execution id; ids look like <provider>:<provider's id>."))
        }
        let providerName = String(id[..<colon])
        let providerID = String(id[id.index(after: colon)...])
        guard let binding = bindingsByName[providerName] else {
            return .failure(.notFound("There is no provider named '\(providerName)'."))
        }
        guard client.mayUse(providerName) else {
            return .failure(.forbidden("Client '\(client.id)' may not use provider '\(providerName)'."))
        }
        do throws(ProviderError) {
            let scope = upstreamCallScope(startedAt: now(), facts: facts)
            let detail = try await binding.provider.detail(
                of: providerID, call: callContext(for: binding, client: client, facts: facts, scope: scope))
            // A detail record is the provider's, of any size.
            let rendered = await BulkWork.perform(offLoop: true) {
                Renderer.detailDocument(detail, joinable: binding.provider.joinableFields)
            }
            return .success(ExecutionsAnswer(body: rendered.body, entityTag: rendered.entityTag, cache: detail.cache, nextCursor: nil))
        } catch .notFound {
            return .failure(.notFound("Provider '\(providerName)' has no execution '\(providerID)'."))
        } catch {
            return .failure(loggedProblem(for: error, provider: providerName, requestID: facts.requestID))
        }
    }

    /// The offset hint after a row at `offset`; nil at Int.max, where there is no next row to hint at.
    static func offsetAfter(_ offset: Int) -> Int? {
        let (next, overflow) = offset.addingReportingOverflow(1)
        return overflow ? nil : next
    }

    // MARK: - Errors

    /// The client's problem for a provider failure; the failure itself, with what the problem
    /// leaves out, is logged under the request id.
    func loggedProblem(for error: ProviderError, provider: String, requestID: String) -> Problem {
        logger.warning("provider call failed", metadata: [
            "requestId": "\(requestID)", "provider": "\(provider)", "error": "\(error.description)",
        ])
        return Self.problem(for: error, provider: provider)
    }

    /// Says what failed and never why in the gateway's own terms: the reasons of `.unreachable`
    /// and `.malformedResponse` carry libcurl's text (hosts, ports) and what the adapter could not
    /// read, which stay in the log.
    static func problem(for error: ProviderError, provider: String) -> Problem {
        switch error {
        case .timeout:
            Problem(.upstreamTimeout, status: .gatewayTimeout, title: "Provider timed out",
                    detail: "Provider '\(provider)' did not answer in time.", provider: provider)
        case .paused(let seconds):
            Problem(.upstreamPaused, status: .serviceUnavailable, title: "Provider paused",
                    detail: "Provider '\(provider)' asked the gateway to wait (Retry-After); no cached copy could be served.",
                    provider: provider, retryAfterSeconds: max(1, seconds))
        case .circuitOpen(let seconds):
            Problem(.upstreamPaused, status: .serviceUnavailable, title: "Provider unavailable",
                    detail: "Calls to provider '\(provider)' are suspended after repeated failures.",
                    provider: provider, retryAfterSeconds: max(1, seconds))
        case .minuteBudgetSpent(let seconds):
            Problem(.upstreamPaused, status: .serviceUnavailable, title: "Provider budget spent",
                    detail: "The gateway's budget of calls per minute to provider '\(provider)' (requestsPerMinute) is spent and no cached copy could be served.",
                    provider: provider, retryAfterSeconds: max(1, seconds))
        case .notFound:
            .notFound("Provider '\(provider)' does not know this execution.")
        case .unreachable:
            upstreamError("Provider '\(provider)' could not be reached.", provider: provider)
        case .malformedResponse:
            upstreamError("Provider '\(provider)' sent an answer the gateway could not read.", provider: provider)
        case .upstreamStatus, .credentialRejected:
            // Both descriptions are the gateway's own words around an HTTP status.
            upstreamError("Provider '\(provider)' failed: \(error.description).", provider: provider)
        case .callBudgetSpent(let refusal):
            Problem(.rateLimited, status: .tooManyRequests, title: "Upstream call budget spent",
                    detail: "The client's budget of upstream calls (rateLimit upstreamCallsPerMinute) is spent and provider '\(provider)' has no cached copy; retry in \(refusal.retryAfterSeconds) s.",
                    provider: provider, retryAfterSeconds: refusal.retryAfterSeconds, callBudgetRefusal: refusal)
        case .callCeilingReached(let ceiling):
            Problem(.rateLimited, status: .tooManyRequests, title: "Upstream call ceiling reached",
                    detail: "The request reached its ceiling of \(ceiling) upstream calls (rateLimit.maxUpstreamCallsPerRequest) before provider '\(provider)' could answer.",
                    provider: provider, retryAfterSeconds: 1)
        }
    }

    private static func upstreamError(_ detail: String, provider: String) -> Problem {
        Problem(.upstreamError, status: .badGateway, title: "Provider failed", detail: detail, provider: provider)
    }

    /// One error response for several failed providers: a timeout only if all of them timed out.
    static func combined(_ problems: [Problem]) -> Problem {
        if problems.count == 1, let only = problems.first, only.status == .badGateway || only.status == .gatewayTimeout {
            return only
        }
        let allTimedOut = problems.allSatisfy { $0.kind == .upstreamTimeout }
        let providers = Array(Set(problems.compactMap(\.provider))).sorted()
        let plural = providers.count == 1 ? "" : "s"
        return Problem(
            allTimedOut ? .upstreamTimeout : .upstreamError,
            status: allTimedOut ? .gatewayTimeout : .badGateway,
            title: allTimedOut ? "Provider\(plural) timed out" : "Provider\(plural) failed",
            detail: problems.map(\.detail).joined(separator: " "),
            provider: providers.count == 1 ? providers.first : nil
        )
    }
}

/// The plans of recently seen list query strings, per client.
///
/// A plan depends only on the query string, the client (its providers and credentials, compared
/// in full, so a reloaded client never reuses an old plan) and what the service was built with,
/// never on time; reusing one is exact. Bounded in entries and in query length, and emptied
/// when full: a stream of distinct queries costs at most the memo's small bound, never more.
final class ListPlanMemo: Sendable {
    static let capacity = 1_024
    static let maxQueryBytes = 512

    private struct Key: Hashable {
        let query: String
        let client: GatewayClient

        func hash(into hasher: inout Hasher) {
            hasher.combine(query)
            hasher.combine(client.id)
        }

        static func == (lhs: Key, rhs: Key) -> Bool { lhs.query == rhs.query && lhs.client == rhs.client }
    }

    private let plans = Mutex<[Key: ExecutionsService.ListPlan]>([:])

    func plan(for query: String, client: GatewayClient) -> ExecutionsService.ListPlan? {
        guard query.utf8.count <= Self.maxQueryBytes else { return nil }
        let key = Key(query: query, client: client)
        return plans.withLock { $0[key] }
    }

    func remember(_ plan: ExecutionsService.ListPlan, for query: String, client: GatewayClient) {
        guard query.utf8.count <= Self.maxQueryBytes else { return }
        plans.withLock { plans in
            if plans.count >= Self.capacity { plans.removeAll(keepingCapacity: true) }
            plans[Key(query: query, client: client)] = plan
        }
    }

    var count: Int { plans.withLock { $0.count } }
}
