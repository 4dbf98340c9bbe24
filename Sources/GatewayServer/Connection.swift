import GatewayEventLoop
import GatewayHTTP
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// One accepted TCP connection, confined to its event loop.
///
/// Requests are answered strictly one at a time and in order: while a request is with the responder,
/// further (pipelined) bytes are only buffered, and parsing resumes once its response is written.
/// The parser keeps its own state, so bytes may arrive split anywhere.
final class Connection: IOEventHandler {
    enum Phase {
        /// Waiting for (the rest of) a request.
        case reading
        /// A request is with the responder.
        case responding
        /// Closing: output flushed, write side shut, discarding input until EOF or the linger timer.
        case lingering
        case closed
    }

    private enum DeadlineKind {
        case request, idle, write, linger
    }

    let id: UInt64
    /// The socket's number for I/O calls; `socket` owns it.
    let fd: Int32
    /// Taken and closed by `close()`.
    private var socket: FileDescriptor?
    let remoteAddress: String
    private unowned let loop: EventLoop
    private unowned let owner: ServerLoop
    private let configuration: HTTPServerConfiguration
    private let responder: any HTTPResponder
    private let logger: Logger

    private(set) var phase: Phase = .reading
    private var parser: HTTPRequestParser
    private var input: [UInt8] = []
    private var inputStart = 0
    private var pendingOutput: [[UInt8]] = []
    private var pendingOutputOffset = 0
    private var closeAfterWrite = false
    private var resetAfterWrite = false
    private var peerClosedInput = false
    private var readingPaused = false
    private var sentContinue = false
    private var requestsServed = 0
    /// Set while `processInput` runs: a response written from inside it (answered without
    /// suspending) must not start a nested parse of the next request; the running loop picks it up.
    private var processingInput = false
    private var inFlightTask: Task<Void, Never>?
    /// From dispatching a request until its response is handed back: still set when the request's
    /// task returns control to `dispatch`, it means that task has suspended.
    private var awaitingResponse = false
    /// Set while the request's task is being created: a response handed back meanwhile was
    /// produced without suspending, on this thread.
    private var startingRequestTask = false
    private var interest: IOEvents = .readable

    private var deadline: UInt64 = 0
    private var deadlineKind: DeadlineKind = .request
    private var scheduledTimerAt: UInt64 = 0

    /// Bytes the connection will buffer ahead of the request being answered before it stops reading.
    private var pipelineBufferLimit: Int {
        configuration.parserLimits.maxHeaderBytes + configuration.parserLimits.maxBodyBytes + 16_384
    }

    init(
        id: UInt64,
        socket: consuming FileDescriptor,
        remoteAddress: String,
        loop: EventLoop,
        owner: ServerLoop,
        configuration: HTTPServerConfiguration,
        responder: any HTTPResponder,
        logger: Logger
    ) {
        self.id = id
        self.fd = socket.rawValue
        self.socket = .some(socket)
        self.remoteAddress = remoteAddress
        self.loop = loop
        self.owner = owner
        self.configuration = configuration
        self.responder = responder
        self.logger = logger
        self.parser = HTTPRequestParser(limits: configuration.parserLimits)
        setDeadline(.request, after: configuration.headerTimeoutNanoseconds)
    }

    /// Idle means nothing is owed to the peer: no request in flight, no partial request, no output.
    var isIdle: Bool {
        phase == .reading && pendingOutput.isEmpty && parser.isIdle && inputStart == input.count
    }

    // MARK: - Events

    func handle(_ events: IOEvents) {
        if events.contains(.writable) && !pendingOutput.isEmpty {
            flush()
        }
        if phase == .closed { return }
        if events.contains(.readable) || events.contains(.hangup) || events.contains(.error) {
            readAvailable()
        }
    }

