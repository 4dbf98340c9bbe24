#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import GatewayEventLoop
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
    /// What every access line has between its time and its first field, rendered once:
    /// `","level":"info","logger":"<label>","message":"request"`.
    private let accessLineHead: [UInt8]

    /// Where lines go: standard output, or a closure (tests capture lines with it).
    public final class LogOutput: Sendable {
        /// Lines an event loop collected in its current iteration. Each loop has its own (see
        /// `LoopLocal`): at a line per request, one batch shared by the loops was a
        /// lock they contended for on every request.
        private final class LoopBatch {
            var bytes: [UInt8] = []
            var flushScheduled = false
            /// A line is being rendered into `bytes`: a line logged meanwhile (from a value's
            /// `description`) goes out on its own instead of into the buffer being written.
            var rendering = false

            /// The collected bytes, leaving the batch empty (before they go to a sink that may log).
            func take(keepingCapacity: Bool) -> [UInt8] {
                var taken: [UInt8] = []
                if keepingCapacity { taken.reserveCapacity(bytes.capacity) }
                swap(&taken, &bytes)
                return taken
            }
        }

        private let sink: @Sendable ([UInt8]) -> Void
        private let batchesPerLoopIteration: Bool
        /// Each loop's batch.
        private let batches = LoopLocal { LoopBatch() }

        /// Batched lines are written out at the latest when this many bytes wait.
        static let batchLimitBytes = 64 * 1024

        /// - Parameter batchesPerLoopIteration: lines logged on an event loop thread are collected
        ///   and handed to `sink` together when the loop ends its iteration (before it waits again),
        ///   rather than one call per line; lines from any other thread go out at once. Lines keep
        ///   their order per thread; a line's `time` orders it among other threads' lines.
        public convenience init(batchesPerLoopIteration: Bool = false, sink: @escaping @Sendable ([UInt8]) -> Void) {
            self.init(batchesPerLoopIteration: batchesPerLoopIteration, writer: nil, sink: sink)
        }

        /// Writes lines to descriptor 1, batched per event-loop iteration: at one access line per
        /// request, a write per line was a system call per request. A line waits at most until its
        /// loop has handled the events it woke up for, then goes to a `DescriptorLogWriter`, whose
        /// own thread makes the write(2): a stalled stdout never blocks a loop, and what it cannot
        /// take is dropped and counted rather than waited for.
        public static let standardOutput = LogOutput(descriptor: 1)

        /// What a descriptor writer has dropped; nil for a closure sink.
        private let writer: DescriptorLogWriter?

        public convenience init(descriptor: Int32, maxBufferedBytes: Int = DescriptorLogWriter.defaultMaxBufferedBytes) {
            let writer = DescriptorLogWriter(descriptor: descriptor, maxBufferedBytes: maxBufferedBytes)
            self.init(batchesPerLoopIteration: true, writer: writer) { writer.enqueue($0) }
        }

        private init(batchesPerLoopIteration: Bool, writer: DescriptorLogWriter?, sink: @escaping @Sendable ([UInt8]) -> Void) {
            self.batchesPerLoopIteration = batchesPerLoopIteration
            self.writer = writer
            self.sink = sink
        }

        /// Lines dropped because the descriptor did not take them in time (0 for a closure sink).
        public var droppedLines: Int { writer?.droppedLines ?? 0 }

        /// Waits until every line handed over so far has been written, or `timeout` has passed (a
        /// stalled descriptor): for an orderly exit, which should lose nothing it can avoid losing.
        public func waitUntilWritten(timeout: Duration) async {
            guard let writer else { return }
            let deadline = ContinuousClock.now + timeout
            while !writer.isIdle && ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(1))
            }
        }

        /// Writes the line `render` produces. On a loop it is rendered straight into the loop's
        /// batch: no buffer of its own, no lock.
        func write(_ render: (inout JSONWriter) -> Void) {
            guard batchesPerLoopIteration, let batch = batches.onCurrentLoop, !batch.rendering else {
                var writer = JSONWriter(capacity: 512)
                render(&writer)
                sink(writer.bytes)
                return
            }
            batch.rendering = true
            var writer = JSONWriter(appendingTo: batch.take(keepingCapacity: false))
            render(&writer)
            batch.bytes = writer.bytes
            batch.rendering = false
            if batch.bytes.count >= Self.batchLimitBytes {
                sink(batch.take(keepingCapacity: true))
            }
            guard !batch.flushScheduled, let loop = EventLoop.current else { return }
            batch.flushScheduled = true
            loop.runAtIterationEnd { [sink] in
                batch.flushScheduled = false
                guard !batch.bytes.isEmpty else { return }
                // A burst's buffer is not kept: an idle gateway holds no log memory.
                sink(batch.take(keepingCapacity: batch.bytes.capacity <= 2 * Self.batchLimitBytes))
            }
        }
    }

    /// Where this handler's lines go (for its drop count).
    public var logOutput: LogOutput { output }

    public init(label: String, output: LogOutput = .standardOutput) {
        self.label = label
        self.output = output
        var head = JSONWriter(capacity: 64 + label.utf8.count)
        head.fragment("\",\"level\":\"info\",\"logger\":")
        head.string(label)
        head.fragment(",\"message\":")
        head.string(AccessLine.message)
        accessLineHead = head.bytes
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Written straight to bytes (no value tree): at `info` this runs for every request.
    /// A metadata key equal to one of the fixed fields replaces that field's value.
    public func log(event: LogEvent) {
        // Access lines bring all their metadata and the handler usually has none: no merged copy.
        let merged: Logger.Metadata
        if let own = event.metadata {
            merged = metadata.isEmpty ? own : metadata.merging(own) { _, new in new }
        } else {
            merged = metadata
        }
        output.write { writer in
            writer.raw("{")
            func fixed(_ key: String, _ value: @autoclosure () -> String, first: Bool = false) {
                if !first { writer.raw(",") }
                writer.string(key)
                writer.raw(":")
                if let replacement = merged[key] { Self.write(replacement, into: &writer) } else { writer.string(value()) }
            }
            fixed("time", Self.timestamp(), first: true)
            fixed("level", event.level.rawValue)
            fixed("logger", label)
            fixed("message", event.message.description)
            for key in merged.keys.sorted() where !Self.fixedKeys.contains(key) {
                guard let value = merged[key] else { continue }
                writer.raw(",")
                writer.string(key)
                writer.raw(":")
                Self.write(value, into: &writer)
            }
            writer.raw("}\n")
        }
    }

    private static let fixedKeys: Set<String> = ["time", "level", "logger", "message"]

    /// The line `log(event:)` writes for an access line at `info`, byte for byte, but from typed
    /// fields: no metadata dictionary, no boxed values, no sorting. False (nothing written) when
    /// this handler carries metadata of its own, which the generic path has to merge.
    @discardableResult
    public func logAccess(_ line: AccessLine) -> Bool {
        guard metadata.isEmpty else { return false }
        output.write { writer in
            // Constant parts as static fragments and numbers as digits: no strings are built for a line.
            writer.fragment("{\"time\":\"")
            Self.writeTimestamp(into: &writer)
            writer.raw(accessLineHead)
            // The generic path's order: metadata keys sorted; absent optional fields left out.
            func member(_ key: StaticString, _ value: String?) {
                guard let value else { return }
                writer.fragment(key)
                writer.string(value)
            }
            func member(_ key: StaticString, decimal value: Int) {
                writer.fragment(key)
                writer.decimal(value)
            }
            member(",\"bytes\":", decimal: line.bytes)
            member(",\"cache\":", line.cacheStatus)
            member(",\"clientId\":", line.clientID)
            writer.fragment(",\"durationMs\":")
            LoggedMilliseconds(nanoseconds: line.durationNanoseconds).write(into: &writer)
            member(",\"method\":", line.method)
            member(",\"path\":", line.path)
            member(",\"remoteAddress\":", line.remoteAddress)
            member(",\"requestId\":", line.requestID)
            member(",\"route\":", line.route)
            member(",\"status\":", decimal: line.status)
            member(",\"upstreamCalls\":", decimal: line.upstreamCalls)
            writer.raw("}\n")
        }
        return true
    }

    private static func write(_ value: Logger.Metadata.Value, into writer: inout JSONWriter) {
        switch value {
        case .string(let text):
            writer.string(text)
        case .stringConvertible(let convertible):
            // Numbers stay numbers, so that a log query can compare them (`status >= 500`).
            if convertible is any BinaryInteger || convertible is LoggedMilliseconds {
                writer.raw(convertible.description)
            } else {
                writer.string(convertible.description)
            }
        case .array(let values):
            writer.raw("[")
            for (index, element) in values.enumerated() {
                if index > 0 { writer.raw(",") }
                write(element, into: &writer)
            }
            writer.raw("]")
        case .dictionary(let dictionary):
            writer.raw("{")
            for (index, key) in dictionary.keys.sorted().enumerated() {
                if index > 0 { writer.raw(",") }
                writer.string(key)
                writer.raw(":")
                write(dictionary[key] ?? "", into: &writer)
            }
            writer.raw("}")
        }
    }

    /// `timestamp()` written straight into `writer`, without the string.
    static func writeTimestamp(into writer: inout JSONWriter) {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        writeTimestamp(seconds: Int64(spec.tv_sec), milliseconds: Int(spec.tv_nsec / 1_000_000), into: &writer)
    }

    /// RFC 3339 UTC with milliseconds, e.g. `2026-11-24T13:05:09.042Z`.
    static func timestamp() -> String {
        var writer = JSONWriter(capacity: 24)
        writeTimestamp(into: &writer)
        return String(decoding: writer.bytes, as: UTF8.self)
    }

    /// The date by `CivilCalendar`'s arithmetic, not `gmtime_r`: a line per request on several
    /// loops needs neither libc's time-zone code nor a shared cache with a lock. `seconds` is since
    /// the Unix epoch.
    private static func writeTimestamp(seconds: Int64, milliseconds: Int, into writer: inout JSONWriter) {
        let days = CivilCalendar.floorDivide(seconds, 86_400)
        let secondOfDay = Int(seconds - days * 86_400)
        let (year, month, day) = CivilCalendar.date(days: days)
        // Composed on the stack and appended once: a byte-by-byte append (24 per line) cost more
        // than the calendar arithmetic.
        var text: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &text) { buffer in
            var at = 0
            func digits(_ value: Int, _ width: Int, then separator: UInt8) {
                var divisor = 1
                for _ in 1..<width { divisor &*= 10 }
                var rest = value
                while divisor > 0 {
                    buffer[at] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest / divisor % 10)
                    at &+= 1
                    rest %= divisor
                    divisor /= 10
                }
                buffer[at] = separator
                at &+= 1
            }
            digits(Int(year), 4, then: UInt8(ascii: "-"))
            digits(Int(month), 2, then: UInt8(ascii: "-"))
            digits(Int(day), 2, then: UInt8(ascii: "T"))
            digits(secondOfDay / 3_600, 2, then: UInt8(ascii: ":"))
            digits(secondOfDay / 60 % 60, 2, then: UInt8(ascii: ":"))
            digits(secondOfDay % 60, 2, then: UInt8(ascii: "."))
            digits(milliseconds, 3, then: UInt8(ascii: "Z"))
            writer.raw(UnsafeRawBufferPointer(rebasing: buffer[0..<at]))
        }
    }
}

