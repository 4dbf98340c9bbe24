import GatewayJSON
import Logging

/// Lenient readers for provider records: an optional field that is missing, null or of the wrong
/// type reads as nil (the contract's `null`), so one odd field never fails a listing. Only what
/// the gateway cannot do without (an id, the creation instant) is required.
extension JSONObject {
    func string(_ key: String) -> String? {
        guard let text = self[key]?.stringValue, !text.isEmpty else { return nil }
        return text
    }

    func timestamp(_ key: String) -> Timestamp? {
        self[key]?.stringValue.flatMap { Timestamp(rfc3339: $0) }
    }

    func integer(_ key: String) -> Int64? {
        self[key]?.integerValue
    }

    /// A count or a duration: an integer below zero is impossible and reads as nil.
    func nonNegativeInteger(_ key: String) -> Int64? {
        integer(key).flatMap { $0 >= 0 ? $0 : nil }
    }

    func bool(_ key: String) -> Bool? {
        self[key]?.boolValue
    }

    func object(_ key: String) -> JSONObject? {
        self[key]?.objectValue
    }

    /// A workflow given as `{"id", "name"}` (Kaizen, Kapso); nil without an id.
    func workflowReference(_ key: String) -> WorkflowReference? {
        guard let workflow = object(key), let id = workflow.string("id") else { return nil }
        return WorkflowReference(id: id, name: workflow.string("name"))
    }

    /// The object under `key`, kept as the provider sent it (detail records pass through raw);
    /// `path` names it as the answer nests it.
    func requiredRecord(_ key: String, in what: String, path: String? = nil) throws(ProviderError) -> JSONValue {
        guard let record = self[key], record.objectValue != nil else {
            throw .malformedResponse(reason: "\(what) has no '\(path ?? key)' object")
        }
        return record
    }

    func requiredID(_ key: String, in what: String) throws(ProviderError) -> String {
        guard let id = string(key) else {
            throw .malformedResponse(reason: "\(what) without a string '\(key)'")
        }
        return id
    }

    func requiredTimestamp(_ key: String, of id: String) throws(ProviderError) -> Timestamp {
        guard let instant = timestamp(key) else {
            throw .malformedResponse(reason: "execution '\(id)' has no RFC 3339 '\(key)'")
        }
        return instant
    }
}

extension JSONValue {
    /// The root object of an answer, or a typed error naming what was expected.
    func requiredObject(_ what: String) throws(ProviderError) -> JSONObject {
        guard let object = objectValue else { throw .malformedResponse(reason: "\(what) is not a JSON object") }
        return object
    }

    /// Every scalar inside the value, as text: strings as they are, numbers as JSON writes them,
    /// booleans as `true`/`false`; arrays and objects flattened (values only, not keys). What `q`
    /// searches in Kaizen `params` and B3OS `requestPayload`.
    var searchableTexts: [String] {
        var texts: [String] = []
        collectSearchableTexts(into: &texts)
        return texts
    }

    private func collectSearchableTexts(into texts: inout [String]) {
        switch self {
        case .null:
            break
        case .string(let text):
            texts.append(text)
        case .bool(let flag):
            texts.append(flag ? "true" : "false")
        case .integer(let number):
            texts.append(String(number))
        case .double:
            var writer = JSONWriter(capacity: 24)
            writer.write(self)
            texts.append(String(decoding: writer.bytes, as: UTF8.self))
        case .array(let elements):
            for element in elements { element.collectSearchableTexts(into: &texts) }
        case .object(let object):
            for member in object { member.value.collectSearchableTexts(into: &texts) }
        }
    }
}

/// Where list items that cannot be read go: skipped, with the reason logged under the request
/// id, so one record without an id or with an impossible creation instant never fails its
/// provider's listing. (A value that is merely impossible, like a duration, reads as null instead.)
struct SkippedRecordLog: Sendable {
    let logger: Logger
    let provider: String
    let requestID: String

    /// For decoding whose skipped records nobody reads (the fuzz target).
    static func discarding(provider: String) -> SkippedRecordLog {
        SkippedRecordLog(logger: Logger(label: "discarded", factory: { _ in SwiftLogNoOpLogHandler() }), provider: provider, requestID: "")
    }

    /// `read(item)`, or nil (logged) when the item cannot be read.
    func readable(_ item: JSONValue, _ read: (JSONValue) throws(ProviderError) -> UnifiedExecution) -> UnifiedExecution? {
        do throws(ProviderError) {
            return try read(item)
        } catch {
            logger.warning("provider record skipped", metadata: [
                "provider": "\(provider)", "requestId": "\(requestID)", "reason": "\(error.description)",
            ])
            return nil
        }
    }
}

/// Milliseconds between two instants when both are known and in order; nil when the span does not
/// fit in Int64 nanoseconds (instants from 1677 to 2262 are each representable, their distance is not).
func elapsedMilliseconds(from start: Timestamp?, to end: Timestamp?) -> Int64? {
    guard let start, let end, end >= start else { return nil }
    let (nanoseconds, overflow) = end.nanosecondsSinceEpoch.subtractingReportingOverflow(start.nanosecondsSinceEpoch)
    return overflow ? nil : nanoseconds / 1_000_000
}

extension ExecutionFilter {
    /// The later (in listing order) of `position` and the `createdBefore` bound, so a listing can
    /// skip everything before it with one comparison. nil: from the start.
    public func effectiveBoundary(after position: ProviderPosition?) -> ExecutionSortKey? {
        var boundary = position?.last
        // Every execution created at or before `createdBefore` comes after this key.
        if let createdBefore, let bound = ExecutionSortKey.above(createdBefore) {
            if boundary.map({ $0.precedes(bound) }) ?? true { boundary = bound }
        }
        return boundary
    }

    /// Search terms that can be sent to a provider whose search sees only its own ids and
    /// parameters: none when a term could match the `<provider>:` prefix of the unified id,
    /// because the provider would then drop executions the gateway's filter keeps.
    func searchTermsForUpstream(providerName: String) -> [String] {
        let prefix = Array((providerName + ":").lowercased().utf8)
        for term in searchTerms {
            let needle = Array(term.lowercased().utf8)
            if needle.isEmpty { return [] }
            // The term lies inside the prefix, or starts inside it and runs on into the id.
            if prefix.count >= needle.count, containsSubsequence(prefix, needle) { return [] }
            for length in 1...min(needle.count, prefix.count) where prefix.suffix(length).elementsEqual(needle.prefix(length)) {
                return []
            }
        }
        return searchTerms
    }
}

private func containsSubsequence(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard needle.count <= haystack.count else { return false }
    for start in 0...(haystack.count - needle.count) where haystack[start..<start + needle.count].elementsEqual(needle) {
        return true
    }
    return false
}