    private func readAvailable() {
        // Drain what the socket holds, bounded so one busy peer cannot monopolise the loop.
        for _ in 0..<4 {
            guard phase != .closed else { return }
            let result: IOResult<Int>
            do {
                result = try SocketIO.read(fd, into: owner.readBuffer)
            } catch {
                logger.trace("read failed", metadata: ["connection": "\(id)", "error": "\(error)"])
                close()
                return
            }
            switch result {
            case .wouldBlock:
                return
            case .processed(0):
                peerClosedInput = true
                handlePeerEOF()
                return
            case .processed(let count):
                if phase == .lingering { continue }
                let received = UnsafeRawBufferPointer(rebasing: owner.readBuffer[0..<count])
                if inputStart == input.count {
                    processInput(fresh: received)
                } else {
                    input.append(contentsOf: received)
                    processInput()
                }
                if readingPaused || phase == .closed { return }
                if count < owner.readBuffer.count { return }
            }
        }
    }

    private func handlePeerEOF() {
        switch phase {
        case .lingering, .closed:
            close()
        case .responding:
            // The peer ended its side while its request is in flight: it has gone, so the request's
            // task is cancelled (its upstream calls stop) and the connection closes. A client that
            // only shut down its write side after a complete request looks the same on the wire
            // until the server writes; like nginx (`proxy_ignore_client_abort off`), that is taken
            // as abandonment too, rather than letting every hung-up client keep its work running.
            // Requests pipelined behind the in-flight one are abandoned with it.
            close()
        case .reading:
            if pendingOutput.isEmpty {
                close()
            } else {
                closeAfterWrite = true
                updateInterest()
            }
        }
    }

    // MARK: - Parsing

    /// Parses and dispatches buffered requests, one at a time.
    ///
    /// `fresh` is data just read into the loop's shared buffer while nothing was buffered. It is parsed
    /// where it lies, so a request that arrives whole (the usual case) is never copied into `input`;
    /// only bytes left after a dispatched request (pipelining) are kept there.
    private func processInput(fresh: UnsafeRawBufferPointer? = nil) {
        processingInput = true
        defer { processingInput = false }
        var fresh = fresh
        // A response written without suspending leaves the phase `.reading`: keep parsing pipelined
        // requests, but not while output waits for the socket (a peer that sends without reading
        // must not make the server queue responses without bound).
        while phase == .reading && !closeAfterWrite && pendingOutput.isEmpty {
            let wasIdle = parser.isIdle
            let result: Result<(consumed: Int, request: HTTPRequest?), HTTPParseError>
            if let bytes = fresh {
                if bytes.isEmpty { break }
                result = Result { () throws(HTTPParseError) in try parser.parse(bytes) }
            } else {
                if inputStart == input.count {
                    if peerClosedInput { close() }
                    break
                }
                let start = inputStart
                result = input.withUnsafeBytes { bytes in
                    Result { () throws(HTTPParseError) in try parser.parse(UnsafeRawBufferPointer(rebasing: bytes[start...])) }
                }
            }
            let outcome: (consumed: Int, request: HTTPRequest?)
            switch result {
            case .success(let parsed): outcome = parsed
            case .failure(let error):
                rejectMalformed(error)
                return
            }
            if let bytes = fresh {
                fresh = UnsafeRawBufferPointer(rebasing: bytes[outcome.consumed...])
            } else {
                inputStart += outcome.consumed
                compactInput()
            }
            if wasIdle && !parser.isIdle && deadlineKind == .idle {
                setDeadline(.request, after: configuration.headerTimeoutNanoseconds)
            }
            guard let request = outcome.request else {
                if parser.expectsContinue && !sentContinue {
                    sentContinue = true
                    write([Self.continueResponse])
                }
                if peerClosedInput {
                    // A partial request can never complete now.
                    close()
                }
                break
            }
            sentContinue = false
            dispatch(request)
        }
        // The shared buffer is reused by the next read on this loop: keep what was not parsed.
        if let rest = fresh, !rest.isEmpty, phase != .closed {
            input.append(contentsOf: rest)
        }
        let buffered = input.count - inputStart
        if buffered > pipelineBufferLimit && !readingPaused {
            readingPaused = true
            updateInterest()
        }
    }

