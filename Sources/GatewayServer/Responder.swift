public import GatewayHTTP

/// Anything that turns a request into a response: a router, a middleware chain, a whole application.
///
/// The server starts each request as an immediate task on the connection's event loop
/// (`Task.immediate`, with the loop as executor preference): the task runs on the loop thread, inside
/// the call that starts it, until its first real suspension. `respond` and `handle` are
/// `nonisolated(nonsending)`, so a call down the chain runs on the caller's executor rather than
/// switching to the generic one: a responder that answers without waiting (a cache hit, a
/// rejection) has answered before the task's creation returns, with nothing enqueued; one that has
/// to wait (an upstream call, a shared store) suspends there and resumes on the loop.
///
/// Implement `respond` and `handle` as `nonisolated(nonsending)` too: a plain `async` witness runs
/// on the generic executor, and reaching it from the loop thread costs a trip through the loop's
/// queue on every request (`AnswerWithoutSuspendingTests` catches that for the server's own types,
/// `OneRequestPathTests` for the gateway's).
public protocol HTTPResponder: Sendable {
    nonisolated(nonsending) func respond(to request: HTTPRequest, context: consuming RequestContext) async -> HTTPResponse
}

/// A responder made from a closure.
public struct ClosureResponder: HTTPResponder {
    public typealias Body = nonisolated(nonsending) @Sendable (HTTPRequest, consuming RequestContext) async -> HTTPResponse
    private let body: Body

    public init(_ body: @escaping Body) {
        self.body = body
    }

    public nonisolated(nonsending) func respond(to request: HTTPRequest, context: consuming RequestContext) async -> HTTPResponse {
        await body(request, consume context)
    }
}

/// A step in front of a responder: it may answer itself, or call `next` and adjust what comes back.
/// Pass the context on with `next.respond(to: request, context: consume context)` (see `RequestContext`).
///
/// `next` is generic rather than `any HTTPResponder`: a chain's type spells out every layer, so a
/// module that knows the whole chain compiles it as direct calls down to the router, without an
/// existential witness and its async frame per layer (see `MiddlewareChain`).
public protocol HTTPMiddleware: Sendable {
    nonisolated(nonsending) func handle<Next: HTTPResponder>(
        _ request: HTTPRequest, context: consuming RequestContext, next: Next
    ) async -> HTTPResponse
}

/// Middlewares in front of a responder, the responder listed last; the first middleware runs first
/// and sees the final response last:
///
///     let chain = MiddlewareChain {
///         RequestTraceMiddleware()
///         AuthenticationMiddleware(...)
///         router
///     }
///
/// The chain's type records every layer (`MiddlewareLayer`s nested to the right), so calls through
/// it are direct once specialized. That happens where the concrete chain is called: hand the server
/// a responder that calls the chain from the module that built it
/// (`ClosureResponder { request, context in await chain.respond(to: request, context: consume context) }`),
/// not the chain itself as `any HTTPResponder`, whose witness would run the generic code. A middleware defined in another
/// module than that caller should be `@inlinable` for the same reason.
public struct MiddlewareChain<Layers: HTTPResponder>: HTTPResponder {
    @usableFromInline let layers: Layers

    @inlinable
    public init<Failure: Error>(@MiddlewareChainBuilder _ layers: () throws(Failure) -> Layers) throws(Failure) {
        self.layers = try layers()
    }

    @inlinable
    public nonisolated(nonsending) func respond(to request: HTTPRequest, context: consuming RequestContext) async -> HTTPResponse {
        await layers.respond(to: request, context: consume context)
    }
}

/// `middleware` in front of `next`: one link of a `MiddlewareChain`. The links are built once, with
/// the chain, so a request passes each layer the next one as it is, without copying anything.
public struct MiddlewareLayer<Middleware: HTTPMiddleware, Next: HTTPResponder>: HTTPResponder {
    @usableFromInline let middleware: Middleware
    @usableFromInline let next: Next

    @inlinable
    public init(_ middleware: Middleware, before next: Next) {
        self.middleware = middleware
        self.next = next
    }

    @inlinable
    public nonisolated(nonsending) func respond(to request: HTTPRequest, context: consuming RequestContext) async -> HTTPResponse {
        await middleware.handle(request, context: consume context, next: next)
    }
}

/// Builds a `MiddlewareChain` from its middlewares, in order, and the responder behind them (last).
///
/// One overload per number of middlewares, up to seven (add one for more), each nesting its links
/// to the right (`A, B, r` is `A` in front of (`B` in front of `r`)). Folding the list with
/// `buildPartialBlock` would have to build the links per request (the responder comes last), and a
/// fold that passes each layer a larger `Next` than it got stops the optimizer's specialization
/// partway down.
@resultBuilder
public enum MiddlewareChainBuilder {
    @inlinable
    public static func buildBlock<R: HTTPResponder>(
        _ responder: R
    ) -> R {
        responder
    }

