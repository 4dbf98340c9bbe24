#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address range such as `10.0.0.0/8` or `fd00::/8`.
public struct CIDRRange: Sendable, Hashable, CustomStringConvertible {
    public enum Family: Sendable, Hashable {
        case ipv4
        case ipv6
    }

    public let family: Family
    public let prefixLength: Int
    /// The network address (4 or 16 bytes) with every host bit zero.
    public let networkBytes: [UInt8]

    /// Parses `address/prefix`; a bare address is the single-host range (/32 or /128). Strict: no spaces, no
    /// leading zeros in the prefix, no host bits set (`10.0.0.1/8` is refused with a suggestion), no IPv6 zone.
    public init(_ text: String) throws(CIDRParseError) {
        let addressText: Substring
        let prefixText: Substring?
        if let slash = text.lastIndex(of: "/") {
            addressText = text[..<slash]
            prefixText = text[text.index(after: slash)...]
        } else {
            addressText = Substring(text)
            prefixText = nil
        }
        guard let bytes = IPAddress.parse(String(addressText)) else {
            throw CIDRParseError(reason: "is not an IPv4 or IPv6 address with an optional /prefix")
        }
        let maximumPrefix = bytes.count * 8
        var prefixLength = maximumPrefix
        if let prefixText {
            guard let parsed = Int(prefixText), prefixText.allSatisfy(\.isASCIIDigit),
                prefixText == "0" || !prefixText.hasPrefix("0"), (0...maximumPrefix).contains(parsed)
            else {
                throw CIDRParseError(reason: "has a prefix length that is not a whole number between 0 and \(maximumPrefix)")
            }
            prefixLength = parsed
        }
        let range = CIDRRange(maskingHostBitsOf: bytes, prefixLength: prefixLength)
        guard range.networkBytes == bytes else {
            throw CIDRParseError(reason: "has host bits set; did you mean \(range)?")
        }
        self = range
    }

    /// `bytes` must be 4 or 16 bytes long and `prefixLength` within 0...bits; used for parsed or literal input.
    init(maskingHostBitsOf bytes: [UInt8], prefixLength: Int) {
        self.family = bytes.count == 4 ? .ipv4 : .ipv6
        self.prefixLength = prefixLength
        self.networkBytes = Self.masked(bytes, prefixLength: prefixLength)
    }

    /// Whether `address` (an IPv4 or IPv6 literal, an IPv6 zone suffix such as `%eth0` allowed) lies inside.
    /// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, what dual-stack sockets report) matches IPv4 ranges,
    /// and an IPv4 address matches IPv6 ranges through its mapped form. Anything unparseable is outside.
    public func contains(_ address: String) -> Bool {
        let withoutZone = address.split(separator: "%", maxSplits: 1, omittingEmptySubsequences: false).first
            .map(String.init) ?? address
        guard let bytes = IPAddress.parse(withoutZone) else { return false }
        return contains(addressBytes: bytes)
    }

    /// Whether any of `ranges` contains `address` (as `contains(_:)`), parsing the address once:
    /// the trusted-proxy check runs on every request.
    public static func any(of ranges: [CIDRRange], contains address: String) -> Bool {
        guard !ranges.isEmpty else { return false }
        let withoutZone = address.utf8.firstIndex(of: UInt8(ascii: "%")).map { String(address[..<$0]) } ?? address
        guard let bytes = IPAddress.parse(withoutZone) else { return false }
        return ranges.contains { $0.contains(addressBytes: bytes) }
    }

    /// Whether the raw address (4 or 16 bytes, network order) lies inside; same family mapping as `contains(_:)`.
    public func contains(addressBytes: [UInt8]) -> Bool {
        let comparable: [UInt8]
        switch (family, addressBytes.count) {
        case (.ipv4, 4), (.ipv6, 16):
            comparable = addressBytes
        case (.ipv4, 16):
            guard addressBytes.prefix(10).allSatisfy({ $0 == 0 }), addressBytes[10] == 0xff, addressBytes[11] == 0xff
            else { return false }
            comparable = Array(addressBytes.suffix(4))
        case (.ipv6, 4):
            comparable = Array(repeating: 0, count: 10) + [0xff, 0xff] + addressBytes
        default:
            return false
        }
        return Self.masked(comparable, prefixLength: prefixLength) == networkBytes
    }

    public var description: String {
        "\(IPAddress.format(networkBytes))/\(prefixLength)"
    }

    private static func masked(_ bytes: [UInt8], prefixLength: Int) -> [UInt8] {
        var result = bytes
        for index in result.indices {
            let bitsKept = min(max(prefixLength - index * 8, 0), 8)
            let mask: UInt8 = bitsKept == 0 ? 0 : UInt8(truncatingIfNeeded: 0xff << (8 - bitsKept))
            result[index] &= mask
        }
        return result
    }
}

public struct CIDRParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Completes a sentence whose subject is the offending text, e.g. "has host bits set; did you mean ...".
    public let reason: String

    public var description: String { reason }
}

/// IP literal parsing and formatting through the C library, which is strict (dotted-quad IPv4 without
/// leading zeros; every IPv6 text form).
enum IPAddress {
    static func parse(_ text: String) -> [UInt8]? {
        // Bytes, not `contains(":")`: with Foundation loaded that resolves to a CFString search,
        // and this runs on every request (the trusted-proxy check).
        if text.utf8.contains(UInt8(ascii: ":")) {
            var address = in6_addr()
            guard inet_pton(AF_INET6, text, &address) == 1 else { return nil }
            return withUnsafeBytes(of: &address) { Array($0) }
        }
        var address = in_addr()
        guard inet_pton(AF_INET, text, &address) == 1 else { return nil }
        return withUnsafeBytes(of: &address) { Array($0) }
    }

    static func format(_ bytes: [UInt8]) -> String {
        if bytes.count == 4 {
            return bytes.map(String.init).joined(separator: ".")
        }
        var address = in6_addr()
        withUnsafeMutableBytes(of: &address) { raw in
            for (index, byte) in bytes.prefix(16).enumerated() { raw[index] = byte }
        }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count)) != nil else {
            return bytes.map { String($0, radix: 16) }.joined(separator: ":")
        }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
