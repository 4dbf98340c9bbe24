import Foundation
import GatewayTestSupport
import Testing

/// Issue 15's first reproduction through the real binaries: `provider-simulator` serves, for each
/// provider, a record created (started) 1678-01-01 and finished 2262-04-01 (Kaizen's without
/// `durationMs`), whose duration once overflowed Int64 and trapped `serve`. `executions-gateway
/// serve` lists them with `durationMs: null` and keeps serving.
@Suite struct HostileUpstreamProcessTests {
    static let earliest = "1678-01-01T00:00:00Z"
    static let latest = "2262-04-01T00:00:00Z"

    /// A running child process whose standard output is read line by line.
    final class Child: @unchecked Sendable {
        // @unchecked: `buffered` is used only by the one test thread that reads.
        let process: ChildProcess
        private var buffered = ""

        init(_ executable: URL, _ arguments: [String]) throws {
            process = try ChildProcess(executable.path, arguments, standardOutput: .capture)
        }

        /// Reads until a line satisfies `match` and returns it; nil when the process ends first.
        func line(where match: (String) -> Bool) -> String? {
            while true {
                if let newline = buffered.firstIndex(of: "\n") {
                    let line = String(buffered[..<newline])
                    buffered = String(buffered[buffered.index(after: newline)...])
                    if match(line) { return line }
                    continue
                }
                let chunk = process.readStandardOutput()
                if chunk.isEmpty { return nil }
                buffered += String(decoding: chunk, as: UTF8.self)
            }
        }

        func stop() {
            process.send(SIGTERM)
            process.waitUntilExit()
        }
    }

    static func port(in text: String) -> Int? {
        let digits = text.split(whereSeparator: { !$0.isNumber }).last
        return digits.flatMap { Int($0) }
    }

    static func request(_ port: Int, _ method: String, _ target: String, body: String = "") throws -> TestResponse? {
        let client = try RawClient(port: port)
        var head = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        if !body.isEmpty { head += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n" }
        try client.sendBlocking(Array((head + "\r\n" + body).utf8))
        return client.readResponseBlocking()
    }

    struct Outcome: Sendable {
        var inserted: [Int] = []
        var listStatus: Int?
        var items: [[String: String]] = []
        var healthAfterwards: Int?
        var gatewayStillRunning = false
    }

    @Test func serveListsRecordsSpanning1678To2262WithANullDurationAndKeepsServing() async throws {
        let outcome = try await onOwnThread { () throws -> Outcome in
            var outcome = Outcome()
            let simulator = try Child(GatewayBinary.named("provider-simulator"), [
                "--kaizen-port", "0", "--kapso-port", "0", "--b3os-port", "0", "--executions", "5",
            ])
            defer { simulator.stop() }
            var bases: [String: String] = [:]
            for name in ["kaizen", "kapso", "b3os"] {
                guard let line = simulator.line(where: { $0.hasPrefix(name + ": http://") }) else { return outcome }
                bases[name] = String(line.dropFirst(name.count + 2))
            }
            let hostile: [(provider: String, body: String)] = [
                ("b3os", #"{"organization": "org_demo_acme", "at": "\#(Self.earliest)", "status": "workflow_succeeded", "fields": {"startedAt": "\#(Self.earliest)", "finishedAt": "\#(Self.latest)"}}"#),
                ("kapso", #"{"organization": "org_kp_acme", "at": "\#(Self.earliest)", "status": "ended", "fields": {"ended_at": "\#(Self.latest)"}}"#),
                ("kaizen", #"{"organization": "org_kz_acme", "at": "\#(Self.earliest)", "status": "Completed", "fields": {"endTime": "\#(Self.latest)", "durationMs": null}}"#),
            ]
            for (provider, body) in hostile {
                guard let port = bases[provider].flatMap({ Self.port(in: $0.split(separator: "/").dropFirst().first.map(String.init) ?? "") }) else { continue }
                outcome.inserted.append(try Self.request(port, "POST", "/__sim/executions", body: body)?.status ?? 0)
            }

            let configuration = FileManager.default.temporaryDirectory
                .appendingPathComponent("hostile-upstream-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString).yaml")
            let yaml = """
                server: {host: 127.0.0.1, port: 0, workers: 1}
                auth: {mode: none, cursorSecret: hostile-upstream-test-secret-0123456789}
                providers:
                  - {name: kaizen, type: kaizen, baseURL: "\(bases["kaizen"] ?? "")", credential: demo-kaizen-key}
                  - {name: kapso, type: kapso, baseURL: "\(bases["kapso"] ?? "")", credential: demo-kapso-key}
                  - {name: b3os, type: b3os, baseURL: "\(bases["b3os"] ?? "")", credential: b3sk_demo_acme_7f3c9a}
                """
            try yaml.write(to: configuration, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: configuration) }

            let gateway = try Child(GatewayBinary.executable, ["serve", "--config", configuration.path, "--log-level", "info"])
            defer { gateway.stop() }
            guard let listening = gateway.line(where: { $0.contains("\"listening\"") }),
                  let address = listening.range(of: #"127\.0\.0\.1:[0-9]+"#, options: .regularExpression),
                  let port = Self.port(in: String(listening[address]))
            else { return outcome }

            let listed = try Self.request(port, "GET", "/executions?limit=100&createdBefore=1700-01-01T00:00:00Z")
            outcome.listStatus = listed?.status
            if let body = listed?.body,
               let document = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
               let data = document["data"] as? [[String: Any]] {
                outcome.items = data.map { item in
                    [
                        "provider": item["provider"] as? String ?? "?",
                        "createdAt": item["createdAt"] as? String ?? "?",
                        "endedAt": item["endedAt"] as? String ?? "?",
                        "durationMs": item["durationMs"] is NSNull ? "null" : "\(item["durationMs"] ?? "missing")",
                    ]
                }
            }
            outcome.healthAfterwards = try Self.request(port, "GET", "/healthz")?.status
            outcome.gatewayStillRunning = gateway.process.isRunning
            return outcome
        }
        #expect(outcome.inserted == [201, 201, 201])
        #expect(outcome.listStatus == 200)
        #expect(Set(outcome.items.compactMap { $0["provider"] }) == ["kaizen", "kapso", "b3os"])
        for item in outcome.items {
            #expect(item["durationMs"] == "null", "\(item)")
            #expect(item["createdAt"] == Self.earliest)
            #expect(item["endedAt"] == Self.latest)
        }
        #expect(outcome.healthAfterwards == 200)
        #expect(outcome.gatewayStillRunning)
    }
}
