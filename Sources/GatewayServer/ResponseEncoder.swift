import GatewayHTTP
#if canImport(Glibc)
import Glibc
#endif

/// Serialises response heads. The server owns framing: it writes `Date`, `Content-Length` and
/// `Connection` itself and ignores any a responder set, so a responder cannot desynchronise the stream.
///
/// One encoder per event loop; it encodes into a buffer it keeps, so that once the buffer has grown to
/// the usual head size, answering a request allocates nothing here.
struct ResponseEncoder {
    enum ConnectionHeader {
        /// HTTP/1.1's default (persistent): no header.
        case none
        case keepAlive
        case close
    }

    /// Holds the last encoded head in its first `headCount` bytes, valid until the next
    /// `encodeHead`; it only grows, so once it fits the usual head, encoding allocates nothing.
    private var storage: [UInt8] = []
    private(set) var headCount = 0
    private var cachedDate: [UInt8] = []
    private var cachedDateSecond: Int = -1

    private static let firstTabulatedCode = 100
    /// Status lines of the codes whose standard reason phrase is known, indexed by `code - 100`.
    private static let statusLines: [[UInt8]?] = (firstTabulatedCode..<600).map { code in
        let phrase = HTTPStatus.standardReasonPhrase(for: code)
        return phrase == "Status \(code)" ? nil : Array("HTTP/1.1 \(code) \(phrase)\r\n".utf8)
    }

    /// The most the server's own fields take: `Content-Length` with 20 digits, the longest
    /// `Connection` field and the empty line.
    private static let serverFieldsBound = 16 + 20 + 2 + 24 + 2

    /// The last encoded head.
    func withHead<Result>(_ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        storage.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[0..<headCount])) }
    }

    /// The last encoded head from `offset` on, as an array of its own (to queue behind the socket).
    func head(from offset: Int = 0) -> [UInt8] { Array(storage[offset..<headCount]) }

    /// - Parameters:
    ///   - bodyLength: the length to announce (for HEAD, that of the body a GET would get).
    mutating func encodeHead(_ response: HTTPResponse, bodyLength: Int, connection: ConnectionHeader) {
        precondition(bodyLength >= 0, "a body length is never negative")
        let code = response.status.code
        let tableIndex = code - Self.firstTabulatedCode
        let statusLine: [UInt8]
        if Self.statusLines.indices.contains(tableIndex), let line = Self.statusLines[tableIndex],
           response.status.reasonPhrase == HTTPStatus.standardReasonPhrase(for: code) {
            statusLine = line
        } else {
            statusLine = Array("HTTP/1.1 \(code) \(sanitized(response.status.reasonPhrase))\r\n".utf8)
        }
        refreshDateField()
        // Sized first, then written in one pass with plain copies: appending piece by piece to an
        // array (two dozen appends per head) cost more than everything else the encoder does.
        var bound = statusLine.count + cachedDate.count + Self.serverFieldsBound
        for field in response.headers { bound += field.name.utf8.count + field.value.utf8.count + 4 }
        if storage.count < bound { storage = [UInt8](repeating: 0, count: max(bound, 2 * storage.count, 1_024)) }
        let date = cachedDate
        let sendsLength = !(100..<200).contains(code) && code != 204 && code != 304
        headCount = storage.withUnsafeMutableBytes { output -> Int in
            var head = HeadWriter(output)
            statusLine.withUnsafeBytes { head.put($0) }
            for field in response.headers where !Self.isFramingField(field.canonicalName) {
                // Each byte checked once, then copied.
                var name = field.name
                var value = field.value
                name.withUTF8 { name in
                    value.withUTF8 { value in
                        guard Self.isSafeFieldName(name), Self.isSafeFieldValue(value) else { return }
                        head.put(UnsafeRawBufferPointer(name))
                        head.put(": ")
                        head.put(UnsafeRawBufferPointer(value))
                        head.put("\r\n")
                    }
                }
            }
            date.withUnsafeBytes { head.put($0) }
            if sendsLength {
                head.put("Content-Length: ")
                head.putDecimal(bodyLength)
                head.put("\r\n")
            }
            switch connection {
            case .none: break
            case .keepAlive: head.put("Connection: keep-alive\r\n")
            case .close: head.put("Connection: close\r\n")
            }
            head.put("\r\n")
            return head.count
        }
    }

    /// Writes into storage sized beforehand for everything it is given.
    private struct HeadWriter {
        let output: UnsafeMutableRawBufferPointer
        private(set) var count = 0

        init(_ output: UnsafeMutableRawBufferPointer) { self.output = output }

        mutating func put(_ bytes: UnsafeRawBufferPointer) {
            // Unsafe buffers check their bounds in debug builds only: a bound computed wrong after
            // some later edit must stop the process, not write past the storage.
            precondition(bytes.count <= output.count &- count, "a response head outgrew the size computed for it")
            if let source = bytes.baseAddress, let base = output.baseAddress {
                (base + count).copyMemory(from: source, byteCount: bytes.count)
            }
            count &+= bytes.count
        }

        mutating func put(_ text: StaticString) {
            text.withUTF8Buffer { put(UnsafeRawBufferPointer($0)) }
        }

        mutating func putDecimal(_ value: Int) {
            var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
            withUnsafeMutableBytes(of: &digits) { buffer in
                var remaining = value
                var start = buffer.count
                repeat {
                    start -= 1
                    buffer[start] = UInt8(ascii: "0") + UInt8(remaining % 10)
                    remaining /= 10
                } while remaining > 0
                put(UnsafeRawBufferPointer(rebasing: buffer[start...]))
            }
        }
    }

    /// The fields the server writes itself. Checking the length first keeps this to at most two short
    /// comparisons per field, where a `Set<String>` lookup would hash every name.
    private static func isFramingField(_ canonicalName: String) -> Bool {
        switch canonicalName.utf8.count {
        case 4: canonicalName == "date"
        case 10: canonicalName == "connection" || canonicalName == "keep-alive"
        case 14: canonicalName == "content-length"
        case 17: canonicalName == "transfer-encoding"
        default: false
        }
    }

    /// `Date: <IMF-fixdate>\r\n` (RFC 9110 §5.6.7); the date is recomputed at most once a second.
    private mutating func refreshDateField() {
        var now = time(nil)
        let second = Int(now)
        guard second != cachedDateSecond else { return }
        var parts = tm()
        gmtime_r(&now, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let text = "Date: \(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT\r\n"
        cachedDate = Array(text.utf8)
        cachedDateSecond = second
    }

    private func sanitized(_ reason: String) -> String {
        String(decoding: reason.utf8.filter(isFieldValueByte), as: UTF8.self)
    }

    private static func isSafeFieldName(_ name: UnsafeBufferPointer<UInt8>) -> Bool {
        guard !name.isEmpty else { return false }
        for byte in name where byte <= 0x20 || byte >= 0x7F || byte == UInt8(ascii: ":") { return false }
        return true
    }

    /// Drops fields whose value would split the response (CR, LF, NUL or other controls): the
    /// parser's rule for a value that arrives (`fieldValueEnd`), applied to one that leaves.
    static func isSafeFieldValue(_ value: UnsafeBufferPointer<UInt8>) -> Bool {
        fieldValueEnd(in: value, from: 0, to: value.count) == value.count
    }
}
