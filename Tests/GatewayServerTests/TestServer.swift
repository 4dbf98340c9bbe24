import GatewayHTTP
import GatewayServer
import Logging

/// Starts a server on an ephemeral port for one test and always shuts it down.
///
/// The default request timeout is a minute: with every test running at once, a test's steps can
/// wait more than the production 10 s for a thread, and tests not about timeouts must not see one.
func withServer<T>(
    _ configuration: HTTPServerConfiguration = .forTests(),
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

extension HTTPServerConfiguration {
    /// 127.0.0.1, an ephemeral port, a request timeout of a minute (see `withServer`), and a write
    /// timeout no load reaches: with every test running at once, a test client reading megabytes
    /// can fall more than the production 30 s behind, and the tests about that timeout set their own.
    static func forTests(workers: Int = 1, injectsTransportFaults: Bool = false) -> HTTPServerConfiguration {
        HTTPServerConfiguration(
            host: "127.0.0.1", port: 0, workers: workers, headerTimeout: .nanoseconds(60_000_000_000), writeTimeout: .seconds(600),
            injectsTransportFaults: injectsTransportFaults)
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

/// A request a test keeps in flight for as long as it needs: `GET /held` reports that its handler
/// started and answers "released" only after `release()`. Tests order steps by these events
/// instead of by sleeps, which a loaded machine can stretch past any fixed delay.
final class HeldRequest: Sendable {
    private let started = AsyncStream<Void>.makeStream(bufferingPolicy: .unbounded)
    private let released = AsyncStream<Void>.makeStream(bufferingPolicy: .unbounded)

    /// `testRouter()` plus `GET /held`.
    func router() -> Router {
        var router = testRouter()
        router.get("/held") { [started, released] _, _ in
            started.continuation.yield()
            for await _ in released.stream { break }
            return HTTPResponse(status: .ok, text: "released")
        }
        return router
    }

    func waitUntilStarted() async {
        for await _ in started.stream { return }
    }

    func release() {
        released.continuation.yield()
        released.continuation.finish()
    }
}
