import GatewayHTTP
import GatewayJSON

enum B3OSAPI {
    /// Every B3OS answer, success or error, is the same envelope.
    static func envelope(_ status: HTTPStatus, data: JSONValue, message: String, requestID: String) -> HTTPResponse {
        var response = jsonResponse(status, .object([
            "code": .int(status.code),
            "data": data,
            "message": .string(message),
            "requestId": .string(requestID),
        ]))
        response.headers.add(name: "X-Request-Id", value: requestID)
        return response
    }

    static func error(_ status: HTTPStatus, _ message: String, requestID: String) -> HTTPResponse {
        envelope(status, data: .null, message: message, requestID: requestID)
    }

    enum Access {
        case allowed(organizationID: String)
        case denied(HTTPResponse)
    }

    /// 401 for a missing or unknown key, 403 for a key without the read scope or an `X-Org-ID`
    /// the key does not belong to; otherwise the organisation to read.
    static func authorize(_ request: HTTPRequest, requestID: String) -> Access {
        guard let key = bearerToken(request), key.hasPrefix("b3sk_"),
              let credential = ProviderSimulator.credential(key, provider: .b3os)
        else {
            return .denied(error(.unauthorized, "invalid or missing API key", requestID: requestID))
        }
        guard credential.canReadExecutions else {
            return .denied(error(.forbidden, "API key lacks required scope: executions:read", requestID: requestID))
        }
        if let requested = request.headers["X-Org-ID"] {
            guard credential.organizationIDs.contains(requested) else {
                return .denied(error(.forbidden, "API key is not a member of organization \(requested)", requestID: requestID))
            }
            return .allowed(organizationID: requested)
        }
        guard let first = credential.organizationIDs.first else {
            return .denied(error(.forbidden, "API key belongs to no organization", requestID: requestID))
        }
        return .allowed(organizationID: first)
    }

    static func list(_ request: HTTPRequest, store: B3OSStore, organizationID: String, requestID: String) -> HTTPResponse {
        var parameters: [String: String] = [:]
        for item in request.queryItems { parameters[item.name] = item.value }
        var limit = 20
        var offset = 0
        if let text = parameters["limit"] {
            guard let parsed = Int(text), (1...100).contains(parsed) else {
                return error(.badRequest, "invalid limit: must be an integer between 1 and 100", requestID: requestID)
            }
            limit = parsed
        }
        if let text = parameters["offset"] {
            guard let parsed = Int(text), parsed >= 0 else {
                return error(.badRequest, "invalid offset: must be a non-negative integer", requestID: requestID)
            }
            offset = parsed
        }
        let executions = store.executions(of: organizationID).newestFirst()
        let page = offset < executions.count ? Array(executions[offset..<min(executions.count, offset + limit)]) : []
        return envelope(.ok, data: .object([
            "hasMore": .bool(offset + page.count < executions.count),
            "items": .array(page.map(\.item)),
            "limit": .int(limit),
            "offset": .int(offset),
        ]), message: "success", requestID: requestID)
    }

    static func detail(id: String, store: B3OSStore, organizationID: String, requestID: String) -> HTTPResponse {
        guard let execution = store.executions(of: organizationID).first(where: { $0.id == id }) else {
            return error(.notFound, "execution not found", requestID: requestID)
        }
        return envelope(.ok, data: .object(["execution": execution.item, "events": execution.eventsJSON]), message: "success", requestID: requestID)
    }
}