    @inlinable
    public static func buildBlock<M0: HTTPMiddleware, R: HTTPResponder>(
        _ m0: M0, _ responder: R
    ) -> MiddlewareLayer<M0, R> {
        MiddlewareLayer(m0, before: responder)
    }

    @inlinable
    public static func buildBlock<M0: HTTPMiddleware, M1: HTTPMiddleware, R: HTTPResponder>(
        _ m0: M0, _ m1: M1, _ responder: R
    ) -> MiddlewareLayer<M0, MiddlewareLayer<M1, R>> {
        MiddlewareLayer(m0, before: MiddlewareLayer(m1, before: responder))
    }

    @inlinable
    public static func buildBlock<M0: HTTPMiddleware, M1: HTTPMiddleware, M2: HTTPMiddleware, R: HTTPResponder>(
        _ m0: M0, _ m1: M1, _ m2: M2, _ responder: R
    ) -> MiddlewareLayer<M0, MiddlewareLayer<M1, MiddlewareLayer<M2, R>>> {
        MiddlewareLayer(m0, before: MiddlewareLayer(m1, before: MiddlewareLayer(m2, before: responder)))
    }

    @inlinable
    public static func buildBlock<M0: HTTPMiddleware, M1: HTTPMiddleware, M2: HTTPMiddleware, M3: HTTPMiddleware, R: HTTPResponder>(
        _ m0: M0, _ m1: M1, _ m2: M2, _ m3: M3, _ responder: R
    ) -> MiddlewareLayer<M0, MiddlewareLayer<M1, MiddlewareLayer<M2, MiddlewareLayer<M3, R>>>> {
        MiddlewareLayer(m0, before: MiddlewareLayer(m1, before: MiddlewareLayer(m2, before: MiddlewareLayer(m3, before: responder))))
    }

    @inlinable
    public static func buildBlock<M0: HTTPMiddleware, M1: HTTPMiddleware, M2: HTTPMiddleware, M3: HTTPMiddleware, M4: HTTPMiddleware, R: HTTPResponder>(
        _ m0: M0, _ m1: M1, _ m2: M2, _ m3: M3, _ m4: M4, _ responder: R
    ) -> MiddlewareLayer<M0, MiddlewareLayer<M1, MiddlewareLayer<M2, MiddlewareLayer<M3, MiddlewareLayer<M4, R>>>>> {
        MiddlewareLayer(m0, before: MiddlewareLayer(m1, before: MiddlewareLayer(m2, before: MiddlewareLayer(m3, before: MiddlewareLayer(m4, before: responder)))))
    }

    @inlinable
    public static func buildBlock<M0: HTTPMiddleware, M1: HTTPMiddleware, M2: HTTPMiddleware, M3: HTTPMiddleware, M4: HTTPMiddleware, M5: HTTPMiddleware, R: HTTPResponder>(
        _ m0: M0, _ m1: M1, _ m2: M2, _ m3: M3, _ m4: M4, _ m5: M5, _ responder: R
    ) -> MiddlewareLayer<M0, MiddlewareLayer<M1, MiddlewareLayer<M2, MiddlewareLayer<M3, MiddlewareLayer<M4, MiddlewareLayer<M5, R>>>>>> {
        MiddlewareLayer(m0, before: MiddlewareLayer(m1, before: MiddlewareLayer(m2, before: MiddlewareLayer(m3, before: MiddlewareLayer(m4, before: MiddlewareLayer(m5, before: responder))))))
    }

    @inlinable
    public static func buildBlock<M0: HTTPMiddleware, M1: HTTPMiddleware, M2: HTTPMiddleware, M3: HTTPMiddleware, M4: HTTPMiddleware, M5: HTTPMiddleware, M6: HTTPMiddleware, R: HTTPResponder>(
        _ m0: M0, _ m1: M1, _ m2: M2, _ m3: M3, _ m4: M4, _ m5: M5, _ m6: M6, _ responder: R
    ) -> MiddlewareLayer<M0, MiddlewareLayer<M1, MiddlewareLayer<M2, MiddlewareLayer<M3, MiddlewareLayer<M4, MiddlewareLayer<M5, MiddlewareLayer<M6, R>>>>>>> {
        MiddlewareLayer(m0, before: MiddlewareLayer(m1, before: MiddlewareLayer(m2, before: MiddlewareLayer(m3, before: MiddlewareLayer(m4, before: MiddlewareLayer(m5, before: MiddlewareLayer(m6, before: responder)))))))
    }
}
