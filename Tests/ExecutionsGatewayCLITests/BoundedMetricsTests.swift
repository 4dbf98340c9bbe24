import Foundation
import GatewayTestSupport
import Testing

/// The reproduction of issue 15's second finding, through the real `serve` binary: requests with
/// made-up methods and no key used to add one `/metrics` series each, for ever.
@Suite struct BoundedMetricsTests {
    /// `serve` with an API-key client and providers nobody calls (every request here is refused
    /// before reaching them), on an ephemeral port read back from its `listening` line.
    static func startServe(in directory: URL) throws -> (process: ChildProcess, port: Int) {
        let config = directory.appendingPathComponent("gateway.yaml")
        try """
        server: {host: 127.0.0.1, port: 0, workers: 1}
        auth: {mode: apiKey, cursorSecret: bounded-metrics-test-secret}
        clients:
          - {id: web, keySHA256: "\(String(repeating: "ab", count: 32))"}
        providers:
          - {name: kaizen, type: kaizen, baseURL: "http://127.0.0.1:9", credential: unused-credential}
        """.write(to: config, atomically: true, encoding: .utf8)
        let (process, printed) = try GatewayBinary.start(["serve", "--config", config.path], printingUntil: "\"listening\"")
        // `"address":"127.0.0.1:<port>"`. Standard output is not read after this: the access lines
        // of the requests below fill the pipe, and the gateway must keep answering regardless.
        let port = printed.components(separatedBy: "\"address\":\"127.0.0.1:").dropFirst().first
            .flatMap { Int($0.prefix { $0.isNumber }) } ?? 0
        return (process, port)
    }

    @Test func threeHundredMadeUpMethodsAddABoundedNumberOfSeries() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bounded-metrics-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let (process, port) = try await onOwnThread { () throws in try Self.startServe(in: directory) }
        #expect(port > 0, "serve announced where it listens")
        if port > 0 { await Self.sendMadeUpMethodsThenCheckTheSeries(port: port) }
        await onOwnThread {
            process.send(SIGTERM)
            process.waitUntilExit()
        }
    }

    static func sendMadeUpMethodsThenCheckTheSeries(port: Int) async {
        guard let client = try? RawClient(port: port) else {
            Issue.record("cannot connect to serve on port \(port)")
            return
        }
        let requests = (1...300).map { "M\(String(format: "%05d", $0))X / HTTP/1.1\r\nHost: x\r\n\r\n" }
        let statuses = await client.roundTrips(requests).map { $0?.status ?? 0 }
        #expect(statuses.count == 300 && statuses.allSatisfy { $0 == 401 || $0 == 429 })
        // Refused before authentication: past the per-address budget they are 429s.
        #expect(statuses.contains(429))

        // Connected only now: a connection opened before the 300 requests may sit idle past the
        // server's idle timeout while a loaded machine works through them, and be closed.
        guard let scraper = try? RawClient(port: port) else {
            Issue.record("cannot connect to serve on port \(port) to scrape")
            return
        }
        let scrape = await scraper.roundTrips(["GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"]).first ?? nil
        #expect(scrape?.status == 200, "the scrape answered \(scrape.map { "\($0.status)" } ?? "nothing")")
        let text = scrape?.text ?? ""
        let series = text.split(separator: "\n").filter { $0.hasPrefix("gateway_http_requests_total{") }
        #expect(!text.contains("M00"))
        #expect(!series.isEmpty && series.count <= 3, "one series per (OTHER, route, status), got: \(series)")
        #expect(series.contains { $0.contains(#"method="OTHER""#) })
    }
}
