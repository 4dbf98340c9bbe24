import GatewayProviders

// An index as bytes, for replicas that share it (`IndexSharing`): what one replica synced, the
// others adopt whole. The bytes come back from a store other processes write to, so reading them
// is reading input: every length and count is checked, and anything malformed is refused
// (`SnapshotError`), never trusted.

/// Why bytes are not a snapshot.
public struct SnapshotError: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "malformed index snapshot: \(reason)" }
}

/// Appends the snapshot encoding: unsigned LEB128 integers, zigzag for signed ones,
/// length-prefixed strings.
public struct SnapshotWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public mutating func unsigned(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }

    public mutating func count(_ value: Int) { unsigned(UInt64(max(0, value))) }

    public mutating func signed(_ value: Int64) {
        unsigned(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    public mutating func byte(_ value: UInt8) { bytes.append(value) }

    public mutating func string(_ text: String) {
        count(text.utf8.count)
        bytes.append(contentsOf: text.utf8)
    }

    public mutating func optionalString(_ text: String?) {
        byte(text == nil ? 0 : 1)
        if let text { string(text) }
    }

    public mutating func raw(_ data: [UInt8]) {
        count(data.count)
        bytes.append(contentsOf: data)
    }
}

/// Reads what `SnapshotWriter` wrote, refusing anything that runs past the end or out of range.
public struct SnapshotReader: Sendable {
    private let bytes: [UInt8]
    private var offset = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var isAtEnd: Bool { offset == bytes.count }

    public mutating func unsigned() throws(SnapshotError) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < bytes.count else { throw SnapshotError("an integer runs past the end") }
            let next = bytes[offset]
            offset += 1
            guard shift < 64, shift < 63 || next & 0x7F <= 1 else { throw SnapshotError("an integer is too long") }
            value |= UInt64(next & 0x7F) << shift
            if next & 0x80 == 0 { return value }
            shift += 7
        }
    }

    /// A count, at most `limit`.
    public mutating func count(atMost limit: Int) throws(SnapshotError) -> Int {
        let value = try unsigned()
        guard value <= UInt64(limit) else { throw SnapshotError("a count of \(value) exceeds \(limit)") }
        return Int(value)
    }

    public mutating func signed() throws(SnapshotError) -> Int64 {
        let value = try unsigned()
        return Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1)
    }

    public mutating func byte() throws(SnapshotError) -> UInt8 {
        guard offset < bytes.count else { throw SnapshotError("a byte runs past the end") }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func raw() throws(SnapshotError) -> [UInt8] {
        // The bytes left are counted after the length itself is read.
        let length = try count(atMost: Int.max)
        guard length <= bytes.count - offset else { throw SnapshotError("a length of \(length) runs past the end") }
        defer { offset += length }
        return Array(bytes[offset..<offset + length])
    }

    public mutating func string() throws(SnapshotError) -> String {
        let data = try raw()
        guard let text = String(validating: data, as: UTF8.self) else { throw SnapshotError("a string is not UTF-8") }
        return text
    }

    public mutating func optionalString() throws(SnapshotError) -> String? {
        switch try byte() {
        case 0: return nil
        case 1: return try string()
        default: throw SnapshotError("an optional string has a bad presence flag")
        }
    }
}

/// An index's records in segments of `recordsPerSegment`, counted from the oldest, so that new
/// executions (which arrive at the head) and status changes of recent ones change only the last
/// segments: a publisher writes, and a follower reads, only segments it does not hold yet.
public enum IndexSnapshot {
    public static let recordsPerSegment = 2_048
    static let formatVersion: UInt8 = 1

    /// The records, oldest first, cut into encoded segments.
    public static func segments(of index: ExecutionIndex) -> [[UInt8]] {
        var segments: [[UInt8]] = []
        var writer = SnapshotWriter()
        var inSegment = 0
        index.forEachOldestFirst { execution in
            if inSegment == 0 { writer.byte(formatVersion) }
            encode(execution, into: &writer)
            inSegment += 1
            if inSegment == recordsPerSegment {
                segments.append(writer.bytes)
                writer = SnapshotWriter()
                inSegment = 0
            }
        }
        if inSegment > 0 { segments.append(writer.bytes) }
        return segments
    }

    /// The index's coverage, and whatever the synchroniser remembers (`memo`), as bytes.
    public static func header(coverage: [String: SourceCoverage], memo: [UInt8]) -> [UInt8] {
        var writer = SnapshotWriter()
        writer.byte(formatVersion)
        writer.count(coverage.count)
        for (source, covered) in coverage.sorted(by: { $0.key < $1.key }) {
            writer.string(source)
            switch covered {
            case .nothing:
                writer.byte(0)
            case .through(let key):
                writer.byte(1)
                writer.signed(key.createdAt.nanosecondsSinceEpoch)
                writer.string(key.id)
            case .everything:
                writer.byte(2)
            }
        }
        writer.raw(memo)
        return writer.bytes
    }

