public import GatewayHTTP

/// Routes by method and path template. Templates are literal segments and `{name}` parameters
/// (`/v1/executions/{id}`); a parameter matches one non-empty segment and is percent-decoded.
///
/// - `HEAD` is answered by the `GET` handler when no `HEAD` handler is registered (the server
///   strips the body).
/// - A path that matches with another known method gets `405` and `Allow`.
/// - Methods the server does not know (none of RFC 9110's, PATCH or QUERY) get `501`: RFC 9110
///   §15.6.2 keeps 501 for methods the server does not recognise, so TRACE, CONNECT and QUERY on a
///   path that exists are `405` too.
public struct Router: HTTPResponder {
    /// Runs on the caller's executor (see `HTTPResponder`): a handler that answers without waiting
    /// answers on the loop thread.
    public typealias Handler = nonisolated(nonsending) @Sendable (HTTPRequest, RequestContext) async -> HTTPResponse

    /// A class: matching walks the routes on every request, and a struct's copy per route visited
    /// retained each of its fields.
    private final class Route: Sendable {
        let method: HTTPMethod
        let template: String
        let segments: [Segment]
        let handler: Handler
        /// For a template without parameters, the one path in canonical form (see `PathShape`)
        /// it matches: `/a/b`, or `/` for no segments.
        let literalPath: String?

        init(method: HTTPMethod, template: String, segments: [Segment], handler: @escaping Handler, literalPath: String?) {
            self.method = method
            self.template = template
            self.segments = segments
            self.handler = handler
            self.literalPath = literalPath
        }
    }

    /// What matching needs to know about a request path before splitting it.
    private struct PathShape {
        /// Starts with `/`, has no empty segment and no trailing `/` (except the path `/`): such a
        /// path matches a template without parameters exactly when it equals its `literalPath`,
        /// and can match another template only if their segment counts agree.
        var isCanonical: Bool
        var segmentCount: Int

        init(_ path: String) {
            var path = path
            (isCanonical, segmentCount) = path.withUTF8 { bytes -> (Bool, Int) in
                guard bytes.first == UInt8(ascii: "/") else { return (false, 0) }
                if bytes.count == 1 { return (true, 0) }
                var count = 0
                var previousWasSlash = false
                for byte in bytes {
                    let isSlash = byte == UInt8(ascii: "/")
                    if isSlash {
                        if previousWasSlash { return (false, 0) }
                        count += 1
                    }
                    previousWasSlash = isSlash
                }
                return (!previousWasSlash, count)
            }
        }
    }