/// Hands log bytes to a descriptor from a thread of its own, so that whoever logs never waits for
/// write(2) and never holds a lock across it. Bytes wait in one bounded buffer; when the descriptor
/// stalls (a pipe nobody reads) and the buffer is full, further lines are dropped and counted.
public final class DescriptorLogWriter: Sendable {
    /// About a thousand access lines: a burst rides out a slow reader, a stalled one costs 1 MiB.
    public static let defaultMaxBufferedBytes = 1 << 20

    private struct Buffer {
        var bytes: [UInt8] = []
        /// The writer thread holds bytes it took and has not finished writing.
        var writing = false
    }

    /// How long the thread lets lines gather after a write before it takes the next ones. Waking
    /// it is a futex wake and two context switches; without a pause every loop iteration's batch
    /// (tens of thousands a second under load) woke it, and that showed as 5% of a cache hit's
    /// CPU. A line therefore reaches the descriptor at most this much later than otherwise; a
    /// millisecond of lines fits the 1 MiB buffer many times over (about 3,000 access lines).
    public static let defaultGatherInterval: Duration = .milliseconds(1)

    private let descriptor: Int32
    private let maxBufferedBytes: Int
    private let gatherNanoseconds: UInt64
    private let buffer = Mutex(Buffer())
    private let dropped = Atomic<Int>(0)
    private let wakeUps = Atomic<Int>(0)
    /// Signalled each time the buffer goes from empty to not empty.
    private let wake = DispatchSemaphore(value: 0)

