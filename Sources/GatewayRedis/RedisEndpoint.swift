/// Where a Redis server is and how to log in: parsed from `redis://[[user]:password@]host[:port][/db]`.
///
/// The password is a secret: `description` (and therefore every log line and error that prints an
/// endpoint) shows it as `<redacted>`, and no parse error quotes it.
public struct RedisEndpoint: Sendable, Equatable, CustomStringConvertible {
    public static let defaultPort = 6379

    /// A host name, an IPv4 address or an IPv6 address (without brackets). hiredis resolves names
    /// with `getaddrinfo` on the loop thread, so an address (or a name in /etc/hosts) is best.
    public var host: String
    public var port: Int
    public var database: Int
    /// An ACL user (`AUTH user password`); nil logs in as `default` with the password alone.
    public var username: String?
    public var password: String?

    public init(host: String, port: Int = Self.defaultPort, database: Int = 0, username: String? = nil, password: String? = nil) {
        self.host = host
        self.port = port
        self.database = database
        self.username = username
        self.password = password
    }

    public init(url: String) throws(RedisError) {
        let scheme = "redis://"
        guard url.count > scheme.count, url.prefix(scheme.count).lowercased() == scheme else {
            if url.lowercased().hasPrefix("rediss://") {
                throw .invalidURL(reason: "TLS (rediss://) is not supported; use redis:// on a trusted network")
            }
            throw .invalidURL(reason: "must start with redis://")
        }
        var rest = Substring(url.dropFirst(scheme.count))

        // The user information ends at the last '@', so a password may contain '@' or '/' unencoded.
        var username: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let userInformation = rest[..<at]
            rest = rest[rest.index(after: at)...]
            guard let colon = userInformation.firstIndex(of: ":") else {
                throw .invalidURL(reason: "the user information needs a ':' before the password (redis://:password@host)")
            }
            let user = try Self.percentDecoded(userInformation[..<colon], part: "user name")
            let secret = try Self.percentDecoded(userInformation[userInformation.index(after: colon)...], part: "password")
            guard !secret.isEmpty else { throw .invalidURL(reason: "the password is empty") }
            username = user.isEmpty ? nil : user
            password = secret
        }

        // After the user information, so a password may contain them.
        guard !rest.contains(where: { $0 == "?" || $0 == "#" }) else {
            throw .invalidURL(reason: "query strings and fragments are not supported")
        }
        var authority = rest
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            authority = rest[..<slash]
            path = rest[rest.index(after: slash)...]
        }

        let host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .invalidURL(reason: "unterminated IPv6 address") }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let afterHost = authority[authority.index(after: close)...]
            if !afterHost.isEmpty {
                guard afterHost.hasPrefix(":") else { throw .invalidURL(reason: "unexpected characters after the IPv6 address") }
                portText = afterHost.dropFirst()
            }
            guard !host.isEmpty, host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else {
                throw .invalidURL(reason: "invalid IPv6 address")
            }
        } else {
            if let colon = authority.lastIndex(of: ":") {
                host = authority[..<colon]
                portText = authority[authority.index(after: colon)...]
            } else {
                host = authority
            }
            guard !host.isEmpty else { throw .invalidURL(reason: "the host is missing") }
            guard host.allSatisfy({ ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" || $0 == "." || $0 == "_" }) else {
                throw .invalidURL(reason: "invalid host \"\(host)\"")
            }
        }

        var port = Self.defaultPort
        if let portText {
            guard let parsed = Self.decimal(portText, maximum: 65_535), parsed >= 1 else {
                throw .invalidURL(reason: "the port must be a number in 1...65535")
            }
            port = parsed
        }

        var database = 0
        if !path.isEmpty {
            guard let parsed = Self.decimal(path, maximum: Int(Int32.max)) else {
                throw .invalidURL(reason: "the database (the path) must be a number from 0")
            }
            database = parsed
        }
        self.init(host: String(host), port: port, database: database, username: username, password: password)
    }

    /// The URL with the password replaced by `<redacted>`.
    public var description: String {
        var text = "redis://"
        if password != nil {
            text += "\(username ?? ""):<redacted>@"
        }
        text += host.contains(":") ? "[\(host)]" : host
        text += ":\(port)/\(database)"
        return text
    }

    private static func decimal(_ text: Substring, maximum: Int) -> Int? {
        guard !text.isEmpty, text.count <= 10, text.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(text), value <= maximum else {
            return nil
        }
        return value
    }

    private static func percentDecoded(_ text: Substring, part: String) throws(RedisError) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                throw .invalidURL(reason: "invalid percent-escape in the \(part)")
            }
            bytes.append(high << 4 | low)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
