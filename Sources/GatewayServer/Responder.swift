public import GatewayHTTP

/// Anything that turns a request into a response: a router, a middleware chain, a whole application.
///
/// The server calls `respond` on the connection's event loop executor, so code that does not hop to
/// another actor never leaves that thread.
public protocol HTTPResponder: Sendable {
    func respond(to request: HTTPRequest, context: RequestContext) async -> HTTPResponse
}

/// A responder made from a closure.
public struct ClosureResponder: HTTPResponder {
    private let body: @Sendable (HTTPRequest, RequestContext) async -> HTTPResponse

    public init(_ body: @escaping @Sendable (HTTPRequest, RequestContext) async -> HTTPResponse) {
        self.body = body
    }

    public func respond(to request: HTTPRequest, context: RequestContext) async -> HTTPResponse {
        await body(request, context)
    }
}

/// A step in front of a responder: it may answer itself, or call `next` and adjust what comes back.
public protocol HTTPMiddleware: Sendable {
    func handle(_ request: HTTPRequest, context: RequestContext, next: any HTTPResponder) async -> HTTPResponse
}

/// `middlewares[0]` runs first and sees the final response last.
public struct MiddlewareChain: HTTPResponder {
    private let responder: any HTTPResponder

    public init(_ middlewares: [any HTTPMiddleware], responder: any HTTPResponder) {
        var current = responder
        for middleware in middlewares.reversed() {
            current = Link(middleware: middleware, next: current)
        }
        self.responder = current
    }

    public func respond(to request: HTTPRequest, context: RequestContext) async -> HTTPResponse {
        await responder.respond(to: request, context: context)
    }

    private struct Link: HTTPResponder {
        let middleware: any HTTPMiddleware
        let next: any HTTPResponder

        func respond(to request: HTTPRequest, context: RequestContext) async -> HTTPResponse {
            await middleware.handle(request, context: context, next: next)
        }
    }
}
