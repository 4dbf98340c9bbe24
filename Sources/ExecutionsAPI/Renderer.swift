import GatewayCrypto
import GatewayHTTP
import GatewayJSON
import GatewayProviders

/// Renders API documents straight into bytes.
enum Renderer {
    struct Rendered {
        var body: [UInt8]
        var entityTag: String
        /// How many leading bytes of `body` the ETag covers (data, page, complete): a list page's
        /// reusable head, before the per-request `providers`.
        var entityTaggedCount: Int
    }

    /// The list page, or nil as soon as its bytes pass `maxBytes`: it stops at the
    /// first item past the cap, so a page that would be too large never holds more than the cap
    /// plus one item (whose size the upstream body limit bounds).
    static func listDocument(
        items: [ExecutionsService.JoinedExecution],
        include: Set<IncludeField>,
        limit: Int,
        nextCursor: String?,
        complete: Bool,
        providers: [ProviderReport],
        requestID: String,
        maxBytes: Int = .max
    ) -> Rendered? {
        // data, page and complete first: the ETag covers exactly these bytes.
        var writer = JSONWriter(capacity: min(maxBytes, 512 + items.count * 700))
        writer.raw("{\"data\":[")
        for (index, item) in items.enumerated() {
            if index > 0 { writer.raw(UInt8(ascii: ",")) }
            writeExecution(item, include: include, into: &writer, requestID: requestID)
            if writer.bytes.count > maxBytes { return nil }
        }
        writer.raw("],\"page\":{\"limit\":")
        writer.raw(String(limit))
        writer.raw(",\"hasMore\":")
        writer.raw(nextCursor == nil ? "false" : "true")
        writer.raw(",\"nextCursor\":")
        writer.optionalString(nextCursor)
        writer.raw("},\"complete\":")
        writer.raw(complete ? "true" : "false")
        let entityTag = weakEntityTag(of: writer.bytes)
        let entityTaggedCount = writer.bytes.count
        writeProviders(providers, requestID: requestID, into: &writer)
        if writer.bytes.count > maxBytes { return nil }
        return Rendered(body: writer.bytes, entityTag: entityTag, entityTaggedCount: entityTaggedCount)
    }

    /// `,"providers":[…]}`: the end of a list document, after the part the ETag covers.
    static func writeProviders(_ providers: [ProviderReport], requestID: String, into writer: inout JSONWriter) {
        writer.raw(",\"providers\":[")
        // Written member by member rather than through `object`: a cache hit renders only this
        // part of its page, on every request.
        for (index, report) in providers.enumerated() {
            writer.raw(index > 0 ? ",{\"name\":" : "{\"name\":")
            writer.string(report.name)
            writer.raw(report.error == nil ? ",\"status\":\"ok\"" : ",\"status\":\"error\"")
            if let cache = report.cache {
                writer.raw(",\"cache\":")
                writer.string(cache.rawValue)
            }
            writer.raw(",\"durationMs\":")
            writer.raw(String(report.durationMilliseconds))
            if report.exhausted { writer.raw(",\"exhausted\":true") }
            if report.scanCutShort { writer.raw(",\"scanCutShort\":true") }
            if let dataAsOf = report.dataAsOf {
                writer.raw(",\"asOf\":")
                writer.string(dataAsOf)
            }
            if let error = report.error {
                writer.raw(",\"error\":")
                writer.write(error.json(requestID: requestID))
            }
            writer.raw(UInt8(ascii: "}"))
        }
        writer.raw("]}")
    }

    static func detailDocument(_ detail: ExecutionDetail, joinable: Set<JoinableField>) -> Rendered {
        var writer = JSONWriter(capacity: 2048)
        writer.raw("{\"data\":")
        let item = ExecutionsService.JoinedExecution(execution: detail.execution, detail: detail, error: nil, cache: detail.cache)
        writeExecution(item, include: [.downloads, .startBlock, .events, .detail], into: &writer, requestID: nil)
        writer.raw("}")
        return Rendered(body: writer.bytes, entityTag: weakEntityTag(of: writer.bytes), entityTaggedCount: writer.bytes.count)
    }

    /// The unified execution (docs/api.md), then each included field, then any join error.
    static func writeExecution(
        _ item: ExecutionsService.JoinedExecution,
        include: Set<IncludeField>,
        into writer: inout JSONWriter,
        requestID: String?
    ) {
        let execution = item.execution
        writer.object { member in
            member.member("id", string: execution.id)
            member.member("provider", string: execution.provider)
            member.member("providerExecutionId", string: execution.providerExecutionID)
            if let workflow = execution.workflow {
                member.member("workflow", writing: { writer in
                    writer.object { inner in
                        inner.member("id", string: workflow.id)
                        inner.member("name", string: workflow.name)
                    }
                })
            } else {
                member.member("workflow", .null)
            }
            member.member("name", string: execution.name)
            member.member("status", string: execution.status?.rawValue)
            member.member("providerStatus", string: execution.providerStatus)
            member.member("createdAt", string: execution.createdAt.rfc3339)
            member.member("startedAt", string: execution.startedAt?.rfc3339)
            member.member("endedAt", string: execution.endedAt?.rfc3339)
            member.member("durationMs", execution.durationMs.map(JSONValue.integer) ?? .null)
            member.member("isTest", execution.isTest.map(JSONValue.bool) ?? .null)
            member.member("attempts", execution.attempts.map(JSONValue.integer) ?? .null)
            member.member("links", writing: { writer in
                writer.object { links in links.member("self", string: "/executions/" + pathSegmentEncoded(execution.id)) }
            })
            if include.contains(.downloads) { member.member("downloads", item.detail?.downloads ?? .null) }
            if include.contains(.startBlock) { member.member("startBlock", item.detail?.startBlock ?? .null) }
            if include.contains(.events) { member.member("events", item.detail?.events ?? .null) }
            if include.contains(.detail) { member.member("detail", item.detail?.record ?? .null) }
            if include.contains(.raw) { member.member("raw", execution.raw) }
            // No requestId inside data: it would change the ETag of every response carrying an error.
            if let error = item.error { member.member("enrichmentError", error.json(requestID: nil)) }
        }
    }

    /// `W/"…"`: a weak validator (the bytes are not promised identical across replicas' builds).
    static func weakEntityTag(of bytes: [UInt8]) -> String {
        "W/\"" + Base64URL.encode(SHA256.hash(bytes).prefix(18)) + "\""
    }

    /// Percent-encodes an id for use as one path segment, keeping `:` readable.
    static func pathSegmentEncoded(_ text: String) -> String {
        var output = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
                 UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: ":"), UInt8(ascii: "@"):
                output.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                output += percentEncode(String(decoding: [byte], as: UTF8.self))
            }
        }
        return output
    }
}
