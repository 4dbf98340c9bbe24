// Value types shared by the parser, the server, the upstream client and the simulator.
// Deliberately free of Foundation and of any I/O so the parser can be fuzzed in isolation.

/// An HTTP method token. Any token is representable; the server decides which it routes.
public struct HTTPMethod: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init(_ rawValue: String) { self.rawValue = rawValue }

    public static let get = HTTPMethod("GET")
    public static let head = HTTPMethod("HEAD")
    public static let post = HTTPMethod("POST")
    public static let put = HTTPMethod("PUT")
    public static let patch = HTTPMethod("PATCH")
    public static let delete = HTTPMethod("DELETE")
    public static let options = HTTPMethod("OPTIONS")
    public static let trace = HTTPMethod("TRACE")
    public static let connect = HTTPMethod("CONNECT")

    public var description: String { rawValue }
}

public struct HTTPVersion: Hashable, Sendable, CustomStringConvertible {
    public let major: Int
    public let minor: Int

    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }

    public static let http1_0 = HTTPVersion(major: 1, minor: 0)
    public static let http1_1 = HTTPVersion(major: 1, minor: 1)

    public var description: String { "HTTP/\(major).\(minor)" }
}

/// A status code with its reason phrase.
public struct HTTPStatus: Hashable, Sendable, CustomStringConvertible {
    public let code: Int
    public let reasonPhrase: String

    public init(code: Int, reasonPhrase: String? = nil) {
        self.code = code
        self.reasonPhrase = reasonPhrase ?? HTTPStatus.standardReasonPhrase(for: code)
    }

    public var description: String { "\(code) \(reasonPhrase)" }

    public static let ok = HTTPStatus(code: 200)
    public static let created = HTTPStatus(code: 201)
    public static let accepted = HTTPStatus(code: 202)
    public static let noContent = HTTPStatus(code: 204)
    public static let notModified = HTTPStatus(code: 304)
    public static let badRequest = HTTPStatus(code: 400)
    public static let unauthorized = HTTPStatus(code: 401)
    public static let forbidden = HTTPStatus(code: 403)
    public static let notFound = HTTPStatus(code: 404)
    public static let methodNotAllowed = HTTPStatus(code: 405)
    public static let requestTimeout = HTTPStatus(code: 408)
    public static let contentTooLarge = HTTPStatus(code: 413)
    public static let uriTooLong = HTTPStatus(code: 414)
    public static let tooManyRequests = HTTPStatus(code: 429)
    public static let requestHeaderFieldsTooLarge = HTTPStatus(code: 431)
    public static let internalServerError = HTTPStatus(code: 500)
    public static let notImplemented = HTTPStatus(code: 501)
    public static let badGateway = HTTPStatus(code: 502)
    public static let serviceUnavailable = HTTPStatus(code: 503)
    public static let gatewayTimeout = HTTPStatus(code: 504)
    public static let httpVersionNotSupported = HTTPStatus(code: 505)

    public static func standardReasonPhrase(for code: Int) -> String {
        knownReasonPhrase(for: code) ?? "Status \(code)"
    }

    /// The reason phrase of a status this server knows by name, else nil.
    public static func knownReasonPhrase(for code: Int) -> String? {
        switch code {
        case 100: "Continue"
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 204: "No Content"
        case 206: "Partial Content"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 304: "Not Modified"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 406: "Not Acceptable"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 411: "Length Required"
        case 413: "Content Too Large"
        case 414: "URI Too Long"
        case 415: "Unsupported Media Type"
        case 422: "Unprocessable Content"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        case 505: "HTTP Version Not Supported"
        default: nil
        }
    }
}

/// Header fields in arrival order. Lookups are case-insensitive (names are ASCII tokens).
public struct HTTPHeaders: Sendable, Sequence, ExpressibleByDictionaryLiteral, Equatable {
    public struct Field: Sendable, Equatable {
        public let name: String
        public var value: String
        /// ASCII-lowercased name, computed once so lookups need no allocation.
        public let canonicalName: String

        public init(name: String, value: String) {
            self.name = name
            self.value = value
            self.canonicalName = asciiLowercased(name)
        }

