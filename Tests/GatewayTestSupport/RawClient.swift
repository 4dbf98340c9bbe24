import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP client for tests: sends exact bytes and reads exactly what the server sends,
/// including whether (and how) it closed the connection.
public final class RawClient: @unchecked Sendable {
    // @unchecked: the descriptor is only used by the blocking calls the test awaits one at a time.
    public let fd: Int32

    public enum ClientError: Error { case connect(Int32), send(Int32) }

    /// The receive timeout only ends a test whose server never answers or never closes; it is long
    /// because on a loaded machine the server's handlers and this test can wait seconds for a thread.
    public init(port: Int, host: String = "127.0.0.1", receiveTimeoutSeconds: Double = 30) throws {
        // Connected before `self` exists: a class initializer that throws once every property is set
        // still runs `deinit`, which would close the descriptor a second time, and by then the number
        // may belong to another test's socket.
        fd = try Self.connected(port: port, host: host)
        setReceiveTimeout(receiveTimeoutSeconds)
    }

    private static func connected(port: Int, host: String) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &address.sin_addr)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let error = errno
            Glibc.close(fd)
            throw ClientError.connect(error)
        }
        return fd
    }

    deinit { Glibc.close(fd) }

    public func setReceiveTimeout(_ seconds: Double) {
        var timeout = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    public func send(_ text: String) async throws { try await send(Array(text.utf8)) }

    /// Blocking socket calls run on a thread of their own (`onOwnThread`): never on Swift's
    /// cooperative threads, which the server's shutdown and the test harness need, and never on
    /// Dispatch's pool either, which grows by about a thread a second while its threads block. With
    /// every test running at once, a read waiting there for a thread outlasted the server's 30 s
    /// write timeout.
    private func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await onOwnThread { () throws -> T in try body() }
    }

    public func send(_ bytes: [UInt8]) async throws { try await offPool { try self.sendBlocking(bytes) } }

    public func readUntilClose() async -> (bytes: [UInt8], end: ReadEnd) {
        (try? await offPool { self.readUntilCloseBlocking() }) ?? ([], .timedOut)
    }

    public func readResponse(headOnly: Bool = false) async -> TestResponse? {
        (try? await offPool { self.readResponseBlocking(headOnly: headOnly) }) ?? nil
    }

    public func sendBlocking(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { throw ClientError.send(errno) }
            offset += sent
        }
    }

    /// Sends each part as its own TCP segment (Nagle off, a short pause between them), all from
    /// the client's queue: a starved cooperative pool cannot stretch the request past the server's
    /// header timeout, yet the server still reads the parts one by one.
    public func sendSeparately(_ parts: [String]) async throws {
        try await sendSeparately(parts.map { Array($0.utf8) })
    }

    public func sendSeparately(_ parts: [[UInt8]]) async throws {
        try await offPool {
            var noDelay: Int32 = 1
            setsockopt(self.fd, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, socklen_t(MemoryLayout<Int32>.size))
            for part in parts {
                try self.sendBlocking(part)
                usleep(500)
            }
        }
    }

    public func sendEachByteSeparately(_ text: String) async throws {
        try await sendSeparately(text.utf8.map { [$0] })
    }

    /// Sends each request and reads its response before sending the next, all from the client's
    /// queue, so keep-alive gaps stay as short as the server makes them however loaded the machine.
    public func roundTrips(_ requests: [String]) async -> [TestResponse?] {
        (try? await offPool {
            requests.map { request -> TestResponse? in
                guard (try? self.sendBlocking(Array(request.utf8))) != nil else { return nil }
                return self.readResponseBlocking()
            }
        }) ?? []
    }

    public func shutdownWrite() { Glibc.shutdown(fd, Int32(SHUT_WR)) }

    public enum ReadEnd: Equatable, Sendable { case closed, reset, timedOut }

    /// Reads until the peer closes (or resets, or the receive timeout passes).
    public func readUntilCloseBlocking() -> (bytes: [UInt8], end: ReadEnd) {
        var collected: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                collected.append(contentsOf: buffer[0..<count])
            } else if count == 0 {
                return (collected, .closed)
            } else {
                let error = errno
                if error == EINTR { continue }
                return (collected, error == ECONNRESET ? .reset : .timedOut)
            }
        }
    }

    /// Reads one complete response framed by Content-Length (or by close when there is none).
    public func readResponseBlocking(headOnly: Bool = false) -> TestResponse? {
        var collected: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1)
        var chunk = [UInt8](repeating: 0, count: 65_536)
        // Byte-at-a-time for the head so no byte of a following response is swallowed.
        while !collected.ends(with: [13, 10, 13, 10]) {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 1, 0) }
            guard count == 1 else { return nil }
            collected.append(buffer[0])
        }
        guard var response = TestResponse(head: collected) else { return nil }
        if headOnly { return response }
        var remaining = response.contentLength ?? 0
        while remaining > 0 {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, min(remaining, $0.count), 0) }
            guard count > 0 else { return nil }
            response.body.append(contentsOf: chunk[0..<count])
            remaining -= count
        }
        return response
    }
}

public struct TestResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8] = []

    public init?(head: [UInt8]) {
        let text = String(decoding: head, as: UTF8.self)
        var lines = text.components(separatedBy: "\r\n").filter { !$0.isEmpty }
        guard !lines.isEmpty else { return nil }
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
        self.status = status
        headers = lines.compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
    }

    /// Parses every response in `bytes` (Content-Length framed); used for pipelining and hostile input.
    public static func parseAll(_ bytes: [UInt8]) -> [TestResponse] {
        var responses: [TestResponse] = []
        var rest = bytes[...]
        while let end = rest.firstRange(of: [13, 10, 13, 10]) {
            guard var response = TestResponse(head: Array(rest[rest.startIndex..<end.upperBound])) else { break }
            rest = rest[end.upperBound...]
            let length = min(response.contentLength ?? 0, rest.count)
            response.body = Array(rest.prefix(length))
            rest = rest.dropFirst(length)
            responses.append(response)
        }
        return responses
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    public var contentLength: Int? { header("Content-Length").flatMap { Int($0) } }
    public var text: String { String(decoding: body, as: UTF8.self) }
}

extension Array where Element == UInt8 {
    public func ends(with suffix: [UInt8]) -> Bool { count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix }
}
