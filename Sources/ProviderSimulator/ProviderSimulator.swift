import GatewayHTTP
public import GatewayJSON
public import GatewayServer
import Synchronization

/// Simulated Kaizen, Kapso and B3OS APIs with deterministic data, live changes, fault injection
/// and request counters, for the demo and for tests.
///
/// Each provider is an `HTTPResponder` (`kaizen`, `kapso`, `b3os`) that also serves the control
/// endpoints under `/__sim/` (no credential needed):
///
/// | method | path | body / answer |
/// |---|---|---|
/// | POST | /__sim/executions | `{"count": 3, "organization": "org_...", "at": "<RFC 3339>", "status": "<native status>", "fields": {...}}` (all optional) -> 201 `{"inserted": [{"organization", "id"}]}` |
/// | POST | /__sim/finish | `{"ids": [...], "outcome": "succeeded" \| "failed"}` (optional) -> `{"finished": [ids]}` |
/// | POST | /__sim/faults | one fault, an array, or `{"faults": [...]}` -> 201 `{"faults": [installed]}` |
/// | GET, DELETE | /__sim/faults | list / remove every fault of the provider |
/// | GET | /__sim/counters | `{"total", "endpoints": {...}, "credentials": {...}}` |
/// | POST | /__sim/reset | counters, faults and data back to the seed's state |
///
/// A fault: `{"kind": "latency" | "status" | "rateLimit" | "timeout" | "reset" | "truncate" | "malformedJSON",
/// "endpoint": "list" | "detail" | "workflows" | "other" | "any", "credential": "...", "fromCall": 1, "toCall": 1,
/// "count": 1, "probability": 0.5, "latencyMs": 250, "status": 503, "retryAfterSeconds": 5, "afterBytes": 100}`.
/// Calls are counted per fault from the moment it is set, among the requests it applies to.
///
/// `fields` replaces or adds members of the inserted records exactly as the list and detail answers
/// render them (the list order still follows `at`), so a test can serve what no real run produces:
/// `{"at": "1678-01-01T00:00:00Z", "fields": {"finishedAt": "2262-04-01T00:00:00Z"}}`.
public final class ProviderSimulator: Sendable {
    public let configuration: SimulatorConfiguration
    private let state: Mutex<SimulatorState>

    public init(configuration: SimulatorConfiguration = SimulatorConfiguration()) {
        self.configuration = configuration
        self.state = Mutex(SimulatorState(configuration: configuration, now: configuration.now()))
    }

    /// Kaizen's API (`POST /executions/list`, `POST /executions/get`) plus the control endpoints.
    public var kaizen: any HTTPResponder { responder(for: .kaizen) }
    /// Kapso's API under `configuration.kapsoBasePath` plus the control endpoints.
    public var kapso: any HTTPResponder { responder(for: .kapso) }
    /// B3OS's API (`GET /v1/executions`, `GET /v1/executions/{id}`) plus the control endpoints.
    public var b3os: any HTTPResponder { responder(for: .b3os) }

    public func responder(for provider: SimulatedProvider) -> any HTTPResponder {
        SimulatedProviderResponder(simulator: self, provider: provider)
    }

    // MARK: Control API for in-process tests

    /// Adds `count` executions to each organisation of `provider` (or only `organizationID`),
    /// created at `atUnixMilliseconds` (default now), in `status` (the provider's own status
    /// name; default its running status), with `fields` replacing members of their records.
    @discardableResult
    public func insertExecutions(
        provider: SimulatedProvider, count: Int = 1, organizationID: String? = nil, atUnixMilliseconds: Int64? = nil,
        status: String? = nil, fields: JSONObject = [:]
    ) throws(SimulatorControlError) -> [InsertedExecution] {
        let now = configuration.now()
        return try state.withLock { state throws(SimulatorControlError) in
            let inserted = try state.insert(
                provider: provider, count: count, organizationID: organizationID, at: atUnixMilliseconds ?? now, status: status, now: now
            )
            if !fields.isEmpty { state.overrideFields(provider: provider, ids: Set(inserted.map(\.id)), with: fields) }
            return inserted
        }
    }

    /// Finishes every running execution of `provider`, or exactly the unfinished ones in `ids`.
    /// Returns the ids finished.
    @discardableResult
    public func finishExecutions(provider: SimulatedProvider, ids: [String]? = nil, outcome: FinishOutcome = .succeeded) -> [String] {
        let now = configuration.now()
        return state.withLock { $0.finish(provider: provider, ids: ids, outcome: outcome, now: now) }
    }

    /// Installs a fault and returns its id.
    @discardableResult
    public func setFault(_ fault: SimulatedFault, provider: SimulatedProvider) -> Int {
        state.withLock { state in
            let id = state.nextFaultID
            state.nextFaultID += 1
            state.faults[provider, default: []].append(InstalledFault(id: id, fault: fault))
            return id
        }
    }

