public import GatewayHTTP
import GatewayJSON

extension HTTPResponse {
    /// A minimal problem+json answer from the server itself, before or instead of any application
    /// code: malformed or timed-out requests, and routing's 404, 405 and 501. Built only when one of
    /// those happens. `requestID` is nil only for errors found before a request exists.
    public static func defaultProblem(status: HTTPStatus, detail: String, requestID: String? = nil) -> HTTPResponse {
        var body = JSONWriter(capacity: 160 + detail.utf8.count)
        body.fragment("{\"type\":\"about:blank\",\"title\":")
        body.string(status.reasonPhrase)
        body.fragment(",\"status\":")
        body.raw(String(status.code))
        body.fragment(",\"detail\":")
        body.string(detail)
        if let requestID {
            body.fragment(",\"requestId\":")
            body.string(requestID)
        }
        body.raw(UInt8(ascii: "}"))
        return HTTPResponse(
            status: status,
            headers: ["Content-Type": "application/problem+json", "Cache-Control": "no-store"],
            body: body.bytes
        )
    }
}
