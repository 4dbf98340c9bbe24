@testable import GatewayServer
import GatewayHTTP
import GatewayTestSupport
import Testing

/// The encoder's checks of field values, which read eight bytes at a time: every forbidden byte is
/// caught wherever it sits in a word, and every allowed one passes.
@Suite struct ResponseEncoderTests {
    static func bytewiseSafe(_ value: [UInt8]) -> Bool {
        !value.contains { ($0 < 0x20 && $0 != 9) || $0 == 0x7F }
    }

    static func isSafe(_ value: [UInt8]) -> Bool {
        value.withUnsafeBufferPointer { ResponseEncoder.isSafeFieldValue($0) }
    }

    @Test func everyByteValueAtEveryPositionIsJudgedLikeTheBytewiseRule() {
        for length in [1, 7, 8, 9, 15, 16, 17, 31] {
            for position in 0..<length {
                for byte in 0...255 {
                    var value = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                    value[position] = UInt8(byte)
                    #expect(Self.isSafe(value) == Self.bytewiseSafe(value), "byte \(byte) at \(position) of \(length)")
                }
            }
        }
    }

    @Test func randomValuesAgreeWithTheBytewiseRule() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let length = Int.random(in: 0...64, using: &generator)
            // Mostly printable, so that forbidden bytes are rare and land anywhere.
            let value = (0..<length).map { _ in
                Int.random(in: 0..<20, using: &generator) == 0 ? UInt8.random(in: 0...255, using: &generator) : UInt8.random(in: 0x20...0x7E, using: &generator)
            }
            #expect(Self.isSafe(value) == Self.bytewiseSafe(value), "\(value)")
        }
    }

    @Test func aFieldWithAControlInItsValueIsNotWritten() {
        var encoder = ResponseEncoder()
        let longSafe = String(repeating: "x", count: 40)
        var headers = HTTPHeaders()
        headers.add(name: "Link", value: longSafe + "\u{7F}" + longSafe)
        headers.add(name: "X-Split", value: longSafe + "\r\nInjected: 1")
        headers.add(name: "X-Kept", value: longSafe + "\t" + longSafe + "é")
        encoder.encodeHead(HTTPResponse(status: .ok, headers: headers), bodyLength: 0, connection: .none)
        let head = String(decoding: encoder.head(), as: UTF8.self)
        #expect(!head.contains("Link:"))
        #expect(!head.contains("X-Split:") && !head.contains("Injected"))
        #expect(head.contains("X-Kept: " + longSafe + "\t" + longSafe + "é\r\n"))
    }

    /// The head is sized before it is written: heads of every size, one after another (so the
    /// storage is reused, grown, then reused smaller), come out byte for byte as built naively.
    @Test func headsOfEverySizeInAnyOrderMatchAReferenceEncoding() {
        var encoder = ResponseEncoder()
        var generator = SplitMix64(seed: 16)
        let connections: [(ResponseEncoder.ConnectionHeader, String)] = [(.none, ""), (.keepAlive, "Connection: keep-alive\r\n"), (.close, "Connection: close\r\n")]
        for round in 0..<400 {
            let code = [200, 204, 304, 101, 404, 429, 599, 299][round % 8]
            let reason = round % 5 == 0 ? "Custom \(round)" : HTTPStatus.standardReasonPhrase(for: code)
            var headers = HTTPHeaders()
            var expectedFields = ""
            for index in 0..<Int(generator.next() % 24) {
                let value = String(repeating: "v", count: Int(generator.next() % (round % 50 == 0 ? 9_000 : 120)))
                headers.add(name: "X-Field-\(index)", value: value)
                expectedFields += "X-Field-\(index): \(value)\r\n"
            }
            headers.add(name: "Content-Length", value: "999")   // the server's own fields are never taken from the response
            let bodyLength = Int(generator.next() % 3 == 0 ? generator.next() % 10 : generator.next() % 10_000_000_000)
            let (connection, connectionField) = connections[round % 3]
            encoder.encodeHead(HTTPResponse(status: HTTPStatus(code: code, reasonPhrase: reason), headers: headers), bodyLength: bodyLength, connection: connection)
            let head = String(decoding: encoder.head(), as: UTF8.self)
            let lines = head.components(separatedBy: "\r\n")
            let dateLine = lines.first { $0.hasPrefix("Date: ") } ?? "missing"
            let sendsLength = !(100..<200).contains(code) && code != 204 && code != 304
            let expected = "HTTP/1.1 \(code) \(reason)\r\n" + expectedFields + dateLine + "\r\n"
                + (sendsLength ? "Content-Length: \(bodyLength)\r\n" : "") + connectionField + "\r\n"
            #expect(head == expected, "round \(round)")
            #expect(encoder.head(from: 9) == Array(expected.utf8.dropFirst(9)))
        }
    }
}
