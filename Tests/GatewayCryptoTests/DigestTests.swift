import Testing
@testable import GatewayCrypto

@Suite struct SHA256Tests {
    @Test(arguments: [
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        (
            "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        ),
    ])
    func matchesFIPSVectors(input: String, expected: String) {
        #expect(SHA256.hexDigest(of: input) == expected)
        #expect(SHA256.hash(Array(input.utf8)) == Hex.decode(expected))
    }

    @Test func hashesAMillionAs() {
        let input = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        #expect(Hex.encode(SHA256.hash(input)) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func nonContiguousCollectionsHashLikeArrays() {
        let bytes: [UInt8] = Array("abc".utf8)
        #expect(SHA256.hash(bytes.lazy.map { $0 }) == SHA256.hash(bytes))
        #expect(SHA256.hash(bytes[1...]) == SHA256.hash(Array("bc".utf8)))
    }
}

@Suite struct HMACSHA256Tests {
    /// RFC 4231 §4, test cases 1–7 (case 5 compares the first 128 bits, as the RFC does).
    static let rfc4231: [(key: [UInt8], data: [UInt8], mac: String)] = [
        ([UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8),
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        (Array("Jefe".utf8), Array("what do ya want for nothing?".utf8),
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        ([UInt8](repeating: 0xaa, count: 20), [UInt8](repeating: 0xdd, count: 50),
         "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
        (Array(1...25), [UInt8](repeating: 0xcd, count: 50),
         "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
        ([UInt8](repeating: 0x0c, count: 20), Array("Test With Truncation".utf8),
         "a3b6167473100ee06e0c796c2955552b"),
        ([UInt8](repeating: 0xaa, count: 131), Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        ([UInt8](repeating: 0xaa, count: 131),
         Array("This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".utf8),
         "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
    ]

    @Test(arguments: 0..<7)
    func matchesRFC4231(caseIndex: Int) {
        let vector = Self.rfc4231[caseIndex]
        let mac = HMACSHA256.authenticationCode(key: vector.key, message: vector.data)
        #expect(mac.count == 32)
        #expect(Hex.encode(mac).hasPrefix(vector.mac))
    }

    @Test func emptyKeyAndMessageAreAccepted() {
        let mac = HMACSHA256.authenticationCode(key: [], message: [UInt8]())
        #expect(Hex.encode(mac) == "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")
    }

    @Test func verificationRejectsAnyAlteredTag() {
        let key = Array("secret".utf8)
        let message = Array("cursor payload".utf8)
        let tag = HMACSHA256.authenticationCode(key: key, message: message)
        #expect(HMACSHA256.isValidAuthenticationCode(tag, key: key, message: message))
        for index in tag.indices {
            var altered = tag
            altered[index] ^= 0x01
            #expect(!HMACSHA256.isValidAuthenticationCode(altered, key: key, message: message))
        }
        #expect(!HMACSHA256.isValidAuthenticationCode(tag.dropLast(), key: key, message: message))
        #expect(!HMACSHA256.isValidAuthenticationCode(tag, key: Array("Secret".utf8), message: message))
    }
}

@Suite struct ConstantTimeEqualsTests {
    @Test func comparesContentsAndLength() {
        #expect(constantTimeEquals([UInt8](), [UInt8]()))
        #expect(constantTimeEquals([1, 2, 3] as [UInt8], [1, 2, 3] as [UInt8]))
        #expect(!constantTimeEquals([1, 2, 3] as [UInt8], [1, 2, 4] as [UInt8]))
        #expect(!constantTimeEquals([1, 2, 3] as [UInt8], [1, 2] as [UInt8]))
        #expect(!constantTimeEquals([UInt8](), [0] as [UInt8]))
        #expect(constantTimeEquals("abc".utf8, [97, 98, 99] as [UInt8]))
    }
}
