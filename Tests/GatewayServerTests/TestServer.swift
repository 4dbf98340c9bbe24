import GatewayHTTP
import GatewayServer
import Logging

/// Starts a server on an ephemeral port for one test and always shuts it down.
func withServer<T>(
    _ configuration: HTTPServerConfiguration = HTTPServerConfiguration(host: "127.0.0.1", port: 0, workers: 1),
    responder: any HTTPResponder = testRouter(),
    _ body: (HTTPServer) async throws -> T
) async throws -> T {
    var configuration = configuration
    configuration.port = 0
    var logger = Logger(label: "test.server")
    logger.logLevel = .critical
    let server = HTTPServer(configuration: configuration, responder: responder, logger: logger)
    try server.start()
    do {
        let result = try await body(server)
        await server.shutdown()
        return result
    } catch {
        await server.shutdown()
        throw error
    }
}

/// Routes the tests use: fixed text, echo of the body, a delay, and a large body.
func testRouter() -> Router {
    var router = Router()
    router.get("/hello") { _, _ in HTTPResponse(status: .ok, text: "hello") }
    router.post("/echo") { request, _ in HTTPResponse(status: .ok, body: request.body) }
    router.get("/delay/{ms}") { _, context in
        let milliseconds = UInt64(context.pathParameters["ms"] ?? "0") ?? 0
        try? await Task.sleep(nanoseconds: milliseconds * 1_000_000)
        return HTTPResponse(status: .ok, text: "slept \(milliseconds)")
    }
    router.get("/big/{bytes}") { _, context in
        let size = Int(context.pathParameters["bytes"] ?? "0") ?? 0
        return HTTPResponse(status: .ok, body: [UInt8](repeating: UInt8(ascii: "x"), count: size))
    }
    router.get("/items/{id}") { _, context in
        HTTPResponse(status: .ok, text: "item \(context.pathParameters["id"] ?? "") via \(context.routeTemplate ?? "")")
    }
    router.get("/peer") { _, context in HTTPResponse(status: .ok, text: context.remoteAddress) }
    return router
}
