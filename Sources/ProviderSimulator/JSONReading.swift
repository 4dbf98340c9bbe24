// The simulator speaks JSON through the project's GatewayJSON (ordered members, so responses
// read like the providers' documents and are byte-for-byte deterministic; booleans, integers and
// doubles distinct, so `{"isTest": 1}` can be refused as Kaizen would). What is here is only
// what the simulated APIs need on top of it.

import GatewayJSON

extension JSONValue {
    static func int(_ value: Int) -> JSONValue { .integer(Int64(value)) }

    /// `.string(value)` or `.null`.
    static func optional(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }

    /// A request body or cursor as the simulated APIs read it. A member named twice keeps its
    /// first place and takes its last value, as JavaScript's `JSON.parse` and Rails read it, so
    /// `{"status": "Failed", "status": "Completed"}` filters like the real upstream would;
    /// GatewayJSON keeps both members and its lookups see the first.
    static func parseUpstreamRequest(_ bytes: [UInt8]) throws(JSONParseError) -> JSONValue {
        try JSONParser.parse(bytes).keepingLastOfDuplicateMembers
    }

    private var keepingLastOfDuplicateMembers: JSONValue {
        switch self {
        case .array(let elements):
            return .array(elements.map(\.keepingLastOfDuplicateMembers))
        case .object(let object):
            var collapsed = JSONObject()
            // Assigning an existing key replaces its value in place.
            for member in object { collapsed[member.key] = member.value.keepingLastOfDuplicateMembers }
            return .object(collapsed)
        case .null, .bool, .integer, .double, .string:
            return self
        }
    }

    /// Every scalar inside, rendered as text (numbers as the writer renders them): what Kaizen's
    /// "search the parameters" looks at.
    var scalarTexts: [String] {
        switch self {
        case .null: []
        case .bool(let value): [value ? "true" : "false"]
        case .integer(let value): [String(value)]
        case .double: [String(decoding: serialized(), as: UTF8.self)]
        case .string(let value): [value]
        case .array(let values): values.flatMap(\.scalarTexts)
        case .object(let object): object.flatMap(\.value.scalarTexts)
        }
    }
}

extension JSONObject {
    var isEmpty: Bool { count == 0 }

    /// A control-API field that may be absent or null and is otherwise a string.
    func optionalString(_ key: String) throws(SimulatorControlError) -> String? {
        guard let value = self[key], !value.isNull else { return nil }
        guard let text = value.stringValue else { throw SimulatorControlError("'\(key)' must be a string") }
        return text
    }
}

extension JSONParseError {
    /// The wording the simulator's error bodies have always used.
    var simulatorDescription: String { "\(reason) at byte \(offset)" }
}
