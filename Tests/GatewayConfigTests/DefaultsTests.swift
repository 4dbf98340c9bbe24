import GatewayConfig
import GatewayHTTP
import GatewayProviders
import GatewayServer
import GatewayUpstream

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Testing

@Suite("Defaults and valid files")
struct DefaultsTests {
    @Test("A minimal file gets every default of docs/configuration.md")
    func minimalConfigurationHasEveryDefault() throws {
        let configuration = try ConfigLoader.load(yaml: minimalYAML, environment: [:])

        let server = configuration.server
        #expect(server.host == "127.0.0.1")
        #expect(server.port == 8080)
        #expect(server.workers == 0)
        #expect(server.maxConnections == 10000)
        #expect(server.maxHeaderBytes == 49_152)
        #expect(server.maxHeaderFields == 100)
        #expect(server.maxBodyBytes == 65536)
        #expect(server.maxResponseBytes == 8_388_608)
        #expect(server.headerTimeout == .milliseconds(10000))
        // Extension: above nginx's upstream keepalive_timeout (60 s), so the proxy always closes first.
        #expect(server.idleTimeout == .milliseconds(75000))
        #expect(server.writeTimeout == .milliseconds(30000))
        #expect(server.shutdownGrace == .milliseconds(10000))
        #expect(server.trustedProxies.map(\.description) == ["127.0.0.1/32", "::1/128"])

        #expect(configuration.auth.mode == .none)
        #expect(configuration.auth.cursorSecret == nil)
        #expect(configuration.auth.cursorSecretSource == .perProcessRandom)

        let cache = configuration.cache
        #expect(cache.maxBytes == 67_108_864)
        #expect(cache.listTTL == .milliseconds(5000))
        #expect(cache.activeDetailTTL == .milliseconds(2000))
        #expect(cache.terminalDetailTTL == .milliseconds(3_600_000))
        #expect(cache.staleIfError == .milliseconds(300_000))

        #expect(configuration.rateLimit.default == ClientRateLimit(requestsPerSecond: 20, burst: 40))
        #expect(configuration.rateLimit.unauthenticated == ClientRateLimit(requestsPerSecond: 10, burst: 20))
        #expect(configuration.clients.isEmpty)

        #expect(configuration.providers.count == 1)
        let provider = try #require(configuration.providers.first)
        #expect(provider.name == "kaizen")
        #expect(provider.type == .kaizen)
        #expect(provider.baseURL == "https://api.kaizen.test")
        #expect(provider.credential == "minimal-kaizen-credential")
        #expect(provider.timeout == .seconds(10))
        #expect(provider.maxConcurrency == 16)
        #expect(provider.requestsPerSecond == 10)
        #expect(provider.workflowIds.isEmpty)
        #expect(provider.orgId == nil)
        #expect(provider.allowInsecureUpstream == false)
    }

    @Test("A setting the runtime also has takes the runtime's default")
    func defaultsAreTheRuntimeTypesOwn() {
        let server = ServerSettings()
        let http = HTTPServerConfiguration()
        let parser = HTTPParserLimits()
        #expect(server.host == http.host && server.port == http.port && server.workers == http.workers)
        #expect(server.maxConnections == http.maxConnections)
        #expect(server.maxHeaderBytes == parser.maxHeaderBytes && server.maxHeaderFields == parser.maxHeaderFields)
        #expect(server.maxBodyBytes == parser.maxBodyBytes)
        #expect(server.headerTimeout == http.headerTimeout && server.idleTimeout == http.idleTimeout)
        #expect(server.writeTimeout == http.writeTimeout && server.shutdownGrace == http.shutdownGrace)

        let cache = CacheSettings()
        let ttls = ProviderCachePolicy()
        #expect(cache.listTTL == ttls.listTTL && cache.activeDetailTTL == ttls.activeDetailTTL)
        #expect(cache.terminalDetailTTL == ttls.terminalDetailTTL && cache.staleIfError == ttls.staleIfError)

        let upstream = UpstreamPolicy()
        #expect(ProviderSettings.Defaults.timeout == upstream.timeout)
        #expect(ProviderSettings.Defaults.maxConcurrency == upstream.maxConcurrency)
        #expect(ProviderSettings.Defaults.requestsPerSecond == upstream.requestsPerSecond)
    }

