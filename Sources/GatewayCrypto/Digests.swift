import COpenSSL

/// SHA-256 (FIPS 180-4) through libcrypto.
public enum SHA256 {
    public static let digestByteCount = 32

    public static func hash(_ bytes: some Collection<UInt8>) -> [UInt8] {
        withContiguousBytes(bytes) { input in
            [UInt8](unsafeUninitializedCapacity: digestByteCount) { output, initialized in
                // The one-shot SHA256() uses the low-level implementation directly: no EVP fetch per call.
                _ = COpenSSL.SHA256(input.baseAddress, input.count, output.baseAddress)
                initialized = digestByteCount
            }
        }
    }

    /// Lowercase hex of the SHA-256 of the string's UTF-8 bytes (the form config stores API keys in).
    public static func hexDigest(of string: String) -> String {
        Hex.encode(hash(string.utf8))
    }
}

/// HMAC-SHA256 (RFC 2104) through libcrypto.
public enum HMACSHA256 {
    public static let codeByteCount = 32

    public static func authenticationCode(key: [UInt8], message: some Collection<UInt8>) -> [UInt8] {
        withNonNullBytes(key) { keyBytes in
            withContiguousBytes(message) { messageBytes in
                [UInt8](unsafeUninitializedCapacity: Int(EVP_MAX_MD_SIZE)) { output, initialized in
                    var length: UInt32 = 0
                    let result = HMAC(
                        EVP_sha256(),
                        keyBytes.baseAddress, Int32(clamping: keyBytes.count),
                        messageBytes.baseAddress, messageBytes.count,
                        output.baseAddress, &length
                    )
                    // HMAC() fails only on allocation failure or an unavailable digest; carrying on with a
                    // short or zero tag would silently accept forgeries, so stop the process instead.
                    guard result != nil, length == UInt32(codeByteCount) else {
                        fatalError("libcrypto HMAC-SHA256 failed")
                    }
                    initialized = codeByteCount
                }
            }
        }
    }

    /// Verifies `code` against the message in constant time.
    public static func isValidAuthenticationCode(
        _ code: some Collection<UInt8>, key: [UInt8], message: some Collection<UInt8>
    ) -> Bool {
        constantTimeEquals(code, authenticationCode(key: key, message: message))
    }
}

/// Compares two byte strings without data-dependent timing on their contents. Differing lengths return
/// `false` at once: only the length (which the caller's format usually fixes) can leak, never the bytes.
public func constantTimeEquals(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
    guard a.count == b.count else { return false }
    if a.isEmpty { return true }
    return withContiguousBytes(a) { left in
        withContiguousBytes(b) { right in
            CRYPTO_memcmp(left.baseAddress, right.baseAddress, left.count) == 0
        }
    }
}

/// Calls `body` with a contiguous view of `bytes`, copying only when the collection is not contiguous.
@inline(__always)
func withContiguousBytes<C: Collection<UInt8>, R>(_ bytes: C, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
    if let result = bytes.withContiguousStorageIfAvailable({ body($0) }) {
        return result
    }
    return Array(bytes).withUnsafeBufferPointer { body($0) }
}

/// Like `withContiguousBytes`, but never hands libcrypto a null pointer for an empty input.
@inline(__always)
func withNonNullBytes<R>(_ bytes: [UInt8], _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
    if bytes.isEmpty {
        var placeholder: UInt8 = 0
        return withUnsafePointer(to: &placeholder) { body(UnsafeBufferPointer(start: $0, count: 0)) }
    }
    return bytes.withUnsafeBufferPointer { body($0) }
}
