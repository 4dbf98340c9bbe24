@testable import GatewayConfig

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Testing

@Suite("Broken configuration files")
struct BrokenConfigurationTests {
    /// Every file under Fixtures/broken must fail with exactly the problems its `# expect:` lines name.
    @Test("Broken fixture reports exactly its expected problems", arguments: SourceTree.brokenFixtureNames())
    func brokenFixture(name: String) throws {
        let path = SourceTree.brokenFixturesDirectory + "/" + name
        let expected = ExpectedProblem.parseHeader(of: readTextFile(path))
        try #require(!expected.isEmpty, "\(name) has no `# expect:` lines")
        do {
            let configuration = try ConfigLoader.load(path: path, environment: [:])
            Issue.record("\(name) loaded: \(configuration)")
        } catch {
            let actual = error.problems
            let listing = actual.map(\.description).joined(separator: "\n")
            #expect(actual.count == expected.count, "\(name):\n\(listing)")
            for expectation in expected {
                #expect(actual.contains(where: expectation.matches), "\(name): missing \(expectation) in\n\(listing)")
            }
            for problem in actual {
                #expect(problem.file == path)
                #expect(problem.description.hasPrefix(path + (problem.line.map { ":\($0): " } ?? ": ")))
            }
        }
    }

    @Test("The fixture table is large and has a file with several problems")
    func fixtureTableShape() {
        let names = SourceTree.brokenFixtureNames()
        #expect(names.count >= 25)
        let counts = names.map { ExpectedProblem.parseHeader(of: readTextFile(SourceTree.brokenFixturesDirectory + "/" + $0)).count }
        #expect(counts.contains { $0 >= 3 })
    }