    @Test("auth.mode defaults to apiKey")
    func authModeDefaultsToAPIKey() throws {
        let yaml = minimalYAML.replacingOccurrences(of: "auth: {mode: none}", with: """
            clients:
              - id: web
                keySHA256: \(String(repeating: "A", count: 64))
            """)
        let configuration = try ConfigLoader.load(yaml: yaml, environment: [:])
        #expect(configuration.auth.mode == .apiKey)
        let client = try #require(configuration.clients.first)
        #expect(client.keySHA256 == String(repeating: "a", count: 64))
        #expect(client.rateLimit == nil)
        #expect(client.providers == nil)
        #expect(client.credentials.isEmpty)
        #expect(configuration.effectiveRateLimit(for: client) == ClientRateLimit(requestsPerSecond: 20, burst: 40))
        #expect(client.mayUse(provider: "kaizen"))
    }

    @Test("Without auth.cursorSecret, $GATEWAY_CURSOR_SECRET is used")
    func cursorSecretFallsBackToEnvironment() throws {
        let secret = "environment-cursor-secret-0123456789"
        let configuration = try ConfigLoader.load(yaml: minimalYAML, environment: ["GATEWAY_CURSOR_SECRET": secret])
        #expect(configuration.auth.cursorSecret == secret)
        #expect(configuration.auth.cursorSecretSource == .environment)
    }

    @Test("auth.cursorSecret in the file wins over $GATEWAY_CURSOR_SECRET")
    func cursorSecretFromFileWins() throws {
        let yaml = minimalYAML.replacingOccurrences(
            of: "auth: {mode: none}", with: "auth: {mode: none, cursorSecret: file-cursor-secret-0123456789}")
        let configuration = try ConfigLoader.load(
            yaml: yaml, environment: ["GATEWAY_CURSOR_SECRET": "environment-cursor-secret-0123456789"])
        #expect(configuration.auth.cursorSecret == "file-cursor-secret-0123456789")
        #expect(configuration.auth.cursorSecretSource == .configuration)
    }

    static let exampleEnvironment = [
        "GATEWAY_CURSOR_SECRET": "example-cursor-secret-5f1e8a9c2b",
        "WEB_KAIZEN_KEY": "example-web-kaizen-key-77aa",
        "KAIZEN_API_KEY": "example-kaizen-key-19fe",
        "KAPSO_API_KEY": "example-kapso-key-3c3c",
        "B3OS_API_KEY": "example-b3os-key-9d9d",
    ]

    @Test("config/example.yaml loads with its variables set")
    func exampleFileLoads() throws {
        let configuration = try ConfigLoader.load(
            path: SourceTree.packageRoot + "/config/example.yaml", environment: Self.exampleEnvironment)

        #expect(configuration.server.host == "0.0.0.0")
        #expect(configuration.server.trustedProxies.map(\.description) == ["127.0.0.1/32", "::1/128", "10.0.0.0/8"])
        #expect(configuration.auth.mode == .apiKey)
        #expect(configuration.auth.cursorSecret == "example-cursor-secret-5f1e8a9c2b")
        #expect(configuration.auth.cursorSecretSource == .configuration)

        #expect(configuration.providers.map(\.name) == ["kaizen", "kapso", "b3os"])
        #expect(configuration.providers.map(\.type) == [.kaizen, .kapso, .b3os])
        #expect(configuration.provider(named: "kaizen")?.credential == "example-kaizen-key-19fe")
        #expect(configuration.provider(named: "kapso")?.baseURL == "https://api.kapso.ai/platform/v1")
        #expect(configuration.provider(named: "kapso")?.workflowIds == [])
        #expect(configuration.provider(named: "b3os")?.orgId == "org_123")

        #expect(configuration.clients.map(\.id) == ["web", "reports"])
        let web = try #require(configuration.client(withID: "web"))
        #expect(web.rateLimit == ClientRateLimit(requestsPerSecond: 50, burst: 100))
        #expect(web.providers == ["kaizen", "kapso"])
        #expect(web.credentials == ["kaizen": "example-web-kaizen-key-77aa"])
        #expect(web.mayUse(provider: "b3os") == false)
        let reports = try #require(configuration.client(withID: "reports"))
        #expect(reports.providers == nil)
        #expect(configuration.effectiveRateLimit(for: reports) == ClientRateLimit(requestsPerSecond: 20, burst: 40))
    }

