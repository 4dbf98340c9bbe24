import Foundation
import GatewayHTTP
import GatewayJSON

enum KapsoAPI {
    static let contentType = "application/json; charset=utf-8"

    static func error(_ status: HTTPStatus, _ error: String, _ message: String) -> HTTPResponse {
        jsonResponse(status, .object(["error": .string(error), "message": .string(message)]), contentType: contentType)
    }

    static func badRequest(_ message: String) -> HTTPResponse { error(.badRequest, "Bad Request", message) }

    static func authenticate(_ request: HTTPRequest) -> SimulatedCredential? {
        guard let key = request.headers["X-API-Key"] else { return nil }
        return ProviderSimulator.credential(key, provider: .kapso)
    }

    static func workflows(store: KapsoStore, organizationID: String) -> HTTPResponse {
        guard let organization = store.organization(organizationID) else {
            return jsonResponse(.ok, .object(["data": .array([])]), contentType: contentType)
        }
        var lastExecutedAt: [String: Int64] = [:]
        var executionCounts: [String: Int] = [:]
        for execution in organization.executions {
            let workflowID = execution.workflow.id
            executionCounts[workflowID, default: 0] += 1
            lastExecutedAt[workflowID] = max(lastExecutedAt[workflowID] ?? execution.startedAt, execution.startedAt)
        }
        let items = organization.workflows.map {
            $0.listItem(lastExecutedAt: lastExecutedAt[$0.id], executionCount: executionCounts[$0.id] ?? 0)
        }
        return jsonResponse(.ok, .object(["data": .array(items)]), contentType: contentType)
    }

    static func detail(id: String, store: KapsoStore, organizationID: String) -> HTTPResponse {
        guard let execution = store.organization(organizationID)?.executions.first(where: { $0.id == id }) else {
            return error(.notFound, "Not Found", "Workflow execution not found")
        }
        return jsonResponse(.ok, .object(["data": execution.detail]), contentType: contentType)
    }

    static func executions(_ request: HTTPRequest, workflowID: String, store: KapsoStore, organizationID: String) -> HTTPResponse {
        guard let organization = store.organization(organizationID),
              organization.workflows.contains(where: { $0.id == workflowID })
        else {
            return error(.notFound, "Not Found", "Workflow not found")
        }
        // Later occurrences win, as in Rails' query parsing.
        var parameters: [String: String] = [:]
        for item in request.queryItems { parameters[item.name] = item.value }

        var status: KapsoStatus?
        if let text = parameters["status"] {
            guard let parsed = KapsoStatus(rawValue: text) else {
                return badRequest("Invalid status '\(text)'. Allowed: running, waiting, ended, failed, handoff")
            }
            status = parsed
        }
        var limit = 20
        if let text = parameters["limit"] {
            guard let parsed = Int(text), (1...100).contains(parsed) else {
                return badRequest("limit must be an integer between 1 and 100")
            }
            limit = parsed
        }
        var createdAfter: Int64?
        var createdBefore: Int64?
        for (name, isAfter) in [("created_after", true), ("created_before", false)] {
            guard let text = parameters[name] else { continue }
            guard let nanoseconds = Timestamps.parseNanoseconds(text) else {
                return badRequest("\(name) must be an ISO 8601 date-time, got '\(text)'")
            }
            if isAfter { createdAfter = nanoseconds } else { createdBefore = nanoseconds }
        }
        let conversationID = parameters["whatsapp_conversation_id"]
        if let conversationID, !isUUID(conversationID) {
            return badRequest("whatsapp_conversation_id must be a UUID")
        }
        let waitingReason = parameters["waiting_reason"]
        if parameters["before"] != nil && parameters["after"] != nil {
            return badRequest("Use either before or after, not both")
        }
        var afterKey: ListOrderKey?
        var beforeKey: ListOrderKey?
        if let text = parameters["after"] {
            guard let key = decodeCursor(text) else { return badRequest("Invalid cursor") }
            afterKey = key
        }
        if let text = parameters["before"] {
            guard let key = decodeCursor(text) else { return badRequest("Invalid cursor") }
            beforeKey = key
        }

        let matching = organization.executions
            .filter { execution in
                guard execution.workflow.id == workflowID else { return false }
                if let status, execution.status != status { return false }
                if let waitingReason, execution.waitingReason != waitingReason { return false }
                if let conversationID, execution.whatsappConversationID != conversationID { return false }
                let startNanoseconds = execution.startedAt * 1_000_000
                if let createdAfter, startNanoseconds < createdAfter { return false }
                if let createdBefore, startNanoseconds > createdBefore { return false }
                return true
            }
            .newestFirst()

        let page: [KapsoExecution]
        if let afterKey {
            page = Array(matching.filter { $0.sortKey < afterKey }.prefix(limit))
        } else if let beforeKey {
            page = Array(matching.filter { $0.sortKey > beforeKey }.suffix(limit))
        } else {
            page = Array(matching.prefix(limit))
        }

        var cursors: JSONObject = ["before": .null, "after": .null]
        var next: JSONValue = .null
        var previous: JSONValue = .null
        if let first = page.first, let last = page.last {
            let beforeCursor = encodeCursor(first.sortKey)
            let afterCursor = encodeCursor(last.sortKey)
            cursors = ["before": .string(beforeCursor), "after": .string(afterCursor)]
            if matching.contains(where: { $0.sortKey < last.sortKey }) {
                next = .string(pageURL(request, parameters: parameters, limit: limit, cursorName: "after", cursor: afterCursor))
            }
            if matching.contains(where: { $0.sortKey > first.sortKey }) {
                previous = .string(pageURL(request, parameters: parameters, limit: limit, cursorName: "before", cursor: beforeCursor))
            }
        }
        return jsonResponse(.ok, .object([
            "data": .array(page.map(\.listItem)),
            "paging": .object(["cursors": .object(cursors), "next": next, "previous": previous]),
        ]), contentType: contentType)
    }

