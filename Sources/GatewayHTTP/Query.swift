// application/x-www-form-urlencoded query decoding (WHATWG URL §5.1), used by every route that reads
// query parameters. Lives here so the server, the API and the simulator decode identically.

/// Splits `a=1&b=2` into decoded pairs. `+` is a space; bad percent escapes are kept as written.
public func parseQueryItems(_ query: String) -> [(name: String, value: String)] {
    var items: [(name: String, value: String)] = []
    for pair in query.utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
        if let equals = pair.firstIndex(of: UInt8(ascii: "=")) {
            items.append((percentDecode(pair[pair.startIndex..<equals]), percentDecode(pair[pair.index(after: equals)...])))
        } else {
            items.append((percentDecode(pair[...]), ""))
        }
    }
    return items
}

/// Percent-decodes form-encoded bytes; invalid escapes stay literal and invalid UTF-8 is repaired.
public func percentDecode<Bytes: Collection<UInt8>>(_ bytes: Bytes, plusIsSpace: Bool = true) -> String {
    var output: [UInt8] = []
    output.reserveCapacity(bytes.count)
    var index = bytes.startIndex
    while index != bytes.endIndex {
        let byte = bytes[index]
        if byte == UInt8(ascii: "%") {
            let first = bytes.index(after: index)
            if first != bytes.endIndex {
                let second = bytes.index(after: first)
                if second != bytes.endIndex, let high = hexValue(bytes[first]), let low = hexValue(bytes[second]) {
                    output.append(high << 4 | low)
                    index = bytes.index(after: second)
                    continue
                }
            }
            output.append(byte)
        } else if byte == UInt8(ascii: "+") && plusIsSpace {
            output.append(UInt8(ascii: " "))
        } else {
            output.append(byte)
        }
        index = bytes.index(after: index)
    }
    return String(decoding: output, as: UTF8.self)
}

/// Percent-encodes everything outside RFC 3986 unreserved characters.
public func percentEncode(_ string: String) -> String {
    var output = ""
    output.reserveCapacity(string.utf8.count)
    let hex = Array("0123456789ABCDEF".utf8)
    for byte in string.utf8 {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: "_"), UInt8(ascii: "~"):
            output.unicodeScalars.append(Unicode.Scalar(byte))
        default:
            output.unicodeScalars.append("%")
            output.unicodeScalars.append(Unicode.Scalar(hex[Int(byte >> 4)]))
            output.unicodeScalars.append(Unicode.Scalar(hex[Int(byte & 0x0F)]))
        }
    }
    return output
}

@inline(__always)
func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    default: nil
    }
}