    /// Builds the index a publisher described: every segment's records, then the coverage.
    /// Returns the index and the memo's bytes.
    public static func index(
        provider: String, header: [UInt8], segments: [[UInt8]]
    ) throws(SnapshotError) -> (ExecutionIndex, memo: [UInt8]) {
        var reader = SnapshotReader(header)
        guard try reader.byte() == formatVersion else { throw SnapshotError("an unknown format version") }
        var coverage: [(String, SourceCoverage)] = []
        let sources = try reader.count(atMost: 1_000_000)
        for _ in 0..<sources {
            let source = try reader.string()
            switch try reader.byte() {
            case 0: coverage.append((source, .nothing))
            case 1:
                let instant = try reader.signed()
                coverage.append((source, .through(ExecutionSortKey(createdAt: Timestamp(nanosecondsSinceEpoch: instant), id: try reader.string()))))
            case 2: coverage.append((source, .everything))
            default: throw SnapshotError("an unknown coverage kind")
            }
        }
        let memo = try reader.raw()
        guard reader.isAtEnd else { throw SnapshotError("bytes after the header") }

        var index = ExecutionIndex()
        for segment in segments {
            var records = SnapshotReader(segment)
            guard try records.byte() == formatVersion else { throw SnapshotError("a segment of an unknown format version") }
            var executions: [UnifiedExecution] = []
            executions.reserveCapacity(recordsPerSegment)
            while !records.isAtEnd {
                guard executions.count < recordsPerSegment else { throw SnapshotError("a segment holds too many records") }
                executions.append(try decode(from: &records, provider: provider))
            }
            index.upsert(executions)
        }
        for (source, covered) in coverage { index.setCoverage(covered, of: source) }
        return (index, memo)
    }

    // MARK: - One record

    private static func encode(_ execution: UnifiedExecution, into writer: inout SnapshotWriter) {
        writer.string(execution.providerExecutionID)
        writer.signed(execution.createdAt.nanosecondsSinceEpoch)
        var present: UInt8 = 0
        if execution.workflow != nil { present |= 1 << 0 }
        if execution.startedAt != nil { present |= 1 << 1 }
        if execution.endedAt != nil { present |= 1 << 2 }
        if execution.durationMs != nil { present |= 1 << 3 }
        if execution.attempts != nil { present |= 1 << 4 }
        writer.byte(present)
        if let workflow = execution.workflow {
            writer.string(workflow.id)
            writer.optionalString(workflow.name)
        }
        if let startedAt = execution.startedAt { writer.signed(startedAt.nanosecondsSinceEpoch) }
        if let endedAt = execution.endedAt { writer.signed(endedAt.nanosecondsSinceEpoch) }
        if let durationMs = execution.durationMs { writer.signed(durationMs) }
        if let attempts = execution.attempts { writer.signed(attempts) }
        writer.optionalString(execution.name)
        writer.optionalString(execution.providerStatus)
        writer.byte(execution.status.flatMap { ExecutionStatus.allCases.firstIndex(of: $0) }.map(UInt8.init) ?? .max)
        writer.byte(execution.isTest.map { $0 ? 1 : 0 } ?? 2)
        writer.count(execution.searchableValues.count)
        for value in execution.searchableValues { writer.string(value) }
    }

    private static func decode(from reader: inout SnapshotReader, provider: String) throws(SnapshotError) -> UnifiedExecution {
        let id = try reader.string()
        let createdAt = Timestamp(nanosecondsSinceEpoch: try reader.signed())
        let present = try reader.byte()
        guard present < 1 << 5 else { throw SnapshotError("unknown fields in a record") }
        var workflow: WorkflowReference?
        if present & 1 << 0 != 0 { workflow = WorkflowReference(id: try reader.string(), name: try reader.optionalString()) }
        let startedAt = present & 1 << 1 != 0 ? Timestamp(nanosecondsSinceEpoch: try reader.signed()) : nil
        let endedAt = present & 1 << 2 != 0 ? Timestamp(nanosecondsSinceEpoch: try reader.signed()) : nil
        let durationMs = present & 1 << 3 != 0 ? try reader.signed() : nil
        let attempts = present & 1 << 4 != 0 ? try reader.signed() : nil
        let name = try reader.optionalString()
        let providerStatus = try reader.optionalString()
        let statusCode = try reader.byte()
        let status: ExecutionStatus?
        if statusCode == .max {
            status = nil
        } else {
            guard Int(statusCode) < ExecutionStatus.allCases.count else { throw SnapshotError("an unknown status") }
            status = ExecutionStatus.allCases[Int(statusCode)]
        }
        let isTest: Bool?
        switch try reader.byte() {
        case 0: isTest = false
        case 1: isTest = true
        case 2: isTest = nil
        default: throw SnapshotError("a bad test flag")
        }
        let searchableCount = try reader.count(atMost: 1_024)
        var searchable: [String] = []
        for _ in 0..<searchableCount { searchable.append(try reader.string()) }
        return UnifiedExecution(
            provider: provider, providerExecutionID: id, workflow: workflow, name: name, status: status,
            providerStatus: providerStatus, createdAt: createdAt, startedAt: startedAt, endedAt: endedAt,
            durationMs: durationMs, isTest: isTest, attempts: attempts, searchableValues: searchable, raw: .null)
    }
}
