import GatewayEventLoop
import GatewayHTTP
import GatewayJSON

/// Everything the simulator mutates, guarded by one lock in `ProviderSimulator`.
struct SimulatorState: Sendable {
    var kaizen: KaizenStore
    var kapso: KapsoStore
    var b3os: B3OSStore
    var faults: [SimulatedProvider: [InstalledFault]] = [:]
    var nextFaultID = 1
    var counters: [SimulatedProvider: SimulatorCounters] = [:]
    var rateWindows: [SimulatedProvider: [String: RateWindow]] = [:]
    var faultRandom: SplitMix64
    var requestIDRandom: SplitMix64
    var lastSteadyInsertion: [SimulatedProvider: Int64]

    struct RateWindow: Sendable {
        var minute: Int64
        var count: Int
    }

    init(configuration: SimulatorConfiguration, now: Int64) {
        kaizen = KaizenStore(configuration: configuration, now: now)
        kapso = KapsoStore(configuration: configuration, now: now)
        b3os = B3OSStore(configuration: configuration, now: now)
        faultRandom = SplitMix64(seed: configuration.seed, labels: "faults")
        requestIDRandom = SplitMix64(seed: configuration.seed, labels: "request-ids")
        lastSteadyInsertion = Dictionary(uniqueKeysWithValues: SimulatedProvider.allCases.map { ($0, now) })
    }

    mutating func resetData(of provider: SimulatedProvider, configuration: SimulatorConfiguration, now: Int64) {
        switch provider {
        case .kaizen: kaizen = KaizenStore(configuration: configuration, now: now)
        case .kapso: kapso = KapsoStore(configuration: configuration, now: now)
        case .b3os: b3os = B3OSStore(configuration: configuration, now: now)
        }
        lastSteadyInsertion[provider] = now
        rateWindows[provider] = nil
    }

    mutating func nextRequestID() -> String { "req_" + requestIDRandom.token(20) }

    // MARK: Admission: counters, steady inserts, rate limits and faults

    enum PlannedAction: Sendable {
        case answer
        case respond(HTTPResponse)
        case timeout
        case reset
        case truncate(afterBytes: Int?)
        case malformedJSON
    }

    struct Admission: Sendable {
        var latencyMilliseconds = 0
        var action = PlannedAction.answer
        var extraHeaders: [(String, String)] = []
        var requestID = ""
    }

    mutating func admit(
        provider: SimulatedProvider, endpoint: SimulatedEndpoint, presentedKey: String?, now: Int64,
        configuration: SimulatorConfiguration
    ) -> Admission {
        var admission = Admission()
        admission.requestID = nextRequestID()
        counters[provider, default: SimulatorCounters()].record(endpoint, credentialLabel: credentialLabel(presentedKey, provider: provider))
        insertSteadily(provider: provider, now: now, configuration: configuration)

        var rateLimited = false
        switch provider {
        case .kapso:
            let (count, _) = countRate(provider: provider, key: presentedKey ?? "", now: now)
            let limit = configuration.kapsoRequestsPerMinute
            admission.extraHeaders = [("X-RateLimit-Limit", String(limit)), ("X-RateLimit-Remaining", String(max(0, limit - count)))]
            if count > limit {
                rateLimited = true
                admission.action = .respond(rateLimitResponse(provider: provider, retryAfterSeconds: 60, requestID: admission.requestID))
            }
        case .b3os:
            if let limit = configuration.b3osRequestsPerMinute {
                let (count, secondsLeft) = countRate(provider: provider, key: presentedKey ?? "", now: now)
                if count > limit {
                    rateLimited = true
                    admission.action = .respond(rateLimitResponse(provider: provider, retryAfterSeconds: secondsLeft, requestID: admission.requestID))
                }
            }
        case .kaizen:
            break
        }
        if rateLimited { return admission }

        var installed = faults[provider] ?? []
        for index in installed.indices {
            let fault = installed[index].fault
            if let endpointFilter = fault.endpoint, endpointFilter != endpoint { continue }
            if let credential = fault.credential, credential != presentedKey { continue }
            installed[index].matchingCalls += 1
            if let calls = fault.calls, !calls.contains(installed[index].matchingCalls) { continue }
            if let probability = fault.probability, !faultRandom.chance(probability) { continue }
            if case .latency(let milliseconds) = fault.kind {
                // Saturating: stacked faults must not overflow.
                admission.latencyMilliseconds = min(admission.latencyMilliseconds + milliseconds, 24 * 3_600_000)
                continue
            }
            guard case .answer = admission.action else { continue }
            switch fault.kind {
            case .latency: break
            case .status(let code, let retryAfter):
                var response = providerError(provider: provider, status: HTTPStatus(code: code), message: "Simulated failure", requestID: admission.requestID)
                if let retryAfter { response.headers.add(name: "Retry-After", value: String(retryAfter)) }
                admission.action = .respond(response)
            case .rateLimited(let retryAfter):
                if provider == .kapso {
                    admission.extraHeaders = [("X-RateLimit-Limit", String(configuration.kapsoRequestsPerMinute)), ("X-RateLimit-Remaining", "0")]
                }
                admission.action = .respond(rateLimitResponse(provider: provider, retryAfterSeconds: retryAfter, requestID: admission.requestID))
            case .timeout: admission.action = .timeout
            case .resetConnection: admission.action = .reset
            case .truncateBody(let afterBytes): admission.action = .truncate(afterBytes: afterBytes)
            case .malformedJSON: admission.action = .malformedJSON
            }
        }
        faults[provider] = installed
        return admission
    }

