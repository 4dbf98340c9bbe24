import GatewayEventLoop
import CCurl
import GatewayHTTP
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The libcurl multi handle and the one thread that drives it.
///
/// Tasks hand transfers over through `shared` and wake the thread with `curl_multi_wakeup`;
/// everything else (the multi handle, `active`) is touched only on the loop thread, which is why
/// the class is `@unchecked Sendable`.
final class CurlMultiLoop: @unchecked Sendable {
    struct Shared {
        var submissions: [CurlTransfer] = []
        var cancellations: [CurlTransfer] = []
        /// Paused streamed transfers whose consumer has made room.
        var resumptions: [CurlTransfer] = []
        var stopRequested = false
        /// Set by the loop thread just before it frees the multi handle; no wakeup may follow.
        var multiHandleFreed = false
        var statistics = CurlClientStatistics()
    }

    let shared = Mutex(Shared())
    private let multi: UnsafeMutableRawPointer
    private let logger: Logger
    private var active: [UnsafeMutableRawPointer: CurlTransfer] = [:]

    init(configuration: CurlHTTPClientConfiguration, logger: Logger) throws(UpstreamError) {
        guard CurlGlobal.initialised else {
            throw .clientUnavailable(reason: "curl_global_init failed")
        }
        guard let multi = curl_multi_init() else {
            throw .clientUnavailable(reason: "libcurl could not create a multi handle")
        }
        self.multi = multi
        self.logger = logger
        _ = ccurl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, configuration.maxCachedConnections)
        _ = ccurl_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, configuration.maxConnectionsPerHost)
        _ = ccurl_multi_setopt_long(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, configuration.maxTotalConnections)
        _ = ccurl_multi_setopt_long(multi, CURLMOPT_PIPELINING, Int(CURLPIPE_MULTIPLEX))
    }

    // MARK: - Called from tasks

    /// Hands `transfer` to the loop; `continuation` is resumed exactly once, by whoever finishes it.
    func submit(
        _ transfer: CurlTransfer,
        continuation: CheckedContinuation<Result<UpstreamResponse, UpstreamError>, Never>
    ) {
        let refusal: UpstreamError? = shared.withLock { shared in
            if shared.stopRequested { return .shutdown }
            if transfer.phase == .cancelledBeforeSubmission { return .cancelled }
            transfer.phase = .submitted
            transfer.continuation = continuation
            shared.submissions.append(transfer)
            shared.statistics.transfersStarted += 1
            shared.statistics.inFlight += 1
            curl_multi_wakeup(multi)
            return nil
        }
        if let refusal { continuation.resume(returning: .failure(refusal)) }
    }

    func cancel(_ transfer: CurlTransfer) {
        shared.withLock { shared in
            switch transfer.phase {
            case .created:
                transfer.phase = .cancelledBeforeSubmission
            case .submitted:
                shared.cancellations.append(transfer)
                if !shared.multiHandleFreed { curl_multi_wakeup(multi) }
            case .cancelledBeforeSubmission, .finished:
                break
            }
        }
    }

    /// Unpauses `transfer` (paused because its streamed body's buffer was full) on the loop thread.
    func resume(_ transfer: CurlTransfer) {
        shared.withLock { shared in
            guard transfer.phase == .submitted else { return }
            shared.resumptions.append(transfer)
            if !shared.multiHandleFreed { curl_multi_wakeup(multi) }
        }
    }

    func requestStop() {
        shared.withLock { shared in
            shared.stopRequested = true
            if !shared.multiHandleFreed { curl_multi_wakeup(multi) }
        }
    }

    // MARK: - Loop thread

    func run() {
        while true {
            let (submissions, cancellations, resumptions, stopping) = shared.withLock { shared in
                defer {
                    shared.submissions.removeAll()
                    shared.cancellations.removeAll()
                    shared.resumptions.removeAll()
                }
                return (shared.submissions, shared.cancellations, shared.resumptions, shared.stopRequested)
            }
            for transfer in submissions {
                guard let easy = transfer.easy else {
                    finish(transfer, with: .failure(.clientUnavailable(reason: "transfer has no handle")))
                    continue
                }
                let code = curl_multi_add_handle(multi, easy)
                if code != CURLM_OK {
                    finish(transfer, with: .failure(.clientUnavailable(reason: String(cString: curl_multi_strerror(code)))))
                    continue
                }
                active[easy] = transfer
            }
            for transfer in cancellations where transfer.easy.map({ active[$0] != nil }) ?? false {
                finish(transfer, with: .failure(.cancelled))
            }
            for transfer in resumptions {
                guard let easy = transfer.easy, active[easy] != nil else { continue }
                // May call the write callback at once with the bytes held back, which may pause again.
                let code = ccurl_easy_unpause(easy)
                if code != CURLE_OK {
                    finish(transfer, with: .failure(.clientUnavailable(reason: String(cString: curl_easy_strerror(code)))))
                }
            }
            if stopping { break }

            var running: Int32 = 0
            _ = curl_multi_perform(multi, &running)
            collectCompletedTransfers()

            var readyDescriptors: Int32 = 0
            // libcurl shortens the wait to its own next timer; the cap only bounds a missed wakeup.
            _ = curl_multi_poll(multi, nil, 0, 1000, &readyDescriptors)
        }

        for transfer in Array(active.values) {
            finish(transfer, with: .failure(.shutdown))
        }
        let late = shared.withLock { shared in
            shared.multiHandleFreed = true
            defer { shared.submissions.removeAll() }
            return shared.submissions
        }
        for transfer in late { finish(transfer, with: .failure(.shutdown)) }
        curl_multi_cleanup(multi)
    }

    private func collectCompletedTransfers() {
        var remaining: Int32 = 0
        while let message = curl_multi_info_read(multi, &remaining) {
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
            let code = message.pointee.data.result
            guard let transfer = active[easy] else { continue }
            finish(transfer, with: outcome(of: transfer, easy: easy, code: code))
        }
    }

    private func outcome(of transfer: CurlTransfer, easy: UnsafeMutableRawPointer, code: CURLcode)
        -> Result<UpstreamResponse, UpstreamError>
    {
        if let limit = transfer.exceededBodyLimitBytes {
            return .failure(.bodyTooLarge(limitBytes: limit))
        }
        if code == CURLE_FILESIZE_EXCEEDED {
            return .failure(.bodyTooLarge(limitBytes: transfer.bodyLimit))
        }
        if transfer.exceededHeaderLimit {
            return .failure(.malformedResponse(reason: "more than \(transfer.headerFieldLimit) header fields"))
        }
        guard code == CURLE_OK else {
            return .failure(CurlMultiLoop.error(for: code, detail: transfer.errorMessage))
        }
        var status = 0
        _ = ccurl_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
        let response = UpstreamResponse(
            status: status,
            headers: transfer.responseHeaders,
            body: transfer.responseBody,
            durationNanoseconds: monotonicNanoseconds().subtractingClamped(transfer.startedAt))
        return .success(response)
    }

    static func error(for code: CURLcode, detail: String) -> UpstreamError {
        let reason = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        switch code {
        case CURLE_OPERATION_TIMEDOUT:
            return .timeout
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL, CURLE_BAD_FUNCTION_ARGUMENT:
            return .invalidRequest(reason: reason)
        case CURLE_WEIRD_SERVER_REPLY, CURLE_BAD_CONTENT_ENCODING, CURLE_TOO_MANY_REDIRECTS:
            return .malformedResponse(reason: reason)
        case CURLE_OUT_OF_MEMORY:
            return .clientUnavailable(reason: reason)
        default:
            // Refused, reset, DNS, TLS, truncated body (CURLE_PARTIAL_FILE), HTTP/2 stream errors.
            return .connection(reason: reason)
        }
    }

    private func finish(_ transfer: CurlTransfer, with result: Result<UpstreamResponse, UpstreamError>) {
        var connectionsOpened = 0
        if let easy = transfer.easy {
            if active.removeValue(forKey: easy) != nil {
                _ = ccurl_easy_getinfo_long(easy, CURLINFO_NUM_CONNECTS, &connectionsOpened)
                _ = curl_multi_remove_handle(multi, easy)
            }
        }
        transfer.releaseHandle()
        let continuation = shared.withLock { shared -> CheckedContinuation<Result<UpstreamResponse, UpstreamError>, Never>? in
            transfer.phase = .finished
            shared.statistics.connectionsOpened += connectionsOpened
            shared.statistics.inFlight -= 1
            switch result {
            case .success: shared.statistics.responsesReceived += 1
            case .failure(.cancelled): shared.statistics.transfersCancelled += 1
            case .failure: shared.statistics.transfersFailed += 1
            }
            defer { transfer.continuation = nil }
            return transfer.continuation
        }
        if logger.logLevel <= .debug {
            switch result {
            case .success(let response):
                logger.debug(
                    "upstream transfer finished",
                    metadata: [
                        "method": "\(transfer.method)", "url": "\(transfer.loggableURL)", "status": "\(response.status)",
                        "durationMs": "\(response.durationNanoseconds / 1_000_000)",
                        "newConnections": "\(connectionsOpened)",
                    ])
            case .failure(let error):
                logger.debug(
                    "upstream transfer failed",
                    metadata: ["method": "\(transfer.method)", "url": "\(transfer.loggableURL)", "error": "\(error)"])
            }
        }
        continuation?.resume(returning: result)
    }
}

/// `curl_global_init` must run once before any other libcurl call; a Swift global is initialised
/// exactly once, thread-safely.
enum CurlGlobal {
    static let initialised: Bool = ccurl_global_init_default() == CURLE_OK
}