    public init(
        descriptor: Int32,
        maxBufferedBytes: Int = DescriptorLogWriter.defaultMaxBufferedBytes,
        gatherInterval: Duration = DescriptorLogWriter.defaultGatherInterval
    ) {
        self.descriptor = descriptor
        self.maxBufferedBytes = maxBufferedBytes
        self.gatherNanoseconds = gatherInterval.saturatingNanoseconds
        let box = Unmanaged.passRetained(self)
        var thread = pthread_t()
        let started = pthread_create(&thread, nil, { argument in
            guard let argument else { return nil }
            // The thread keeps its writer alive: it serves the process until it exits.
            Unmanaged<DescriptorLogWriter>.fromOpaque(argument).takeRetainedValue().run()
            return nil
        }, box.toOpaque())
        if started == 0 {
            pthread_detach(thread)
        } else {
            box.release()
        }
    }

    public var droppedLines: Int { dropped.load(ordering: .relaxed) }

    /// How many times the thread has woken to write.
    public var writeWakeUps: Int { wakeUps.load(ordering: .relaxed) }

    /// Nothing waits to be written.
    public var isIdle: Bool { buffer.withLock { $0.bytes.isEmpty && !$0.writing } }

    /// Never blocks beyond a short lock: the bytes are queued, or dropped (and their lines counted).
    public func enqueue(_ bytes: [UInt8]) {
        let wasEmpty = buffer.withLock { buffer -> Bool? in
            guard buffer.bytes.count + bytes.count <= maxBufferedBytes else { return nil }
            let wasEmpty = buffer.bytes.isEmpty
            buffer.bytes.append(contentsOf: bytes)
            return wasEmpty
        }
        switch wasEmpty {
        case nil:
            let lines = bytes.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
            dropped.add(max(lines, 1), ordering: .relaxed)
        case true?:
            wake.signal()
        case false?:
            break
        }
    }