    private func compactInput() {
        if inputStart == input.count {
            input.removeAll(keepingCapacity: input.capacity <= 65_536)
            inputStart = 0
        } else if inputStart > 65_536 {
            input.removeFirst(inputStart)
            inputStart = 0
        }
    }

    private func rejectMalformed(_ error: HTTPParseError) {
        logger.debug("rejected malformed request", metadata: [
            "connection": "\(id)", "status": "\(error.status.code)", "reason": "\(error.reason)",
        ])
        owner.server.counters.recordMalformed()
        // Everything after a framing error is untrustworthy: answer, then stop reading requests.
        input.removeAll()
        inputStart = 0
        let response = HTTPResponse.defaultProblem(status: error.status, detail: error.reason)
        closeAfterWrite = true
        send(response, forHEAD: false, version: .http1_1, keepAlive: false)
    }

    // MARK: - Responding

    private func dispatch(_ request: HTTPRequest) {
        phase = .responding
        clearDeadline()
        let keepAlive = request.wantsKeepAlive && !owner.server.isDraining
        if !keepAlive { closeAfterWrite = true }
        let context = RequestContext(
            remoteAddress: remoteAddress,
            connectionID: id,
            // The head was read in this iteration, or (pipelined behind an answer) it waited here.
            receivedAtNanoseconds: loop.iterationStartedAt
        )
        let isHEAD = request.method == .head
        let version = request.version
        let responder = self.responder
        let this = LoopBound(self, loop: loop)
        // An immediate task runs right here, on the loop thread, until it first has to wait: an
        // answer that needs no waiting (a cache hit, a rejection) is written before the task's
        // creation returns, with nothing enqueued (see `HTTPResponder`).
        awaitingResponse = true
        startingRequestTask = true
        let task = Task.immediate(executorPreference: loop) {
            let response = await responder.respond(to: request, context: context)
            // The task prefers the loop, so it is normally on it here: finish without queueing (and
            // without allocating a closure).
            if this.loop.inEventLoop {
                this.value.finishResponding(response, forHEAD: isHEAD, version: version, keepAlive: keepAlive)
            } else {
                this.loop.execute {
                    this.value.finishResponding(response, forHEAD: isHEAD, version: version, keepAlive: keepAlive)
                }
            }
        }
        startingRequestTask = false
        if awaitingResponse { inFlightTask = task }
    }

    private func finishResponding(_ response: HTTPResponse, forHEAD: Bool, version: HTTPVersion, keepAlive: Bool) {
        inFlightTask = nil
        awaitingResponse = false
        guard phase == .responding else { return }
        if startingRequestTask {
            owner.server.counters.answeredWithoutSuspending.add(1, ordering: .relaxed)
        } else {
            owner.server.counters.answeredAfterSuspending.add(1, ordering: .relaxed)
        }
        requestsServed += 1
        if owner.server.isDraining { closeAfterWrite = true }
        send(response, forHEAD: forHEAD, version: version, keepAlive: keepAlive && !closeAfterWrite)
    }

    private func send(_ response: HTTPResponse, forHEAD: Bool, version: HTTPVersion, keepAlive: Bool) {
        if configuration.injectsTransportFaults, let fault = response.transportFault {
            var response = response
            response.transportFault = nil
            applyFault(fault, to: response)
            return
        }
        let connectionHeader: ResponseEncoder.ConnectionHeader = keepAlive ? (version == .http1_0 ? .keepAlive : .none) : .close
        owner.encoder.encodeHead(response, bodyLength: response.body.count, connection: connectionHeader)
        let code = response.status.code
        let sendsBody = !forHEAD && code != 204 && code != 304 && !(100..<200).contains(code)
        phase = .reading
        writeEncodedHead(body: sendsBody ? response.body : [])
    }

