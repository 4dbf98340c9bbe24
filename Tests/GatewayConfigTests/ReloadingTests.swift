import GatewayConfig
import Logging
import Testing

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

@Suite("Reloading the file")
struct ReloadingTests {
    static func yaml(clientID: String, port: String = "8080", workers: String = "0") -> String {
        """
        server: {port: \(port), workers: \(workers)}
        clients:
          - id: \(clientID)
            keySHA256: \(String(repeating: "f", count: 64))
        providers:
          - name: kaizen
            type: kaizen
            baseURL: https://api.kaizen.test
            credential: reload-credential
        """
    }

    /// Writes `text` and gives the file a modification time of its own, so that a rewrite within the file
    /// system's timestamp granularity still counts as a change.
    static func write(_ text: String, to path: String, modifiedAt seconds: TimeInterval) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes(
            [.modificationDate: Date(timeIntervalSince1970: seconds)], ofItemAtPath: path)
    }

    static func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("gateway-config-\(UUID().uuidString).yaml").path
    }

    @Test("A changed file reaches onReload; an invalid one is rejected and the last valid one stays current")
    func reloads() async throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Self.write(Self.yaml(clientID: "first"), to: path, modifiedAt: 1_000_000)

        let (reloads, continuation) = AsyncStream<ReloadingGatewayConfiguration.Reload>.makeStream()
        // Only keeps a broken build from hanging the suite: ending the stream makes the awaits below fail.
        let watchdog = Task {
            try await Task.sleep(for: .seconds(120))
            continuation.finish()
        }
        defer { watchdog.cancel() }
        let watched = try await ReloadingGatewayConfiguration(
            path: path,
            environment: [:],
            pollInterval: .seconds(3600),
            logger: Logger(label: "test"),
            onReload: { continuation.yield($0) }
        )
        #expect(watched.current.clients.map(\.id) == ["first"])
        let running = Task { try await watched.run() }
        defer { running.cancel() }

        var iterator = reloads.makeAsyncIterator()
        try Self.write(Self.yaml(clientID: "second"), to: path, modifiedAt: 2_000_000)
        await watched.checkNow()
        let applied = await iterator.next()
        guard case .applied(let configuration, let previous) = applied else {
            Issue.record("expected .applied, got \(String(describing: applied))")
            return
        }
        #expect(configuration.clients.map(\.id) == ["second"])
        #expect(previous.clients.map(\.id) == ["first"])
        #expect(configuration.sectionsRequiringRestart(comparedTo: previous).isEmpty)
        #expect(watched.current.clients.map(\.id) == ["second"])

        try Self.write(Self.yaml(clientID: "third", port: "nope"), to: path, modifiedAt: 3_000_000)
        await watched.checkNow()
        let rejected = await iterator.next()
        guard case .rejected(let errors) = rejected else {
            Issue.record("expected .rejected, got \(String(describing: rejected))")
            return
        }
        #expect(errors.problems.map(\.key) == ["server.port"])
        #expect(errors.problems.first?.file == path)
        #expect(watched.current.clients.map(\.id) == ["second"])

        try Self.write(Self.yaml(clientID: "second", port: "9090"), to: path, modifiedAt: 4_000_000)
        await watched.checkNow()
        let restartNeeded = await iterator.next()
        guard case .applied(let withNewPort, let beforeNewPort) = restartNeeded else {
            Issue.record("expected .applied, got \(String(describing: restartNeeded))")
            return
        }
        #expect(withNewPort.sectionsRequiringRestart(comparedTo: beforeNewPort) == ["server"])
    }

    @Test("An invalid or missing file fails the start with every problem")
    func invalidAtStart() async throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Self.write(Self.yaml(clientID: "x", port: "nope", workers: "-1"), to: path, modifiedAt: 1_000_000)
        do {
            _ = try await ReloadingGatewayConfiguration(path: path, environment: [:], onReload: { _ in })
            Issue.record("expected problems")
        } catch {
            #expect(error.problems.map(\.key) == ["server.port", "server.workers"])
        }
        do {
            _ = try await ReloadingGatewayConfiguration(path: path + ".missing", environment: [:], onReload: { _ in })
            Issue.record("expected problems")
        } catch {
            #expect(error.problems.count == 1)
            #expect(error.problems.first?.message.contains("No such file") == true)
        }
    }
}
