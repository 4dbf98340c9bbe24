/// Builds compact JSON directly into bytes. Used for every response body the gateway renders, so it
/// avoids intermediate strings and Foundation.
public struct JSONWriter {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 1024) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// A writer that appends to `bytes` (a buffer being filled with many documents).
    public init(appendingTo bytes: [UInt8]) {
        self.bytes = bytes
    }

    public mutating func write(_ value: JSONValue) {
        switch value {
        case .null: raw("null")
        case .bool(let flag): raw(flag ? "true" : "false")
        case .integer(let number): raw(String(number))
        case .double(let number): writeDouble(number)
        case .string(let text): string(text)
        case .array(let elements):
            bytes.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                write(element)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let object):
            bytes.append(UInt8(ascii: "{"))
            for (index, member) in object.members.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                string(member.key)
                bytes.append(UInt8(ascii: ":"))
                write(member.value)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    /// Appends pre-rendered JSON text (a literal, a number, or bytes already produced by a writer).
    public mutating func raw(_ text: String) { bytes.append(contentsOf: text.utf8) }
    public mutating func raw(_ rendered: [UInt8]) { bytes.append(contentsOf: rendered) }
    public mutating func raw(_ rendered: ArraySlice<UInt8>) { bytes.append(contentsOf: rendered) }
    public mutating func raw(_ byte: UInt8) { bytes.append(byte) }
    public mutating func raw(_ rendered: UnsafeRawBufferPointer) { bytes.append(contentsOf: rendered) }

    /// Appends constant JSON text: a literal's bytes, with none of `String`'s machinery.
    public mutating func fragment(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    /// A signed integer as a JSON number (`-12`).
    public mutating func decimal(_ value: Int) {
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        decimal(value.magnitude)
    }

    /// The decimal digits of `value`.
    public mutating func decimal<Value: UnsignedInteger & FixedWidthInteger>(_ value: Value) {
        var remaining = UInt64(value)
        var divisor: UInt64 = 1
        while remaining / divisor >= 10 { divisor *= 10 }
        repeat {
            bytes.append(UInt8(ascii: "0") + UInt8(remaining / divisor))
            remaining %= divisor
            divisor /= 10
        } while divisor > 0
    }

    public mutating func string(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        // In place when the string is contiguous (every native one): `withUTF8` needs a copy in a
        // `var`, a retain and a release per string.
        if text.utf8.withContiguousStorageIfAvailable({ appendEscaped(contentsOf: $0) }) == nil {
            var text = text
            text.withUTF8 { appendEscaped(contentsOf: $0) }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// `utf8` with JSON's escapes. Runs of bytes that need no escape (nearly every byte) are found
    /// eight bytes at a time and copied in bulk.
    private mutating func appendEscaped(contentsOf utf8: UnsafeBufferPointer<UInt8>) {
        var runStart = 0
        var index = 0
        let base = utf8.baseAddress.map(UnsafeRawPointer.init)
        while index < utf8.count {
            if let base {
                while index + 8 <= utf8.count, !Self.mayNeedEscape(base.loadUnaligned(fromByteOffset: index, as: UInt64.self)) {
                    index += 8
                }
                guard index < utf8.count else { break }
            }
            let byte = utf8[index]
            if Self.needsEscape(byte) {
                if runStart < index { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index])) }
                appendEscaped(byte)
                runStart = index + 1
            }
            index += 1
        }
        if runStart < utf8.count { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...])) }
    }

    /// True when a byte of `word` may need an escape: exact for "some byte is below 0x20 or is
    /// `"`, `\\` or DEL" (the classic has-zero-byte and has-byte-less-than tests).
    @inline(__always)
    private static func mayNeedEscape(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highBits: UInt64 = 0x8080_8080_8080_8080
        @inline(__always) func hasZeroByte(_ value: UInt64) -> UInt64 { (value &- ones) & ~value & highBits }
        let control = (word &- 0x20 &* ones) & ~word & highBits
        return (control | hasZeroByte(word ^ (0x22 &* ones)) | hasZeroByte(word ^ (0x5C &* ones)) | hasZeroByte(word ^ (0x7F &* ones))) != 0
    }

    @inline(__always)
    private static func needsEscape(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte == 0x7F
    }

    private mutating func appendEscaped(_ byte: UInt8) {
        switch byte {
        case UInt8(ascii: "\""): bytes.append(0x5C); bytes.append(UInt8(ascii: "\""))
        case UInt8(ascii: "\\"): bytes.append(0x5C); bytes.append(0x5C)
        case 0x0A: bytes.append(0x5C); bytes.append(UInt8(ascii: "n"))
        case 0x0D: bytes.append(0x5C); bytes.append(UInt8(ascii: "r"))
        case 0x09: bytes.append(0x5C); bytes.append(UInt8(ascii: "t"))
        default:
            let hex: StaticString = "0123456789abcdef"
            hex.withUTF8Buffer { digits in
                bytes.append(contentsOf: [0x5C, UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
            }
        }
    }

    public mutating func optionalString(_ text: String?) {
        if let text { string(text) } else { raw("null") }
    }

    private mutating func writeDouble(_ number: Double) {
        guard number.isFinite else {
            raw("null")
            return
        }
        if number.rounded() == number && abs(number) < 1e15 {
            raw(String(Int64(number)))
        } else {
            raw("\(number)")
        }
    }

    /// `{"a":1,...}` from members written by `body`, handling the commas.
    public mutating func object(_ body: (inout ObjectWriter) -> Void) {
        bytes.append(UInt8(ascii: "{"))
        var members = ObjectWriter(writer: self)
        bytes = []
        body(&members)
        self = members.writer
        bytes.append(UInt8(ascii: "}"))
    }

    public struct ObjectWriter {
        fileprivate var writer: JSONWriter
        private var first = true

        fileprivate init(writer: JSONWriter) { self.writer = writer }

        public mutating func member(_ key: String, _ value: JSONValue) {
            self.key(key)
            writer.write(value)
        }

        public mutating func member(_ key: String, string: String?) {
            self.key(key)
            writer.optionalString(string)
        }

        public mutating func member(_ key: String, raw: String) {
            self.key(key)
            writer.raw(raw)
        }

        public mutating func member(_ key: String, writing body: (inout JSONWriter) -> Void) {
            self.key(key)
            body(&writer)
        }

        private mutating func key(_ key: String) {
            if !first { writer.raw(UInt8(ascii: ",")) }
            first = false
            writer.string(key)
            writer.raw(UInt8(ascii: ":"))
        }
    }
}

extension JSONValue {
    /// Compact JSON bytes.
    public func serialized() -> [UInt8] {
        var writer = JSONWriter()
        writer.write(self)
        return writer.bytes
    }
}
