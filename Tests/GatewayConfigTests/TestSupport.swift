import GatewayConfig

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Paths in the source tree: fixtures are real files so that the CLI's `check-config` test can use them too.
enum SourceTree {
    static let testsDirectory: String = {
        var components = String(#filePath).split(separator: "/", omittingEmptySubsequences: false)
        components.removeLast()
        return components.joined(separator: "/")
    }()

    static let packageRoot: String = {
        var components = testsDirectory.split(separator: "/", omittingEmptySubsequences: false)
        components.removeLast(2)
        return components.joined(separator: "/")
    }()

    static let brokenFixturesDirectory = testsDirectory + "/Fixtures/broken"

    static func brokenFixtureNames() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: brokenFixturesDirectory)) ?? []
        return names.filter { $0.hasSuffix(".yaml") }.sorted()
    }
}

/// One `# expect: <line or -> | <key or -> | <message fragment>` header line of a broken fixture.
struct ExpectedProblem: CustomStringConvertible {
    var line: Int?
    var key: String
    var messageFragment: String

    var description: String { "\(line.map(String.init) ?? "-") | \(key) | \(messageFragment)" }

    func matches(_ problem: ConfigProblem) -> Bool {
        problem.line == line && problem.key == key && problem.message.contains(messageFragment)
    }

    static func parseHeader(of fileText: String) -> [ExpectedProblem] {
        fileText.split(separator: "\n").compactMap { line -> ExpectedProblem? in
            guard line.hasPrefix("# expect: ") else { return nil }
            let fields = line.dropFirst("# expect: ".count).components(separatedBy: " | ")
            guard fields.count == 3 else { return nil }
            return ExpectedProblem(
                line: Int(fields[0]),
                key: fields[1] == "-" ? "" : fields[1],
                messageFragment: fields[2]
            )
        }
    }
}

func readTextFile(_ path: String) -> String {
    guard let data = FileManager.default.contents(atPath: path) else { return "" }
    return String(decoding: data, as: UTF8.self)
}

let minimalYAML = """
    auth: {mode: none}
    providers:
      - name: kaizen
        type: kaizen
        baseURL: https://api.kaizen.test/
        credential: minimal-kaizen-credential
    """

/// Runs `body` and returns its problems; records an issue when loading unexpectedly succeeds.
func problems(
    in yaml: String,
    environment: [String: String] = [:],
    fileName: String = "test.yaml"
) -> [ConfigProblem] {
    do {
        _ = try ConfigLoader.load(yaml: yaml, fileName: fileName, environment: environment)
        return []
    } catch {
        return error.problems
    }
}