    @Test("config/example.yaml without its variables names each unset one")
    func exampleFileNamesUnsetVariables() {
        do {
            _ = try ConfigLoader.load(path: SourceTree.packageRoot + "/config/example.yaml", environment: [:])
            Issue.record("expected problems")
        } catch {
            let unset = error.problems.map(\.message).filter { $0.hasPrefix("environment variable") }
            #expect(unset.count == 5)
            let keys = Set(error.problems.map(\.key))
            #expect(keys == [
                "auth.cursorSecret", "clients[0].credentials.kaizen", "providers[0].credential",
                "providers[1].credential", "providers[2].credential",
            ])
            #expect(error.problems.allSatisfy { $0.line != nil })
        }
    }

    @Test("config/demo.yaml is the demo shape and needs no environment")
    func demoFileLoads() throws {
        let configuration = try ConfigLoader.load(path: SourceTree.packageRoot + "/config/demo.yaml", environment: [:])
        #expect(configuration.auth.mode == .none)
        #expect(configuration.server.host == "127.0.0.1")
        #expect(configuration.server.port == 8080)
        #expect(configuration.providers.map(\.baseURL) == [
            "http://127.0.0.1:18081", "http://127.0.0.1:18082", "http://127.0.0.1:18083",
        ])
        #expect(configuration.providers.map(\.type) == [.kaizen, .kapso, .b3os])
    }

    @Test("Flow and block styles, quoted numbers, digit separators and fractional rates are accepted")
    func valueForms() throws {
        let yaml = """
            server: {port: "9090", maxConnections: 1_000}
            rateLimit:
              default:
                requestsPerSecond: 0.5
            auth: {mode: none}
            providers:
              - {name: b3, type: b3os, baseURL: "HTTPS://api.b3os.test/v1//", credential: k, orgId: org_9, requestsPerSecond: 2.5}
              - name: kapso-eu
                type: kapso
                baseURL: http://kapso.test:8443
                allowInsecureUpstream: true
                credential: k2
                workflowIds:
                  - wf_1
                  - 0d4c5a54-5f0e-4bd0-a3f6-bf3c5c0a0c11
            """
        let configuration = try ConfigLoader.load(yaml: yaml, environment: [:])
        #expect(configuration.server.port == 9090)
        #expect(configuration.server.maxConnections == 1000)
        #expect(configuration.rateLimit.default == ClientRateLimit(requestsPerSecond: 0.5, burst: 40))
        #expect(configuration.providers[0].baseURL == "HTTPS://api.b3os.test/v1")
        #expect(configuration.providers[0].requestsPerSecond == 2.5)
        #expect(configuration.providers[1].workflowIds == ["wf_1", "0d4c5a54-5f0e-4bd0-a3f6-bf3c5c0a0c11"])
    }

    @Test("rateLimit.unauthenticated is read, a missing part from its default")
    func unauthenticatedRateLimit() throws {
        let yaml = "rateLimit: {unauthenticated: {burst: 5}}\n" + minimalYAML
        let configuration = try ConfigLoader.load(yaml: yaml, environment: [:])
        #expect(configuration.rateLimit.unauthenticated == ClientRateLimit(requestsPerSecond: 10, burst: 5))
        #expect(configuration.rateLimit.default == ClientRateLimit(requestsPerSecond: 20, burst: 40))
    }

    @Test("http:// is accepted for loopback hosts, and for another host only with allowInsecureUpstream: true",
          arguments: [
              ("http://127.0.0.1:18081", false), ("http://127.9.8.7/v1", false), ("http://localhost:9000", false),
              ("http://LOCALHOST", false), ("http://[::1]:8080", false), ("http://api.kaizen.test", true),
              ("http://10.0.0.5:80", true), ("http://[::2]", true), ("http://127.0.0.1.example.com", true),
          ])
    func cleartextUpstreams(baseURL: String, refused: Bool) throws {
        let yaml = minimalYAML.replacingOccurrences(of: "https://api.kaizen.test/", with: baseURL)
        #expect(yaml.contains(baseURL))
        do {
            _ = try ConfigLoader.load(yaml: yaml, environment: [:])
            #expect(!refused, "\(baseURL) was accepted")
        } catch {
            #expect(refused, "\(baseURL): \(error.problems)")
            #expect(error.problems.map(\.key) == ["providers[0].baseURL"])
            #expect(error.problems.first?.message.contains("allowInsecureUpstream") == true)
        }
        let allowed = minimalYAML.replacingOccurrences(of: "https://api.kaizen.test/", with: baseURL + "\n    allowInsecureUpstream: true")
        #expect(try ConfigLoader.load(yaml: allowed, environment: [:]).providers[0].allowInsecureUpstream)
    }

    @Test("An empty section such as `server:` means all defaults")
    func emptySectionMeansDefaults() throws {
        let configuration = try ConfigLoader.load(yaml: "server:\ncache:\n" + minimalYAML, environment: [:])
        #expect(configuration.server == ServerSettings())
        #expect(configuration.cache == CacheSettings())
    }

    @Test("A client's partial rateLimit inherits the missing part from rateLimit.default")
    func partialClientRateLimit() throws {
        let yaml = """
            rateLimit: {default: {requestsPerSecond: 3, burst: 7}}
            clients:
              - id: batch
                keySHA256: \(String(repeating: "c", count: 64))
                rateLimit: {burst: 1}
            """ + "\n" + minimalYAML.replacingOccurrences(of: "auth: {mode: none}\n", with: "")
        let configuration = try ConfigLoader.load(yaml: yaml, environment: [:])
        #expect(configuration.clients[0].rateLimit == ClientRateLimit(requestsPerSecond: 3, burst: 1))
    }

    @Test("Upstream-call budgets and the request deadline: defaults, a client's override, the ceiling")
    func upstreamCallLimitsAndRequestDeadline() throws {
        let defaults = try ConfigLoader.load(yaml: minimalYAML, environment: [:])
        #expect(defaults.server.requestTimeout == .milliseconds(50000))
        #expect(defaults.rateLimit.default.upstreamCallsPerMinute == 1200)
        #expect(defaults.rateLimit.maxUpstreamCallsPerRequest == 200)

        let yaml = """
            server: {requestTimeoutMs: 20000}
            rateLimit:
              default: {upstreamCallsPerMinute: 300}
              maxUpstreamCallsPerRequest: 50
            clients:
              - id: batch
                keySHA256: \(String(repeating: "c", count: 64))
                rateLimit: {upstreamCallsPerMinute: 30}
              - id: web
                keySHA256: \(String(repeating: "d", count: 64))
                rateLimit: {burst: 5}
            """ + "\n" + minimalYAML.replacingOccurrences(of: "auth: {mode: none}\n", with: "")
        let configuration = try ConfigLoader.load(yaml: yaml, environment: [:])
        #expect(configuration.server.requestTimeout == .milliseconds(20000))
        #expect(configuration.rateLimit.maxUpstreamCallsPerRequest == 50)
        #expect(configuration.rateLimit.default == ClientRateLimit(requestsPerSecond: 20, burst: 40, upstreamCallsPerMinute: 300))
        #expect(configuration.clients[0].rateLimit?.upstreamCallsPerMinute == 30)
        #expect(configuration.clients[1].rateLimit == ClientRateLimit(requestsPerSecond: 20, burst: 5, upstreamCallsPerMinute: 300))

        for (line, key) in [
            ("server: {requestTimeoutMs: 0}", "server.requestTimeoutMs"),
            ("rateLimit: {maxUpstreamCallsPerRequest: 0}", "rateLimit.maxUpstreamCallsPerRequest"),
            ("rateLimit: {default: {upstreamCallsPerMinute: 0}}", "rateLimit.default.upstreamCallsPerMinute"),
            // Requests refused before authentication make no upstream calls.
            ("rateLimit: {unauthenticated: {upstreamCallsPerMinute: 5}}", "rateLimit.unauthenticated.upstreamCallsPerMinute"),
        ] {
            #expect(problems(in: line + "\n" + minimalYAML).map(\.key) == [key], "\(line)")
        }
    }

    @Test("Only server, auth, cache and providers changes need a restart")
    func sectionsRequiringRestart() throws {
        let base = try ConfigLoader.load(yaml: minimalYAML, environment: [:])
        var changed = base
        changed.rateLimit.default.burst = 1
        changed.clients.append(ClientSettings(id: "new", keySHA256: String(repeating: "d", count: 64)))
        #expect(changed.sectionsRequiringRestart(comparedTo: base).isEmpty)
        changed.server.port = 1
        changed.providers[0].timeout = .milliseconds(5)
        #expect(changed.sectionsRequiringRestart(comparedTo: base) == ["server", "providers"])
    }
}
