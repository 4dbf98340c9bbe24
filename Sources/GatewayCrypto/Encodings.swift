/// Base64 with the URL- and filename-safe alphabet (RFC 4648 §5), without padding.
///
/// Decoding is strict so that every byte string has exactly one accepted encoding: padding,
/// characters outside the alphabet, an impossible length and non-zero trailing bits are all refused.
/// (A signed token that accepted several spellings could be altered without breaking its signature.)
public enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// 0xFF marks a byte outside the alphabet.
    private static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (value, character) in alphabet.enumerated() {
            table[Int(character)] = UInt8(value)
        }
        return table
    }()

    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        withContiguousBytes(bytes) { input in
            let outputCount = (input.count * 4 + 2) / 3
            return String(unsafeUninitializedCapacity: outputCount) { output in
                alphabet.withUnsafeBufferPointer { alphabet in
                    var written = 0
                    var index = 0
                    while index + 3 <= input.count {
                        let group = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8 | UInt32(input[index + 2])
                        output[written] = alphabet[Int(group >> 18)]
                        output[written + 1] = alphabet[Int(group >> 12 & 0x3F)]
                        output[written + 2] = alphabet[Int(group >> 6 & 0x3F)]
                        output[written + 3] = alphabet[Int(group & 0x3F)]
                        written += 4
                        index += 3
                    }
                    switch input.count - index {
                    case 1:
                        let group = UInt32(input[index]) << 16
                        output[written] = alphabet[Int(group >> 18)]
                        output[written + 1] = alphabet[Int(group >> 12 & 0x3F)]
                        written += 2
                    case 2:
                        let group = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8
                        output[written] = alphabet[Int(group >> 18)]
                        output[written + 1] = alphabet[Int(group >> 12 & 0x3F)]
                        output[written + 2] = alphabet[Int(group >> 6 & 0x3F)]
                        written += 3
                    default:
                        break
                    }
                    return written
                }
            }
        }
    }

    /// The decoded bytes, or `nil` when `string` is not the canonical unpadded base64url of any byte string.
    public static func decode(_ string: String) -> [UInt8]? {
        var string = string
        return string.withUTF8 { decode(utf8: $0) }
    }

    static func decode(utf8 input: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        // A lone trailing character would carry only 6 bits: no byte string encodes to that.
        let remainder = input.count % 4
        if remainder == 1 { return nil }
        let outputCount = input.count / 4 * 3 + (remainder == 0 ? 0 : remainder - 1)
        var valid = true
        let bytes = decodeTable.withUnsafeBufferPointer { table in
            [UInt8](unsafeUninitializedCapacity: outputCount) { output, initialized in
                var index = 0
                var written = 0
                while index + 4 <= input.count {
                    let a = table[Int(input[index])], b = table[Int(input[index + 1])]
                    let c = table[Int(input[index + 2])], d = table[Int(input[index + 3])]
                    if (a | b | c | d) & 0xC0 != 0 { valid = false; break }
                    let group = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                    output[written] = UInt8(truncatingIfNeeded: group >> 16)
                    output[written + 1] = UInt8(truncatingIfNeeded: group >> 8)
                    output[written + 2] = UInt8(truncatingIfNeeded: group)
                    written += 3
                    index += 4
                }
                if valid && remainder == 2 {
                    let a = table[Int(input[index])], b = table[Int(input[index + 1])]
                    // Canonical: the 4 bits of `b` below the byte boundary must be zero.
                    if (a | b) & 0xC0 != 0 || b & 0x0F != 0 {
                        valid = false
                    } else {
                        output[written] = a << 2 | b >> 4
                        written += 1
                    }
                } else if valid && remainder == 3 {
                    let a = table[Int(input[index])], b = table[Int(input[index + 1])], c = table[Int(input[index + 2])]
                    if (a | b | c) & 0xC0 != 0 || c & 0x03 != 0 {
                        valid = false
                    } else {
                        output[written] = a << 2 | b >> 4
                        output[written + 1] = b << 4 | c >> 2
                        written += 2
                    }
                }
                initialized = valid ? written : 0
            }
        }
        return valid ? bytes : nil
    }
}

/// Lowercase hexadecimal.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        withContiguousBytes(bytes) { input in
            String(unsafeUninitializedCapacity: input.count * 2) { output in
                digits.withUnsafeBufferPointer { digits in
                    for (offset, byte) in input.enumerated() {
                        output[offset * 2] = digits[Int(byte >> 4)]
                        output[offset * 2 + 1] = digits[Int(byte & 0x0F)]
                    }
                }
                return input.count * 2
            }
        }
    }

    /// The bytes of an even-length string of hex digits (either case), or `nil` for anything else.
    public static func decode(_ string: String) -> [UInt8]? {
        let utf8 = string.utf8
        guard utf8.count % 2 == 0 else { return nil }
        var bytes = [UInt8]()
        bytes.reserveCapacity(utf8.count / 2)
        var high: UInt8? = nil
        for character in utf8 {
            guard let nibble = nibbleValue(character) else { return nil }
            if let pending = high {
                bytes.append(pending << 4 | nibble)
                high = nil
            } else {
                high = nibble
            }
        }
        return bytes
    }

    @inline(__always)
    private static func nibbleValue(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): character &- UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): character &- UInt8(ascii: "a") &+ 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): character &- UInt8(ascii: "A") &+ 10
        default: nil
        }
    }
}