        init(name: HTTPFieldName, value: String) {
            self.name = name.name
            self.value = value
            self.canonicalName = name.canonicalName
        }

        /// Whether the lowercase name is `canonical` (itself lowercase). Lengths first: `String`
        /// equality of two different short strings takes its slow path, and a response's fields
        /// are compared with a wanted name some thirty times per request.
        @inlinable public func hasCanonicalName(_ canonical: String) -> Bool {
            canonicalName.utf8.count == canonical.utf8.count && canonicalName == canonical
        }

        /// Case-insensitive comparison with `other` that allocates nothing (lookups run many
        /// times per request, mostly with constant names).
        func isNamed(_ other: String) -> Bool {
            var other = other
            return other.withUTF8 { wanted in
                var matches = false
                var canonical = canonicalName
                canonical.withUTF8 { own in
                    guard own.count == wanted.count else { return }
                    for index in 0..<own.count {
                        let byte = wanted[index]
                        let lowered = (byte >= 0x41 && byte <= 0x5A) ? byte | 0x20 : byte
                        if lowered != own[index] { return }
                    }
                    matches = true
                }
                return matches
            }
        }
    }

    public private(set) var fields: [Field]

    public init() { fields = [] }

    public init(_ pairs: [(String, String)]) {
        fields = pairs.map { Field(name: $0.0, value: $0.1) }
    }

    public init(dictionaryLiteral elements: (String, String)...) {
        self.init(elements)
    }

    public var count: Int { fields.count }
    public var isEmpty: Bool { fields.isEmpty }

    /// Room for `count` fields in all, so that adding up to that many allocates once at most.
    public mutating func reserveCapacity(_ count: Int) { fields.reserveCapacity(count) }

    public func makeIterator() -> IndexingIterator<[Field]> { fields.makeIterator() }

    /// The first value of `name`, or nil.
    public subscript(name: String) -> String? {
        for field in fields where field.isNamed(name) { return field.value }
        return nil
    }

    /// Every value of `name`, in order.
    public func values(for name: String) -> [String] {
        var found: [String] = []
        for field in fields where field.isNamed(name) { found.append(field.value) }
        return found
    }

    public func contains(_ name: String) -> Bool { self[name] != nil }

    public mutating func add(name: String, value: String) {
        fields.append(Field(name: name, value: value))
    }

    /// Replaces every field called `name` with one field holding `value`.
    public mutating func replaceOrAdd(name: String, value: String) {
        // Usually the name is absent (the common case appends) or present once.
        guard let first = fields.firstIndex(where: { $0.isNamed(name) }) else {
            add(name: name, value: value)
            return
        }
        fields.remove(at: first)
        if fields[first...].contains(where: { $0.isNamed(name) }) {
            fields.removeAll { $0.isNamed(name) }
        }
        add(name: name, value: value)
    }

    /// `replaceOrAdd(name:value:)` for a name whose lowercase form is already known: no
    /// lowercasing (an allocation for names over 15 bytes) on every response.
    public mutating func replaceOrAdd(_ name: HTTPFieldName, value: String) {
        guard let first = fields.firstIndex(where: { $0.hasCanonicalName(name.canonicalName) }) else {
            fields.append(Field(name: name, value: value))
            return
        }
        fields.remove(at: first)
        if fields[first...].contains(where: { $0.hasCanonicalName(name.canonicalName) }) {
            fields.removeAll { $0.hasCanonicalName(name.canonicalName) }
        }
        fields.append(Field(name: name, value: value))
    }

    public mutating func remove(name: String) {
        guard fields.contains(where: { $0.isNamed(name) }) else { return }
        fields.removeAll { $0.isNamed(name) }
    }

    public static func == (lhs: HTTPHeaders, rhs: HTTPHeaders) -> Bool { lhs.fields == rhs.fields }
}

/// A field name with its lowercase form computed once, for names written on every response.
public struct HTTPFieldName: Sendable, Hashable {
    public let name: String
    public let canonicalName: String

    public init(_ name: String) {
        self.name = name
        self.canonicalName = asciiLowercased(name)
    }
}

