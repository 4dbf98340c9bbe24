import ExecutionsAPI
import GatewayApp
import GatewayConfig
import GatewayCrypto
import GatewayEventLoop
import GatewayHTTP
import GatewayJSON
import GatewayServer
import GatewayUpstream
import Logging
import ProviderSimulator
import Synchronization

/// A whole gateway in front of the simulated providers, on ephemeral ports, for one test.
final class GatewayHarness: Sendable {
    let simulator: ProviderSimulator
    let upstreams: [SimulatedProvider: HTTPServer]
    let runtime: GatewayRuntime
    let client: CurlHTTPClient
    let logLines: CapturedLines

    static let webKey = "web-client-key-123"
    static let batchKey = "batch-client-key-456"
    static let otherTenantKey = "other-tenant-key-789"
    static let kaizenOnlyKey = "kaizen-only-key-000"

    /// - Parameter adjust: edits the configuration before the gateway starts.
    init(
        simulatorConfiguration: SimulatorConfiguration = SimulatorConfiguration(seed: 7, executionsPerOrganization: 40),
        adjust: (inout GatewayConfiguration) -> Void = { _ in }
    ) async throws {
        simulator = ProviderSimulator(configuration: simulatorConfiguration)
        var quiet = Logger(label: "test")
        quiet.logLevel = .critical
        var servers: [SimulatedProvider: HTTPServer] = [:]
        for provider in SimulatedProvider.allCases {
            // The upstreams wait as long as a test may take: a gateway parsing a 22 MB list in a debug
            // build, among every other test at once, reads it slower than the 30 s a production
            // server allows a stalled write, and the test is not about that timeout.
            let server = HTTPServer(
                configuration: HTTPServerConfiguration(host: "127.0.0.1", port: 0, workers: 1, writeTimeout: .seconds(600), injectsTransportFaults: true),
                responder: simulator.responder(for: provider), logger: quiet
            )
            try server.start()
            servers[provider] = server
        }
        upstreams = servers
        func url(_ provider: SimulatedProvider) -> String {
            "http://127.0.0.1:\(servers[provider]?.localPort ?? 0)" + (provider == .kapso ? simulatorConfiguration.normalizedKapsoBasePath : "")
        }
        var serverSettings = ServerSettings()
        serverSettings.host = "127.0.0.1"
        serverSettings.port = 0
        serverSettings.workers = 1
        var configuration = GatewayConfiguration(
            server: serverSettings,
            auth: AuthSettings(mode: .apiKey, cursorSecret: "test-cursor-secret-0123456789"),
            clients: [
                ClientSettings(id: "web", keySHA256: SHA256.hexDigest(of: Self.webKey), providers: ["kaizen", "kapso", "b3os"]),
                ClientSettings(id: "batch", keySHA256: SHA256.hexDigest(of: Self.batchKey), rateLimit: ClientRateLimit(requestsPerSecond: 1, burst: 2), providers: ["kaizen"]),
                ClientSettings(id: "kaizen-only", keySHA256: SHA256.hexDigest(of: Self.kaizenOnlyKey), providers: ["kaizen"]),
                ClientSettings(id: "tenant-b", keySHA256: SHA256.hexDigest(of: Self.otherTenantKey),
                               credentials: ["kaizen": DemoCredential.kaizenSecondOrganization, "kapso": DemoCredential.kapsoSecondOrganization, "b3os": DemoCredential.b3osSecondOrganization]),
            ],
            providers: [
                ProviderSettings(name: "kaizen", type: .kaizen, baseURL: url(.kaizen), credential: DemoCredential.kaizen, requestsPerSecond: 1000),
                ProviderSettings(name: "kapso", type: .kapso, baseURL: url(.kapso), credential: DemoCredential.kapso, requestsPerSecond: 1000),
                ProviderSettings(name: "b3os", type: .b3os, baseURL: url(.b3os), credential: DemoCredential.b3os, requestsPerSecond: 1000),
            ]
        )
        adjust(&configuration)
        let lines = CapturedLines()
        logLines = lines
        let output = JSONLogHandler.LogOutput { bytes in lines.append(String(decoding: bytes, as: UTF8.self)) }
        var logger = Logger(label: "gateway") { JSONLogHandler(label: $0, output: output) }
        logger.logLevel = .debug
        runtime = try GatewayRuntime(configuration: configuration, logger: logger)
        try runtime.start()
        client = try CurlHTTPClient()
    }

    func stop() async {
        client.shutdown()
        await runtime.shutdown()
        for server in upstreams.values { await server.shutdown() }
    }

    struct Answer {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]
        var json: JSONValue { (try? JSONParser.parse(body)) ?? .null }
        var ids: [String] { json["data"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? [] }
        var nextCursor: String? { json["page"]?["nextCursor"]?.stringValue }
    }

    /// How long a test waits for the gateway's answer: past the gateway's own request deadline
    /// (50 s), so that a debug build on a loaded machine (the whole suite on 2 cores) is slow, not
    /// failed; what a test asserts about time it asserts itself.
    static let answerTimeout = Duration.seconds(60)

    func get(_ target: String, key: String? = GatewayHarness.webKey, headers: HTTPHeaders = [:]) async throws -> Answer {
        var headers = headers
        if let key { headers.add(name: "Authorization", value: "Bearer \(key)") }
        let response = try await client.execute(UpstreamRequest(
            method: .get, url: "http://127.0.0.1:\(runtime.port)\(target)", headers: headers,
            timeoutNanoseconds: Self.answerTimeout.saturatingNanoseconds
        ))
        return Answer(status: response.status, headers: response.headers, body: response.body)
    }

    /// Every page of a walk, following `nextCursor`.
    func walk(_ target: String, key: String? = GatewayHarness.webKey, between: () async throws -> Void = {}) async throws -> [String] {
        var ids: [String] = []
        var page = try await get(target, key: key)
        var pages = 0
        while true {
            guard page.status == 200 else { throw WalkError.status(page.status, String(decoding: page.body, as: UTF8.self)) }
            ids += page.ids
            guard let cursor = page.nextCursor, pages < 400 else { break }
            try await between()
            page = try await get("/executions?cursor=\(percentEncode(cursor))", key: key)
            pages += 1
        }
        return ids
    }

    enum WalkError: Error { case status(Int, String) }
}

/// Log lines a test captured.
final class CapturedLines: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}
