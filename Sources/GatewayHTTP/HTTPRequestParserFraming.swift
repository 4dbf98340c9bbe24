// Head-level rules that need the whole header section: Host (RFC 9112 §3.2), message body framing
// (RFC 9112 §6: Content-Length, Transfer-Encoding) and Expect (RFC 9110 §10.1.1).

extension HTTPRequestParser {
    /// Validates the complete head and prepares for the body. Returns false when the message has no body.
    mutating func finishHead() throws(HTTPParseError) -> Bool {
        var hostFields = 0
        var host: FieldRange?
        var contentLengthFields = 0
        var contentLength: FieldRange?
        var transferEncodingFields = 0
        var expectsContinueElement = false
        for field in fields {
            let name = head[field.nameStart..<field.nameEnd]
            if equalsLowercased(name, "host") {
                hostFields += 1
                host = field
            } else if equalsLowercased(name, "content-length") {
                contentLengthFields += 1
                contentLength = field
            } else if equalsLowercased(name, "transfer-encoding") {
                transferEncodingFields += 1
            } else if equalsLowercased(name, "expect") {
                expectsContinueElement = expectsContinueElement || listContains(field, "100-continue")
            }
        }

        let isHTTP11 = versionMinor == 1
        guard hostFields <= 1 else { throw .badRequest("repeated Host header") }
        if let host {
            guard isValidAuthority(head[host.valueStart..<host.valueEnd], requirePort: false) else {
                throw .badRequest("invalid Host header")
            }
        } else if isHTTP11 {
            throw .badRequest("missing Host header")
        }

        if transferEncodingFields > 0 {
            // An HTTP/1.0 recipient cannot have meant chunked framing: the framing is faulty (RFC 9112 §6.1).
            guard isHTTP11 else { throw .badRequest("Transfer-Encoding in HTTP/1.0 request") }
            guard contentLengthFields == 0 else { throw .badRequest("both Content-Length and Transfer-Encoding") }
            try validateTransferCodings()
            guard limits.acceptsBodies else { throw Self.bodyRefused }
            continueExpected = isHTTP11 && expectsContinueElement
            chunkExtensionBytes = 0
            startChunkSizeLine()
            return true
        }

        guard contentLengthFields <= 1 else { throw .badRequest("repeated Content-Length") }
        guard let contentLength else { return false }
        let length = try parseContentLength(head[contentLength.valueStart..<contentLength.valueEnd])
        guard length <= limits.maxBodyBytes else {
            throw HTTPParseError(status: .contentTooLarge, reason: "body too large")
        }
        guard length > 0 else { return false }
        guard limits.acceptsBodies else { throw Self.bodyRefused }
        continueExpected = isHTTP11 && expectsContinueElement
        remainingBodyBytes = length
        body.reserveCapacity(length)
        state = .fixedLengthBody
        return true
    }

    static let bodyRefused = HTTPParseError(status: .contentTooLarge, reason: "this server takes no request body")

    /// Content-Length = 1*DIGIT; a list, a sign, whitespace inside or a value beyond Int64 is rejected.
    private func parseContentLength(_ value: ArraySlice<UInt8>) throws(HTTPParseError) -> Int {
        guard !value.isEmpty else { throw .badRequest("empty Content-Length") }
        var length = 0
        for byte in value {
            guard isDigit(byte) else { throw .badRequest("invalid Content-Length") }
            let (shifted, overflowed) = length.multipliedReportingOverflow(by: 10)
            let (sum, sumOverflowed) = shifted.addingReportingOverflow(Int(byte - ASCII.zero))
            guard !overflowed, !sumOverflowed else { throw .badRequest("Content-Length overflow") }
            length = sum
        }
        return length
    }

    /// Codings combine across fields in order. Only `chunked` is implemented and it must come last, once:
    /// a final coding other than chunked makes the length unknowable (400, RFC 9112 §6.3); a supported
    /// framing with an unsupported coding before it is 501.
    private func validateTransferCodings() throws(HTTPParseError) {
        var sawChunked = false
        var sawOtherCoding = false
        for field in fields where equalsLowercased(head[field.nameStart..<field.nameEnd], "transfer-encoding") {
            var elementsInField = 0
            for element in listElements(field) {
                guard element.allSatisfy(isTokenByte) else { throw .badRequest("invalid Transfer-Encoding") }
                guard !sawChunked else { throw .badRequest("chunked is not the final transfer coding") }
                if equalsLowercased(element, "chunked") {
                    sawChunked = true
                } else {
                    sawOtherCoding = true
                }
                elementsInField += 1
            }
            guard elementsInField > 0 else { throw .badRequest("empty Transfer-Encoding") }
        }
        guard sawChunked else { throw .badRequest("final transfer coding is not chunked") }
        guard !sawOtherCoding else {
            throw HTTPParseError(status: .notImplemented, reason: "unsupported transfer coding")
        }
    }

    /// The non-empty, OWS-trimmed elements of a comma-separated field value (RFC 9110 §5.6.1).
    private func listElements(_ field: FieldRange) -> [ArraySlice<UInt8>] {
        head[field.valueStart..<field.valueEnd]
            .split(separator: UInt8(ascii: ","), omittingEmptySubsequences: true)
            .compactMap { element in
                var trimmed = element
                while let first = trimmed.first, isOptionalWhitespace(first) { trimmed = trimmed.dropFirst() }
                while let last = trimmed.last, isOptionalWhitespace(last) { trimmed = trimmed.dropLast() }
                return trimmed.isEmpty ? nil : trimmed
            }
    }

    private func listContains(_ field: FieldRange, _ lowercase: StaticString) -> Bool {
        listElements(field).contains { equalsLowercased($0, lowercase) }
    }

    /// Builds the request from the accumulated head and body.
    func buildRequest() -> HTTPRequest {
        // Nearly every request is a GET: its method needs no string decoded.
        let isGET = methodEnd == 3 && head[0] == UInt8(ascii: "G") && head[1] == UInt8(ascii: "E") && head[2] == UInt8(ascii: "T")
        let method = isGET ? HTTPMethod.get : HTTPMethod(String(decoding: head[0..<methodEnd], as: UTF8.self))
        let target = String(decoding: head[methodEnd..<targetEnd], as: UTF8.self)
        var headers = HTTPHeaders()
        headers.reserveCapacity(fields.count)
        for field in fields {
            headers.add(
                name: String(decoding: head[field.nameStart..<field.nameEnd], as: UTF8.self),
                value: String(decoding: head[field.valueStart..<field.valueEnd], as: UTF8.self)
            )
        }
        let version = HTTPVersion(major: versionMajor, minor: versionMinor)
        guard case .absolute(let pathStart) = targetForm else {
            return HTTPRequest(method: method, target: target, version: version, headers: headers, body: body)
        }
        // Path and query come from the origin-form equivalent (RFC 9112 §3.3); `target` stays as received.
        let pathAndQuery = String(decoding: head[(methodEnd + pathStart)..<targetEnd], as: UTF8.self)
        let originForm = pathAndQuery.utf8.first == ASCII.slash ? pathAndQuery : "/" + pathAndQuery
        var request = HTTPRequest(method: method, target: originForm, version: version, headers: headers, body: body)
        request.target = target
        return request
    }
}
