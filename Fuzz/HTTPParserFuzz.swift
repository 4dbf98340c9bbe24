// libFuzzer entry for HTTPRequestParser. Compiled together with Sources/GatewayHTTP/*.swift into one module
// (see scripts/fuzz-parser), so the parser's types are used without an import.
//
// The first input byte is a control byte: bit 7 selects tiny limits (so limit paths are reachable with short
// inputs), the low bits seed how the rest is split into pieces. The rest is parsed twice, whole and split, as
// a stream of pipelined requests; both runs must agree exactly, and every call must respect the contract.

private struct RequestSummary: Equatable {
    var method: String
    var target: String
    var path: String
    var query: String?
    var version: HTTPVersion
    var headers: HTTPHeaders
    var body: [UInt8]

    init(_ request: HTTPRequest) {
        method = request.method.rawValue
        target = request.target
        path = request.path
        query = request.query
        version = request.version
        headers = request.headers
        body = request.body
    }
}

private enum StreamOutcome: Equatable {
    case request(RequestSummary)
    case failure(HTTPParseError)
    case incomplete
}

private struct PieceLengths {
    var state: UInt64
    let maxLength: Int

    mutating func next() -> Int {
        guard maxLength > 1 else { return 1 }
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        mixed ^= mixed >> 31
        return 1 + Int(mixed % UInt64(maxLength))
    }
}

private func check(_ condition: Bool, _ message: StaticString) {
    if !condition { fatalError("invariant violated: \(message)") }
}

/// Properties every accepted request must have, whatever the input was.
private func checkAccepted(_ request: HTTPRequest, limits: HTTPParserLimits) {
    check(request.version == .http1_1 || request.version == .http1_0, "accepted an unsupported version")
    check(!request.method.rawValue.isEmpty && request.method.rawValue.utf8.allSatisfy(isTokenByte), "accepted a non-token method")
    check(!request.target.isEmpty && request.target.utf8.count <= limits.maxRequestTargetBytes, "accepted a bad target length")
    check(request.target.utf8.allSatisfy(isTargetByte), "accepted a target byte outside the URI grammar")
    check(request.headers.count <= limits.maxHeaderFields, "accepted more fields than allowed")
    for field in request.headers {
        check(!field.name.isEmpty && field.name.utf8.allSatisfy(isTokenByte), "accepted a non-token field name")
        check(!field.value.utf8.contains { $0 == 0 || $0 == 0x0A || $0 == 0x0D }, "accepted NUL, CR or LF in a value")
        check(field.value.utf8.first.map { !isOptionalWhitespace($0) } ?? true, "value keeps leading whitespace")
        check(field.value.utf8.last.map { !isOptionalWhitespace($0) } ?? true, "value keeps trailing whitespace")
    }
    let hosts = request.headers.values(for: "Host")
    check(hosts.count <= 1 && (request.version == .http1_0 || hosts.count == 1), "accepted a missing or repeated Host")
    let lengths = request.headers.values(for: "Content-Length")
    let hasTransferEncoding = request.headers.contains("Transfer-Encoding")
    check(lengths.count <= 1, "accepted repeated Content-Length")
    check(lengths.isEmpty || !hasTransferEncoding, "accepted Content-Length with Transfer-Encoding")
    check(!hasTransferEncoding || request.version == .http1_1, "accepted Transfer-Encoding on HTTP/1.0")
    if let length = lengths.first {
        check(length.utf8.allSatisfy(isDigit) && Int(length) == request.body.count, "body length differs from Content-Length")
    }
    if lengths.isEmpty && !hasTransferEncoding { check(request.body.isEmpty, "body without framing") }
    check(request.body.count <= limits.maxBodyBytes, "body above maxBodyBytes")
    check(limits.acceptsBodies || (request.body.isEmpty && !hasTransferEncoding), "accepted a body while refusing bodies")
}

private func parseStream(_ input: UnsafeBufferPointer<UInt8>, limits: HTTPParserLimits, pieces: inout PieceLengths) -> [StreamOutcome] {
    var parser = HTTPRequestParser(limits: limits)
    var outcomes: [StreamOutcome] = []
    var pieceStart = 0
    while pieceStart < input.count {
        let pieceEnd = min(input.count, pieceStart + pieces.next())
        var offset = pieceStart
        var callsInPiece = 0
        while offset < pieceEnd {
            callsInPiece += 1
            // Each call either consumes the whole piece or completes a request with at least one byte.
            check(callsInPiece <= pieceEnd - pieceStart + 1, "parse made no progress")
            let remaining = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(input)[offset..<pieceEnd])
            do {
                let (consumed, request) = try parser.parse(remaining)
                check(consumed >= 0 && consumed <= remaining.count, "consumed outside the given bytes")
                if let request {
                    check(consumed > 0, "request completed without consuming a byte")
                    check(parser.isIdle, "parser not idle right after a complete request")
                    check(!parser.expectsContinue, "expectsContinue survived its message")
                    checkAccepted(request, limits: limits)
                    outcomes.append(.request(RequestSummary(request)))
                } else {
                    check(consumed == remaining.count, "returned nil without consuming everything")
                }
                offset += consumed
            } catch {
                check([400, 413, 414, 431, 501, 505].contains(error.status.code), "unexpected status")
                check(!parser.isIdle, "failed parser claims to be idle")
                // Sticky: neither more input nor an empty buffer brings it back.
                do {
                    _ = try parser.parse(remaining)
                    check(false, "parser recovered after an error")
                } catch let again {
                    check(again == error, "a later call threw a different error")
                }
                do {
                    _ = try parser.parse(UnsafeRawBufferPointer(start: nil, count: 0))
                    check(false, "parser recovered after an error on empty input")
                } catch let again {
                    check(again == error, "empty input threw a different error")
                }
                outcomes.append(.failure(error))
                return outcomes
            }
        }
        pieceStart = pieceEnd
    }
    if !parser.isIdle { outcomes.append(.incomplete) }
    return outcomes
}

private let tinyLimits = HTTPParserLimits(
    maxRequestTargetBytes: 32, maxHeaderBytes: 256, maxHeaderFields: 6, maxBodyBytes: 64, maxMethodBytes: 8
)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPRequestParser(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else { return 0 }
    let control = data[0]
    let input = UnsafeBufferPointer(start: data + 1, count: size - 1)
    var limits = control & 0x80 != 0 ? tinyLimits : HTTPParserLimits()
    // Bit 6: a server that takes no bodies (as the gateway runs it).
    limits.acceptsBodies = control & 0x40 == 0
    var whole = PieceLengths(state: 0, maxLength: Int.max)
    let expected = parseStream(input, limits: limits, pieces: &whole)
    // Low six bits: 0 feeds one byte at a time, otherwise seeded pieces of 1...(n+1) bytes.
    let maxPiece = Int(control & 0x3F) + 1
    var split = PieceLengths(state: UInt64(control), maxLength: maxPiece)
    let actual = parseStream(input, limits: limits, pieces: &split)
    check(actual == expected, "split input parsed differently from whole input")
    return 0
}
