import Foundation
import GatewayJSON
import GatewayServer
import GatewayTestSupport
@testable import ProviderSimulator
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// One request over a real TCP connection: what came back and how the connection ended.
struct WireExchange: Sendable {
    enum End: Sendable, Equatable { case closed, reset, timedOut, connectFailed }

    var bytes: [UInt8]
    var end: End

    var head: String {
        guard let split = bytes.firstRange(of: [13, 10, 13, 10]) else { return String(decoding: bytes, as: UTF8.self) }
        return String(decoding: bytes[..<split.lowerBound], as: UTF8.self)
    }

    var body: [UInt8] {
        guard let split = bytes.firstRange(of: [13, 10, 13, 10]) else { return [] }
        return Array(bytes[split.upperBound...])
    }

    var contentLength: Int? {
        head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
            .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) }
    }
}

/// Sends `request` with `Connection: close` and reads until the server closes. The blocking socket
/// calls run on a thread of their own (see `onOwnThread`).
func exchange(port: Int, _ request: String) async -> WireExchange {
    await onOwnThread { () -> WireExchange in
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return WireExchange(bytes: [], end: .connectFailed) }
        // Only ends a test whose server never closes; long, as a loaded machine can delay the answer.
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let bytes = Array(request.utf8)
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { return WireExchange(bytes: [], end: .reset) }
            offset += sent
        }
        var collected: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                collected.append(contentsOf: buffer[0..<count])
            } else if count == 0 {
                return WireExchange(bytes: collected, end: .closed)
            } else if errno != EINTR {
                return WireExchange(bytes: collected, end: errno == ECONNRESET ? .reset : .timedOut)
            }
        }
    }
}

@Suite struct SocketSmokeTests {
    @Test func simulatorServesOverTheProjectsHTTPServerIncludingTransportFaults() async throws {
        let simulator = makeSimulator(executions: 12)
        let server = HTTPServer(configuration: HTTPServerConfiguration(host: "127.0.0.1", port: 0, workers: 1), responder: simulator.kaizen)
        try server.start()
        let port = server.localPort
        let body = "{}"
        let request = "POST /executions/list HTTP/1.1\r\nHost: sim\r\nAuthorization: Bearer \(DemoCredential.kaizen)\r\n"
            + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"

        let healthy = await exchange(port: port, request)
        #expect(healthy.head.hasPrefix("HTTP/1.1 200"))
        #expect(healthy.end == .closed)
        #expect(try JSONParser.parse(healthy.body)["total"].int == 12)

        simulator.setFault(SimulatedFault(.resetConnection, calls: 1...1), provider: .kaizen)
        let reset = await exchange(port: port, request)
        #expect(reset.bytes.isEmpty)
        #expect(reset.end == .reset)

        simulator.setFault(SimulatedFault(.truncateBody(afterBytes: 40)), provider: .kaizen)
        let truncated = await exchange(port: port, request)
        #expect(truncated.head.hasPrefix("HTTP/1.1 200"))
        #expect(truncated.body.count == 40)
        #expect((truncated.contentLength ?? 0) > 40)
        simulator.clearFaults()

        let control = await exchange(port: port, "GET /__sim/counters HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n")
        #expect(try JSONParser.parse(control.body)["endpoints"]["list"].int == 3)
        await server.shutdown()
    }
}