    private enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
    }

    private var routes: [Route] = []
    /// Replaces the default `404` when set.
    private var notFound: Handler?

    public init() {}

    public mutating func add(_ method: HTTPMethod, _ template: String, handler: @escaping Handler) {
        let parts = Router.split(template)
        let segments = parts.map { segment -> Segment in
            if segment.hasPrefix("{") && segment.hasSuffix("}") && segment.count > 2 {
                return .parameter(String(segment.dropFirst().dropLast()))
            }
            return .literal(String(segment))
        }
        let hasParameters = segments.contains { if case .parameter = $0 { true } else { false } }
        let literalPath = hasParameters ? nil : "/" + parts.joined(separator: "/")
        routes.append(Route(
            method: method, template: template, segments: segments, handler: handler, literalPath: literalPath
        ))
    }

    public mutating func get(_ template: String, handler: @escaping Handler) { add(.get, template, handler: handler) }
    public mutating func post(_ template: String, handler: @escaping Handler) { add(.post, template, handler: handler) }

    /// Replaces the answer for paths no route matches.
    public mutating func setNotFoundHandler(_ handler: @escaping Handler) { notFound = handler }

    /// The methods some route answers (`HEAD` wherever `GET` is): a bounded set, unlike the
    /// methods requests may carry.
    public var routedMethods: Set<HTTPMethod> {
        var methods = Set(routes.map(\.method))
        if methods.contains(.get) { methods.insert(.head) }
        return methods
    }

    /// The route template that `path` would match for `method`, without running it.
    public func match(method: HTTPMethod, path: String) -> (template: String, parameters: [String: String])? {
        guard case .found(let route, let parameters) = find(method: method, path: path) else { return nil }
        return (route.template, parameters)
    }

    public nonisolated(nonsending) func respond(to request: HTTPRequest, context: consuming RequestContext) async -> HTTPResponse {
        switch route(request, context: &context) {
        case .answered(let response):
            return response
        case .handler(let handler):
            return await handler(request, consume context)
        }
    }

    private enum Routing {
        /// Routing itself answered (405, 501, the default 404).
        case answered(HTTPResponse)
        /// The matched route's handlers (path parameters and template are in the context) or the
        /// custom not-found handler.
        case handler(Handler)
    }

    private func route(_ request: HTTPRequest, context: inout RequestContext) -> Routing {
        switch find(method: request.method, path: request.path) {
        case .found(let route, let parameters):
            context.pathParameters = parameters
            context.routeTemplate = route.template
            return .handler(route.handler)
        case .methodNotAllowed(let allowed):
            var response = HTTPResponse.defaultProblem(
                status: Router.knownMethods.contains(request.method) ? .methodNotAllowed : .notImplemented,
                detail: "\(request.method) is not supported for \(request.path).",
                requestID: context[RequestTraceKey.self]?.requestID
            )
            response.headers.add(name: "Allow", value: allowed.map(\.rawValue).joined(separator: ", "))
            return .answered(response)
        case .notFound:
            if !Router.knownMethods.contains(request.method) {
                return .answered(HTTPResponse.defaultProblem(status: .notImplemented, detail: "\(request.method) is not implemented.",
                                                     requestID: context[RequestTraceKey.self]?.requestID))
            }
            if let notFound { return .handler(notFound) }
            return .answered(HTTPResponse.defaultProblem(status: .notFound, detail: "No route for \(request.path).",
                                                 requestID: context[RequestTraceKey.self]?.requestID))
        }
    }

    // MARK: - Matching

    private enum Match {
        case found(Route, [String: String])
        case methodNotAllowed([HTTPMethod])
        case notFound
    }

    /// RFC 9110's methods, PATCH (RFC 5789) and QUERY (the IETF's safe method with a body).
    static let knownMethods: Set<HTTPMethod> = [
        .get, .head, .post, .put, .patch, .delete, .options, .trace, .connect, HTTPMethod("QUERY"),
    ]

    private func find(method: HTTPMethod, path: String) -> Match {
        // Most requests are for a path in canonical form: matched against templates without
        // parameters by one comparison, split into segments only for a template that needs it.
        let shape = PathShape(path)
        var splitPath: [Substring]?
        func pathSegments() -> [Substring] {
            if let splitPath { return splitPath }
            let segments = Router.split(path)
            splitPath = segments
            return segments
        }
        var allowed: [HTTPMethod] = []
        var getFallback: (Route, [String: String])?
        for route in routes {
            let bound: [String: String]?
            if shape.isCanonical, let literalPath = route.literalPath {
                bound = path == literalPath ? [:] : nil
            } else if shape.isCanonical && route.segments.count != shape.segmentCount {
                bound = nil
            } else {
                bound = Router.bind(route.segments, to: pathSegments())
            }
            guard let parameters = bound else { continue }
            if route.method == method { return .found(route, parameters) }
            if method == .head && route.method == .get && getFallback == nil { getFallback = (route, parameters) }
            if !allowed.contains(route.method) { allowed.append(route.method) }
        }
        if let getFallback { return .found(getFallback.0, getFallback.1) }
        if allowed.isEmpty { return .notFound }
        if allowed.contains(.get) && !allowed.contains(.head) { allowed.insert(.head, at: allowed.firstIndex(of: .get).map { $0 + 1 } ?? 0) }
        return .methodNotAllowed(allowed)
    }

    private static func split(_ path: String) -> [Substring] {
        path.split(separator: "/", omittingEmptySubsequences: true)
    }

    private static func bind(_ segments: [Segment], to path: [Substring]) -> [String: String]? {
        guard segments.count == path.count else { return nil }
        var parameters: [String: String] = [:]
        for (segment, component) in zip(segments, path) {
            switch segment {
            case .literal(let literal):
                guard component == literal else { return nil }
            case .parameter(let name):
                parameters[name] = percentDecode(component.utf8, plusIsSpace: false)
            }
        }
        return parameters
    }
}