    private func run() {
        var taken: [UInt8] = []
        while true {
            wake.wait()
            buffer.withLock { buffer in
                swap(&taken, &buffer.bytes)
                buffer.writing = !taken.isEmpty
            }
            guard !taken.isEmpty else { continue }
            wakeUps.add(1, ordering: .relaxed)
            writeAll(taken)
            taken.removeAll(keepingCapacity: taken.capacity <= 2 * 65_536)
            buffer.withLock { $0.writing = false }
            // Lines enqueued meanwhile signal a thread that is not waiting: an atomic, no system call.
            if gatherNanoseconds > 0 { sleepThread(nanoseconds: gatherNanoseconds) }
        }
    }

    /// Blocks this thread alone for as long as the descriptor does; gives up on an error.
    private func writeAll(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { DescriptorIO.writeAll(descriptor, $0) }
    }
}

/// A duration in milliseconds with one decimal (`12.3`), which `JSONLogHandler` writes as a JSON
/// number rather than a string.
public struct LoggedMilliseconds: CustomStringConvertible, Sendable {
    public let nanoseconds: UInt64

    public init(nanoseconds: UInt64) {
        self.nanoseconds = nanoseconds
    }

    public var description: String {
        var writer = JSONWriter(capacity: 24)
        write(into: &writer)
        return String(decoding: writer.bytes, as: UTF8.self)
    }

    func write(into writer: inout JSONWriter) {
        let tenths = nanoseconds / 100_000
        writer.decimal(tenths / 10)
        writer.raw(UInt8(ascii: "."))
        writer.decimal(tenths % 10)
    }
}
