// Byte classes and URI grammar checks for the request parser (RFC 9110 §5.6.2, RFC 9112 §3.2, RFC 3986 §3.2).
// Character classes are 128-bit masks so the hot loops test a byte with two shifts and no memory access.

enum ASCII {
    static let space: UInt8 = 0x20
    static let tab: UInt8 = 0x09
    static let carriageReturn: UInt8 = 0x0D
    static let lineFeed: UInt8 = 0x0A
    static let colon = UInt8(ascii: ":")
    static let semicolon = UInt8(ascii: ";")
    static let equals = UInt8(ascii: "=")
    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")
    static let slash = UInt8(ascii: "/")
    static let questionMark = UInt8(ascii: "?")
    static let hash = UInt8(ascii: "#")
    static let percent = UInt8(ascii: "%")
    static let asterisk = UInt8(ascii: "*")
    static let dot = UInt8(ascii: ".")
    static let openBracket = UInt8(ascii: "[")
    static let closeBracket = UInt8(ascii: "]")
    static let zero = UInt8(ascii: "0")
    static let nine = UInt8(ascii: "9")
}

@inline(__always)
private func inMask(_ byte: UInt8, low: UInt64, high: UInt64) -> Bool {
    if byte < 64 { return (low >> UInt64(byte)) & 1 == 1 }
    if byte < 128 { return (high >> UInt64(byte - 64)) & 1 == 1 }
    return false
}

/// tchar: `!#$%&'*+-.^_`|~`, DIGIT, ALPHA.
@inline(__always)
func isTokenByte(_ byte: UInt8) -> Bool {
    inMask(byte, low: 0x03FF_6CFA_0000_0000, high: 0x57FF_FFFF_C7FF_FFFE)
}

/// Every byte that may appear in some request-target form (URI characters without `#`).
@inline(__always)
func isTargetByte(_ byte: UInt8) -> Bool {
    inMask(byte, low: 0xAFFF_FFF2_0000_0000, high: 0x47FF_FFFE_AFFF_FFFF)
}

/// pchar, `/` and `?`: what absolute-path and query may hold (percent sign checked separately).
@inline(__always)
private func isPathOrQueryByte(_ byte: UInt8) -> Bool {
    inMask(byte, low: 0xAFFF_FFF2_0000_0000, high: 0x47FF_FFFE_87FF_FFFF)
}

/// unreserved, sub-delims and `%`: what a reg-name may hold.
@inline(__always)
private func isRegNameByte(_ byte: UInt8) -> Bool {
    inMask(byte, low: 0x2BFF_7FF2_0000_0000, high: 0x47FF_FFFE_87FF_FFFE)
}

/// unreserved, sub-delims and `:`: the tail of an IPvFuture literal.
@inline(__always)
private func isIPvFutureByte(_ byte: UInt8) -> Bool {
    inMask(byte, low: 0x2FFF_7FD2_0000_0000, high: 0x47FF_FFFE_87FF_FFFE)
}

/// HTAB, SP, VCHAR and obs-text: the bytes a field value may hold (RFC 9110 §5.5).
@inline(__always)
package func isFieldValueByte(_ byte: UInt8) -> Bool {
    byte == ASCII.tab || (byte >= ASCII.space && byte != 0x7F)
}

/// The index of the first byte of `bytes[start..<end]` that a field value may not hold (a control
/// other than tab, or DEL), or `end` when there is none.
///
/// Eight bytes at a time while a word holds none of them (values such as `Authorization` and
/// `Link` run to dozens or hundreds of bytes, read or written on every request); from the first word
/// that has one (a tab counts), byte by byte. Used by the parser for what arrives and by the
/// response encoder for what leaves.
package func fieldValueEnd(in bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) -> Int {
    precondition(start >= 0 && start <= end && end <= bytes.count)
    var index = start
    if let base = bytes.baseAddress.map(UnsafeRawPointer.init) {
        while index &+ 8 <= end, !mayHoldControlOrDelete(base.loadUnaligned(fromByteOffset: index, as: UInt64.self)) {
            index &+= 8
        }
    }
    while index < end, isFieldValueByte(bytes[index]) { index &+= 1 }
    return index
}

/// True when a byte of `word` is below 0x20 or is 0x7F (exact: the classic "has a byte less than
/// n" test holds for n ≤ 128 whatever the other bytes are).
@inline(__always)
private func mayHoldControlOrDelete(_ word: UInt64) -> Bool {
    let ones: UInt64 = 0x0101_0101_0101_0101
    let highBits: UInt64 = 0x8080_8080_8080_8080
    let belowSpace = (word &- 0x20 &* ones) & ~word & highBits
    let delete = word ^ (0x7F &* ones)
    return (belowSpace | ((delete &- ones) & ~delete & highBits)) != 0
}

