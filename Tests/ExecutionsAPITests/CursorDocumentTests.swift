@testable import ExecutionsAPI
import Foundation
import GatewayTestSupport
import GatewayProviders
import Testing

/// The OpenAPI document's cursor schema describes exactly the cursors the gateway can accept: its
/// pattern admits every cursor the codec seals and its `maxLength` is the codec's own limit, so a
/// schema-valid cursor is never refused for its shape or length (only for its signature).
@Suite struct CursorDocumentTests {
    static let document = (try? String(
        contentsOf: URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("openapi/gateway.yaml"),
        encoding: .utf8
    )) ?? ""

    /// The `pattern` and `maxLength` of the `cursor` parameter and of `page.nextCursor`.
    static func cursorSchemas() -> [(pattern: String, maxLength: Int?)] {
        let lines = document.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        return lines.indices.compactMap { index -> (String, Int?)? in
            let line = lines[index].trimmingCharacters(in: .whitespaces)
            guard line.hasPrefix("pattern: '^eyJ"), line.hasSuffix("'") else { return nil }
            let pattern = String(line.dropFirst("pattern: '".count).dropLast())
            let maxLength = lines[index - 1].trimmingCharacters(in: .whitespaces).split(separator: " ").last.flatMap { Int($0) }
            return (pattern, maxLength)
        }
    }

    @Test func sealedCursorsMatchTheDocumentedPatternAndLength() throws {
        let schemas = Self.cursorSchemas()
        try #require(schemas.count == 2, "the cursor parameter and page.nextCursor")
        let codec = CursorCodec(secret: "document-secret")
        var random = SplitMix64(seed: 16)
        for round in 0..<200 {
            var query = ListQuery(limit: 1 + round % 100, allowPartial: round % 2 == 0)
            if round % 3 == 0 { query.filter.searchTerms = [String(repeating: "é", count: round % 40 + 1)] }
            let providers = (0..<(1 + round % 3)).map { index in
                (name: "p\(index)", state: ProviderCursorState(
                    position: round % 4 == 0 ? nil : ProviderPosition(
                        last: ExecutionSortKey(createdAt: Timestamp(nanosecondsSinceEpoch: Int64.random(in: .min ... .max, using: &random)),
                                               id: String(repeating: "x", count: round % 160 + 1)),
                        offsetHint: round % 5 == 0 ? nil : Int.random(in: 0...Int.max, using: &random)),
                    exhausted: round % 7 == 0))
            }
            let cursor = codec.seal(CursorPayload(query: query, providers: providers))
            for schema in schemas {
                let pattern = try Regex(schema.pattern)
                #expect(cursor.wholeMatch(of: pattern) != nil, "\(cursor) does not match \(schema.pattern)")
                #expect(schema.maxLength == CursorCodec.maximumIssuedLength)
            }
            #expect(try codec.open(cursor).get() == CursorPayload(query: query, providers: providers))
        }
    }

    @Test func aCursorLongerThanTheDocumentedMaximumIsRefused() {
        let codec = CursorCodec(secret: "document-secret")
        let long = "eyJ" + String(repeating: "A", count: CursorCodec.maximumIssuedLength) + "." + String(repeating: "A", count: 43)
        #expect((try? codec.open(long).get()) == nil)
    }
}
