// A strict, resumable HTTP/1.1 request parser (RFC 9112). It rejects anything outside the grammar instead of
// repairing it, because every repair is a place where two parsers in a chain can disagree (request smuggling).
//
// All state lives in the struct, so input may arrive split at any byte: the parser consumes what it is given,
// remembers where it stopped and continues on the next call. Only the head (bounded by maxHeaderBytes) and the
// body (bounded by maxBodyBytes) are accumulated.

public struct HTTPParserLimits: Sendable, Equatable {
    /// Longest accepted request-target; a longer one is answered with 414.
    public var maxRequestTargetBytes: Int
    /// Request line plus header section (and, for chunked bodies, the trailer section); beyond it 431.
    public var maxHeaderBytes: Int
    /// Header fields plus trailer fields; more is answered with 431.
    public var maxHeaderFields: Int
    /// Decoded body size; a larger Content-Length or chunked total is answered with 413.
    public var maxBodyBytes: Int
    /// Longest method token; a longer one cannot be a method we implement, so 501.
    public var maxMethodBytes: Int
    /// False for a server that takes no request bodies: a head announcing one (`Content-Length`
    /// above 0, or `Transfer-Encoding`) is refused with 413 from the head alone, before any of the
    /// body is read or a `100 Continue` could be owed.
    public var acceptsBodies: Bool

    // 32 KiB of target: every query parameter at its documented maximum at once, percent-encoded
    // at the worst (12 bytes per 4-byte character), with a cursor, fits. The head holds that target
    // and 16 KiB of header fields.
    public init(
        maxRequestTargetBytes: Int = 32_768,
        maxHeaderBytes: Int = 49_152,
        maxHeaderFields: Int = 100,
        maxBodyBytes: Int = 65536,
        maxMethodBytes: Int = 24,
        acceptsBodies: Bool = true
    ) {
        self.maxRequestTargetBytes = maxRequestTargetBytes
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderFields = maxHeaderFields
        self.maxBodyBytes = maxBodyBytes
        self.maxMethodBytes = maxMethodBytes
        self.acceptsBodies = acceptsBodies
    }
}

public struct HTTPParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// 400, 413, 414, 431, 501 or 505.
    public let status: HTTPStatus
    /// Short and fixed (never contains input bytes), so it is safe to echo in a response body or a log.
    public let reason: String

    public init(status: HTTPStatus, reason: String) {
        self.status = status
        self.reason = reason
    }

    public var description: String { "\(status.code) \(reason)" }

    static func badRequest(_ reason: String) -> HTTPParseError { HTTPParseError(status: .badRequest, reason: reason) }
}

public struct HTTPRequestParser: Sendable {
    /// RFC 9112 §2.2 asks servers to ignore at least one empty line before a request; a few are tolerated,
    /// an endless stream of them is not.
    static let maxLeadingEmptyLines = 16
    /// Chunk extensions carry nothing we use; their total per message is bounded (cf. CVE-2024-22019).
    static let maxChunkExtensionBytes = 4096
    /// Leading zeros are legal but a size needing more hex digits than this is an attack, not a body.
    static let maxChunkSizeDigits = 16

    @usableFromInline
    enum State: Sendable {
        case messageStart
        case leadingEmptyLineFeed
        case method
        case target
        case version
        case requestLineFeed
        case fieldStart
        case fieldName
        case fieldValueStart
        case fieldValue
        case fieldLineFeed
        case sectionEndLineFeed
        case fixedLengthBody
        case chunkSize
        case chunkSizeWhitespace
        case chunkExtensionNameStart
        case chunkExtensionName
        case chunkExtensionAfterName
        case chunkExtensionValueStart
        case chunkExtensionTokenValue
        case chunkExtensionQuotedValue
        case chunkExtensionQuotedPair
        case chunkExtensionAfterValue
        case chunkSizeLineFeed
        case chunkData
        case chunkDataCarriageReturn
        case chunkDataLineFeed

        /// States whose bytes count toward maxHeaderBytes: the head and the trailer section.
        var countsTowardHeaderLimit: Bool {
            switch self {
            case .method, .target, .version, .requestLineFeed, .fieldStart, .fieldName, .fieldValueStart,
                 .fieldValue, .fieldLineFeed, .sectionEndLineFeed:
                true
            default:
                false
            }
        }
    }

    /// Offsets into `head` of one header field; values already exclude leading and trailing whitespace.
    struct FieldRange: Sendable {
        var nameStart: Int
        var nameEnd: Int
        var valueStart: Int
        var valueEnd: Int
    }

