import Configuration
import GatewayConfig
import Testing

@Suite("swift-configuration snapshot")
struct SnapshotTests {
    static let yaml = """
        auth: {cursorSecret: snapshot-cursor-secret-000}
        clients:
          - id: web
            keySHA256: \(String(repeating: "e", count: 64))
            providers: [kaizen]
            credentials: {kaizen: client-override-credential}
        providers:
          - name: kaizen
            type: kaizen
            baseURL: https://api.kaizen.test
            credential: provider-credential
          - name: kapso
            type: kapso
            baseURL: https://api.kapso.test
            credential: kapso-credential
            workflowIds: [wf_1]
        """

    func snapshot(_ yaml: String) -> GatewayConfigurationSnapshot {
        let bytes = Array(yaml.utf8)
        return GatewayConfigurationSnapshot(
            data: bytes.span.bytes,
            providerName: "test",
            parsingOptions: .init(fileName: "snapshot.yaml", environment: [:])
        )
    }

    @Test("Keys of the effective configuration are readable, secrets marked secret")
    func keyLookups() throws {
        let snapshot = snapshot(Self.yaml)
        #expect(snapshot.configuration?.providers.count == 2)

        func value(_ key: [String], _ type: ConfigType) throws -> ConfigValue? {
            try snapshot.value(forKey: AbsoluteConfigKey(key), type: type).value
        }
        #expect(try value(["server", "port"], .int) == ConfigValue(.int(8080), isSecret: false))
        #expect(try value(["server", "trustedProxies"], .stringArray)?.content == .stringArray(["127.0.0.1/32", "::1/128"]))
        #expect(try value(["providers"], .stringArray)?.content == .stringArray(["kaizen", "kapso"]))
        #expect(try value(["providers", "kapso", "workflowIds"], .stringArray)?.content == .stringArray(["wf_1"]))
        #expect(try value(["providers", "kaizen", "timeoutMs"], .int)?.content == .int(10000))
        #expect(try value(["providers", "kaizen", "credential"], .string) == ConfigValue(.string("provider-credential"), isSecret: true))
        #expect(try value(["clients", "web", "credentials", "kaizen"], .string)?.isSecret == true)
        #expect(try value(["clients", "web", "rateLimit", "burst"], .int)?.content == .int(40))
        #expect(try value(["clients", "web", "providers"], .stringArray)?.content == .stringArray(["kaizen"]))
        #expect(try value(["auth", "cursorSecret"], .string)?.isSecret == true)
        #expect(try value(["server", "nope"], .int) == nil)
        #expect(throws: (any Error).self) { try value(["server", "port"], .string) }
    }

    @Test("An invalid file makes a snapshot holding its problems; lookups throw them")
    func invalidSnapshot() {
        let snapshot = snapshot("server: {port: x}\n" + Self.yaml)
        guard case .failure(let errors) = snapshot.result else {
            Issue.record("expected a failure")
            return
        }
        #expect(errors.problems.map(\.key) == ["server.port"])
        #expect(errors.problems.first?.file == "snapshot.yaml")
        #expect(throws: ConfigurationErrors.self) {
            try snapshot.value(forKey: AbsoluteConfigKey(["server", "host"]), type: .string)
        }
        #expect(snapshot.description.contains("invalid: 1 problems"))
    }

    @Test("The snapshot's debug description is the redacted configuration")
    func debugDescriptionIsRedacted() {
        let snapshot = snapshot(Self.yaml)
        #expect(!snapshot.debugDescription.contains("provider-credential"))
        #expect(!snapshot.debugDescription.contains("client-override-credential"))
        #expect(!snapshot.debugDescription.contains("snapshot-cursor-secret"))
        #expect(snapshot.debugDescription.contains("<redacted>"))
    }
}
