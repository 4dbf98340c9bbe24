import Foundation
import GatewayTestSupport
import Testing

/// A gateway started without standard output (`serve >&-`, as some supervisors do) logs into
/// /dev/null instead of into whatever descriptor takes number 1 next (it was an epoll instance
/// here; a socket would have had log lines sent to a client or an upstream), and keeps serving.
@Suite struct ClosedStandardOutputTests {
    @Test func serveWithoutStandardOutputKeepsAnswering() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("closed-stdout-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let port = try unusedLoopbackPort()
        let config = directory.appendingPathComponent("gateway.yaml")
        try """
        server: {host: 127.0.0.1, port: \(port), workers: 1}
        auth: {mode: none, cursorSecret: closed-stdout-test-secret}
        providers:
          - {name: kaizen, type: kaizen, baseURL: "http://127.0.0.1:9", credential: unused-credential}
        """.write(to: config, atomically: true, encoding: .utf8)

        let process = try ChildProcess("/bin/sh", ["-c", #"exec "$0" serve --config "$1" >&-"#, GatewayBinary.executable.path, config.path])
        defer {
            process.send(SIGTERM)
            process.waitUntilExit()
        }
        try await onOwnThread { () throws in try waitUntilListening(port: port) }

        // Every request writes an access line; the first one would have hit the closed descriptor.
        let client = try RawClient(port: port)
        let answers = await client.roundTrips(Array(repeating: "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", count: 20))
        #expect(answers.map { $0?.status ?? 0 } == Array(repeating: 200, count: 20))
        let later = try RawClient(port: port)
        #expect(await later.roundTrips(["GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"]).first??.status == 200)
        #expect(process.isRunning)
        // `exec` kept the shell's process id.
        let standardOutput = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(process.processIdentifier)/fd/1")
        #expect(standardOutput == "/dev/null")
    }
}
