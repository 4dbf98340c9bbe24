import GatewayApp
import GatewayConfig
import GatewayCrypto
import GatewayEventLoop
import GatewayServer
import Logging
import ProviderSimulator

/// The demo: simulated Kaizen, Kapso and B3OS upstreams in this process, and a gateway in front of
/// them with `auth.mode: none`. Upstream ports are ephemeral; only the gateway's port is fixed.
/// Here in the command line, not in `GatewayApp`, so that the library a deployment links carries
/// no simulator.
struct DemoEnvironment: Sendable {
    let simulator: ProviderSimulator
    let upstreamServers: [HTTPServer]
    let runtime: GatewayRuntime

    static func start(
        host: String = "127.0.0.1",
        port: Int = 8080,
        seed: UInt64 = 1,
        insertEveryMilliseconds: Int64? = 15_000,
        logger: Logger,
        accessLogger: Logger? = nil,
        listen: Bool = true
    ) throws(GatewayStartupError) -> DemoEnvironment {
        let simulator = ProviderSimulator(configuration: SimulatorConfiguration(seed: seed, insertEveryMilliseconds: insertEveryMilliseconds))
        var quiet = logger
        quiet.logLevel = .warning
        var servers: [HTTPServer] = []
        var baseURLs: [SimulatedProvider: String] = [:]
        for provider in SimulatedProvider.allCases {
            let server = HTTPServer(
                configuration: HTTPServerConfiguration(host: "127.0.0.1", port: 0, workers: 1, injectsTransportFaults: true),
                responder: simulator.responder(for: provider),
                logger: quiet
            )
            do {
                try server.start()
            } catch {
                throw .listen("simulated \(provider.rawValue): \(error)")
            }
            servers.append(server)
            let path = provider == .kapso ? simulator.configuration.normalizedKapsoBasePath : ""
            baseURLs[provider] = "http://127.0.0.1:\(server.localPort)\(path)"
        }
        var configuration = demoConfiguration(host: host, port: port, baseURLs: baseURLs)
        configuration.auth.cursorSecret = Base64URL.encode(secureRandomBytes(count: 32))
        let runtime = try GatewayRuntime(configuration: configuration, logger: quiet, accessLogger: accessLogger)
        // `listen: false` leaves binding the gateway's port to `runtime.start()` (or `run()`), for a
        // caller that must first install its signal handlers.
        if listen { try runtime.start() }
        return DemoEnvironment(simulator: simulator, upstreamServers: servers, runtime: runtime)
    }

    static func demoConfiguration(host: String, port: Int, baseURLs: [SimulatedProvider: String]) -> GatewayConfiguration {
        var server = ServerSettings()
        server.host = host
        server.port = port
        return GatewayConfiguration(
            server: server,
            auth: AuthSettings(mode: .none),
            clients: [],
            providers: [
                ProviderSettings(name: "kaizen", type: .kaizen, baseURL: baseURLs[.kaizen] ?? "", credential: DemoCredential.kaizen),
                ProviderSettings(name: "kapso", type: .kapso, baseURL: baseURLs[.kapso] ?? "", credential: DemoCredential.kapso),
                ProviderSettings(name: "b3os", type: .b3os, baseURL: baseURLs[.b3os] ?? "", credential: DemoCredential.b3os),
            ]
        )
    }

    /// What the demo prints: commands that work against it as it runs.
    func instructions() -> String {
        let base = "http://\(runtime.configuration.server.host):\(runtime.port)"
        return """
        ExecutionsGateway demo is running on \(base) (simulated Kaizen, Kapso and B3OS upstreams, no API key needed).

        Try:
          curl -s '\(base)/executions?limit=5'
          curl -s '\(base)/executions?limit=5&cursor=<page.nextCursor from the answer above>'
          curl -s '\(base)/executions?provider=kaizen&limit=3&include=downloads,startBlock'
          curl -s '\(base)/executions?status=failed,running&q=acme'
          curl -s '\(base)/executions/<an id such as kaizen:…>'
          curl -s '\(base)/metrics' | grep gateway_
          curl -s '\(base)/openapi.yaml'

        Press Ctrl-C to stop.
        """
    }

    func shutdown() async {
        await runtime.shutdown()
        for server in upstreamServers { await server.shutdown() }
    }
}
