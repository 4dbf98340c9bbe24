import GatewayHTTP
#if canImport(Glibc)
import Glibc
#endif

/// Serialises response heads. The server owns framing: it writes `Date`, `Content-Length` and
/// `Connection` itself and ignores any a responder set, so a responder cannot desynchronise the stream.
struct ResponseEncoder {
    private var cachedDate: [UInt8] = []
    private var cachedDateSecond: Int = -1

    private static let statusLines: [Int: [UInt8]] = {
        var lines: [Int: [UInt8]] = [:]
        for code in [100, 200, 201, 202, 204, 206, 301, 302, 304, 400, 401, 403, 404, 405, 406, 408, 409, 411,
                     413, 414, 415, 422, 429, 431, 500, 501, 502, 503, 504, 505] {
            lines[code] = Array("HTTP/1.1 \(code) \(HTTPStatus.standardReasonPhrase(for: code))\r\n".utf8)
        }
        return lines
    }()

    private static let framingHeaders: Set<String> = ["content-length", "transfer-encoding", "connection", "date", "keep-alive"]

    /// - Parameters:
    ///   - bodyLength: the length to announce (for HEAD, that of the body a GET would get).
    ///   - connectionHeader: `close`, `keep-alive`, or nil for HTTP/1.1's default.
    mutating func encodeHead(
        _ response: HTTPResponse,
        bodyLength: Int,
        connectionHeader: String?
    ) -> [UInt8] {
        var head: [UInt8] = []
        head.reserveCapacity(128 + response.headers.count * 48)
        if let line = Self.statusLines[response.status.code], response.status.reasonPhrase == HTTPStatus.standardReasonPhrase(for: response.status.code) {
            head.append(contentsOf: line)
        } else {
            head.append(contentsOf: "HTTP/1.1 \(response.status.code) \(sanitized(response.status.reasonPhrase))\r\n".utf8)
        }
        for field in response.headers where !Self.framingHeaders.contains(field.canonicalName) {
            guard isSafeFieldName(field.name), isSafeFieldValue(field.value) else { continue }
            head.append(contentsOf: field.name.utf8)
            head.append(UInt8(ascii: ":"))
            head.append(UInt8(ascii: " "))
            head.append(contentsOf: field.value.utf8)
            head.append(13)
            head.append(10)
        }
        head.append(contentsOf: "Date: ".utf8)
        head.append(contentsOf: currentDate())
        head.append(contentsOf: "\r\n".utf8)
        let code = response.status.code
        if !(100..<200).contains(code) && code != 204 && code != 304 {
            head.append(contentsOf: "Content-Length: ".utf8)
            head.append(contentsOf: String(bodyLength).utf8)
            head.append(contentsOf: "\r\n".utf8)
        }
        if let connectionHeader {
            head.append(contentsOf: "Connection: ".utf8)
            head.append(contentsOf: connectionHeader.utf8)
            head.append(contentsOf: "\r\n".utf8)
        }
        head.append(contentsOf: "\r\n".utf8)
        return head
    }

    /// IMF-fixdate (RFC 9110 §5.6.7), recomputed at most once a second.
    private mutating func currentDate() -> [UInt8] {
        var now = time(nil)
        let second = Int(now)
        if second == cachedDateSecond { return cachedDate }
        var parts = tm()
        gmtime_r(&now, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let text = "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
        cachedDate = Array(text.utf8)
        cachedDateSecond = second
        return cachedDate
    }

    private func sanitized(_ reason: String) -> String {
        String(decoding: reason.utf8.filter { $0 == 9 || ($0 >= 0x20 && $0 != 0x7F) }, as: UTF8.self)
    }

    private func isSafeFieldName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }
    }

    /// Drops fields whose value would split the response (CR, LF, NUL or other controls).
    private func isSafeFieldValue(_ value: String) -> Bool {
        value.utf8.allSatisfy { $0 == 9 || ($0 >= 0x20 && $0 != 0x7F) }
    }
}
