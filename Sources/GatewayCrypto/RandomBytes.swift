import COpenSSL

/// Cryptographically secure random bytes from libcrypto's DRBG (which the kernel seeds).
///
/// When libcrypto cannot produce them the process stops: a cursor secret built from predictable
/// bytes would fail silently and insecurely, which is worse than failing loudly at start-up. There
/// is no second source to fall back to: the DRBG fails only when the kernel CSPRNG it seeds from
/// does. A `count` of zero or less gives an empty array.
public func secureRandomBytes(count: Int) -> [UInt8] {
    guard count > 0 else { return [] }
    var bytes = [UInt8](repeating: 0, count: count)
    guard bytes.withUnsafeMutableBufferPointer({ fillFromLibcrypto($0) }) else {
        fatalError("no source of secure random bytes: RAND_bytes failed")
    }
    return bytes
}

func fillFromLibcrypto(_ buffer: UnsafeMutableBufferPointer<UInt8>) -> Bool {
    guard let base = buffer.baseAddress else { return true }
    var offset = 0
    while offset < buffer.count {
        // RAND_bytes takes an Int32 length; very large requests are served in chunks.
        let chunk = min(buffer.count - offset, Int(Int32.max))
        guard RAND_bytes(base + offset, Int32(chunk)) == 1 else { return false }
        offset += chunk
    }
    return true
}
