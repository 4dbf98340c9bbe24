// Serves the same tiny response from this project's server or from Hummingbird, so `wrk` can
// measure both on the same machine in one run (scripts/bench-server drives it).
import ArgumentParser
import GatewayHTTP
import GatewayServer
import Hummingbird
import Logging
import NIOPosix

@main
struct ServerComparison: AsyncParsableCommand {
    enum Which: String, ExpressibleByArgument { case gateway, hummingbird }

    @Argument(help: "Which server to run: gateway or hummingbird.") var which: Which
    @Option(help: "Port to listen on.") var port: Int = 8090
    @Option(help: "Event loop threads (both servers).") var threads: Int = 2

    func run() async throws {
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        let body = Array("{\"status\":\"ok\"}".utf8)
        switch which {
        case .gateway:
            var router = GatewayServer.Router()
            router.get("/") { _, _ in
                GatewayHTTP.HTTPResponse(status: .ok, headers: ["Content-Type": "application/json"], body: body)
            }
            let server = HTTPServer(
                configuration: HTTPServerConfiguration(host: "127.0.0.1", port: port, workers: threads),
                responder: router,
                logger: logger
            )
            try server.start()
            await server.waitUntilStopped()
        case .hummingbird:
            let router = Hummingbird.Router()
            router.get("/") { _, _ -> Response in
                Response(
                    status: .ok,
                    headers: [.contentType: "application/json"],
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: body))
                )
            }
            let app = Application(
                router: router,
                configuration: .init(address: .hostname("127.0.0.1", port: port)),
                eventLoopGroupProvider: .shared(MultiThreadedEventLoopGroup(numberOfThreads: threads)),
                logger: logger
            )
            try await app.runService()
        }
    }
}
