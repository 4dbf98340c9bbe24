import Configuration
@testable import GatewayConfig
import Testing

@Suite("${NAME} substitution")
struct VariableSubstitutionTests {
    let substitution = VariableSubstitution(
        environment: EnvironmentVariablesProvider(environmentVariables: [
            "HOST": "api.test", "PORT": "8443", "EMPTY": "", "NESTED": "${HOST}", "lower_case": "x",
        ])
    )

    @Test("Replacements", arguments: [
        ("plain", "plain"),
        ("${HOST}", "api.test"),
        ("https://${HOST}:${PORT}/v1", "https://api.test:8443/v1"),
        ("a${EMPTY}b", "ab"),
        ("${NESTED}", "${HOST}"),
        ("${lower_case}", "x"),
        ("$${HOST}", "${HOST}"),
        ("pa$$word", "pa$$word"),
        ("cost: $5", "cost: $5"),
        ("$", "$"),
        ("$$", "$$"),
        ("$$$${HOST}", "$$${HOST}"),
        ("{HOST}", "{HOST}"),
    ])
    func replacements(input: String, expected: String) {
        #expect(substitution.substitute(input) == .substituted(expected))
    }

    @Test("Failures", arguments: [
        ("${MISSING}", [VariableSubstitution.Failure.unsetVariable("MISSING")]),
        ("${A}-${B}", [.unsetVariable("A"), .unsetVariable("B")]),
        ("${HOST", [.unterminatedReference]),
        ("${}", [.invalidName("")]),
        ("${1ABC}", [.invalidName("1ABC")]),
        ("${HOST:-fallback}", [.invalidName("HOST:-fallback")]),
        ("${ HOST }", [.invalidName(" HOST ")]),
    ])
    func failures(input: String, expected: [VariableSubstitution.Failure]) {
        #expect(substitution.substitute(input) == .failed(expected))
    }

    @Test("Substitution works in lists, enum values and numbers of a file")
    func substitutionEverywhere() throws {
        let yaml = """
            server:
              port: ${PORT}
              trustedProxies: ["${PROXY}"]
            auth: {mode: "${MODE}"}
            providers:
              - name: ${NAME}
                type: ${TYPE}
                baseURL: https://${HOST}
                credential: ${KEY}
            """
        let configuration = try ConfigLoader.load(yaml: yaml, environment: [
            "PORT": "9000", "PROXY": "10.0.0.0/8", "MODE": "none", "NAME": "main", "TYPE": "kaizen",
            "HOST": "api.test", "KEY": "k",
        ])
        #expect(configuration.server.port == 9000)
        #expect(configuration.server.trustedProxies.map(\.description) == ["10.0.0.0/8"])
        #expect(configuration.auth.mode == .none)
        #expect(configuration.providers[0].name == "main")
        #expect(configuration.providers[0].baseURL == "https://api.test")
    }

    @Test("A message about a substituted value shows the text as written, not the variable's value")
    func substitutedValuesAreShownAsWritten() {
        let yaml = """
            auth: {mode: none}
            server: {port: "${PORT}"}
            providers:
              - name: b3os
                type: b3os
                baseURL: https://api.b3os.test/?token=${B3OS_API_KEY}
                credential: ${B3OS_API_KEY}
            """
        let found = problems(in: yaml, environment: ["B3OS_API_KEY": "secret-in-url-7c7c", "PORT": "eighty"])
        #expect(found.map(\.key) == ["server.port", "providers[0].baseURL"])
        #expect(found[0].message == #"must be an integer between 0 and 65535, got "${PORT}" (variables not expanded here)"#)
        #expect(found[1].message.contains(#""https://api.b3os.test/?token=${B3OS_API_KEY}""#))
        #expect(!found.map(\.description).joined().contains("secret-in-url"))
    }
}
