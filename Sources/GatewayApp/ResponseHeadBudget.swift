public import GatewayHTTP
public import GatewayServer

/// Keeps every response head within what a proxy in front reads in one buffer. nginx reads the
/// whole head into `proxy_buffer_size`, 4 KiB by default, and answers `502` ("upstream sent too big
/// header") when it does not fit. The only field that grows with what a client sends is `Link`,
/// which repeats the next page's cursor (and so the query's `q` terms, up to about 8 KiB): when the
/// head would pass the budget, `Link` is left out. `page.nextCursor` in the body always carries the
/// same cursor, so nothing is lost to a client that pages by the body.
public struct ResponseHeadBudgetMiddleware: HTTPMiddleware {
    /// nginx's default `proxy_buffer_size` (one memory page).
    public static let proxyBufferBytes = 4096
    /// What the server writes after this layer has seen the response: status line, `Date`,
    /// `Content-Length`, `Connection` and the empty line (under 140 bytes), with room to spare.
    static let serverWrittenBytes = 160

    let maxHeadBytes: Int

    public init(maxHeadBytes: Int = ResponseHeadBudgetMiddleware.proxyBufferBytes) {
        self.maxHeadBytes = maxHeadBytes
    }

    public nonisolated(nonsending) func handle<Next: HTTPResponder>(_ request: HTTPRequest, context: consuming RequestContext, next: Next) async -> HTTPResponse {
        var response = await next.respond(to: request, context: consume context)
        fitHead(of: &response)
        return response
    }

    /// Drops `Link` when the head as the server will write it could exceed `maxHeadBytes`.
    func fitHead(of response: inout HTTPResponse) {
        var headBytes = Self.serverWrittenBytes
        var hasLink = false
        for field in response.headers {
            // "Name: value\r\n"
            headBytes += field.name.utf8.count + field.value.utf8.count + 4
            if field.hasCanonicalName("link") { hasLink = true }
        }
        guard hasLink, headBytes > maxHeadBytes else { return }
        response.headers.remove(name: "Link")
    }
}