    private func applyFault(_ fault: TransportFault, to response: HTTPResponse) {
        switch fault {
        case .resetConnection:
            SocketOptions.resetOnClose(fd)
            close()
        case .truncateBody(let afterBytes):
            owner.encoder.encodeHead(response, bodyLength: response.body.count, connection: .close)
            phase = .reading
            closeAfterWrite = true
            resetAfterWrite = true
            writeEncodedHead(body: Array(response.body.prefix(max(0, afterBytes))))
        }
    }

    private func afterResponseWritten() {
        guard phase == .reading else { return }
        if closeAfterWrite {
            if resetAfterWrite {
                close()
            } else {
                beginLingeringClose()
            }
            return
        }
        // A message is half-read: what went out was the interim `100 Continue`, and the body is
        // still owed under the request deadline, not the (longer) idle one.
        if !parser.isIdle {
            if deadlineKind != .request || deadline == 0 {
                setDeadline(.request, after: configuration.headerTimeoutNanoseconds)
            }
            // Body bytes that arrived while the interim response was still queued wait in `input`.
            if !processingInput && inputStart < input.count { processInput() }
            return
        }
        if readingPaused {
            readingPaused = false
            updateInterest()
        }
        setDeadline(.idle, after: configuration.idleTimeoutNanoseconds)
        if !processingInput { processInput() }
    }

    // MARK: - Writing

    private static let continueResponse = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    /// Sends the head the loop's encoder just produced, followed by `body`.
    ///
    /// The usual case takes one `sendmsg` straight from the encoder's buffer and the body's storage,
    /// with nothing queued or copied; only what the socket does not take is kept in `pendingOutput`.
    private func writeEncodedHead(body: [UInt8]) {
        guard pendingOutput.isEmpty else {
            // Earlier output is still waiting for the socket: queue behind it to keep the order.
            pendingOutput.append(owner.encoder.head())
            if !body.isEmpty { pendingOutput.append(body) }
            return
        }
        let headCount = owner.encoder.headCount
        let result = owner.encoder.withHead { head in
            body.withUnsafeBytes { body in
                Result { () throws(SystemError) in try SocketIO.write(fd, head, body) }
            }
        }
        var written = 0
        switch result {
        case .failure(let error):
            logger.trace("write failed", metadata: ["connection": "\(id)", "error": "\(error)"])
            close()
            return
        case .success(.wouldBlock):
            break
        case .success(.processed(let count)):
            written = count
        }
        if written == headCount + body.count {
            outputDrained()
            return
        }
        if written < headCount {
            pendingOutput = [owner.encoder.head(from: written)]
            pendingOutputOffset = 0
            if !body.isEmpty { pendingOutput.append(body) }
        } else {
            // The body array is shared, not copied; the offset skips what the socket already took.
            pendingOutput = [body]
            pendingOutputOffset = written - headCount
        }
        startWriteDeadline()
        updateInterest()
    }

    /// The write deadline runs from when output first has to wait for the socket until all of it
    /// has gone: progress does not extend it, so a reader that drains a trickle still cannot hold
    /// a response (and its memory) for longer than `writeTimeoutNanoseconds`.
    private func startWriteDeadline() {
        if deadlineKind == .write && deadline != 0 { return }
        setDeadline(.write, after: configuration.writeTimeoutNanoseconds)
    }

    private func write(_ buffers: [[UInt8]]) {
        if pendingOutput.isEmpty {
            pendingOutput = buffers.filter { !$0.isEmpty }
            pendingOutputOffset = 0
            flush()
        } else {
            pendingOutput.append(contentsOf: buffers.filter { !$0.isEmpty })
        }
    }