@inline(__always)
func isDigit(_ byte: UInt8) -> Bool { byte >= ASCII.zero && byte <= ASCII.nine }

@inline(__always)
func isHexDigit(_ byte: UInt8) -> Bool { hexValue(byte) != nil }

@inline(__always)
func isOptionalWhitespace(_ byte: UInt8) -> Bool { byte == ASCII.space || byte == ASCII.tab }

/// Case-insensitive comparison of raw bytes with a lowercase ASCII literal.
func equalsLowercased(_ bytes: ArraySlice<UInt8>, _ lowercase: StaticString) -> Bool {
    guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
    return lowercase.withUTF8Buffer { expected in
        var index = bytes.startIndex
        for wanted in expected {
            let byte = bytes[index]
            let folded = (byte >= 0x41 && byte <= 0x5A) ? byte | 0x20 : byte
            if folded != wanted { return false }
            index += 1
        }
        return true
    }
}

// MARK: - Request-target forms (RFC 9112 §3.2)

enum RequestTargetForm: Equatable {
    case origin
    /// `pathStart` is the offset (relative to the target) where path-abempty begins.
    case absolute(pathStart: Int)
    case authority
    case asterisk
}

/// Classifies a complete request-target and checks it against its form's grammar.
func classifyRequestTarget(_ target: ArraySlice<UInt8>, method: ArraySlice<UInt8>) throws(HTTPParseError) -> RequestTargetForm {
    let isConnect = method.elementsEqual("CONNECT".utf8)
    if isConnect {
        guard isValidAuthority(target, requirePort: true) else {
            throw HTTPParseError(status: .badRequest, reason: "CONNECT requires an authority-form target")
        }
        return .authority
    }
    guard let first = target.first else {
        throw HTTPParseError(status: .badRequest, reason: "empty request target")
    }
    if first == ASCII.asterisk && target.count == 1 {
        guard method.elementsEqual("OPTIONS".utf8) else {
            throw HTTPParseError(status: .badRequest, reason: "asterisk-form target is only allowed with OPTIONS")
        }
        return .asterisk
    }
    if first == ASCII.slash {
        guard isValidPathAndQuery(target) else {
            throw HTTPParseError(status: .badRequest, reason: "malformed request target")
        }
        return .origin
    }
    guard let pathStart = absoluteFormPathStart(target) else {
        throw HTTPParseError(status: .badRequest, reason: "malformed request target")
    }
    return .absolute(pathStart: pathStart)
}

/// For `http://authority[/path][?query]` (scheme case-insensitive, http or https), the offset of the path.
private func absoluteFormPathStart(_ target: ArraySlice<UInt8>) -> Int? {
    guard let colon = target.firstIndex(of: ASCII.colon) else { return nil }
    let scheme = target[target.startIndex..<colon]
    guard equalsLowercased(scheme, "http") || equalsLowercased(scheme, "https") else { return nil }
    let afterScheme = target[(colon + 1)...]
    guard afterScheme.starts(with: [ASCII.slash, ASCII.slash]) else { return nil }
    let authorityStart = afterScheme.startIndex + 2
    let rest = target[authorityStart...]
    let authorityEnd = rest.firstIndex { $0 == ASCII.slash || $0 == ASCII.questionMark } ?? target.endIndex
    guard isValidAuthority(target[authorityStart..<authorityEnd], requirePort: false) else { return nil }
    let pathAndQuery = target[authorityEnd...]
    guard isValidPathAndQuery(pathAndQuery) else { return nil }
    return authorityEnd - target.startIndex
}

/// absolute-path / path-abempty followed by an optional `?query`, with well-formed percent escapes.
private func isValidPathAndQuery(_ bytes: ArraySlice<UInt8>) -> Bool {
    var index = bytes.startIndex
    while index < bytes.endIndex {
        let byte = bytes[index]
        guard isPathOrQueryByte(byte) else { return false }
        if byte == ASCII.percent {
            guard index + 2 < bytes.endIndex, isHexDigit(bytes[index + 1]), isHexDigit(bytes[index + 2]) else { return false }
            index += 3
        } else {
            index += 1
        }
    }
    return true
}

