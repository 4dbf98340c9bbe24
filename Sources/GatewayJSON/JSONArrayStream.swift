/// Where the array a `JSONArrayStream` hands out lies in its document.
public enum JSONArrayLocation: Sendable, Equatable {
    /// The document is the array.
    case root
    /// The array is the value of this member of the document's top-level object (Kaizen's
    /// `{"executions": [...], "total": n}`).
    case member(String)
}

/// Why a streamed document was refused, with the offset (from the document's first byte) where
/// reading stopped.
public struct JSONStreamError: Error, Sendable, Equatable, CustomStringConvertible {
    public let offset: Int
    public let reason: String
    public var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

/// Reads a JSON document as it arrives, chunk by chunk, and hands out the elements of one array in
/// it as they complete, so that an answer of any size is never held whole: at most one element
/// (bounded by `maxElementBytes`) is buffered at a time.
///
/// The reader only finds where each value begins and ends (strings, escapes, nesting); every
/// element and every other member is then read by `JSONParser`, so there is no second grammar to
/// drift: the stream accepts what `JSONParser` accepts of the same document, except that nesting
/// is bounded per element rather than from the root, and that the array's member appearing twice
/// is refused (which of the two would be meant is anyone's guess). Chunks may split the document
/// anywhere, even inside an escape or a UTF-8 sequence. Members other than the array are kept in
/// `otherMembers` (each bounded by the same limit), in document order.
public struct JSONArrayStream: Sendable {
    public let location: JSONArrayLocation
    public let maxElementBytes: Int
    /// The top-level object's members other than the array, once read.
    public var otherMembers: JSONObject { JSONObject(members) }
    /// Bytes fed so far.
    public private(set) var offset = 0
    /// Elements handed out so far.
    public private(set) var elementCount = 0

    private enum Phase: Sendable {
        case beforeDocument
        case expectingMemberName(first: Bool)
        case readingMemberName
        case expectingColon(name: String)
        case expectingMemberValue(name: String)
        case readingMemberValue(name: String)
        case afterMemberValue
        case expectingElement(first: Bool)
        case readingElement
        case afterElement
        case finished
    }

    private var phase = Phase.beforeDocument
    private var scanner = ValueScanner()
    private var captured: [UInt8] = []
    /// Where the value being captured began.
    private var captureStart = 0
    private var members: [(key: String, value: JSONValue)] = []
    private var sawArray = false

    public init(arrayAt location: JSONArrayLocation, maxElementBytes: Int) {
        self.location = location
        self.maxElementBytes = max(1, maxElementBytes)
    }

    /// True once the whole document has been read.
    public var isComplete: Bool {
        if case .finished = phase { return true }
        return false
    }

    /// Reads `chunk` and returns the array elements it completed, in order.
    public mutating func feed(_ chunk: some Collection<UInt8>) throws(JSONStreamError) -> [JSONValue] {
        try feed(Array(chunk))
    }

    /// `feed` for the bytes as they come from the HTTP client. Not generic: called from another
    /// module, a generic one walks the bytes through unspecialised witness calls, a quarter of
    /// the time spent reading a large answer.
    public mutating func feed(_ chunk: [UInt8]) throws(JSONStreamError) -> [JSONValue] {
        var elements: [JSONValue] = []
        var iterator = chunk.makeIterator()
        var pending = iterator.next()
        while let byte = pending {
            if try consume(byte, into: &elements) {
                pending = iterator.next()
                offset += 1
            }
        }
        return elements
    }

    /// Confirms that the document ended where it should: a truncated answer is an error, never a
    /// shorter list.
    public func finish() throws(JSONStreamError) {
        guard isComplete else { throw error("the document ended early") }
        if case .member(let name) = location, !sawArray { throw error("the document has no '\(name)' array") }
    }

    // MARK: - The state machine