    private func flush() {
        while !pendingOutput.isEmpty {
            let result: IOResult<Int>
            do {
                result = try SocketIO.write(fd, pendingOutput, firstOffset: pendingOutputOffset)
            } catch {
                logger.trace("write failed", metadata: ["connection": "\(id)", "error": "\(error)"])
                close()
                return
            }
            switch result {
            case .wouldBlock:
                startWriteDeadline()
                updateInterest()
                return
            case .processed(var written):
                while written > 0, let first = pendingOutput.first {
                    let remaining = first.count - pendingOutputOffset
                    if written >= remaining {
                        written -= remaining
                        pendingOutput.removeFirst()
                        pendingOutputOffset = 0
                    } else {
                        pendingOutputOffset += written
                        written = 0
                    }
                }
            }
        }
        outputDrained()
    }

    /// Everything queued has reached the socket.
    private func outputDrained() {
        if deadlineKind == .write { clearDeadline() }
        updateInterest()
        afterResponseWritten()
    }

    private func updateInterest() {
        guard phase != .closed else { return }
        var wanted: IOEvents = []
        if !readingPaused && !(peerClosedInput) { wanted.insert(.readable) }
        if !pendingOutput.isEmpty { wanted.insert(.writable) }
        if phase == .lingering && !peerClosedInput { wanted.insert(.readable) }
        guard wanted != interest else { return }
        interest = wanted
        do {
            try loop.modify(fd, interest: wanted)
        } catch {
            close()
        }
    }

    // MARK: - Closing

    private func beginLingeringClose() {
        phase = .lingering
        SocketIO.shutdownWrite(fd)
        if peerClosedInput {
            close()
            return
        }
        setDeadline(.linger, after: configuration.lingerNanoseconds)
        updateInterest()
    }

    /// Called during graceful shutdown: idle connections close now, busy ones after their response.
    func drain() {
        switch phase {
        case .reading where isIdle:
            close()
        case .reading, .responding:
            closeAfterWrite = true
        case .lingering, .closed:
            break
        }
    }

    func close() {
        guard phase != .closed else { return }
        phase = .closed
        inFlightTask?.cancel()
        inFlightTask = nil
        clearDeadline()
        // Counted as closed before the descriptor goes, so anyone who sees the FIN sees the count.
        owner.connectionClosed(self)
        loop.unregister(fd)
        if let socket = socket.take() { socket.close() }
        pendingOutput.removeAll()
        input.removeAll()
    }

    // MARK: - Deadlines

    private func setDeadline(_ kind: DeadlineKind, after nanoseconds: UInt64) {
        deadlineKind = kind
        deadline = monotonicNanoseconds() &+ nanoseconds
        if scheduledTimerAt == 0 || deadline < scheduledTimerAt {
            scheduleTimer(at: deadline)
        }
    }

    private func clearDeadline() {
        deadline = 0
    }

    private func scheduleTimer(at time: UInt64) {
        scheduledTimerAt = time
        loop.scheduleTimer(at: time) { [weak self] in self?.timerFired(scheduledFor: time) }
    }

    /// Timers are lazy: moving a deadline later does not reschedule; when the old timer fires it
    /// re-arms for the current deadline. That keeps the loop's heap at about one entry per connection.
    private func timerFired(scheduledFor time: UInt64) {
        guard time == scheduledTimerAt, phase != .closed else { return }
        scheduledTimerAt = 0
        guard deadline != 0 else { return }
        if monotonicNanoseconds() < deadline {
            scheduleTimer(at: deadline)
            return
        }
        deadline = 0
        switch deadlineKind {
        case .request:
            owner.server.counters.recordTimeout()
            if phase == .reading && pendingOutput.isEmpty && !parser.isIdle {
                closeAfterWrite = true
                input.removeAll()
                inputStart = 0
                send(HTTPResponse.defaultProblem(status: .requestTimeout, detail: "The request was not received in time."),
                     forHEAD: false, version: .http1_1, keepAlive: false)
            } else {
                close()
            }
        case .idle, .linger:
            close()
        case .write:
            SocketOptions.resetOnClose(fd)
            close()
            owner.server.counters.recordTimeout()
        }
    }
}
