@testable import GatewayCache
import GatewayTestSupport
import Testing

struct SharedCacheEnvelopeTests {
    @Test func smallBodiesRoundTripUncompressed() throws {
        for body in [[], Array("{\"id\":\"e1\"}".utf8), (0...255).map { UInt8($0) }] {
            let envelope = try #require(SharedCacheEnvelope.encode(
                body: body, freshForNanoseconds: 5_000, staleForNanoseconds: 9_000, compressionThreshold: 1024))
            #expect(envelope[1] == 0)
            #expect(envelope.count == SharedCacheEnvelope.headerBytes + body.count)
            #expect(SharedCacheEnvelope.decode(envelope) == .init(body: body, freshForNanoseconds: 5_000, staleForNanoseconds: 9_000))
        }
    }

    @Test func bodiesFromTheThresholdOnAreDeflatedWhenThatSavesBytes() throws {
        let compressible = Array(String(repeating: "{\"status\":\"finished\",\"id\":\"abc\"},", count: 40).utf8)
        #expect(compressible.count >= 1024)
        let envelope = try #require(SharedCacheEnvelope.encode(
            body: compressible, freshForNanoseconds: 1, staleForNanoseconds: 2, compressionThreshold: 1024))
        #expect(envelope[1] == SharedCacheEnvelope.deflatedFlag)
        #expect(envelope.count < compressible.count / 4)
        #expect(SharedCacheEnvelope.decode(envelope)?.body == compressible)

        // Just under the threshold: stored as is.
        let under = Array(compressible.prefix(1023))
        let plain = try #require(SharedCacheEnvelope.encode(body: under, freshForNanoseconds: 1, staleForNanoseconds: 2, compressionThreshold: 1024))
        #expect(plain[1] == 0)

        // Incompressible bytes above the threshold are not deflated (it would not save anything).
        var random = SplitMix64(seed: 7)
        let noise = (0..<4096).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        let stored = try #require(SharedCacheEnvelope.encode(body: noise, freshForNanoseconds: 1, staleForNanoseconds: 2, compressionThreshold: 1024))
        #expect(stored[1] == 0)
        #expect(SharedCacheEnvelope.decode(stored)?.body == noise)
    }

    /// Redis data is input: every truncation and every single-byte change of an envelope, plain or
    /// deflated, decodes to nothing rather than to another entry (or a crash).
    @Test func everyTruncationAndEveryByteChangeIsRejected() throws {
        let bodies = [Array("{\"id\":\"e1\",\"status\":\"running\"}".utf8), Array(String(repeating: "abcdefgh", count: 300).utf8)]
        for body in bodies {
            let envelope = try #require(SharedCacheEnvelope.encode(
                body: body, freshForNanoseconds: 1_000, staleForNanoseconds: 2_000, compressionThreshold: 1024))
            for length in 0..<envelope.count {
                #expect(SharedCacheEnvelope.decode(Array(envelope.prefix(length))) == nil, "truncated to \(length)")
            }
            for index in envelope.indices {
                for flip: UInt8 in [0x01, 0x80, 0xFF] {
                    var corrupted = envelope
                    corrupted[index] ^= flip
                    #expect(SharedCacheEnvelope.decode(corrupted) == nil, "byte \(index) ^ \(flip)")
                }
            }
            #expect(SharedCacheEnvelope.decode(envelope + [0]) == nil)
        }
    }

    @Test func inconsistentWindowsAndOversizeDeclaredLengthsAreRejected() throws {
        // fresh beyond stale is clamped when writing; a stored one (checksum recomputed) is refused.
        let envelope = try #require(SharedCacheEnvelope.encode(body: [1, 2, 3], freshForNanoseconds: 10, staleForNanoseconds: 5, compressionThreshold: 1024))
        #expect(SharedCacheEnvelope.decode(envelope)?.freshForNanoseconds == 5)
        #expect(SharedCacheEnvelope.inflate([1, 2, 3][...], expectedLength: 3) == nil)
        let deflated = try #require(SharedCacheEnvelope.deflate(Array(repeating: 7, count: 2000)))
        #expect(SharedCacheEnvelope.inflate(deflated[...], expectedLength: 1999) == nil)
        #expect(SharedCacheEnvelope.inflate(deflated[...], expectedLength: 2001) == nil)
        #expect(SharedCacheEnvelope.inflate(deflated[...], expectedLength: 2000) == Array(repeating: 7, count: 2000))
    }
}