    /// Removes the faults of `provider`, or of every provider.
    public func clearFaults(provider: SimulatedProvider? = nil) {
        state.withLock { state in
            if let provider { state.faults[provider] = nil } else { state.faults = [:] }
        }
    }

    public func counters(provider: SimulatedProvider) -> SimulatorCounters {
        state.withLock { $0.counters[provider] ?? SimulatorCounters() }
    }

    /// Counters, faults, rate-limit windows and data of `provider` (or all) back to the start,
    /// the data regenerated from the seed at the clock's current time.
    public func reset(provider: SimulatedProvider? = nil) {
        let now = configuration.now()
        state.withLock { state in
            for target in provider.map({ [$0] }) ?? SimulatedProvider.allCases {
                state.counters[target] = nil
                state.faults[target] = nil
                state.resetData(of: target, configuration: configuration, now: now)
            }
        }
    }

    /// The organisation's execution ids in the provider's list order (newest first, ties by id descending).
    public func executionIDs(provider: SimulatedProvider, organizationID: String) -> [String] {
        state.withLock { $0.executionIDs(provider: provider, organizationID: organizationID) }
    }

    /// The organisation's workflow ids (Kapso's are what `GET /workflows` lists).
    public func workflowIDs(provider: SimulatedProvider, organizationID: String) -> [String] {
        state.withLock { $0.workflowIDs(provider: provider, organizationID: organizationID) }
    }

    // MARK: Serving

    func serve(provider: SimulatedProvider, endpoint: SimulatedEndpoint, request: HTTPRequest, context: RequestContext) async -> HTTPResponse {
        let presentedKey: String? = switch provider {
        case .kaizen, .b3os: bearerToken(request)
        case .kapso: request.headers["X-API-Key"]
        }
        let now = configuration.now()
        let configuration = self.configuration
        let admission = state.withLock { state in
            state.admit(provider: provider, endpoint: endpoint, presentedKey: presentedKey, now: now, configuration: configuration)
        }
        let latency = min(max(0, configuration.latencyMilliseconds), 86_400_000) + admission.latencyMilliseconds
        if latency > 0 { await configuration.sleep(latency) }

        var response: HTTPResponse
        switch admission.action {
        case .respond(let prepared):
            response = prepared
        case .timeout:
            await configuration.sleep(configuration.timeoutFaultMilliseconds)
            response = state.withLock {
                $0.providerError(provider: provider, status: .gatewayTimeout, message: "Simulated timeout", requestID: admission.requestID)
            }
        case .reset:
            response = HTTPResponse(status: .ok)
            response.transportFault = .resetConnection
            return response
        case .answer, .truncate, .malformedJSON:
            response = state.withLock { state in
                state.answer(provider: provider, endpoint: endpoint, request: request, pathParameters: context.pathParameters, requestID: admission.requestID)
            }
        }
        for (name, value) in admission.extraHeaders { response.headers.replaceOrAdd(name: name, value: value) }
        switch admission.action {
        case .truncate(let afterBytes):
            response.transportFault = .truncateBody(afterBytes: min(response.body.count, afterBytes ?? response.body.count / 2))
        case .malformedJSON:
            response.body = Array(response.body.prefix(response.body.count / 2))
        default:
            break
        }
        return response
    }