    let limits: HTTPParserLimits
    // Visible to inlinable code so that the server's per-request `isIdle` checks read two fields
    // instead of copying the whole parser (with its buffers) into an opaque getter.
    @usableFromInline var state: State = .messageStart
    @usableFromInline var failure: HTTPParseError?

    var emptyLinesSkipped = 0
    var headerBytes = 0
    var fieldCount = 0
    var readingTrailers = false

    /// Method, target and field bytes of the current head, back to back; `fields` indexes into it.
    var head: [UInt8] = []
    var methodEnd = 0
    var targetEnd = 0
    var versionPosition = 0
    var versionMajor = 0
    var versionMinor = 0
    var fields: [FieldRange] = []
    var currentField = FieldRange(nameStart: 0, nameEnd: 0, valueStart: 0, valueEnd: 0)

    /// Set when the head is complete and validated; the request is built when the message is.
    var targetForm = RequestTargetForm.origin
    var body: [UInt8] = []
    var remainingBodyBytes = 0
    var chunkSizeDigits = 0
    var chunkExtensionBytes = 0
    @usableFromInline var continueExpected = false

    public init(limits: HTTPParserLimits = HTTPParserLimits()) {
        self.limits = limits
    }

    /// True when no byte of a next message has been consumed. Complete empty lines before a request line are
    /// ignored (RFC 9112 §2.2) and leave the parser idle; a pending CR does not.
    @inlinable public var isIdle: Bool { failure == nil && state == .messageStart }

    /// True once the head of the current message is complete, it carried `Expect: 100-continue` on HTTP/1.1
    /// and a body is still to come. Stays true until that message is returned; the server sends `100 Continue`
    /// at most once per message.
    @inlinable public var expectsContinue: Bool { continueExpected }

