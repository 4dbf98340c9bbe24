import GatewayHTTP
import GatewayTestSupport
@testable import GatewayUpstream
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A TCP socket that listens but never accepts: the kernel completes the handshake, so libcurl
/// connects and sends its request, and no answer ever comes.
final class SilentListener {
    let descriptor: Int32
    let port: Int

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw SocketSetupError(step: "socket") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(descriptor, 64) == 0 else {
            close(descriptor)
            throw SocketSetupError(step: "bind/listen")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        self.descriptor = descriptor
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(descriptor) }

    /// A port on which nothing listens (bound, then closed again).
    static func closedPort() throws -> Int {
        let listener = try SilentListener()
        return listener.port
    }
}

struct SocketSetupError: Error { let step: String }

@Suite struct CurlClientSocketTests {
    @Test func connectionRefusedIsAConnectionError() async throws {
        let client = try CurlHTTPClient()
        defer { client.shutdown() }
        let port = try SilentListener.closedPort()
        await #expect {
            try await client.execute(UpstreamRequest(url: "http://127.0.0.1:\(port)/x"))
        } throws: { error in
            guard case .connection = error as? UpstreamError else { return false }
            return true
        }
        #expect(client.clientStatistics().transfersFailed == 1)
        #expect(client.clientStatistics().inFlight == 0)
    }

    @Test func aServerThatNeverAnswersTimesOut() async throws {
        let listener = try SilentListener()
        let client = try CurlHTTPClient()
        defer { client.shutdown() }
        await #expect(throws: UpstreamError.timeout) {
            try await client.execute(
                UpstreamRequest(url: "http://127.0.0.1:\(listener.port)/slow", timeoutNanoseconds: 200 * millisecond))
        }
    }

    @Test func cancellingTheTaskAbortsTheTransfer() async throws {
        let listener = try SilentListener()
        let port = listener.port
        let client = try CurlHTTPClient()
        defer { client.shutdown() }
        let task = Task { () async throws(UpstreamError) -> UpstreamResponse in
            try await client.execute(UpstreamRequest(url: "http://127.0.0.1:\(port)/hang"))
        }
        #expect(await waitUntil { client.clientStatistics().inFlight == 1 })
        task.cancel()
        let result = await task.result
        #expect(throws: UpstreamError.cancelled) { try result.get() }
        #expect(client.clientStatistics().transfersCancelled == 1)
        #expect(client.clientStatistics().inFlight == 0)
    }

    @Test func anAlreadyCancelledTaskSendsNothing() async throws {
        let listener = try SilentListener()
        let port = listener.port
        let client = try CurlHTTPClient()
        defer { client.shutdown() }
        let task = Task { () async throws(UpstreamError) -> UpstreamResponse in
            withUnsafeCurrentTask { $0?.cancel() }
            return try await client.execute(UpstreamRequest(url: "http://127.0.0.1:\(port)/never"))
        }
        let result = await task.result
        #expect(throws: UpstreamError.cancelled) { try result.get() }
        #expect(client.clientStatistics().transfersStarted == 0)
    }

    @Test func shutdownFailsPendingRequestsAndRefusesNewOnes() async throws {
        let listener = try SilentListener()
        let port = listener.port
        let client = try CurlHTTPClient()
        var pending: [Task<UpstreamResponse, any Error>] = []
        for index in 0..<3 {
            pending.append(Task { () async throws(UpstreamError) -> UpstreamResponse in
                try await client.execute(UpstreamRequest(url: "http://127.0.0.1:\(port)/\(index)"))
            })
        }
        #expect(await waitUntil { client.clientStatistics().inFlight == 3 })
        client.shutdown()
        for task in pending {
            let result = await task.result
            #expect(throws: UpstreamError.shutdown) { try result.get() }
        }
        await #expect(throws: UpstreamError.shutdown) {
            try await client.execute(UpstreamRequest(url: "http://127.0.0.1:\(port)/late"))
        }
        client.shutdown()  // a second call is harmless
    }

    @Test(arguments: [
        ("ftp://example.test/file", "URL must be absolute http or https"),
        ("/relative/path", "URL must be absolute http or https"),
        ("http:///no-host", "URL has no host"),
        ("http://user:secret@example.test/", "URL must not carry user info; send credentials in a header"),
        ("http://example.test/a b", "URL contains whitespace or control characters"),
    ])
    func badURLsAreRefusedBeforeSending(url: String, reason: String) async throws {
        let client = try CurlHTTPClient()
        defer { client.shutdown() }
        await #expect(throws: UpstreamError.invalidRequest(reason: reason)) {
            try await client.execute(UpstreamRequest(url: url))
        }
        #expect(client.clientStatistics().transfersStarted == 0)
    }

    @Test func headerInjectionIsRefusedWithoutQuotingTheValue() async throws {
        let client = try CurlHTTPClient()
        defer { client.shutdown() }
        await #expect(throws: UpstreamError.invalidRequest(reason: "header X-API-Key has a value with CR, LF or NUL")) {
            try await client.execute(
                UpstreamRequest(url: "http://127.0.0.1:1/", headers: ["X-API-Key": "key\r\nX-Evil: 1"]))
        }
        await #expect(throws: UpstreamError.invalidRequest(reason: "header field 1 has an invalid name")) {
            try await client.execute(UpstreamRequest(url: "http://127.0.0.1:1/", headers: ["Bad Name": "v"]))
        }
        await #expect(throws: UpstreamError.invalidRequest(reason: "method is not an HTTP token")) {
            try await client.execute(UpstreamRequest(method: HTTPMethod("GE T"), url: "http://127.0.0.1:1/"))
        }
    }
}
