import GatewayEventLoop
import CCurl
import GatewayHTTP

/// One request's libcurl easy handle and the buffers its callbacks fill.
///
/// Ownership: the calling task builds it; after `CurlMultiLoop.submit` only the loop thread touches
/// the handle and buffers, until it resumes `continuation`. `phase` is guarded by the loop's lock.
final class CurlTransfer: @unchecked Sendable {
    enum Phase {
        case created
        case cancelledBeforeSubmission
        case submitted
        case finished
    }

    let id: UInt64
    private(set) var easy: UnsafeMutableRawPointer?
    private var headerList: UnsafeMutablePointer<curl_slist>?
    let errorBuffer: UnsafeMutablePointer<CChar>
    let method: HTTPMethod
    let loggableURL: String
    /// The limit of the body received: the request's (or the client's) for a streamed 2xx body,
    /// `bufferedBodyLimit` for every body that is accumulated.
    let bodyLimit: Int
    let bufferedBodyLimit: Int
    /// Where a 2xx body goes instead of `responseBody`, for a streamed call.
    let streamedBody: UpstreamBodyStream?
    let headerFieldLimit: Int
    let startedAt: UInt64

    var phase: Phase = .created
    var continuation: CheckedContinuation<Result<UpstreamResponse, UpstreamError>, Never>?

    var responseBody: [UInt8] = []
    var responseHeaders = HTTPHeaders()
    /// Body bytes taken so far (buffered or streamed).
    private var receivedBodyBytes = 0
    /// Decided at the first body byte, when the status is known: whether the body streams.
    private var streamsBody: Bool?
    /// The limit the body went past, if it did.
    var exceededBodyLimitBytes: Int?
    var exceededHeaderLimit = false

    init(
        id: UInt64, request: UpstreamRequest, configuration: CurlHTTPClientConfiguration,
        streamedBody: UpstreamBodyStream? = nil
    ) throws(UpstreamError) {
        self.id = id
        self.method = request.method
        self.loggableURL = redactedURL(request.url)
        let requestLimit = max(0, request.maxResponseBodyBytes ?? configuration.maxResponseBodyBytes)
        self.bodyLimit = requestLimit
        // An error answer stays small whatever a streamed success may reach; it is read whole.
        self.bufferedBodyLimit = streamedBody == nil ? requestLimit : min(requestLimit, max(0, configuration.maxResponseBodyBytes))
        self.streamedBody = streamedBody
        self.headerFieldLimit = configuration.maxResponseHeaderFields
        self.startedAt = monotonicNanoseconds()
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)