/// A complete request as the server hands it to a responder.
public struct HTTPRequest: Sendable {
    public var method: HTTPMethod
    /// The request target exactly as received (origin-form or absolute-form).
    public var target: String
    /// The path component of the target, still percent-encoded.
    public var path: String
    /// The query component without the leading `?`, or nil when the target had none.
    public var query: String?
    public var version: HTTPVersion
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(
        method: HTTPMethod,
        target: String,
        version: HTTPVersion = .http1_1,
        headers: HTTPHeaders = HTTPHeaders(),
        body: [UInt8] = []
    ) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body
        (self.path, self.query) = splitTarget(target)
    }

    /// Whether the connection may stay open after this request (RFC 9112 §9.3).
    public var wantsKeepAlive: Bool {
        // Asked for every request, so it walks the fields in place instead of collecting values.
        var asksKeepAlive = false
        for field in headers.fields where field.hasCanonicalName("connection") {
            for token in commaSeparatedTokens(field.value) {
                if token == "close" { return false }
                if token == "keep-alive" { asksKeepAlive = true }
            }
        }
        return version == .http1_1 || asksKeepAlive
    }

    /// Decoded query items, in order. Malformed percent escapes are kept literally.
    public var queryItems: [(name: String, value: String)] {
        guard let query else { return [] }
        return parseQueryItems(query)
    }
}

/// A response as a responder returns it. The server adds `Date`, `Content-Length` and
/// `Connection`; a responder sets only what is specific to the answer.
public struct HTTPResponse: Sendable {
    public var status: HTTPStatus
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(status: HTTPStatus, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public init(status: HTTPStatus, headers: HTTPHeaders = HTTPHeaders(), text: String) {
        self.init(status: status, headers: headers, body: Array(text.utf8))
        if self.headers["Content-Type"] == nil {
            self.headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        }
    }
}

// MARK: - Small helpers shared inside the module

@inline(__always)
func asciiLowercased(_ string: String) -> String {
    // Fast path: header names are usually already lowercase or short ASCII.
    var needsWork = false
    for byte in string.utf8 where byte >= 0x41 && byte <= 0x5A {
        needsWork = true
        break
    }
    guard needsWork else { return string }
    // Written straight into the new string's storage: no intermediate array, and names of up to 15
    // bytes (most of them) become small strings that need no heap allocation at all.
    let utf8 = string.utf8
    return String(unsafeUninitializedCapacity: utf8.count) { buffer in
        var count = 0
        for byte in utf8 {
            buffer[count] = (byte >= 0x41 && byte <= 0x5A) ? byte | 0x20 : byte
            count += 1
        }
        return count
    }
}

/// Lowercased, whitespace-trimmed, non-empty elements of a comma-separated header value.
public func commaSeparatedTokens(_ value: String) -> [String] {
    value.split(separator: ",").compactMap { element in
        let trimmed = element.trimmingOptionalWhitespace()
        return trimmed.isEmpty ? nil : asciiLowercased(String(trimmed))
    }
}

func splitTarget(_ target: String) -> (path: String, query: String?) {
    guard let questionMark = target.utf8.firstIndex(of: UInt8(ascii: "?")) else { return (target, nil) }
    let path = String(target[..<questionMark])
    let query = String(target[target.index(after: questionMark)...])
    return (path, query)
}

extension Substring {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace, RFC 9110 §5.6.3).
    /// By bytes: both are ASCII, so every cut is at a character boundary, and a header value is read
    /// without grapheme breaking.
    public func trimmingOptionalWhitespace() -> Substring {
        let bytes = utf8
        var start = bytes.startIndex
        var end = bytes.endIndex
        while start < end, bytes[start] == UInt8(ascii: " ") || bytes[start] == UInt8(ascii: "\t") {
            start = bytes.index(after: start)
        }
        while start < end {
            let last = bytes.index(before: end)
            guard bytes[last] == UInt8(ascii: " ") || bytes[last] == UInt8(ascii: "\t") else { break }
            end = last
        }
        return Substring(bytes[start..<end])
    }
}
