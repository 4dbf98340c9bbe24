import GatewayConfig

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Testing

@Suite("Secrets never appear in problems or descriptions")
struct SecretRedactionTests {
    static let secrets = [
        "KAIZEN_API_KEY": "  kaizen-secret-with-spaces-41ab  ",
        "KAPSO_API_KEY": "kapso-secret\nsecond-line-83cd",
        "B3OS_API_KEY": "b3os-secret-valid-5e5e",
        "WEB_KAIZEN_KEY": "web-override-secret\u{7f}-77aa",
        "GATEWAY_CURSOR_SECRET": "short-c5",
    ]

    /// A file where every secret value is both used and wrong in some way, next to non-secret mistakes.
    static let brokenYAML = """
        server: {port: 70000}
        auth:
          mode: apiKey
        clients:
          - id: web
            keySHA256: web-raw-api-key-pasted-by-mistake
            providers: [kaizen, kapso]
            credentials: {kaizen: "${WEB_KAIZEN_KEY}", b3os: "${B3OS_API_KEY}"}
        providers:
          - name: kaizen
            type: kaizen
            baseURL: https://user:url-password-secret-1a1a@api.kaizen.test
            credential: ${KAIZEN_API_KEY}
          - name: kapso
            type: kapso
            baseURL: https://api.kapso.test
            credential: ${KAPSO_API_KEY}
          - name: b3os
            type: b3os
            baseURL: https://api.b3os.test?token=${B3OS_API_KEY}
            credential: ${B3OS_API_KEY}
            orgId: 12
        """

    static let forbiddenFragments = [
        "kaizen-secret-with-spaces-41ab", "kapso-secret", "second-line-83cd", "web-override-secret",
        "short-c5", "url-password-secret-1a1a", "web-raw-api-key-pasted-by-mistake",
    ]

    @Test("No secret value appears in any problem")
    func problemsAreRedacted() {
        let found = problems(in: Self.brokenYAML, environment: Self.secrets)
        let text = found.map(\.description).joined(separator: "\n")
        #expect(found.count >= 6, "\(text)")
        for fragment in Self.forbiddenFragments {
            #expect(!text.contains(fragment), "\(fragment) leaked:\n\(text)")
        }
        let keys = Set(found.map(\.key))
        #expect(keys.isSuperset(of: [
            "server.port", "clients[0].keySHA256", "clients[0].credentials.kaizen", "clients[0].credentials.b3os",
            "providers[0].baseURL", "providers[0].credential", "providers[1].credential",
        ]))
        #expect(text.contains("<redacted>"))
    }

    @Test("A cursor secret from the environment that is too short is reported without its value")
    func environmentCursorSecretIsRedacted() {
        let found = problems(in: minimalYAML, environment: ["GATEWAY_CURSOR_SECRET": "short-c5"])
        #expect(found.map(\.key) == ["auth.cursorSecret"])
        #expect(found.first?.message.contains("GATEWAY_CURSOR_SECRET") == true)
        #expect(found.first?.description.contains("short-c5") == false)
    }

    @Test("A YAML syntax error on a line holding a secret does not quote the line")
    func syntaxErrorsDoNotQuoteSource() {
        let yaml = """
            providers:
              - name: kaizen
                credential: "literal-secret-in-file-9f9f
                type: kaizen
            """
        let found = problems(in: yaml)
        #expect(found.count == 1)
        #expect(found.first?.line != nil)
        #expect(found.first?.message.hasPrefix("YAML syntax error") == true)
        #expect(found.first?.description.contains("literal-secret-in-file") == false)
    }

    @Test("Unknown keys are named but their values are not printed")
    func unknownKeyValuesAreNotPrinted() {
        let yaml = minimalYAML + "\n    credentail: typo-key-secret-4d4d\n"
        let found = problems(in: yaml)
        #expect(found.map(\.key) == ["providers[0].credentail"])
        #expect(found.first?.message.contains("did you mean \"credential\"") == true)
        #expect(found.first?.description.contains("typo-key-secret") == false)
    }

    @Test("redactedDescription shows the effective configuration with every secret redacted")
    func redactedDescription() throws {
        let environment = DefaultsTests.exampleEnvironment
        let configuration = try ConfigLoader.load(
            path: SourceTree.packageRoot + "/config/example.yaml", environment: environment)
        let description = configuration.redactedDescription()
        for secret in environment.values {
            #expect(!description.contains(secret), "\(secret) leaked")
        }
        #expect(description.contains("credential: <redacted>"))
        #expect(description.contains("credentials: {kaizen: <redacted>}"))
        #expect(description.contains("cursorSecret: <redacted>"))
        #expect(description.contains("keySHA256: d0ebebf49082d16e03b293a2b70fe1a662f0821ded6d38f1602186fd45ae05a5"))
        #expect(description.contains("writeTimeoutMs: 30000"))
        #expect(description.contains("requestTimeoutMs: 50000"))
        #expect(description.contains("default: {requestsPerSecond: 20, burst: 40, upstreamCallsPerMinute: 1200}"))
        #expect(description.contains("maxUpstreamCallsPerRequest: 200"))
    }

    @Test("The Redis password is redacted in problems and in the effective configuration")
    func redisPasswordIsRedacted() throws {
        let password = "redis-pass-word-7c7c"
        let environment = ["REDIS_URL": "redis://:\(password)@10.0.0.7:6380/2"]
        let configuration = try ConfigLoader.load(yaml: minimalYAML + "\nredis: {url: \"${REDIS_URL}\", keyPrefix: \"gw1:\"}\n", environment: environment)
        #expect(configuration.redis?.endpoint.password == password)
        let description = configuration.redactedDescription()
        #expect(!description.contains(password))
        #expect(description.contains("url: \"redis://:<redacted>@10.0.0.7:6380/2\""), "\(description)")
        #expect(description.contains("keyPrefix: \"gw1:\""))

        let broken = problems(in: minimalYAML + "\nredis: {url: \"redis://:\(password)@10.0.0.7:99999\"}\n")
        #expect(broken.map(\.key) == ["redis.url"])
        #expect(broken.first?.description.contains(password) == false, "\(broken)")
    }

    @Test("redactedDescription is YAML that loads back to the same configuration, secrets aside")
    func redactedDescriptionRoundTrips() throws {
        let original = try ConfigLoader.load(
            path: SourceTree.packageRoot + "/config/example.yaml", environment: DefaultsTests.exampleEnvironment)
        let rendered = original.redactedDescription()
            .replacingOccurrences(of: "cursorSecret: <redacted>", with: "cursorSecret: re-read-cursor-secret-0000")
        var reloaded = try ConfigLoader.load(yaml: rendered, environment: [:])
        #expect(reloaded.providers.allSatisfy { $0.credential == "<redacted>" })
        #expect(reloaded.clients[0].credentials == ["kaizen": "<redacted>"])
        for index in reloaded.providers.indices {
            reloaded.providers[index].credential = original.providers[index].credential
        }
        reloaded.clients[0].credentials = original.clients[0].credentials
        reloaded.auth.cursorSecret = original.auth.cursorSecret
        #expect(reloaded == original)
    }

    @Test("ConfigurationErrors' description lists every problem on its own line")
    func errorsDescription() {
        let errors = ConfigurationErrors(problems: [
            ConfigProblem(file: "a.yaml", key: "server.port", line: 3, message: "m1"),
            ConfigProblem(file: "a.yaml", key: "", line: nil, message: "m2"),
        ])
        #expect(errors.description == "a.yaml:3: server.port: m1\na.yaml: m2")
    }
}