    private func credentialLabel(_ key: String?, provider: SimulatedProvider) -> String {
        guard let key else { return "missing" }
        return ProviderSimulator.credential(key, provider: provider) == nil ? "unknown" : key
    }

    /// Counts a request in the key's fixed one-minute window; returns the count so far and the
    /// whole seconds until the window ends (at least 1).
    private mutating func countRate(provider: SimulatedProvider, key: String, now: Int64) -> (Int, Int) {
        let minute = now >= 0 ? now / 60_000 : (now - 59_999) / 60_000
        var window = rateWindows[provider]?[key] ?? RateWindow(minute: minute, count: 0)
        if window.minute != minute { window = RateWindow(minute: minute, count: 0) }
        window.count += 1
        rateWindows[provider, default: [:]][key] = window
        let millisecondsLeft = (minute + 1) * 60_000 - now
        return (window.count, max(1, Int((millisecondsLeft + 999) / 1000)))
    }

    func rateLimitResponse(provider: SimulatedProvider, retryAfterSeconds: Int, requestID: String) -> HTTPResponse {
        var response: HTTPResponse
        switch provider {
        case .kaizen: response = KaizenAPI.error(.tooManyRequests, "Too many requests")
        case .kapso: response = KapsoAPI.error(.tooManyRequests, "Too Many Requests", "Rate limit exceeded. Try again in \(retryAfterSeconds) seconds.")
        case .b3os: response = B3OSAPI.error(.tooManyRequests, "rate limit exceeded", requestID: requestID)
        }
        response.headers.add(name: "Retry-After", value: String(retryAfterSeconds))
        return response
    }

    func providerError(provider: SimulatedProvider, status: HTTPStatus, message: String, requestID: String) -> HTTPResponse {
        switch provider {
        case .kaizen: KaizenAPI.error(status, status.reasonPhrase)
        case .kapso: KapsoAPI.error(status, status.reasonPhrase, message)
        case .b3os: B3OSAPI.error(status, message, requestID: requestID)
        }
    }

    // MARK: Answering

    func answer(provider: SimulatedProvider, endpoint: SimulatedEndpoint, request: HTTPRequest, pathParameters: [String: String], requestID: String) -> HTTPResponse {
        switch provider {
        case .kaizen:
            guard let credential = KaizenAPI.authenticate(request), let organizationID = credential.organizationIDs.first else {
                return KaizenAPI.error(.unauthorized, "Invalid or missing API key")
            }
            switch endpoint {
            case .list: return KaizenAPI.list(request, store: kaizen, organizationID: organizationID)
            case .detail: return KaizenAPI.get(request, store: kaizen, organizationID: organizationID)
            case .workflows, .other: return KaizenAPI.error(.notFound, "Not found")
            }
        case .kapso:
            guard let credential = KapsoAPI.authenticate(request), let organizationID = credential.organizationIDs.first else {
                return KapsoAPI.error(.unauthorized, "Unauthorized", "Invalid or missing API key")
            }
            switch endpoint {
            case .workflows: return KapsoAPI.workflows(store: kapso, organizationID: organizationID)
            case .list:
                return KapsoAPI.executions(request, workflowID: pathParameters["workflow_id"] ?? "", store: kapso, organizationID: organizationID)
            case .detail: return KapsoAPI.detail(id: pathParameters["id"] ?? "", store: kapso, organizationID: organizationID)
            case .other: return KapsoAPI.error(.notFound, "Not Found", "No route matches \(request.path)")
            }
        case .b3os:
            let organizationID: String
            switch B3OSAPI.authorize(request, requestID: requestID) {
            case .denied(let response): return response
            case .allowed(let id): organizationID = id
            }
            switch endpoint {
            case .list: return B3OSAPI.list(request, store: b3os, organizationID: organizationID, requestID: requestID)
            case .detail: return B3OSAPI.detail(id: pathParameters["id"] ?? "", store: b3os, organizationID: organizationID, requestID: requestID)
            case .workflows, .other: return B3OSAPI.error(.notFound, "route not found", requestID: requestID)
            }
        }
    }

    // MARK: Live changes