/// `uri-host [":" port]` without userinfo (RFC 9110 §4.2.4 forbids it in http(s) URIs); host non-empty.
func isValidAuthority(_ bytes: ArraySlice<UInt8>, requirePort: Bool) -> Bool {
    guard let first = bytes.first else { return false }
    var hostEnd: Int
    if first == ASCII.openBracket {
        guard let close = bytes.firstIndex(of: ASCII.closeBracket) else { return false }
        guard isValidIPLiteral(bytes[(bytes.startIndex + 1)..<close]) else { return false }
        hostEnd = close + 1
    } else {
        hostEnd = bytes.firstIndex(of: ASCII.colon) ?? bytes.endIndex
        guard hostEnd > bytes.startIndex, isValidRegName(bytes[bytes.startIndex..<hostEnd]) else { return false }
    }
    if hostEnd == bytes.endIndex { return !requirePort }
    guard bytes[hostEnd] == ASCII.colon else { return false }
    return isValidPort(bytes[(hostEnd + 1)...])
}

/// reg-name (which also covers IPv4address): unreserved, sub-delims, percent escapes.
private func isValidRegName(_ bytes: ArraySlice<UInt8>) -> Bool {
    var index = bytes.startIndex
    while index < bytes.endIndex {
        let byte = bytes[index]
        guard isRegNameByte(byte) else { return false }
        if byte == ASCII.percent {
            guard index + 2 < bytes.endIndex, isHexDigit(bytes[index + 1]), isHexDigit(bytes[index + 2]) else { return false }
            index += 3
        } else {
            index += 1
        }
    }
    return true
}

/// 1 to 5 digits, at most 65535. RFC 3986 allows an empty port; we reject it rather than guess.
private func isValidPort(_ bytes: ArraySlice<UInt8>) -> Bool {
    guard !bytes.isEmpty, bytes.count <= 5 else { return false }
    var value = 0
    for byte in bytes {
        guard isDigit(byte) else { return false }
        value = value * 10 + Int(byte - ASCII.zero)
    }
    return value <= 65535
}

/// The inside of `[...]`: IPv6address or IPvFuture (RFC 3986 §3.2.2).
private func isValidIPLiteral(_ bytes: ArraySlice<UInt8>) -> Bool {
    guard let first = bytes.first else { return false }
    if first == UInt8(ascii: "v") || first == UInt8(ascii: "V") {
        let afterV = bytes.dropFirst()
        guard let dot = afterV.firstIndex(of: ASCII.dot), dot > afterV.startIndex else { return false }
        guard afterV[afterV.startIndex..<dot].allSatisfy(isHexDigit) else { return false }
        let tail = bytes[(dot + 1)...]
        return !tail.isEmpty && tail.allSatisfy(isIPvFutureByte)
    }
    return isValidIPv6(bytes)
}

func isValidIPv6(_ bytes: ArraySlice<UInt8>) -> Bool {
    var index = bytes.startIndex
    let end = bytes.endIndex
    var groups = 0
    var compressed = false
    if bytes.starts(with: [ASCII.colon, ASCII.colon]) {
        compressed = true
        index += 2
        if index == end { return true }
    } else if bytes.first == ASCII.colon {
        return false
    }
    while true {
        let groupStart = index
        var digits = 0
        while index < end, digits < 5, isHexDigit(bytes[index]) {
            index += 1
            digits += 1
        }
        if index < end && bytes[index] == ASCII.dot {
            // An embedded IPv4 address ends the literal and stands for two groups.
            guard isValidIPv4(bytes[groupStart..<end]) else { return false }
            groups += 2
            break
        }
        guard digits >= 1 && digits <= 4 else { return false }
        groups += 1
        if index == end { break }
        guard bytes[index] == ASCII.colon else { return false }
        index += 1
        if index < end && bytes[index] == ASCII.colon {
            guard !compressed else { return false }
            compressed = true
            index += 1
            if index == end { break }
        } else if index == end {
            return false
        }
        if groups > 8 { return false }
    }
    return compressed ? groups <= 7 : groups == 8
}

/// dec-octet "." dec-octet "." dec-octet "." dec-octet, without leading zeros.
func isValidIPv4(_ bytes: ArraySlice<UInt8>) -> Bool {
    var octets = 0
    var index = bytes.startIndex
    while true {
        let start = index
        var value = 0
        while index < bytes.endIndex, isDigit(bytes[index]), index - start < 3 {
            value = value * 10 + Int(bytes[index] - ASCII.zero)
            index += 1
        }
        let length = index - start
        guard length >= 1, value <= 255, !(length > 1 && bytes[start] == ASCII.zero) else { return false }
        octets += 1
        if octets == 4 { return index == bytes.endIndex }
        guard index < bytes.endIndex, bytes[index] == ASCII.dot else { return false }
        index += 1
    }
}
