import GatewayTestSupport
import Testing
@testable import GatewayCrypto

@Suite struct Base64URLTests {
    /// RFC 4648 §10 vectors, unpadded.
    @Test(arguments: [
        ("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"),
        ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE"), ("foobar", "Zm9vYmFy"),
    ])
    func encodesRFC4648Vectors(plain: String, encoded: String) {
        #expect(Base64URL.encode(Array(plain.utf8)) == encoded)
        #expect(Base64URL.decode(encoded) == Array(plain.utf8))
    }

    @Test func usesTheURLSafeAlphabet() {
        #expect(Base64URL.encode([0xfb, 0xff, 0xbf]) == "-_-_")
        #expect(Base64URL.decode("-_-_") == [0xfb, 0xff, 0xbf])
    }

    @Test func roundTripsEveryLengthAndByteValue() {
        var generator = SplitMix64(seed: 42)
        for length in 0..<200 {
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            let encoded = Base64URL.encode(bytes)
            #expect(!encoded.contains("="))
            #expect(Base64URL.decode(encoded) == bytes)
        }
        let allBytes = (0...255).map(UInt8.init)
        #expect(Base64URL.decode(Base64URL.encode(allBytes)) == allBytes)
    }

    @Test(arguments: [
        "Zg==", "Zm8=", "Zg=", "Zm9v====",      // padding
        "Zm9v+A", "Zm/v", "Zm 9v", "Zm9v\n", "Zm9vé", "Zm\u{0}v",  // outside the alphabet
        "Z", "Zm9vY",                          // length 1 mod 4
        "Zh", "Zm9", "Zm9vYh", "Zm9vYmF",      // non-zero trailing bits
    ])
    func rejectsNonCanonicalInput(encoded: String) {
        #expect(Base64URL.decode(encoded) == nil)
    }
}

@Suite struct HexTests {
    @Test func encodesLowercaseAndDecodesEitherCase() {
        #expect(Hex.encode([0x00, 0x0f, 0xa5, 0xff]) == "000fa5ff")
        #expect(Hex.encode([UInt8]()) == "")
        #expect(Hex.decode("000fa5ff") == [0x00, 0x0f, 0xa5, 0xff])
        #expect(Hex.decode("000FA5FF") == [0x00, 0x0f, 0xa5, 0xff])
        #expect(Hex.decode("") == [])
    }

    @Test(arguments: ["0", "abc", "0g", "zz", " 00", "00 ", "0x00", "é0"])
    func rejectsMalformedHex(text: String) {
        #expect(Hex.decode(text) == nil)
    }
}

