import GatewayHTTP
import GatewayTestSupport

/// Everything observable about one parsed request, comparable across differently split feeds.
struct ParsedRequest: Equatable, Sendable, CustomStringConvertible {
    var method: String
    var target: String
    var path: String
    var query: String?
    var version: HTTPVersion
    var headers: [[String]]
    var body: [UInt8]

    init(_ request: HTTPRequest) {
        method = request.method.rawValue
        target = request.target
        path = request.path
        query = request.query
        version = request.version
        headers = request.headers.map { [$0.name, $0.value] }
        body = request.body
    }

    var description: String {
        "\(method) \(target) \(version) headers=\(headers) body=\(String(decoding: body, as: UTF8.self).debugDescription)"
    }
}

/// What happened to one message of a stream.
enum ParseOutcome: Equatable, Sendable, CustomStringConvertible {
    case request(ParsedRequest)
    case failure(status: Int, reason: String)
    /// Input ended in the middle of a message.
    case incomplete

    var description: String {
        switch self {
        case .request(let request): "request(\(request))"
        case .failure(let status, let reason): "failure(\(status) \(reason))"
        case .incomplete: "incomplete"
        }
    }
}

/// Feeds `input` to a fresh parser in pieces cut at `cuts` (sorted offsets), parsing pipelined requests
/// with `consumed`, and records every outcome until the input ends or the parser fails.
func parseStream(_ input: [UInt8], cuts: [Int], limits: HTTPParserLimits = HTTPParserLimits()) -> [ParseOutcome] {
    var parser = HTTPRequestParser(limits: limits)
    var outcomes: [ParseOutcome] = []
    var pieceStart = 0
    for pieceEnd in cuts + [input.count] where pieceEnd > pieceStart {
        var offset = pieceStart
        while offset < pieceEnd {
            do {
                let (consumed, request) = try input[offset..<pieceEnd].withUnsafeBytes { buffer in
                    Result { () throws(HTTPParseError) in try parser.parse(buffer) }
                }.get()
                precondition(consumed <= pieceEnd - offset, "consumed more than it was given")
                if let request {
                    outcomes.append(.request(ParsedRequest(request)))
                } else {
                    precondition(consumed == pieceEnd - offset, "returned no request without consuming everything")
                }
                offset += consumed
            } catch {
                outcomes.append(.failure(status: error.status.code, reason: error.reason))
                return outcomes
            }
        }
        pieceStart = pieceEnd
    }
    if !parser.isIdle { outcomes.append(.incomplete) }
    return outcomes
}

/// The same stream parsed whole, byte by byte, at every two-piece split and at seeded random splits.
/// Returns the whole-buffer outcomes and a description of the first split that disagreed, if any.
func parseUnderEverySplit(_ input: [UInt8], limits: HTTPParserLimits = HTTPParserLimits(), seed: UInt64 = 0x5EED) -> (outcomes: [ParseOutcome], disagreement: String?) {
    let whole = parseStream(input, cuts: [], limits: limits)
    let byteByByte = parseStream(input, cuts: Array(0..<input.count), limits: limits)
    if byteByByte != whole { return (whole, "byte by byte: \(byteByByte)") }
    for cut in 0...input.count {
        let split = parseStream(input, cuts: [cut], limits: limits)
        if split != whole { return (whole, "split at \(cut): \(split)") }
    }
    var generator = SplitMix64(seed: seed)
    for _ in 0..<20 {
        var cuts: [Int] = []
        var position = 0
        while position < input.count {
            position += Int.random(in: 1...max(1, min(16, input.count)), using: &generator)
            if position < input.count { cuts.append(position) }
        }
        let split = parseStream(input, cuts: cuts, limits: limits)
        if split != whole { return (whole, "random cuts \(cuts): \(split)") }
    }
    return (whole, nil)
}

extension Array where Element == UInt8 {
    init(http text: String) { self = Array(text.utf8) }
}
