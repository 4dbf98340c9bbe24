import COpenSSL
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Cryptographically secure random bytes from libcrypto's DRBG, falling back to `/dev/urandom`.
///
/// When neither source works the process stops: a cursor secret or request id built from predictable
/// bytes would fail silently and insecurely, which is worse than failing loudly at start-up.
/// A `count` of zero or less gives an empty array.
public func secureRandomBytes(count: Int) -> [UInt8] {
    guard count > 0 else { return [] }
    var bytes = [UInt8](repeating: 0, count: count)
    let filled = bytes.withUnsafeMutableBufferPointer { buffer -> Bool in
        if fillFromLibcrypto(buffer) { return true }
        return fillFromDevURandom(buffer)
    }
    guard filled else {
        fatalError("no source of secure random bytes: RAND_bytes and /dev/urandom both failed")
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

func fillFromDevURandom(_ buffer: UnsafeMutableBufferPointer<UInt8>) -> Bool {
    guard let base = buffer.baseAddress else { return true }
    let descriptor = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { return false }
    defer { close(descriptor) }
    var offset = 0
    while offset < buffer.count {
        let result = read(descriptor, base + offset, buffer.count - offset)
        if result > 0 {
            offset += result
        } else if result < 0 && errno == EINTR {
            continue
        } else {
            return false
        }
    }
    return true
}
