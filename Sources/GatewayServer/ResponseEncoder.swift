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

    /// The last encoded head; valid until the next `encodeHead`.
    private(set) var head: [UInt8] = []
    private var cachedDate: [UInt8] = []
    private var cachedDateSecond: Int = -1

    private static let firstTabulatedCode = 100
    /// Status lines of the codes whose standard reason phrase is known, indexed by `code - 100`.
    private static let statusLines: [[UInt8]?] = (firstTabulatedCode..<600).map { code in
        let phrase = HTTPStatus.standardReasonPhrase(for: code)
        return phrase == "Status \(code)" ? nil : Array("HTTP/1.1 \(code) \(phrase)\r\n".utf8)
    }

    /// - Parameters:
    ///   - bodyLength: the length to announce (for HEAD, that of the body a GET would get).
    mutating func encodeHead(_ response: HTTPResponse, bodyLength: Int, connection: ConnectionHeader) {
        head.removeAll(keepingCapacity: true)
        let code = response.status.code
        let tableIndex = code - Self.firstTabulatedCode
        if Self.statusLines.indices.contains(tableIndex), let line = Self.statusLines[tableIndex],
           response.status.reasonPhrase == HTTPStatus.standardReasonPhrase(for: code) {
            head.append(contentsOf: line)
        } else {
            head.append(contentsOf: "HTTP/1.1 \(code) \(sanitized(response.status.reasonPhrase))\r\n".utf8)
        }
        for field in response.headers where !Self.isFramingField(field.canonicalName) {
            // Checked and copied from contiguous UTF-8: one pass over each byte, then a memcpy.
            var name = field.name
            var value = field.value
            name.withUTF8 { name in
                value.withUTF8 { value in
                    guard Self.isSafeFieldName(name), Self.isSafeFieldValue(value) else { return }
                    head.append(contentsOf: name)
                    head.append(UInt8(ascii: ":"))
                    head.append(UInt8(ascii: " "))
                    head.append(contentsOf: value)
                    head.append(13)
                    head.append(10)
                }
            }
        }
        appendDateField()
        if !(100..<200).contains(code) && code != 204 && code != 304 {
            append("Content-Length: ")
            appendDecimal(bodyLength)
            append("\r\n")
        }
        switch connection {
        case .none: break
        case .keepAlive: append("Connection: keep-alive\r\n")
        case .close: append("Connection: close\r\n")
        }
        append("\r\n")
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

    private mutating func append(_ text: StaticString) {
        text.withUTF8Buffer { head.append(contentsOf: $0) }
    }

    private mutating func appendDecimal(_ value: Int) {
        precondition(value >= 0, "a body length is never negative")
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { buffer in
            var remaining = value
            var start = buffer.count
            repeat {
                start -= 1
                buffer[start] = UInt8(ascii: "0") + UInt8(remaining % 10)
                remaining /= 10
            } while remaining > 0
            head.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[start...]))
        }
    }

    /// `Date: <IMF-fixdate>\r\n` (RFC 9110 §5.6.7); the date is recomputed at most once a second.
    private mutating func appendDateField() {
        var now = time(nil)
        let second = Int(now)
        if second != cachedDateSecond {
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
        head.append(contentsOf: cachedDate)
    }

    private func sanitized(_ reason: String) -> String {
        String(decoding: reason.utf8.filter { $0 == 9 || ($0 >= 0x20 && $0 != 0x7F) }, as: UTF8.self)
    }

    private static func isSafeFieldName(_ name: UnsafeBufferPointer<UInt8>) -> Bool {
        guard !name.isEmpty else { return false }
        for byte in name where byte <= 0x20 || byte >= 0x7F || byte == UInt8(ascii: ":") { return false }
        return true
    }

    /// Drops fields whose value would split the response (CR, LF, NUL or other controls).
    ///
    /// Eight bytes at a time while none of them is a control or DEL (values such as `Link` run to
    /// hundreds of bytes on every response); from the first word that has one (a tab is allowed),
    /// byte by byte.
    static func isSafeFieldValue(_ value: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = 0
        if let base = value.baseAddress.map(UnsafeRawPointer.init) {
            while index + 8 <= value.count, !mayHoldControlOrDelete(base.loadUnaligned(fromByteOffset: index, as: UInt64.self)) {
                index += 8
            }
        }
        while index < value.count {
            let byte = value[index]
            if (byte < 0x20 && byte != 9) || byte == 0x7F { return false }
            index += 1
        }
        return true
    }

    /// True when a byte of `word` is below 0x20 or is 0x7F (exact: the classic "has a byte less
    /// than n" test holds for n ≤ 128 whatever the other bytes are).
    @inline(__always)
    private static func mayHoldControlOrDelete(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highBits: UInt64 = 0x8080_8080_8080_8080
        let belowSpace = (word &- 0x20 &* ones) & ~word & highBits
        let delete = word ^ (0x7F &* ones)
        let isDelete = (delete &- ones) & ~delete & highBits
        return (belowSpace | isDelete) != 0
    }
}
