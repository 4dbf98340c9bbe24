import GatewayHTTP
import GatewayJSON

/// Kaizen's filter body for `POST /executions/list`, validated like the real API's schema:
/// wrong types, an unknown status or a non-UTC timestamp are refused; unknown keys are ignored.
struct KaizenListFilter: Sendable {
    var status: KaizenStatus?
    var loginID: String?
    var search: [String] = []
    var batchID: String?
    var workflowID: String?
    var tagIDs: [String] = []
    var fromNanoseconds: Int64?
    var toNanoseconds: Int64?
    var isTest: Bool?

    static func parse(_ body: JSONValue) throws(SimulatorControlError) -> KaizenListFilter {
        guard let object = body.objectValue else { throw SimulatorControlError("Request body must be a JSON object") }
        var filter = KaizenListFilter()
        func string(_ key: String) throws(SimulatorControlError) -> String? {
            guard let value = object[key] else { return nil }
            guard let text = value.stringValue else { throw SimulatorControlError("Invalid '\(key)': expected string") }
            return text
        }
        func strings(_ key: String) throws(SimulatorControlError) -> [String] {
            guard let value = object[key] else { return [] }
            guard let array = value.arrayValue else { throw SimulatorControlError("Invalid '\(key)': expected array of strings") }
            var result: [String] = []
            for element in array {
                guard let text = element.stringValue else { throw SimulatorControlError("Invalid '\(key)': expected array of strings") }
                result.append(text)
            }
            return result
        }
        func timestamp(_ key: String) throws(SimulatorControlError) -> Int64? {
            guard let text = try string(key) else { return nil }
            guard let nanoseconds = Timestamps.parseNanoseconds(text, requireUTC: true) else {
                throw SimulatorControlError("Invalid '\(key)': expected an ISO 8601 date-time in UTC, got '\(text)'")
            }
            return nanoseconds
        }
        if let statusText = try string("status") {
            guard let status = KaizenStatus(rawValue: statusText) else {
                throw SimulatorControlError(
                    "Invalid 'status': expected one of InProgress, Completed, Enqueued, Failed, Paused, got '\(statusText)'"
                )
            }
            filter.status = status
        }
        filter.loginID = try string("loginId")
        filter.search = try strings("search")
        filter.batchID = try string("batch")
        filter.workflowID = try string("workflowId")
        filter.tagIDs = try strings("tagFilters")
        filter.fromNanoseconds = try timestamp("fromTs")
        filter.toNanoseconds = try timestamp("toTs")
        if let value = object["isTest"] {
            guard case .bool(let flag) = value else { throw SimulatorControlError("Invalid 'isTest': expected boolean") }
            filter.isTest = flag
        }
        return filter
    }

    func matches(_ execution: KaizenExecution) -> Bool {
        if let status, execution.status != status { return false }
        if let loginID, !execution.logins.contains(where: { $0.id == loginID }) { return false }
        if let batchID, execution.batch?.id != batchID { return false }
        if let workflowID, execution.workflow.id != workflowID { return false }
        if !tagIDs.allSatisfy(execution.workflow.tagIDs.contains) { return false }
        let startNanoseconds = execution.startTime * 1_000_000
        if let fromNanoseconds, startNanoseconds < fromNanoseconds { return false }
        if let toNanoseconds, startNanoseconds > toNanoseconds { return false }
        if let isTest, execution.isTest != isTest { return false }
        let terms = search.filter { !$0.isEmpty }
        if !terms.isEmpty {
            let haystack = [execution.id] + JSONValue.object(execution.params).scalarTexts
            let found = terms.contains { term in haystack.contains { $0.containsCaseInsensitive(term) } }
            if !found { return false }
        }
        return true
    }
}

extension String {
    /// Case-insensitive substring test without Foundation's locale machinery.
    func containsCaseInsensitive(_ term: String) -> Bool {
        lowercased().contains(term.lowercased())
    }
}

enum KaizenAPI {
    static func error(_ status: HTTPStatus, _ message: String) -> HTTPResponse {
        jsonResponse(status, .object(["error": .string(message)]))
    }

    static func authenticate(_ request: HTTPRequest) -> SimulatedCredential? {
        guard let key = bearerToken(request) else { return nil }
        return ProviderSimulator.credential(key, provider: .kaizen)
    }

    static func requestBody(_ request: HTTPRequest) -> Result<JSONValue, SimulatorControlError> {
        // The body is read as JSON whatever the Content-Type says (curl's `-d` labels it a form),
        // but it must be there: the OpenAPI document marks it required.
        guard !request.body.isEmpty else { return .failure(SimulatorControlError("Request body is required")) }
        do {
            return .success(try JSONValue.parseUpstreamRequest(request.body))
        } catch {
            return .failure(SimulatorControlError("Malformed JSON body: \(error.simulatorDescription)"))
        }
    }

    static func list(_ request: HTTPRequest, store: KaizenStore, organizationID: String) -> HTTPResponse {
        let filter: KaizenListFilter
        switch requestBody(request) {
        case .failure(let failure): return error(.badRequest, failure.message)
        case .success(let body):
            do { filter = try KaizenListFilter.parse(body) } catch { return KaizenAPI.error(.badRequest, error.message) }
        }
        let executions = store.executions(of: organizationID)
            .filter(filter.matches)
            .newestFirst()
        return jsonResponse(.ok, .object([
            "executions": .array(executions.map(\.listItem)),
            "total": .int(executions.count),
        ]))
    }

    static func get(_ request: HTTPRequest, store: KaizenStore, organizationID: String) -> HTTPResponse {
        let id: String
        switch requestBody(request) {
        case .failure(let failure): return error(.badRequest, failure.message)
        case .success(let body):
            guard let object = body.objectValue, let value = object["id"] else {
                return error(.badRequest, "Invalid 'id': required")
            }
            guard let text = value.stringValue, !text.isEmpty else { return error(.badRequest, "Invalid 'id': expected non-empty string") }
            id = text
        }
        guard let execution = store.executions(of: organizationID).first(where: { $0.id == id }) else {
            return error(.notFound, "Execution not found")
        }
        return jsonResponse(.ok, .object(["execution": execution.detail]))
    }
}

// MARK: - Helpers shared by the providers

func jsonResponse(_ status: HTTPStatus, _ value: JSONValue, contentType: String = "application/json") -> HTTPResponse {
    HTTPResponse(status: status, headers: ["Content-Type": contentType], body: value.serialized())
}

func bearerToken(_ request: HTTPRequest) -> String? {
    guard let header = request.headers["Authorization"] else { return nil }
    let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
    guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
    let token = parts[1].trimmingCharacters(in: " \t")
    return token.isEmpty ? nil : token
}

extension Substring {
    func trimmingCharacters(in characters: String) -> String {
        var slice = self
        while let first = slice.first, characters.contains(first) { slice = slice.dropFirst() }
        while let last = slice.last, characters.contains(last) { slice = slice.dropLast() }
        return String(slice)
    }
}