    /// Base64 of `{"created_at": "...", "id": "..."}`.
    static func encodeCursor(_ key: ListOrderKey) -> String {
        let json = JSONValue.object([
            "created_at": .string(Timestamps.format(milliseconds: key.milliseconds, style: .milliseconds)),
            "id": .string(key.id),
        ])
        return Data(json.serialized()).base64EncodedString()
    }

    static func decodeCursor(_ text: String) -> ListOrderKey? {
        var normalized = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while normalized.count % 4 != 0 { normalized += "=" }
        guard let data = Data(base64Encoded: normalized),
              let value = try? JSONValue.parseUpstreamRequest(Array(data)),
              let object = value.objectValue,
              let createdAt = object["created_at"]?.stringValue,
              let id = object["id"]?.stringValue,
              let nanoseconds = Timestamps.parseNanoseconds(createdAt)
        else { return nil }
        return ListOrderKey(milliseconds: nanoseconds / 1_000_000, id: id)
    }

    static func pageURL(_ request: HTTPRequest, parameters: [String: String], limit: Int, cursorName: String, cursor: String) -> String {
        var items: [(String, String)] = parameters
            .filter { !["before", "after", "limit"].contains($0.key) }
            .sorted { $0.key < $1.key }
        items.append(("limit", String(limit)))
        items.append((cursorName, cursor))
        let query = items.map { percentEncode($0.0) + "=" + percentEncode($0.1) }.joined(separator: "&")
        let host = request.headers["Host"].map { "http://" + $0 } ?? ""
        return host + request.path + "?" + query
    }

    static func isUUID(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 36 else { return false }
        for (index, byte) in bytes.enumerated() {
            if [8, 13, 18, 23].contains(index) {
                guard byte == UInt8(ascii: "-") else { return false }
            } else {
                guard hexDigit(byte) else { return false }
            }
        }
        return true
    }

    private static func hexDigit(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x61...0x66).contains(byte) || (0x41...0x46).contains(byte)
    }
}
