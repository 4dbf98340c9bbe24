public import GatewayHTTP

/// Anything that turns a request into a response: a router, a middleware chain, a whole application.
///
/// The server first offers each request to `respondImmediately`, on the connection's event loop
/// thread: a responder that can answer without waiting (a cache hit, a rejection) does so there,
/// with no task created and nothing queued. Only when that returns nil does the server start a
/// task for `respond`, on the same loop's executor, so code that does not hop to another actor
/// never leaves that thread either way.
public protocol HTTPResponder: Sendable {
    func respond(to request: HTTPRequest, context: RequestContext) async -> HTTPResponse

    /// The response, if it can be produced without suspending; nil when answering has to wait (an
    /// upstream call, a shared store). Before returning nil it records in `context` every decision
    /// it has already taken that must not be taken twice (a rate-limit token spent, a trace id
    /// chosen): the server passes that context on to `respond`, which reuses them.
    func respondImmediately(to request: HTTPRequest, context: inout RequestContext) -> HTTPResponse?
}

extension HTTPResponder {
    /// Responders that have no way to answer without waiting always take the asynchronous path.
    public func respondImmediately(to request: HTTPRequest, context: inout RequestContext) -> HTTPResponse? { nil }
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

    /// `handle` without suspending: the step's own work, then `next.respondImmediately`. When that
    /// is nil, return nil with this step's decisions recorded in `context`, so that `handle`, which
    /// runs next with that context, reuses them instead of repeating their side effects.
    func handleImmediately(_ request: HTTPRequest, context: inout RequestContext, next: any HTTPResponder) -> HTTPResponse?
}

extension HTTPMiddleware {
    /// A middleware that does not implement the immediate path sends every request down the
    /// asynchronous one (it must not be skipped).
    public func handleImmediately(_ request: HTTPRequest, context: inout RequestContext, next: any HTTPResponder) -> HTTPResponse? {
        nil
    }
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

    public func respondImmediately(to request: HTTPRequest, context: inout RequestContext) -> HTTPResponse? {
        responder.respondImmediately(to: request, context: &context)
    }

    private struct Link: HTTPResponder {
        let middleware: any HTTPMiddleware
        let next: any HTTPResponder

        func respond(to request: HTTPRequest, context: RequestContext) async -> HTTPResponse {
            await middleware.handle(request, context: context, next: next)
        }

        func respondImmediately(to request: HTTPRequest, context: inout RequestContext) -> HTTPResponse? {
            middleware.handleImmediately(request, context: &context, next: next)
        }
    }
}