        try CurlTransfer.validate(request)
        guard let easy = curl_easy_init() else {
            throw .clientUnavailable(reason: "libcurl could not create an easy handle")
        }
        self.easy = easy
        try configure(easy, request: request, configuration: configuration)
    }

    deinit {
        releaseHandle()
        errorBuffer.deallocate()
    }

    /// Frees the easy handle; called by the loop thread once the handle left the multi handle.
    func releaseHandle() {
        if let easy {
            curl_easy_cleanup(easy)
            self.easy = nil
        }
        if let headerList {
            curl_slist_free_all(headerList)
            self.headerList = nil
        }
    }

    var errorMessage: String {
        let message = String(cString: errorBuffer)
        return message.isEmpty ? "" : message
    }

    // MARK: - Validation

    private static func validate(_ request: UpstreamRequest) throws(UpstreamError) {
        let url = request.url
        let lowered = url.lowercased()
        guard lowered.hasPrefix("http://") || lowered.hasPrefix("https://") else {
            throw .invalidRequest(reason: "URL must be absolute http or https")
        }
        guard !url.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) else {
            throw .invalidRequest(reason: "URL contains whitespace or control characters")
        }
        guard let authority = urlAuthorityBounds(url), !url[authority].isEmpty else {
            throw .invalidRequest(reason: "URL has no host")
        }
        guard !url[authority].contains("@") else {
            throw .invalidRequest(reason: "URL must not carry user info; send credentials in a header")
        }
        guard isToken(request.method.rawValue) else {
            throw .invalidRequest(reason: "method is not an HTTP token")
        }
        for (index, field) in request.headers.enumerated() {
            guard isToken(field.name) else {
                throw .invalidRequest(reason: "header field \(index + 1) has an invalid name")
            }
            // The value is never quoted back: it may be a credential.
            guard !field.value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0x00 }) else {
                throw .invalidRequest(reason: "header \(field.name) has a value with CR, LF or NUL")
            }
        }
    }

    private static func isToken(_ value: String) -> Bool {
        guard !value.isEmpty else { return false }
        return value.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"):
                true
            default: "!#$%&'*+-.^_`|~".utf8.contains(byte)
            }
        }
    }

    // MARK: - Handle set-up

    private func configure(
        _ easy: UnsafeMutableRawPointer, request: UpstreamRequest, configuration: CurlHTTPClientConfiguration
    ) throws(UpstreamError) {
        var failures: [String] = []
        func check(_ code: CURLcode, _ what: String) {
            if code != CURLE_OK { failures.append("\(what): \(String(cString: curl_easy_strerror(code)))") }
        }

        check(ccurl_easy_setopt_pointer(easy, CURLOPT_ERRORBUFFER, errorBuffer), "error buffer")
        check(ccurl_easy_setopt_string(easy, CURLOPT_URL, request.url), "URL")
        check(ccurl_easy_setopt_string(easy, CURLOPT_PROTOCOLS_STR, "http,https"), "protocols")
        check(ccurl_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1), "nosignal")
        check(ccurl_easy_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 0), "redirects")
        check(ccurl_easy_setopt_long(easy, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2TLS)), "HTTP version")
        // Prefer waiting for a multiplexed HTTP/2 stream over opening another connection.
        check(ccurl_easy_setopt_long(easy, CURLOPT_PIPEWAIT, 1), "pipewait")
        // Verification is never switched off; these restate libcurl's defaults so no build can differ.
        check(ccurl_easy_setopt_long(easy, CURLOPT_SSL_VERIFYPEER, 1), "verify peer")
        check(ccurl_easy_setopt_long(easy, CURLOPT_SSL_VERIFYHOST, 2), "verify host")
        if let caBundlePath = configuration.caBundlePath {
            check(ccurl_easy_setopt_string(easy, CURLOPT_CAINFO, caBundlePath), "CA bundle")
        }
        check(ccurl_easy_setopt_long(easy, CURLOPT_TCP_KEEPALIVE, 1), "TCP keepalive")
        check(ccurl_easy_setopt_long(easy, CURLOPT_MAXAGE_CONN, configuration.maxIdleConnectionAgeSeconds), "max idle age")
        check(ccurl_easy_setopt_string(easy, CURLOPT_USERAGENT, configuration.userAgent), "user agent")
        // Empty string: offer every encoding libcurl can decode; the body limit applies to decoded bytes.
        check(ccurl_easy_setopt_string(easy, CURLOPT_ACCEPT_ENCODING, ""), "accept encoding")

        let timeout = request.timeoutNanoseconds ?? configuration.defaultTimeoutNanoseconds
        let connectTimeout = min(
            request.connectTimeoutNanoseconds ?? configuration.defaultConnectTimeoutNanoseconds, timeout)
        check(ccurl_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, milliseconds(timeout)), "timeout")
        if let stall = request.stallTimeoutNanoseconds {
            // Under 1 byte/s for that many seconds; libcurl does not count a paused transfer.
            let seconds = max(1, (stall + 999_999_999) / 1_000_000_000)
            check(ccurl_easy_setopt_long(easy, CURLOPT_LOW_SPEED_LIMIT, 1), "low speed limit")
            check(ccurl_easy_setopt_long(easy, CURLOPT_LOW_SPEED_TIME, Int(min(seconds, UInt64(Int32.max)))), "low speed time")
        }
        check(ccurl_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, milliseconds(connectTimeout)), "connect timeout")
        // Lets libcurl refuse early when Content-Length already exceeds the limit.
        check(ccurl_easy_setopt_off_t(easy, CURLOPT_MAXFILESIZE_LARGE, curl_off_t(bodyLimit)), "max size")

        // Method and body.
        let method = request.method
        if method == .head {
            check(ccurl_easy_setopt_long(easy, CURLOPT_NOBODY, 1), "HEAD")
        } else if !request.body.isEmpty || method == .post || method == .put || method == .patch {
            check(ccurl_easy_setopt_off_t(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count)), "body size")
            let code = request.body.withUnsafeBytes { buffer -> CURLcode in
                // COPYPOSTFIELDS copies POSTFIELDSIZE bytes, so the buffer need not outlive this call.
                if let base = buffer.baseAddress {
                    return ccurl_easy_setopt_pointer(easy, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: base))
                }
                return "".withCString { empty in
                    ccurl_easy_setopt_pointer(easy, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: empty))
                }
            }
            check(code, "body")
            if method != .post {
                check(ccurl_easy_setopt_string(easy, CURLOPT_CUSTOMREQUEST, method.rawValue), "method")
            }
        } else if method != .get {
            check(ccurl_easy_setopt_string(easy, CURLOPT_CUSTOMREQUEST, method.rawValue), "method")
        }

        // Headers. "Name;" is libcurl's way to send an empty value ("Name:" would delete the header).
        var list: UnsafeMutablePointer<curl_slist>? = nil
        for field in request.headers {
            let line = field.value.isEmpty ? "\(field.name);" : "\(field.name): \(field.value)"
            guard let appended = curl_slist_append(list, line) else {
                if let list { curl_slist_free_all(list) }
                throw .clientUnavailable(reason: "libcurl could not allocate a header list")
            }
            list = appended
        }
        // A 100-continue round trip only adds latency for the small bodies sent here.
        if !request.headers.contains("Expect"), let appended = curl_slist_append(list, "Expect:") {
            list = appended
        }
        headerList = list
        check(ccurl_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, list), "headers")

        let context = Unmanaged.passUnretained(self).toOpaque()
        check(ccurl_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, context), "write data")
        check(ccurl_easy_setopt_pointer(easy, CURLOPT_HEADERDATA, context), "header data")
        check(
            ccurl_easy_setopt_write_function(easy) { data, size, count, context in
                guard let context else { return 0 }
                let transfer = Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue()
                return transfer.receiveBody(data, length: size * count)
            }, "write function")
        check(
            ccurl_easy_setopt_header_function(easy) { data, size, count, context in
                guard let context else { return 0 }
                let transfer = Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue()
                return transfer.receiveHeaderLine(data, length: size * count)
            }, "header function")

        if !failures.isEmpty {
            throw .invalidRequest(reason: failures.joined(separator: "; "))
        }
    }

    private func milliseconds(_ nanoseconds: UInt64) -> Int {
        // Round up so a sub-millisecond timeout is not 0, which libcurl reads as "no timeout".
        let millis = nanoseconds / 1_000_000 + (nanoseconds % 1_000_000 == 0 ? 0 : 1)
        return Int(min(max(millis, 1), UInt64(Int32.max)))
    }

    // MARK: - Callbacks (loop thread)

    private func receiveBody(_ data: UnsafeMutablePointer<CChar>?, length: Int) -> Int {
        guard length > 0, let data else { return 0 }
        let streams = streamsBody ?? decideWhetherBodyStreams()
        let limit = streams ? bodyLimit : bufferedBodyLimit
        let (received, overflow) = receivedBodyBytes.addingReportingOverflow(length)
        guard !overflow, received <= limit else {
            exceededBodyLimitBytes = limit
            return 0  // makes libcurl abort the transfer with CURLE_WRITE_ERROR
        }
        let bytes = UnsafeRawBufferPointer(start: data, count: length)
        if streams, let streamedBody {
            switch streamedBody.offer(bytes) {
            case .accepted: break
            // libcurl keeps these bytes and offers them again once `CurlMultiLoop` unpauses.
            case .full: return ccurl_writefunc_pause()
            case .closed: return 0
            }
        } else {
            responseBody.append(contentsOf: bytes)
        }
        receivedBodyBytes = received
        return length
    }

    private func decideWhetherBodyStreams() -> Bool {
        var status = 0
        if streamedBody != nil, let easy {
            _ = ccurl_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
        }
        let streams = (200..<300).contains(status)
        streamsBody = streams
        return streams
    }

    private func receiveHeaderLine(_ data: UnsafeMutablePointer<CChar>?, length: Int) -> Int {
        guard length > 0, let data else { return length }
        var bytes = UnsafeRawBufferPointer(start: data, count: length)[...]
        while let last = bytes.last, last == 0x0A || last == 0x0D { bytes = bytes.dropLast() }
        if bytes.isEmpty { return length }
        if bytes.starts(with: "HTTP/".utf8) {
            // A new response head (after 1xx): only the final head's fields are kept.
            responseHeaders = HTTPHeaders()
            return length
        }
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")) else { return length }
        guard responseHeaders.count < headerFieldLimit else {
            exceededHeaderLimit = true
            return 0
        }
        let name = String(decoding: bytes[..<colon], as: UTF8.self)
        let value = String(Substring(decoding: bytes[(colon + 1)...], as: UTF8.self).trimmingOptionalWhitespace())
        responseHeaders.add(name: name, value: value)
        return length
    }
}