    /// Handles one byte; false when the byte ended a number or literal and must be read again
    /// by the state the reader moved to.
    private mutating func consume(_ byte: UInt8, into elements: inout [JSONValue]) throws(JSONStreamError) -> Bool {
        switch phase {
        case .beforeDocument:
            if Self.isWhitespace(byte) { return true }
            switch (location, byte) {
            case (.root, UInt8(ascii: "[")): phase = .expectingElement(first: true); sawArray = true
            case (.member, UInt8(ascii: "{")): phase = .expectingMemberName(first: true)
            default:
                throw error(location == .root ? "the document is not an array" : "the document is not an object")
            }

        case .expectingMemberName(let first):
            if Self.isWhitespace(byte) { return true }
            if byte == UInt8(ascii: "}") {
                guard first else { throw error("a comma before '}'") }
                phase = .finished
            } else {
                guard byte == UInt8(ascii: "\"") else { throw error("expected a member name") }
                try beginCapture(byte)
                phase = .readingMemberName
            }

        case .readingMemberName:
            if try capture(byte) == .ended(including: true) {
                guard case .string(let name) = try parseCaptured() else { throw error("expected a member name") }
                phase = .expectingColon(name: name)
            }

        case .expectingColon(let name):
            if Self.isWhitespace(byte) { return true }
            guard byte == UInt8(ascii: ":") else { throw error("expected ':' after a member name") }
            phase = .expectingMemberValue(name: name)

        case .expectingMemberValue(let name):
            if Self.isWhitespace(byte) { return true }
            if case .member(name) = location {
                guard !sawArray else { throw error("the member '\(name)' appears twice") }
                guard byte == UInt8(ascii: "[") else { throw error("the member '\(name)' is not an array") }
                sawArray = true
                phase = .expectingElement(first: true)
            } else {
                try beginCapture(byte)
                phase = .readingMemberValue(name: name)
            }

        case .readingMemberValue(let name):
            switch try capture(byte) {
            case .reading: break
            case .ended(let including):
                try finishMemberValue(name: name)
                if !including { return false }
            }

        case .afterMemberValue:
            if Self.isWhitespace(byte) { return true }
            switch byte {
            case UInt8(ascii: ","): phase = .expectingMemberName(first: false)
            case UInt8(ascii: "}"): phase = .finished
            default: throw error("expected ',' or '}' after a member")
            }

        case .expectingElement(let first):
            if Self.isWhitespace(byte) { return true }
            if byte == UInt8(ascii: "]") {
                guard first else { throw error("a comma before ']'") }
                phase = location == .root ? .finished : .afterMemberValue
            } else {
                try beginCapture(byte)
                phase = .readingElement
            }

        case .readingElement:
            switch try capture(byte) {
            case .reading: break
            case .ended(let including):
                try finishElement(into: &elements)
                if !including { return false }
            }

        case .afterElement:
            if Self.isWhitespace(byte) { return true }
            switch byte {
            case UInt8(ascii: ","): phase = .expectingElement(first: false)
            case UInt8(ascii: "]"): phase = location == .root ? .finished : .afterMemberValue
            default: throw error("expected ',' or ']' after an element")
            }

        case .finished:
            guard Self.isWhitespace(byte) else { throw error("unexpected data after the document") }
        }
        return true
    }

    private mutating func finishMemberValue(name: String) throws(JSONStreamError) {
        members.append((key: name, value: try parseCaptured()))
        phase = .afterMemberValue
    }

    private mutating func finishElement(into elements: inout [JSONValue]) throws(JSONStreamError) {
        elements.append(try parseCaptured())
        elementCount += 1
        phase = .afterElement
    }

    // MARK: - Capturing one value

    private mutating func beginCapture(_ byte: UInt8) throws(JSONStreamError) {
        scanner = ValueScanner()
        // A huge element's buffer is let go rather than kept for the small ones after it.
        captured.removeAll(keepingCapacity: captured.capacity <= 64 * 1024)
        captureStart = offset
        _ = try capture(byte)
    }

    private mutating func capture(_ byte: UInt8) throws(JSONStreamError) -> ValueScanner.Step {
        let step = scanner.step(byte)
        if case .ended(including: false) = step { return step }
        guard captured.count < maxElementBytes else {
            throw error("a value is larger than \(maxElementBytes) bytes")
        }
        captured.append(byte)
        return step
    }

    private func parseCaptured() throws(JSONStreamError) -> JSONValue {
        do throws(JSONParseError) {
            return try JSONParser.parse(captured)
        } catch {
            throw JSONStreamError(offset: captureStart + error.offset, reason: error.reason)
        }
    }

    private func error(_ reason: String) -> JSONStreamError { JSONStreamError(offset: offset, reason: reason) }

    private static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }
}

/// Finds where one JSON value ends without reading it: string and escape state plus nesting
/// depth. Whether the value is valid is `JSONParser`'s to say.
private struct ValueScanner: Sendable {
    enum Step: Equatable, Sendable {
        case reading
        /// The value ended: with this byte (a closing quote or bracket), or just before it (the
        /// delimiter after a number or literal, which belongs to what follows).
        case ended(including: Bool)
    }

    private enum Kind: Sendable { case unknown, string, container, scalar }

    private var kind = Kind.unknown
    private var depth = 0
    private var inString = false
    private var escaped = false

    mutating func step(_ byte: UInt8) -> Step {
        switch kind {
        case .unknown:
            switch byte {
            case UInt8(ascii: "\""):
                kind = .string
                inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                kind = .container
                depth = 1
            default:
                kind = .scalar
            }
            return .reading
        case .scalar:
            switch byte {
            case UInt8(ascii: ","), UInt8(ascii: "]"), UInt8(ascii: "}"), 0x20, 0x09, 0x0A, 0x0D:
                return .ended(including: false)
            default:
                return .reading
            }
        case .string, .container:
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                    if kind == .string { return .ended(including: true) }
                }
                return .reading
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if depth == 0 { return .ended(including: true) }
            default: break
            }
            return .reading
        }
    }
}
