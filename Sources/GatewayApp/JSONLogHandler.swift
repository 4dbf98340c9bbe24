#if canImport(Glibc)
import Glibc
#endif
import GatewayJSON
public import Logging
import Synchronization

/// Writes each log record as one JSON object per line: what log pipelines ingest without parsing
/// rules. Metadata values are rendered as strings; nothing here knows about secrets, so callers
/// never put one in a log record (the tests scan every line for them).
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let label: String
    private let output: LogOutput

    /// Where lines go: standard output, or a closure (tests capture lines with it).
    public final class LogOutput: Sendable {
        private let lock = Mutex(())
        private let sink: @Sendable ([UInt8]) -> Void

        public init(sink: @escaping @Sendable ([UInt8]) -> Void) { self.sink = sink }

        /// Writes whole lines to descriptor 1 with write(2): unbuffered, so nothing is lost on exit,
        /// and the lock keeps lines from interleaving.
        public static let standardOutput = LogOutput { line in
            line.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let written = Glibc.write(1, buffer.baseAddress.map { $0 + offset }, buffer.count - offset)
                    if written <= 0 { return }
                    offset += written
                }
            }
        }

        func write(_ line: [UInt8]) { lock.withLock { _ in sink(line) } }
    }

    public init(label: String, output: LogOutput = .standardOutput) {
        self.label = label
        self.output = output
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = JSONObject()
        fields["time"] = .string(Self.timestamp())
        fields["level"] = .string(event.level.rawValue)
        fields["logger"] = .string(label)
        fields["message"] = .string(event.message.description)
        let merged = event.metadata.map { metadata.merging($0) { _, new in new } } ?? metadata
        for key in merged.keys.sorted() {
            if let value = merged[key] { fields[key] = Self.json(value) }
        }
        var bytes = JSONValue.object(fields).serialized()
        bytes.append(0x0A)
        output.write(bytes)
    }

    private static func json(_ value: Logger.Metadata.Value) -> JSONValue {
        switch value {
        case .string(let text): return .string(text)
        case .stringConvertible(let convertible): return .string(convertible.description)
        case .array(let values): return .array(values.map(json))
        case .dictionary(let dictionary):
            return .object(JSONObject(dictionary.keys.sorted().map { (key: $0, value: json(dictionary[$0] ?? "")) }))
        }
    }

    private static func timestamp() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var seconds = spec.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(spec.tv_nsec / 1_000_000), 3))Z"
    }
}
