import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// An HTTP/1.1 upstream on a real loopback socket whose answers a test writes piece by piece,
/// with blocking writes: a body can be generated on the fly (never held whole), split into
/// pieces of any size, cut short, or malformed, and a client that stops reading makes the writer
/// wait in the kernel, as a real upstream does. One request per connection (`Connection: close`),
/// each served on a thread of its own.
public final class ScriptedSocketServer: Sendable {
    /// How the body's end is told to the client.
    public enum Framing: Sendable {
        /// `Content-Length` of this value, whatever is then really written.
        case contentLength(Int)
        /// `Transfer-Encoding: chunked`, each write one chunk; `terminated: false` leaves out the
        /// last chunk, so the answer is cut short.
        case chunked(terminated: Bool)
    }

    public struct Answer: Sendable {
        public var status: Int
        public var headers: [(name: String, value: String)]
        public var framing: Framing
        /// Writes the body through `BodyWriter.write`; stops early when a write fails.
        public var body: @Sendable (BodyWriter) -> Void

        public init(
            status: Int = 200, headers: [(name: String, value: String)] = [("Content-Type", "application/json")],
            framing: Framing = .chunked(terminated: true), body: @escaping @Sendable (BodyWriter) -> Void
        ) {
            self.status = status
            self.headers = headers
            self.framing = framing
            self.body = body
        }

        /// A whole body in one write, with its `Content-Length`.
        public static func whole(status: Int = 200, headers: [(name: String, value: String)] = [], _ text: String) -> Answer {
            let bytes = Array(text.utf8)
            return Answer(status: status, headers: headers, framing: .contentLength(bytes.count)) { _ = $0.write(bytes) }
        }
    }

    /// What a request carried, as the handler sees it.
    public struct Request: Sendable {
        public var head: String
        public var body: [UInt8]
        /// 0 for the first request the server received.
        public var index: Int
    }

    public final class BodyWriter: Sendable {
        private let descriptor: Int32
        private let chunked: Bool
        private let written = Atomic<Int>(0)

        init(descriptor: Int32, chunked: Bool) {
            self.descriptor = descriptor
            self.chunked = chunked
        }

        /// Body bytes written so far (framing excluded).
        public var bytesWritten: Int { written.load(ordering: .relaxed) }

        /// Sends `bytes` (one chunk when chunked), blocking while the client does not read;
        /// false once the client has gone.
        @discardableResult
        public func write(_ bytes: [UInt8]) -> Bool {
            guard !bytes.isEmpty else { return true }
            let framed = chunked ? Array((String(bytes.count, radix: 16) + "\r\n").utf8) + bytes + Array("\r\n".utf8) : bytes
            guard ScriptedSocketServer.sendAll(descriptor, framed) else { return false }
            written.add(bytes.count, ordering: .relaxed)
            return true
        }

        public func write(_ text: String) -> Bool { write(Array(text.utf8)) }
    }

    private let listener: Int32
    public let port: Int
    private let handler: @Sendable (Request) -> Answer
    private let requestCount = Atomic<Int>(0)
    private let finishedCount = Atomic<Int>(0)

    /// Listens on an ephemeral loopback port and answers every request with `handler`'s answer.
    public init(_ handler: @escaping @Sendable (Request) -> Answer) throws {
        (listener, port) = try boundLoopbackSocket(listening: true)
        self.handler = handler
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    public var baseURL: String { "http://127.0.0.1:\(port)" }
    /// Requests received so far.
    public var requests: Int { requestCount.load(ordering: .relaxed) }
    /// Answers written to the end (or given up because the client went) so far.
    public var answersFinished: Int { finishedCount.load(ordering: .relaxed) }

    /// Stops accepting; connections being served end on their own.
    public func stop() {
        Glibc.shutdown(listener, Int32(SHUT_RDWR))
    }

    deinit { close(listener) }

    private func acceptLoop() {
        while true {
            let connection = accept(listener, nil, nil)
            if connection < 0 {
                if errno == EINTR { continue }
                return
            }
            let thread = Thread { [self] in serve(connection) }
            thread.start()
        }
    }

    private func serve(_ connection: Int32) {
        defer {
            close(connection)
            finishedCount.add(1, ordering: .relaxed)
        }
        guard let (head, body) = Self.readRequest(connection) else { return }
        let index = requestCount.wrappingAdd(1, ordering: .relaxed).oldValue
        let answer = handler(Request(head: head, body: body, index: index))
        var lines = ["HTTP/1.1 \(answer.status) Scripted"]
        for header in answer.headers { lines.append("\(header.name): \(header.value)") }
        let chunked: Bool
        switch answer.framing {
        case .contentLength(let length):
            lines.append("Content-Length: \(length)")
            chunked = false
        case .chunked:
            lines.append("Transfer-Encoding: chunked")
            chunked = true
        }
        lines.append("Connection: close")
        guard Self.sendAll(connection, Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8)) else { return }
        let writer = BodyWriter(descriptor: connection, chunked: chunked)
        answer.body(writer)
        if case .chunked(terminated: true) = answer.framing {
            _ = Self.sendAll(connection, Array("0\r\n\r\n".utf8))
        }
        // Let the client read everything before the close, so a complete answer is never cut.
        Glibc.shutdown(connection, Int32(SHUT_WR))
        var scratch = [UInt8](repeating: 0, count: 1024)
        while recv(connection, &scratch, scratch.count, 0) > 0 {}
    }

    private static func readRequest(_ connection: Int32) -> (String, [UInt8])? {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let separator = Array("\r\n\r\n".utf8)
        var headEnd: Int?
        while headEnd == nil {
            let count = recv(connection, &buffer, buffer.count, 0)
            guard count > 0 else { return nil }
            received += buffer[0..<count]
            if received.count >= separator.count {
                headEnd = (0...(received.count - separator.count)).first { Array(received[$0..<($0 + separator.count)]) == separator }
            }
        }
        guard let headEnd else { return nil }
        let head = String(decoding: received[0..<headEnd], as: UTF8.self)
        let lengthLine = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
        let length = lengthLine.flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
        var body = Array(received[(headEnd + separator.count)...])
        while body.count < length {
            let count = recv(connection, &buffer, buffer.count, 0)
            guard count > 0 else { return nil }
            body += buffer[0..<count]
        }
        return (head, body)
    }

    static func sendAll(_ descriptor: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent < 0 && errno == EINTR { continue }
            guard sent > 0 else { return false }
            offset += sent
        }
        return true
    }
}
