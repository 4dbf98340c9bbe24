import Synchronization

/// A 2xx response body on its way from a transport to one consumer, through a bounded buffer.
///
/// The transport offers bytes as they arrive; once the buffer holds `bufferLimitBytes`, offers
/// are refused (`.full`) and the transport stops receiving (libcurl: `CURL_WRITEFUNC_PAUSE`, so
/// the kernel's receive window pushes back on the sender) until the consumer has taken what is
/// buffered, when `whenRoomAvailable`'s handler tells the transport to go on. However slow the
/// consumer, the gateway therefore holds about one buffer of the answer, never the answer.
///
/// The caller that owns the stream ends it (`end`) once the transport has returned.
public final class UpstreamBodyStream: Sendable {
    /// Large enough that the consumer's hops to another thread are few (one per buffer), small
    /// enough to be nothing beside the answers that need streaming.
    public static let defaultBufferLimitBytes = 256 * 1024

    public enum Offer: Sendable, Equatable {
        /// The bytes are buffered (or handed to the waiting consumer).
        case accepted
        /// The buffer is full: offer the same bytes again after the room handler was called.
        case full
        /// The consumer gave up or the stream ended: abort the transfer.
        case closed
    }

    public struct Statistics: Sendable, Equatable {
        /// Bytes handed to the consumer.
        public var bytesHandedOut = 0
        /// The most bytes buffered at once, waiting for the consumer.
        public var peakBufferedBytes = 0
        /// Offers refused because the buffer was full (each a pause of the transfer).
        public var producerPauses = 0

        public init() {}
    }

    private struct State {
        var buffer: [UInt8] = []
        var producerWaitsForRoom = false
        var ended = false
        var abandoned = false
        var waitingConsumer: CheckedContinuation<[UInt8]?, Never>?
        var roomHandler: (@Sendable () -> Void)?
        var statistics = Statistics()
    }

    public let bufferLimitBytes: Int
    private let state = Mutex(State())

    public init(bufferLimitBytes: Int = UpstreamBodyStream.defaultBufferLimitBytes) {
        self.bufferLimitBytes = max(1, bufferLimitBytes)
    }

    public var statistics: Statistics { state.withLock { $0.statistics } }

    // MARK: - Transport side

    /// Called (on any thread, without locks held) when an offer was refused as `.full` and the
    /// consumer has since taken what was buffered. Set before the transfer starts.
    public func whenRoomAvailable(_ handler: @escaping @Sendable () -> Void) {
        state.withLock { $0.roomHandler = handler }
    }

    /// Offers the next bytes of the body. An empty buffer always accepts, so a chunk larger than
    /// the limit still makes progress; otherwise the buffer takes what fits within its limit.
    public func offer(_ bytes: some Collection<UInt8>) -> Offer {
        let (offer, consumer, handedOver) = state.withLock {
            state -> (Offer, CheckedContinuation<[UInt8]?, Never>?, [UInt8]) in
            if state.abandoned || state.ended { return (.closed, nil, []) }
            if let consumer = state.waitingConsumer {
                state.waitingConsumer = nil
                state.statistics.bytesHandedOut += bytes.count
                return (.accepted, consumer, Array(bytes))
            }
            guard state.buffer.isEmpty || state.buffer.count + bytes.count <= bufferLimitBytes else {
                state.producerWaitsForRoom = true
                state.statistics.producerPauses += 1
                return (.full, nil, [])
            }
            state.buffer.append(contentsOf: bytes)
            state.statistics.peakBufferedBytes = max(state.statistics.peakBufferedBytes, state.buffer.count)
            return (.accepted, nil, [])
        }
        consumer?.resume(returning: handedOver)
        return offer
    }

    /// No more bytes will come. After a failed transfer what is buffered is dropped (the consumer
    /// gets nothing more); after a complete one the consumer still receives it.
    public func end(transferFailed: Bool) {
        let consumer = state.withLock { state -> CheckedContinuation<[UInt8]?, Never>? in
            state.ended = true
            state.roomHandler = nil
            if transferFailed { state.buffer = [] }
            defer { state.waitingConsumer = nil }
            return state.waitingConsumer
        }
        consumer?.resume(returning: nil)
    }

    // MARK: - Consumer side

    /// Everything buffered, waiting for bytes if none are; nil once the stream has ended and
    /// nothing is left. One consumer at a time.
    public func next() async -> [UInt8]? {
        await withCheckedContinuation { (continuation: CheckedContinuation<[UInt8]?, Never>) in
            let (ready, roomHandler) = state.withLock { state -> ([UInt8]??, (@Sendable () -> Void)?) in
                if !state.buffer.isEmpty {
                    var taken: [UInt8] = []
                    swap(&taken, &state.buffer)
                    state.statistics.bytesHandedOut += taken.count
                    let handler = state.producerWaitsForRoom ? state.roomHandler : nil
                    state.producerWaitsForRoom = false
                    return (.some(taken), handler)
                }
                if state.ended || state.abandoned { return (.some(nil), nil) }
                state.waitingConsumer = continuation
                let handler = state.producerWaitsForRoom ? state.roomHandler : nil
                state.producerWaitsForRoom = false
                return (nil, handler)
            }
            roomHandler?()
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// The consumer will read no more: later offers are refused as `.closed`.
    public func abandon() {
        state.withLock { state in
            state.abandoned = true
            state.buffer = []
            state.roomHandler = nil
        }
    }
}