    @Test("A problem reads file:line: key: message")
    func problemDescriptionFormat() {
        let yaml = """
            auth: {mode: none}
            providers:
              - name: kaizen
                type: kaizen
                baseURL: https://api.kaizen.test
                credential: k
              - name: kapso
                type: kapso
                baseURL: https://api.kapso.test
                credential: k
                timeoutMs: abc
            """
        let found = problems(in: yaml, fileName: "config/x.yaml")
        #expect(found.map(\.description) == [
            #"config/x.yaml:11: providers[1].timeoutMs: must be an integer between 1 and 600000, got "abc""#
        ])
    }

    @Test("Problems come in file order")
    func problemsAreInFileOrder() {
        let yaml = """
            providers:
              - name: kaizen
                type: kaizen
                baseURL: https://api.kaizen.test
                credential: k
                timeoutMs: 0
            server:
              port: x
            auth:
              mode: none
            """
        let found = problems(in: yaml)
        #expect(found.map(\.key) == ["providers[0].timeoutMs", "server.port"])
        #expect(found.map(\.line) == [6, 8])
    }

    @Test("An unset variable is named together with the key that uses it")
    func unsetVariableNamesVariableAndKey() {
        let yaml = minimalYAML.replacingOccurrences(of: "minimal-kaizen-credential", with: "${KAIZEN_API_KEY}")
        let found = problems(in: yaml)
        #expect(found.count == 1)
        #expect(found.first?.key == "providers[0].credential")
        #expect(found.first?.message == "environment variable KAIZEN_API_KEY is not set")
    }

    @Test("Each of several unset variables in one value is reported")
    func severalUnsetVariablesInOneValue() {
        let yaml = minimalYAML.replacingOccurrences(
            of: "https://api.kaizen.test/", with: "https://${KAIZEN_HOST}:${KAIZEN_PORT}/api")
        let found = problems(in: yaml, environment: ["KAIZEN_PORT": "443"])
        #expect(found.map(\.message) == ["environment variable KAIZEN_HOST is not set"])
    }

    @Test("A missing file, a directory and an unreadable file are problems, not crashes")
    func unreadableFiles() {
        for path in ["/nonexistent/gateway.yaml", SourceTree.brokenFixturesDirectory] {
            do {
                _ = try ConfigLoader.load(path: path, environment: [:])
                Issue.record("\(path) loaded")
            } catch {
                #expect(error.problems.count == 1)
                #expect(error.problems.first?.file == path)
                #expect(error.problems.first?.key == "")
            }
        }
    }

    @Test("A key of a type-specific provider field on an unknown type is not reported twice")
    func unknownTypeAllowsTypeSpecificKeys() {
        let yaml = """
            auth: {mode: none}
            providers:
              - name: x
                type: zapier
                baseURL: https://x.test
                credential: k
                workflowIds: [a]
            """
        #expect(problems(in: yaml).map(\.key) == ["providers[0].type"])
    }

    @Test("A client's reference to a provider whose entry is broken is not reported on top")
    func brokenProviderIsStillKnownByName() {
        let yaml = """
            clients:
              - id: web
                keySHA256: \(String(repeating: "a", count: 64))
                providers: [kaizen]
            providers:
              - name: kaizen
                type: kaizen
                baseURL: nope
                credential: k
            """
        #expect(problems(in: yaml).map(\.key) == ["providers[0].baseURL"])
    }

    @Test("A non-string key is a problem")
    func nonStringKey() {
        let yaml = """
            ? [a, b]
            : 1
            """ + "\n" + minimalYAML
        let found = problems(in: yaml)
        #expect(found.map(\.key) == [""])
        #expect(found.first?.line == 1)
        #expect(found.first?.message.contains("keys must be plain names") == true)
    }

    @Test("Anchors and aliases are refused before parsing, so an alias bomb cannot hang the loader")
    func anchorsAndAliasesAreRefused() {
        var bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n"
        for level in 1...9 {
            bomb += "a\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 9).joined(separator: ", ") + "]\n"
        }
        bomb += "m: {? *a9 : 1}\n"
        let found = problems(in: bomb)
        #expect(found.count == 1)
        #expect(found.first?.line == 1)
        #expect(found.first?.message.contains("anchor or alias") == true)

        for (yaml, line) in [
            ("auth: {mode: none}\nbase: &base\n  type: kaizen\n", 2),
            ("auth:\n  mode: *mode\n", 2),
            ("x:\n  - - &a b\n", 2),
            ("x: [a, *b]\n", 1),
            ("x: {k: *v}\n", 1),
            ("? *k\n: v\n", 1),
            ("*k : v\n", 1),
        ] {
            #expect(AnchorGuard.firstAnchorOrAliasLine(in: yaml) == line, "\(yaml)")
        }
    }

    @Test("Asterisks and ampersands inside values, quotes and comments are no anchors")
    func asterisksInValuesAreFine() throws {
        for yaml in [
            "credential: pa*ss&word\n",
            "credential: \"*starts-with-star\"\n",
            "credential: '&amp; ''*quoted'''\n",
            "credential: \"multi\n  *line\"\n",
            "credential: \"escaped \\\" *still-inside\"\n",
            "# *comment &too\nx: 1 # *trailing\n",
            "x: a * b\n",
            "x: [a*, b&]\n",
            "url: https://x.test/*\n",
        ] {
            #expect(AnchorGuard.firstAnchorOrAliasLine(in: yaml) == nil, "\(yaml)")
        }
        let yaml = minimalYAML.replacingOccurrences(of: "minimal-kaizen-credential", with: "\"*secret&with*stars\"")
        #expect(try ConfigLoader.load(yaml: yaml, environment: [:]).providers[0].credential == "*secret&with*stars")
    }

    @Test("Huge and malformed numbers are out-of-range problems")
    func malformedNumbers() {
        for value in ["99999999999999999999999", "1e3", "0x10", "1.5", "+", "1__0", "_1", "--1", "nan"] {
            let yaml = "server: {port: \"\(value)\"}\n" + minimalYAML
            let found = problems(in: yaml)
            #expect(found.map(\.key) == ["server.port"], "\(value)")
        }
        for value in ["inf", "nan", "-1", "0x10", "1e400", "1,5", ""] {
            let yaml = "rateLimit: {default: {requestsPerSecond: \"\(value)\"}}\n" + minimalYAML
            #expect(problems(in: yaml).map(\.key) == ["rateLimit.default.requestsPerSecond"], "\(value)")
        }
    }

    @Test("Hosts: IP literals and host names, nothing else")
    func serverHost() {
        for good in ["0.0.0.0", "::", "::1", "localhost", "gateway.internal", "10.1.2.3"] {
            #expect(problems(in: "server: {host: \"\(good)\"}\n" + minimalYAML).isEmpty, "\(good)")
        }
        for bad in ["", "exa mple", "-bad.host", "a..b", "http://x", "300.1.1.1.1"] {
            #expect(problems(in: "server: {host: \"\(bad)\"}\n" + minimalYAML).map(\.key) == ["server.host"], "\(bad)")
        }
    }
}

@Suite("Problem cascades")
struct ProblemCascadeTests {
    @Test("A mistyped auth.mode is not followed by a missing-clients problem")
    func mistypedModeDoesNotCascade() {
        let yaml = minimalYAML.replacingOccurrences(of: "auth: {mode: none}", with: "auth: {mode: nnone}")
        let found = problems(in: yaml)
        #expect(found.map(\.key) == ["auth.mode"])
        #expect(found.first?.message.contains("did you mean \"none\"?") == true)
    }

    @Test("A null value for a required string says so")
    func nullRequiredString() {
        let yaml = minimalYAML.replacingOccurrences(of: "credential: minimal-kaizen-credential", with: "credential:")
        let found = problems(in: yaml)
        #expect(found.map(\.key) == ["providers[0].credential"])
        #expect(found.first?.message == "has no value; expected a string")
    }
}
