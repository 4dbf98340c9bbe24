import Synchronization

/// Random identifiers in lowercase hex: request ids and W3C trace and span ids.
///
/// The bytes come from the kernel's CSPRNG (`getrandom`), fetched 4 KiB at a time. Drawing them a
/// byte at a time through `SystemRandomNumberGenerator` (one `getrandom` call per byte, 40 per
/// request) was the largest single cost of answering a cached page.
public enum RandomIdentifier {
    private static let pool = Mutex(RandomBytePool())

    /// `byteCount` random bytes as `2 × byteCount` lowercase hex digits, never all zeros (W3C
    /// Trace Context rejects all-zero trace and span ids).
    public static func hex(byteCount: Int) -> String {
        precondition(byteCount > 0 && byteCount <= RandomBytePool.capacity)
        return String(unsafeUninitializedCapacity: byteCount * 2) { output in
            writeHex(byteCount: byteCount, into: output)
            return byteCount * 2
        }
    }

    /// `hex(byteCount:)` written into the first `2 × byteCount` bytes of `output`, for callers that
    /// assemble a larger string (a `traceparent`) without an intermediate one.
    public static func writeHex(byteCount: Int, into output: UnsafeMutableBufferPointer<UInt8>) {
        precondition(byteCount > 0 && byteCount <= RandomBytePool.capacity && output.count >= byteCount * 2)
        while true {
            var anyNonZero = false
            pool.withLock { pool in
                pool.take(byteCount) { bytes in
                    // Through unsafe buffers (both bounds were checked above): the slice's checked
                    // subscripts cost more than the digits, three ids per request.
                    bytes.withUnsafeBufferPointer { source in
                        for index in 0..<source.count {
                            let byte = source[index]
                            anyNonZero = anyNonZero || byte != 0
                            output[2 &* index] = hexDigit(byte &>> 4)
                            output[2 &* index &+ 1] = hexDigit(byte & 0x0F)
                        }
                    }
                }
            }
            if anyNonZero { return }
        }
    }

    /// Without a branch: random nibbles make `value < 10` a coin toss for the branch predictor.
    /// For a nibble of 10 or more `9 &- value` wraps to 0xFA…0xFF, whose top bit then adds the
    /// distance from `'9' + 1` to `'a'`; for 0…9 the top bit is clear.
    @inline(__always)
    private static func hexDigit(_ value: UInt8) -> UInt8 {
        UInt8(ascii: "0") &+ value &+ (((9 &- value) &>> 7) &* (UInt8(ascii: "a") &- UInt8(ascii: "9") &- 1))
    }
}

/// `count` bytes from the kernel's CSPRNG (`getrandom`), for secrets such as a generated cursor
/// key: the process's one source of randomness, as request ids are. Without it the process stops
/// (see `SystemCall.fillRandom`): a secret built from predictable bytes would fail silently and
/// insecurely. A `count` of zero or less gives an empty array.
public func secureRandomBytes(count: Int) -> [UInt8] {
    guard count > 0 else { return [] }
    var bytes = [UInt8](repeating: 0, count: count)
    bytes.withUnsafeMutableBytes { SystemCall.fillRandom($0) }
    return bytes
}

/// A page of kernel randomness handed out in order; every byte is used once.
struct RandomBytePool: ~Copyable {
    static let capacity = 4096
    private var bytes = [UInt8](repeating: 0, count: RandomBytePool.capacity)
    private var used = RandomBytePool.capacity

    mutating func take(_ count: Int, _ body: (ArraySlice<UInt8>) -> Void) {
        if used + count > bytes.count { refill() }
        body(bytes[used..<(used + count)])
        used += count
    }

    private mutating func refill() {
        bytes.withUnsafeMutableBytes { SystemCall.fillRandom($0) }
        used = 0
    }
}
