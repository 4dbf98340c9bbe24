import CZlib

/// How one `CachedEntry` is stored in the shared cache (one Redis value per entry).
///
/// Layout, all integers big-endian:
///
///     [0]       version (1)
///     [1]       flags: bit 0 = body deflated (zlib format); other bits must be 0
///     [2..<6]   CRC-32 of every other byte (version, flags, and all after it)
///     [6..<14]  fresh for: nanoseconds from the store instant to the end of freshness
///     [14..<22] stale for: nanoseconds from the store instant to the end of the stale window
///     [22..<26] only when deflated: the body's length before compression
///     then      the body
///
/// Durations, not instants: each replica has its own monotonic clock, so the reader rebuilds its
/// own instants from how much of the Redis TTL (which ends with the stale window) is left. No status
/// is stored: only successful loads are cached, so every entry is a 2xx body.
///
/// Whatever Redis returns is input like any other: `decode` returns nil for anything that is not
/// exactly a valid envelope (short, unknown version or flags, a wrong checksum, inconsistent windows,
/// a declared length above `maximumBodyBytes`, a deflated body that does not inflate to exactly its
/// declared length). The checksum makes any change of up to four consecutive bytes a miss rather
/// than another body or other windows.
enum SharedCacheEnvelope {
    static let version: UInt8 = 1
    static let deflatedFlag: UInt8 = 1
    static let headerBytes = 22
    private static let checksumOffset = 2
    /// Bounds what a corrupted length field can make a reader allocate.
    static let maximumBodyBytes = 64 << 20

    struct Decoded: Equatable {
        var body: [UInt8]
        var freshForNanoseconds: UInt64
        var staleForNanoseconds: UInt64
    }

    /// The envelope, deflating the body when it has at least `compressionThreshold` bytes and
    /// deflating makes it smaller. nil when the body is too large to share.
    static func encode(
        body: [UInt8], freshForNanoseconds: UInt64, staleForNanoseconds: UInt64, compressionThreshold: Int
    ) -> [UInt8]? {
        guard body.count <= maximumBodyBytes else { return nil }
        let deflated = !body.isEmpty && body.count >= compressionThreshold ? deflate(body) : nil
        var envelope: [UInt8] = []
        envelope.reserveCapacity(headerBytes + 4 + (deflated?.count ?? body.count))
        envelope.append(version)
        envelope.append(deflated == nil ? 0 : deflatedFlag)
        appendBigEndian(UInt32(0), to: &envelope)
        appendBigEndian(min(freshForNanoseconds, staleForNanoseconds), to: &envelope)
        appendBigEndian(staleForNanoseconds, to: &envelope)
        if let deflated {
            appendBigEndian(UInt32(body.count), to: &envelope)
            envelope += deflated
        } else {
            envelope += body
        }
        withUnsafeBytes(of: checksum(envelope).bigEndian) { checksumBytes in
            envelope.replaceSubrange(checksumOffset..<(checksumOffset + 4), with: checksumBytes)
        }
        return envelope
    }

    static func decode(_ envelope: [UInt8]) -> Decoded? {
        guard envelope.count >= headerBytes, envelope[0] == version else { return nil }
        let flags = envelope[1]
        guard flags & ~deflatedFlag == 0,
              readBigEndian(UInt32.self, envelope, at: checksumOffset) == checksum(envelope)
        else { return nil }
        let freshFor = readBigEndian(UInt64.self, envelope, at: 6)
        let staleFor = readBigEndian(UInt64.self, envelope, at: 14)
        guard freshFor <= staleFor else { return nil }
        let body: [UInt8]
        if flags & deflatedFlag != 0 {
            guard envelope.count >= headerBytes + 4 else { return nil }
            let declaredLength = Int(readBigEndian(UInt32.self, envelope, at: headerBytes))
            guard declaredLength <= maximumBodyBytes,
                  let inflated = inflate(envelope[(headerBytes + 4)...], expectedLength: declaredLength)
            else { return nil }
            body = inflated
        } else {
            body = Array(envelope[headerBytes...])
        }
        return Decoded(body: body, freshForNanoseconds: freshFor, staleForNanoseconds: staleFor)
    }

    // MARK: zlib

    /// Over everything but the checksum field itself; `envelope` holds at least the header.
    private static func checksum(_ envelope: [UInt8]) -> UInt32 {
        var crc = crc32(0, nil, 0)
        for part in [envelope[..<checksumOffset], envelope[(checksumOffset + 4)...]] {
            crc = part.withUnsafeBufferPointer { buffer in crc32(crc, buffer.baseAddress, uInt(clamping: buffer.count)) }
        }
        return UInt32(truncatingIfNeeded: crc)
    }

    /// Fast level: the body is compressed on the request path of the replica that loaded it.
    private static let compressionLevel: Int32 = 1

    /// nil when deflating fails or does not save anything.
    static func deflate(_ body: [UInt8]) -> [UInt8]? {
        let bound = Int(compressBound(uLong(body.count)))
        var output = [UInt8](repeating: 0, count: bound)
        var outputLength = uLongf(bound)
        let status = output.withUnsafeMutableBufferPointer { destination in
            body.withUnsafeBufferPointer { source in
                compress2(destination.baseAddress, &outputLength, source.baseAddress, uLong(source.count), compressionLevel)
            }
        }
        guard status == Z_OK, Int(outputLength) + 4 < body.count else { return nil }
        output.removeSubrange(Int(outputLength)...)
        return output
    }

    static func inflate(_ deflated: ArraySlice<UInt8>, expectedLength: Int) -> [UInt8]? {
        // uncompress needs room for one byte more than expected to report a longer stream as an
        // error instead of silently filling the buffer exactly.
        var output = [UInt8](repeating: 0, count: expectedLength + 1)
        var outputLength = uLongf(expectedLength + 1)
        let status = output.withUnsafeMutableBufferPointer { destination in
            deflated.withUnsafeBufferPointer { source in
                uncompress(destination.baseAddress, &outputLength, source.baseAddress, uLong(source.count))
            }
        }
        guard status == Z_OK, Int(outputLength) == expectedLength else { return nil }
        output.removeLast()
        return output
    }

    // MARK: Integers

    private static func appendBigEndian<Value: FixedWidthInteger>(_ value: Value, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    /// The caller has checked that `bytes` holds `MemoryLayout<Value>.size` bytes at `offset`.
    private static func readBigEndian<Value: FixedWidthInteger>(_ type: Value.Type, _ bytes: [UInt8], at offset: Int) -> Value {
        var value: Value = 0
        for index in offset..<(offset + MemoryLayout<Value>.size) {
            value = value << 8 | Value(bytes[index])
        }
        return value
    }
}