    mutating func insertSteadily(provider: SimulatedProvider, now: Int64, configuration: SimulatorConfiguration) {
        guard let interval = configuration.insertEveryMilliseconds, interval > 0 else { return }
        let last = lastSteadyInsertion[provider] ?? now
        guard now > last else { return }
        let due = (now - last) / interval
        guard due > 0 else { return }
        // Bounded so a clock jump cannot stall a request; the schedule still moves on.
        for step in max(1, due - 999)...due {
            _ = try? insert(provider: provider, count: 1, organizationID: nil, at: last + step * interval, status: nil, now: now)
        }
        lastSteadyInsertion[provider] = last + due * interval
    }

    mutating func insert(
        provider: SimulatedProvider, count: Int, organizationID: String?, at time: Int64, status: String?, now: Int64
    ) throws(SimulatorControlError) -> [InsertedExecution] {
        guard count >= 0, count <= 10_000 else { throw SimulatorControlError("count must be between 0 and 10000") }
        let organizations = ProviderSimulator.organizations(of: provider).filter { organizationID == nil || $0.id == organizationID }
        guard !organizations.isEmpty else {
            throw SimulatorControlError("unknown \(provider.rawValue) organization '\(organizationID ?? "")'")
        }
        switch provider {
        case .kaizen:
            let kaizenStatus = try KaizenStatus.named(status, default: .inProgress, provider: provider)
            return kaizen.insert(count: count, into: organizations) { data, random in
                KaizenStore.makeExecution(in: data, status: kaizenStatus, startTime: time, now: max(now, time), random: &random)
            }
        case .kapso:
            let kapsoStatus = try KapsoStatus.named(status, default: .running, provider: provider)
            // Kapso's instants are whole seconds.
            let seconds = time - ((time % 1000) + 1000) % 1000
            return kapso.insert(count: count, into: organizations) { data, random in
                let workflow = random.pick(data.workflows)
                return KapsoStore.makeExecution(
                    organizationID: data.organization.id, workflow: workflow, status: kapsoStatus, startedAt: seconds,
                    now: max(now, seconds), random: &random
                )
            }
        case .b3os:
            let b3osStatus = try B3OSStatus.named(status, default: .workflowRunning, provider: provider)
            return b3os.insert(count: count, into: organizations) { data, random in
                let workflowID = random.pick(data.workflowIDs)
                return B3OSStore.makeExecution(
                    organizationID: data.organization.id, workflowID: workflowID, status: b3osStatus, createdAt: time,
                    now: max(now, time), random: &random
                )
            }
        }
    }

    mutating func overrideFields(provider: SimulatedProvider, ids: Set<String>, with fields: JSONObject) {
        switch provider {
        case .kaizen: kaizen.overrideFields(ids: ids, with: fields)
        case .kapso: kapso.overrideFields(ids: ids, with: fields)
        case .b3os: b3os.overrideFields(ids: ids, with: fields)
        }
    }

    /// Finishes running executions (or exactly the unfinished ones named by `ids`).
    mutating func finish(provider: SimulatedProvider, ids: [String]?, outcome: FinishOutcome, now: Int64) -> [String] {
        switch provider {
        case .kaizen:
            return kaizen.finish(ids: ids, runningStatus: .inProgress) { execution, random in
                execution.finish(as: outcome == .succeeded ? .completed : .failed, at: now, random: &random)
            }
        case .kapso:
            let seconds = now - ((now % 1000) + 1000) % 1000
            return kapso.finish(ids: ids, runningStatus: .running) { execution, random in
                execution.finish(as: outcome == .succeeded ? .ended : .failed, at: seconds, random: &random)
            }
        case .b3os:
            return b3os.finish(ids: ids, runningStatus: .workflowRunning) { execution, random in
                if !execution.status.hasStarted { execution.advance(to: .workflowRunning, at: now, random: &random) }
                execution.advance(to: outcome == .succeeded ? .workflowSucceeded : .workflowFailed, at: now, random: &random)
            }
        }
    }

    /// Execution ids in the order the provider's list returns them (newest first, ties by id).
    func executionIDs(provider: SimulatedProvider, organizationID: String) -> [String] {
        switch provider {
        case .kaizen: kaizen.executions(of: organizationID).newestFirst().map(\.id)
        case .kapso: kapso.executions(of: organizationID).newestFirst().map(\.id)
        case .b3os: b3os.executions(of: organizationID).newestFirst().map(\.id)
        }
    }

    func workflowIDs(provider: SimulatedProvider, organizationID: String) -> [String] {
        switch provider {
        case .kaizen: kaizen.organization(organizationID)?.workflows.map(\.id) ?? []
        case .kapso: kapso.organization(organizationID)?.workflows.map(\.id) ?? []
        case .b3os: b3os.organization(organizationID)?.workflowIDs ?? []
        }
    }
}

/// One execution added through the control API.
public struct InsertedExecution: Sendable, Equatable {
    public let organizationID: String
    public let id: String
}

/// How `finish` ends executions.
public enum FinishOutcome: String, Sendable {
    case succeeded
    case failed
}