    /// Consumes bytes from the start of `bytes`. Stops right after the end of one complete request and
    /// returns it with the number of bytes consumed; with nil the parser consumed everything it was given
    /// and needs more. Call again with the unconsumed remainder for pipelined requests. Once it throws,
    /// every later call throws the same error (never resynchronise).
    public mutating func parse(_ bytes: UnsafeRawBufferPointer) throws(HTTPParseError) -> (consumed: Int, request: HTTPRequest?) {
        if let failure { throw failure }
        // Raw bytes are read as UInt8, which every byte pattern is; no other type is ever bound here.
        let input = UnsafeBufferPointer<UInt8>(start: bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), count: bytes.count)
        do {
            return try consume(input)
        } catch {
            failure = error
            throw error
        }
    }

    // MARK: - The state machine

    private mutating func consume(_ bytes: UnsafeBufferPointer<UInt8>) throws(HTTPParseError) -> (consumed: Int, request: HTTPRequest?) {
        var index = 0
        let end = bytes.count
        while index < end {
            let iterationStart = index
            let countsTowardHeaderLimit = state.countsTowardHeaderLimit
            // Inside the head no state may read past the remaining header budget, so an oversized head is
            // rejected at the first byte beyond the limit no matter how the input was split.
            var limit = end
            if countsTowardHeaderLimit {
                let budget = limits.maxHeaderBytes - headerBytes
                guard budget > 0 else {
                    throw HTTPParseError(
                        status: .requestHeaderFieldsTooLarge,
                        reason: readingTrailers ? "trailer section too large" : "header section too large"
                    )
                }
                limit = min(end, index + budget)
            }

            switch state {
            case .messageStart:
                let byte = bytes[index]
                if byte == ASCII.carriageReturn {
                    state = .leadingEmptyLineFeed
                    index += 1
                } else if byte == ASCII.lineFeed {
                    throw .badRequest("bare LF")
                } else {
                    state = .method
                }

            case .leadingEmptyLineFeed:
                guard bytes[index] == ASCII.lineFeed else { throw .badRequest("bare CR") }
                index += 1
                emptyLinesSkipped += 1
                guard emptyLinesSkipped <= Self.maxLeadingEmptyLines else {
                    throw .badRequest("too many empty lines before request line")
                }
                state = .messageStart

            case .method:
                index = try scanMethod(bytes, from: index, limit: limit)

            case .target:
                index = try scanTarget(bytes, from: index, limit: limit)

            case .version:
                try advanceVersion(bytes[index])
                index += 1

            case .requestLineFeed:
                guard bytes[index] == ASCII.lineFeed else { throw .badRequest("bare CR") }
                index += 1
                guard versionMajor == 1 && (versionMinor == 1 || versionMinor == 0) else {
                    throw HTTPParseError(status: .httpVersionNotSupported, reason: "HTTP version not supported")
                }
                state = .fieldStart

            case .fieldStart:
                try startField(bytes[index])
                if state == .sectionEndLineFeed { index += 1 }

            case .fieldName:
                index = try scanFieldName(bytes, from: index, limit: limit)

            case .fieldValueStart:
                while index < limit && isOptionalWhitespace(bytes[index]) { index += 1 }
                if index < limit {
                    currentField.valueStart = head.count
                    currentField.valueEnd = head.count
                    state = .fieldValue
                }

            case .fieldValue:
                index = try scanFieldValue(bytes, from: index, limit: limit)

            case .fieldLineFeed:
                guard bytes[index] == ASCII.lineFeed else { throw .badRequest("bare CR") }
                index += 1
                if !readingTrailers { fields.append(currentField) }
                state = .fieldStart

            case .sectionEndLineFeed:
                guard bytes[index] == ASCII.lineFeed else { throw .badRequest("bare CR") }
                index += 1
                if readingTrailers {
                    return (index, completeMessage())
                }
                if try !finishHead() {
                    return (index, completeMessage())
                }

            case .fixedLengthBody:
                let count = min(remainingBodyBytes, end - index)
                body.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[index..<(index + count)]))
                index += count
                remainingBodyBytes -= count
                if remainingBodyBytes == 0 {
                    return (index, completeMessage())
                }

            case .chunkSize, .chunkSizeWhitespace, .chunkExtensionNameStart, .chunkExtensionName,
                 .chunkExtensionAfterName, .chunkExtensionValueStart, .chunkExtensionTokenValue,
                 .chunkExtensionQuotedValue, .chunkExtensionQuotedPair, .chunkExtensionAfterValue:
                try advanceChunkSizeLine(bytes[index])
                index += 1

            case .chunkSizeLineFeed:
                guard bytes[index] == ASCII.lineFeed else { throw .badRequest("bare CR in chunk size line") }
                index += 1
                try startChunkData()

            case .chunkData:
                let count = min(remainingBodyBytes, end - index)
                body.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[index..<(index + count)]))
                index += count
                remainingBodyBytes -= count
                if remainingBodyBytes == 0 { state = .chunkDataCarriageReturn }

            case .chunkDataCarriageReturn:
                guard bytes[index] == ASCII.carriageReturn else { throw .badRequest("chunk data not followed by CRLF") }
                index += 1
                state = .chunkDataLineFeed

            case .chunkDataLineFeed:
                guard bytes[index] == ASCII.lineFeed else { throw .badRequest("chunk data not followed by CRLF") }
                index += 1
                startChunkSizeLine()
            }

            if countsTowardHeaderLimit { headerBytes += index - iterationStart }
        }
        return (index, nil)
    }

    // MARK: Request line
    //
    // The scanners are kept out of line on purpose: inlined into `consume` they made it too large for the
    // optimizer to inline the byte-class checks into their loops, which cost about a third of the throughput.

    @inline(never)
    private mutating func scanMethod(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, limit: Int) throws(HTTPParseError) -> Int {
        var index = start
        while index < limit {
            let byte = bytes[index]
            if isTokenByte(byte) {
                guard head.count < limits.maxMethodBytes else {
                    throw HTTPParseError(status: .notImplemented, reason: "method too long")
                }
                head.append(byte)
                index += 1
            } else if byte == ASCII.space {
                guard !head.isEmpty else { throw .badRequest("missing method") }
                methodEnd = head.count
                state = .target
                return index + 1
            } else {
                throw .badRequest("invalid character in method")
            }
        }
        return index
    }

    @inline(never)
    private mutating func scanTarget(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, limit: Int) throws(HTTPParseError) -> Int {
        var index = start
        let room = limits.maxRequestTargetBytes - (head.count - methodEnd)
        while index < limit, isTargetByte(bytes[index]) {
            guard index - start < room else {
                throw HTTPParseError(status: .uriTooLong, reason: "request target too long")
            }
            index += 1
        }
        head.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index]))
        guard index < limit else { return index }
        switch bytes[index] {
        case ASCII.space:
            guard head.count > methodEnd else { throw .badRequest("empty request target") }
            targetEnd = head.count
            targetForm = try classifyRequestTarget(head[methodEnd..<targetEnd], method: head[0..<methodEnd])
            versionPosition = 0
            state = .version
            return index + 1
        case ASCII.hash:
            throw .badRequest("fragment in request target")
        default:
            throw .badRequest("invalid character in request target")
        }
    }

    @inline(never)
    private mutating func advanceVersion(_ byte: UInt8) throws(HTTPParseError) {
        let prefix: StaticString = "HTTP/"
        switch versionPosition {
        case 0..<5:
            let expected = prefix.withUTF8Buffer { $0[versionPosition] }
            guard byte == expected else { throw .badRequest("malformed HTTP version") }
        case 5:
            guard isDigit(byte) else { throw .badRequest("malformed HTTP version") }
            versionMajor = Int(byte - ASCII.zero)
        case 6:
            guard byte == ASCII.dot else { throw .badRequest("malformed HTTP version") }
        case 7:
            guard isDigit(byte) else { throw .badRequest("malformed HTTP version") }
            versionMinor = Int(byte - ASCII.zero)
        default:
            guard byte == ASCII.carriageReturn else {
                throw .badRequest(byte == ASCII.lineFeed ? "bare LF" : "malformed HTTP version")
            }
            state = .requestLineFeed
        }
        versionPosition += 1
    }

    // MARK: Field lines (header and trailer sections)

    @inline(never)
    private mutating func startField(_ byte: UInt8) throws(HTTPParseError) {
        if byte == ASCII.carriageReturn {
            state = .sectionEndLineFeed
        } else if isTokenByte(byte) {
            fieldCount += 1
            guard fieldCount <= limits.maxHeaderFields else {
                throw HTTPParseError(status: .requestHeaderFieldsTooLarge, reason: "too many header fields")
            }
            currentField.nameStart = head.count
            state = .fieldName
        } else if byte == ASCII.lineFeed {
            throw .badRequest("bare LF")
        } else if isOptionalWhitespace(byte) {
            throw .badRequest(fieldCount == 0 ? "whitespace before first header field" : "obsolete line folding")
        } else if byte == ASCII.colon {
            throw .badRequest("empty header field name")
        } else {
            throw .badRequest("invalid character in header field name")
        }
    }

    @inline(never)
    private mutating func scanFieldName(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, limit: Int) throws(HTTPParseError) -> Int {
        var index = start
        while index < limit && isTokenByte(bytes[index]) { index += 1 }
        if !readingTrailers { head.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index])) }
        guard index < limit else { return index }
        let byte = bytes[index]
        if byte == ASCII.colon {
            currentField.nameEnd = head.count
            state = .fieldValueStart
            return index + 1
        }
        if isOptionalWhitespace(byte) { throw .badRequest("whitespace between header field name and colon") }
        if byte == ASCII.carriageReturn || byte == ASCII.lineFeed { throw .badRequest("header field without colon") }
        throw .badRequest("invalid character in header field name")
    }

    @inline(never)
    private mutating func scanFieldValue(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, limit: Int) throws(HTTPParseError) -> Int {
        let index = fieldValueEnd(in: bytes, from: start, to: limit)
        var contentEnd = index
        while contentEnd > start && isOptionalWhitespace(bytes[contentEnd - 1]) { contentEnd -= 1 }
        if !readingTrailers && index > start {
            head.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index]))
            // Trailing whitespace is stored but left outside the value's range (when this part of
            // the value has anything else; a part of only whitespace leaves the range as it was).
            if contentEnd > start { currentField.valueEnd = head.count - (index - contentEnd) }
        }
        guard index < limit else { return index }
        switch bytes[index] {
        case ASCII.carriageReturn:
            state = .fieldLineFeed
            return index + 1
        case ASCII.lineFeed:
            throw .badRequest("bare LF")
        case 0:
            throw .badRequest("NUL in header field value")
        default:
            throw .badRequest("control character in header field value")
        }
    }

    // MARK: Chunked body (RFC 9112 §7.1)

    mutating func startChunkSizeLine() {
        state = .chunkSize
        remainingBodyBytes = 0
        chunkSizeDigits = 0
    }

    @inline(never)
    private mutating func advanceChunkSizeLine(_ byte: UInt8) throws(HTTPParseError) {
        if state != .chunkSize {
            chunkExtensionBytes += 1
            guard chunkExtensionBytes <= Self.maxChunkExtensionBytes else {
                throw .badRequest("chunk extensions too long")
            }
        }
        let endsLine = byte == ASCII.carriageReturn
        switch state {
        case .chunkSize:
            if let digit = hexValue(byte) {
                chunkSizeDigits += 1
                guard chunkSizeDigits <= Self.maxChunkSizeDigits, remainingBodyBytes <= (Int.max - Int(digit)) / 16 else {
                    throw .badRequest("chunk size overflow")
                }
                remainingBodyBytes = remainingBodyBytes * 16 + Int(digit)
                return
            }
            guard chunkSizeDigits > 0 else { throw .badRequest("invalid chunk size") }
            if endsLine {
                state = .chunkSizeLineFeed
            } else if byte == ASCII.semicolon {
                chunkExtensionBytes += 1
                state = .chunkExtensionNameStart
            } else if isOptionalWhitespace(byte) {
                chunkExtensionBytes += 1
                state = .chunkSizeWhitespace
            } else {
                throw .badRequest("invalid chunk size")
            }
        case .chunkSizeWhitespace:
            // BWS before ";" only; whitespace may not end the line or separate digits.
            if byte == ASCII.semicolon {
                state = .chunkExtensionNameStart
            } else if !isOptionalWhitespace(byte) {
                throw .badRequest("invalid chunk size")
            }
        case .chunkExtensionNameStart:
            if isTokenByte(byte) {
                state = .chunkExtensionName
            } else if !isOptionalWhitespace(byte) {
                throw .badRequest("invalid chunk extension")
            }
        case .chunkExtensionName:
            if isTokenByte(byte) { return }
            try leaveChunkExtensionElement(byte, whitespaceState: .chunkExtensionAfterName, allowsValue: true)
        case .chunkExtensionAfterName:
            if isOptionalWhitespace(byte) { return }
            try leaveChunkExtensionElement(byte, whitespaceState: .chunkExtensionAfterName, allowsValue: true)
        case .chunkExtensionValueStart:
            if isTokenByte(byte) {
                state = .chunkExtensionTokenValue
            } else if byte == ASCII.quote {
                state = .chunkExtensionQuotedValue
            } else if !isOptionalWhitespace(byte) {
                throw .badRequest("invalid chunk extension")
            }
        case .chunkExtensionTokenValue:
            if isTokenByte(byte) { return }
            try leaveChunkExtensionElement(byte, whitespaceState: .chunkExtensionAfterValue, allowsValue: false)
        case .chunkExtensionQuotedValue:
            // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
            if byte == ASCII.quote {
                state = .chunkExtensionAfterValue
            } else if byte == ASCII.backslash {
                state = .chunkExtensionQuotedPair
            } else if !isFieldValueByte(byte) {
                throw .badRequest("invalid chunk extension")
            }
        case .chunkExtensionQuotedPair:
            guard isFieldValueByte(byte) else { throw .badRequest("invalid chunk extension") }
            state = .chunkExtensionQuotedValue
        case .chunkExtensionAfterValue:
            if isOptionalWhitespace(byte) { return }
            try leaveChunkExtensionElement(byte, whitespaceState: .chunkExtensionAfterValue, allowsValue: false)
        default:
            preconditionFailure("advanceChunkSizeLine called outside the chunk size line")
        }
    }

    /// After a chunk-ext name or value: BWS, `=` (names only), `;` for the next extension, or CR.
    private mutating func leaveChunkExtensionElement(_ byte: UInt8, whitespaceState: State, allowsValue: Bool) throws(HTTPParseError) {
        if byte == ASCII.carriageReturn {
            state = .chunkSizeLineFeed
        } else if byte == ASCII.semicolon {
            state = .chunkExtensionNameStart
        } else if byte == ASCII.equals && allowsValue {
            state = .chunkExtensionValueStart
        } else if isOptionalWhitespace(byte) {
            state = whitespaceState
        } else {
            throw .badRequest("invalid chunk extension")
        }
    }

    private mutating func startChunkData() throws(HTTPParseError) {
        if remainingBodyBytes == 0 {
            readingTrailers = true
            state = .fieldStart
            return
        }
        guard remainingBodyBytes <= limits.maxBodyBytes - body.count else {
            throw HTTPParseError(status: .contentTooLarge, reason: "body too large")
        }
        state = .chunkData
    }

    // MARK: Message boundaries

    /// Hands out the finished request and resets every per-message field, keeping buffer capacity.
    private mutating func completeMessage() -> HTTPRequest {
        let request = buildRequest()
        body = []
        state = .messageStart
        emptyLinesSkipped = 0
        headerBytes = 0
        fieldCount = 0
        readingTrailers = false
        head.removeAll(keepingCapacity: true)
        fields.removeAll(keepingCapacity: true)
        methodEnd = 0
        targetEnd = 0
        remainingBodyBytes = 0
        chunkSizeDigits = 0
        chunkExtensionBytes = 0
        continueExpected = false
        return request
    }
}
