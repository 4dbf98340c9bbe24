import GatewayJSON
import GatewayServer
import GatewayTestSupport
@testable import ProviderSimulator
import Testing

/// One request (with `Connection: close`) over a real TCP connection: what came back and how the
/// connection ended.
func exchange(port: Int, _ request: String) async throws -> (response: TestResponse?, bytes: [UInt8], end: RawClient.ReadEnd) {
    let client = try RawClient(port: port)
    try await client.send(request)
    let (bytes, end) = await client.readUntilClose()
    return (TestResponse.parseAll(bytes).first, bytes, end)
}

@Suite struct SocketSmokeTests {
    @Test func simulatorServesOverTheProjectsHTTPServerIncludingTransportFaults() async throws {
        let simulator = makeSimulator(executions: 12)
        let server = HTTPServer(configuration: HTTPServerConfiguration(host: "127.0.0.1", port: 0, workers: 1, injectsTransportFaults: true), responder: simulator.kaizen)
        try server.start()
        let port = server.localPort
        let body = "{}"
        let request = "POST /executions/list HTTP/1.1\r\nHost: sim\r\nAuthorization: Bearer \(DemoCredential.kaizen)\r\n"
            + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"

        let healthy = try await exchange(port: port, request)
        #expect(healthy.response?.status == 200)
        #expect(healthy.end == .closed)
        #expect(try JSONParser.parse(healthy.response?.body ?? [])["total"].int == 12)

        simulator.setFault(SimulatedFault(.resetConnection, calls: 1...1), provider: .kaizen)
        let reset = try await exchange(port: port, request)
        #expect(reset.bytes.isEmpty)
        #expect(reset.end == .reset)

        simulator.setFault(SimulatedFault(.truncateBody(afterBytes: 40)), provider: .kaizen)
        let truncated = try await exchange(port: port, request)
        #expect(truncated.response?.status == 200)
        #expect(truncated.response?.body.count == 40)
        #expect((truncated.response?.contentLength ?? 0) > 40)
        simulator.clearFaults()

        let control = try await exchange(port: port, "GET /__sim/counters HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n")
        #expect(try JSONParser.parse(control.response?.body ?? [])["endpoints"]["list"].int == 3)
        await server.shutdown()
    }
}
