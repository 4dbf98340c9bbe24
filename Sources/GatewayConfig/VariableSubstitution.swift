import Configuration

/// `${NAME}` references in scalar values, replaced from the environment.
///
/// - `NAME` is `[A-Za-z_][A-Za-z0-9_]*`; the value is used verbatim and not scanned again.
/// - `$${` is a literal `${`. A `$` not followed by `{` is literal (`pa$$word` stays as written).
/// - An unset variable, an unterminated `${` or a bad name is a problem; every one in a value is reported.
struct VariableSubstitution {
    let environment: EnvironmentVariablesProvider

    enum Failure: Equatable {
        case unsetVariable(String)
        case unterminatedReference
        case invalidName(String)

        var message: String {
            switch self {
            case .unsetVariable(let name):
                "environment variable \(name) is not set"
            case .unterminatedReference:
                "has a \"${\" without a closing \"}\" (write \"$${\" for a literal \"${\")"
            case .invalidName(let name):
                "has an invalid variable reference \"${\(name)}\" (names are letters, digits and \"_\", not starting with a digit)"
            }
        }
    }

    enum Outcome: Equatable {
        case substituted(String)
        case failed([Failure])
    }

    func substitute(_ text: String) -> Outcome {
        guard text.contains("$") else { return .substituted(text) }
        var output = ""
        var failures: [Failure] = []
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            let rest = text[index...]
            if rest.hasPrefix("$${") {
                output += "${"
                index = text.index(index, offsetBy: 3)
            } else if rest.hasPrefix("${") {
                let nameStart = text.index(index, offsetBy: 2)
                guard let closing = text[nameStart...].firstIndex(of: "}") else {
                    failures.append(.unterminatedReference)
                    break
                }
                let name = String(text[nameStart..<closing])
                if !Self.isValidName(name) {
                    failures.append(.invalidName(name))
                } else if let value = try? environment.environmentValue(forName: name) {
                    output += value
                } else {
                    failures.append(.unsetVariable(name))
                }
                index = text.index(after: closing)
            } else {
                output.append(character)
                index = text.index(after: index)
            }
        }
        return failures.isEmpty ? .substituted(output) : .failed(failures)
    }

    static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || first.isASCIILetter else { return false }
        return name.unicodeScalars.allSatisfy { $0 == "_" || $0.isASCIILetter || ("0"..."9").contains($0) }
    }
}

extension Unicode.Scalar {
    var isASCIILetter: Bool { ("a"..."z").contains(self) || ("A"..."Z").contains(self) }
}
