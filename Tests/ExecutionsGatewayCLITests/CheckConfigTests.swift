import Foundation
import GatewayTestSupport
import Testing

/// Runs the real `executions-gateway` binary, built next to the test bundle.
enum GatewayBinary {
    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    static var executable: URL { named("executions-gateway") }

    /// One of the package's executables (`executions-gateway`, `provider-simulator`), as built beside the tests.
    static func named(_ name: String) -> URL {
        let bundleDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let candidates = [bundleDirectory, bundleDirectory.deletingLastPathComponent()]
            .map { $0.appendingPathComponent(name) }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
            ?? packageRoot.appendingPathComponent(".build/debug/" + name)
    }

    struct Result: Sendable {
        var status: Int32
        var standardOutput: String
        var standardError: String
    }

    /// Starts the binary and returns once its standard output has printed `marker` (or ended),
    /// with what it printed; standard output is not read after that. Blocks: call it off the pool.
    static func start(_ arguments: [String], printingUntil marker: String) throws -> (process: ChildProcess, printed: String) {
        let process = try ChildProcess(executable.path, arguments, standardOutput: .capture)
        var printed = ""
        while !printed.contains(marker) {
            let chunk = process.readStandardOutput()
            if chunk.isEmpty { break }   // the process ended without printing it
            printed += String(decoding: chunk, as: UTF8.self)
        }
        return (process, printed)
    }

    /// Runs the binary to its end; the waiting happens on a thread of its own (see `onOwnThread`).
    static func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> Result {
        try await onOwnThread { () throws -> Result in try runBlocking(arguments, environment: environment) }
    }

    static func runBlocking(_ arguments: [String], environment: [String: String]) throws -> Result {
        var merged = ProcessInfo.processInfo.environment
        merged.removeValue(forKey: "GATEWAY_CONFIG")
        merged.removeValue(forKey: "FIXTURE_SURELY_UNSET_VARIABLE_4711")
        for (key, value) in environment { merged[key] = value }
        let process = try ChildProcess(executable.path, arguments, environment: merged, standardOutput: .capture, standardError: .capture)
        let outputData = process.readStandardOutputToEnd()
        let errorData = process.readStandardErrorToEnd()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus,
            standardOutput: String(decoding: outputData, as: UTF8.self),
            standardError: String(decoding: errorData, as: UTF8.self)
        )
    }
}

@Suite struct CheckConfigTests {
    static var brokenFixtures: [String] {
        let directory = GatewayBinary.packageRoot.appendingPathComponent("Tests/GatewayConfigTests/Fixtures/broken")
        return ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
            .filter { $0.hasSuffix(".yaml") }.sorted().map { directory.appendingPathComponent($0).path }
    }

    @Test func thereAreAtLeastTwentyBrokenFixtures() {
        #expect(Self.brokenFixtures.count >= 20)
    }

    @Test(arguments: brokenFixtures)
    func everyBrokenConfigurationExitsOneAndNamesItsProblems(_ path: String) async throws {
        let result = try await GatewayBinary.run(["check-config", "--config", path])
        #expect(result.status == 1, "\(path): \(result.standardOutput)")
        let fileName = URL(fileURLWithPath: path).lastPathComponent
        #expect(result.standardError.contains(fileName), "problems name the file")
        // The fixture's `# expect:` lines name the key of each problem.
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") where line.hasPrefix("# expect:") {
            let parts = line.dropFirst("# expect:".count).split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count >= 2, parts[1] != "-" {
                #expect(result.standardError.contains(parts[1]), "\(fileName): key \(parts[1]) not named in \(result.standardError)")
            }
        }
    }

    @Test func exampleAndDemoConfigurationsAreValidAndSecretsAreRedacted() async throws {
        let environment = [
            "GATEWAY_CURSOR_SECRET": "cursor-secret-value-0123456789", "KAIZEN_API_KEY": "kaizen-secret-value",
            "KAPSO_API_KEY": "kapso-secret-value", "B3OS_API_KEY": "b3sk_secret_value", "WEB_KAIZEN_KEY": "web-kaizen-secret-value",
        ]
        let example = try await GatewayBinary.run(["check-config", "--config", GatewayBinary.packageRoot.appendingPathComponent("config/example.yaml").path], environment: environment)
        #expect(example.status == 0, "\(example.standardError)")
        for secret in environment.values { #expect(!(example.standardOutput + example.standardError).contains(secret)) }
        let demo = try await GatewayBinary.run(["check-config", "--config", GatewayBinary.packageRoot.appendingPathComponent("config/demo.yaml").path])
        #expect(demo.status == 0, "\(demo.standardError)")
        let fromEnvironment = try await GatewayBinary.run(["check-config"], environment: ["GATEWAY_CONFIG": GatewayBinary.packageRoot.appendingPathComponent("config/demo.yaml").path])
        #expect(fromEnvironment.status == 0)
    }

    @Test func helpExplainsTheCommands() async throws {
        let help = try await GatewayBinary.run(["--help"])
        #expect(help.status == 0)
        for word in ["serve", "check-config", "demo", "--config"] where word != "--config" {
            #expect(help.standardOutput.contains(word))
        }
        // Without --config or GATEWAY_CONFIG: one line naming both, EX_USAGE, no top-level usage.
        for command in ["serve", "check-config"] {
            let missing = try await GatewayBinary.run([command])
            #expect(missing.status == 64, "\(command)")
            #expect(missing.standardError == "executions-gateway: no configuration file: pass --config FILE or set GATEWAY_CONFIG.\n")
            #expect(missing.standardOutput.isEmpty)
        }
    }
}