    func control(provider: SimulatedProvider, action: ControlAction, request: HTTPRequest) -> HTTPResponse {
        do throws(SimulatorControlError) {
            let body: JSONValue? = try {
                () throws(SimulatorControlError) -> JSONValue? in
                guard !request.body.isEmpty else { return nil }
                do throws(JSONParseError) { return try JSONValue.parseUpstreamRequest(request.body) } catch { throw SimulatorControlError("malformed JSON body: \(error.simulatorDescription)") }
            }()
            /// The body's members; no body reads as an empty object.
            func bodyObject() throws(SimulatorControlError) -> JSONObject {
                guard let body else { return JSONObject() }
                guard let object = body.objectValue else { throw SimulatorControlError("body must be a JSON object") }
                return object
            }
            switch action {
            case .insert:
                let object = try bodyObject()
                var count = 1
                if let value = object["count"] {
                    guard case .integer(let number) = value, let parsed = Int(exactly: number) else {
                        throw SimulatorControlError("'count' must be an integer")
                    }
                    count = parsed
                }
                var at: Int64?
                if let value = object["at"], !value.isNull {
                    guard let text = value.stringValue, let nanoseconds = Timestamps.parseNanoseconds(text) else {
                        throw SimulatorControlError("'at' must be an RFC 3339 date-time")
                    }
                    at = nanoseconds / 1_000_000
                }
                let organization = try object.optionalString("organization")
                let status = try object.optionalString("status")
                var fields = JSONObject()
                if let value = object["fields"], !value.isNull {
                    guard let members = value.objectValue else { throw SimulatorControlError("'fields' must be an object") }
                    fields = members
                }
                let inserted = try insertExecutions(
                    provider: provider, count: count, organizationID: organization, atUnixMilliseconds: at, status: status, fields: fields
                )
                return jsonResponse(.created, .object(["inserted": .array(inserted.map { item in
                    .object(["organization": .string(item.organizationID), "id": .string(item.id)])
                })]))
            case .finish:
                let object = try bodyObject()
                var ids: [String]?
                if let value = object["ids"], !value.isNull {
                    guard let array = value.arrayValue else { throw SimulatorControlError("'ids' must be an array of strings") }
                    ids = try array.map { element throws(SimulatorControlError) -> String in
                        guard let text = element.stringValue else { throw SimulatorControlError("'ids' must be an array of strings") }
                        return text
                    }
                }
                var outcome = FinishOutcome.succeeded
                if let text = try object.optionalString("outcome") {
                    guard let parsed = FinishOutcome(rawValue: text) else { throw SimulatorControlError("'outcome' must be succeeded or failed") }
                    outcome = parsed
                }
                let finished = finishExecutions(provider: provider, ids: ids, outcome: outcome)
                return jsonResponse(.ok, .object(["finished": .array(finished.map(JSONValue.string))]))
            case .addFaults:
                guard let body else { throw SimulatorControlError("a fault body is required") }
                let specifications: [JSONValue]
                if let array = body.arrayValue {
                    specifications = array
                } else if let list = body.objectValue?["faults"]?.arrayValue {
                    specifications = list
                } else {
                    specifications = [body]
                }
                let faults = try specifications.map { value throws(SimulatorControlError) in try SimulatedFault.parse(value) }
                let ids = Set(faults.map { setFault($0, provider: provider) })
                let installed = state.withLock { $0.faults[provider] ?? [] }.filter { ids.contains($0.id) }
                return jsonResponse(.created, .object(["faults": .array(installed.map(\.json))]))
            case .listFaults:
                let installed = state.withLock { $0.faults[provider] ?? [] }
                return jsonResponse(.ok, .object(["faults": .array(installed.map(\.json))]))
            case .clearFaults:
                clearFaults(provider: provider)
                return jsonResponse(.ok, .object(["faults": .array([])]))
            case .counters:
                var object = counters(provider: provider).json.objectValue ?? JSONObject()
                object["provider"] = .string(provider.rawValue)
                return jsonResponse(.ok, .object(object))
            case .reset:
                reset(provider: provider)
                return jsonResponse(.ok, .object(["reset": .string(provider.rawValue)]))
            }
        } catch {
            return jsonResponse(.badRequest, .object(["error": .string(error.message)]))
        }
    }

    enum ControlAction: Sendable {
        case insert, finish, addFaults, listFaults, clearFaults, counters, reset
    }
}

/// One provider's routes: its API plus the shared control endpoints.
struct SimulatedProviderResponder: HTTPResponder {
    private let router: Router

    init(simulator: ProviderSimulator, provider: SimulatedProvider) {
        var router = Router()
        func api(_ method: HTTPMethod, _ template: String, _ endpoint: SimulatedEndpoint) {
            router.add(method, template) { request, context in
                await simulator.serve(provider: provider, endpoint: endpoint, request: request, context: context)
            }
        }
        switch provider {
        case .kaizen:
            api(.post, "/executions/list", .list)
            api(.post, "/executions/get", .detail)
        case .kapso:
            let base = simulator.configuration.normalizedKapsoBasePath
            api(.get, base + "/workflows", .workflows)
            api(.get, base + "/workflows/{workflow_id}/executions", .list)
            api(.get, base + "/workflow_executions/{id}", .detail)
        case .b3os:
            api(.get, "/v1/executions", .list)
            api(.get, "/v1/executions/{id}", .detail)
        }
        let controls: [(HTTPMethod, String, ProviderSimulator.ControlAction)] = [
            (.post, "/__sim/executions", .insert),
            (.post, "/__sim/finish", .finish),
            (.post, "/__sim/faults", .addFaults),
            (.get, "/__sim/faults", .listFaults),
            (.delete, "/__sim/faults", .clearFaults),
            (.get, "/__sim/counters", .counters),
            (.post, "/__sim/reset", .reset),
        ]
        for (method, path, action) in controls {
            router.add(method, path) { request, _ in simulator.control(provider: provider, action: action, request: request) }
        }
        router.setNotFoundHandler { request, context in
            await simulator.serve(provider: provider, endpoint: .other, request: request, context: context)
        }
        self.router = router
    }

    func respond(to request: HTTPRequest, context: consuming RequestContext) async -> HTTPResponse {
        await router.respond(to: request, context: context)
    }
}
