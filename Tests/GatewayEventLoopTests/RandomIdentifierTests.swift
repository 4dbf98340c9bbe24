import Testing
@testable import GatewayEventLoop

@Suite struct RandomIdentifierTests {
    @Test(arguments: [8, 16, 32])
    func identifiersAreLowercaseHexOfTheAskedLength(_ byteCount: Int) {
        for _ in 0..<500 {
            let identifier = RandomIdentifier.hex(byteCount: byteCount)
            #expect(identifier.utf8.count == byteCount * 2)
            #expect(identifier.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
            #expect(identifier.utf8.contains { $0 != 0x30 }, "never all zeros")
        }
    }

    @Test func identifiersDoNotRepeatAcrossPoolRefills() {
        // 20,000 × 16 bytes spans about 80 refills of the 4 KiB pool.
        var seen = Set<String>()
        for _ in 0..<20_000 { seen.insert(RandomIdentifier.hex(byteCount: 16)) }
        #expect(seen.count == 20_000)
    }

    @Test func bytesAreSpreadOverEveryHexDigit() {
        var counts = [Int](repeating: 0, count: 16)
        for _ in 0..<2_000 {
            for byte in RandomIdentifier.hex(byteCount: 16).utf8 {
                counts[byte <= 0x39 ? Int(byte - 0x30) : Int(byte - 0x61 + 10)] += 1
            }
        }
        // 64,000 digits, 4,000 expected per digit; a broken source (zeros, a stuck byte) is far off.
        #expect(counts.allSatisfy { (3_400...4_600).contains($0) }, "\(counts)")
    }

    @Test func concurrentCallersNeverShareBytes() async {
        let identifiers = await withTaskGroup(of: [String].self) { group in
            for _ in 0..<8 {
                group.addTask { (0..<2_000).map { _ in RandomIdentifier.hex(byteCount: 16) } }
            }
            var all: [String] = []
            for await batch in group { all += batch }
            return all
        }
        #expect(Set(identifiers).count == identifiers.count)
    }

    @Test func kernelRandomnessFillsAWholeBufferLargerThanOneGetrandomGuarantee() {
        // getrandom returns at most 256 bytes uninterrupted; 64 KiB may come back in parts.
        var bytes = [UInt8](repeating: 0, count: 65_536)
        bytes.withUnsafeMutableBytes { SystemCall.fillRandom($0) }
        // Any 1 KiB left unfilled would be all zeros; random data has a zero byte 1 time in 256.
        for chunk in stride(from: 0, to: bytes.count, by: 1_024) {
            #expect(bytes[chunk..<(chunk + 1_024)].contains { $0 != 0 }, "bytes from \(chunk) were not filled")
        }
    }
}

@Suite struct SecureRandomBytesTests {
    @Test func returnsTheRequestedCountOfNonConstantBytes() {
        #expect(secureRandomBytes(count: 0).isEmpty)
        #expect(secureRandomBytes(count: -5).isEmpty)
        let first = secureRandomBytes(count: 64)
        let second = secureRandomBytes(count: 64)
        #expect(first.count == 64)
        // 2^-512 chance of a false failure: two draws agreeing means the source is broken.
        #expect(first != second)
        #expect(Set(first).count > 1)
    }
}
