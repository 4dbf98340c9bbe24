/// Finds the known key an unknown one was probably meant to be ("baseUrl" -> "baseURL", "timeout" -> "timeoutMs").
enum KeySuggestion {
    static func closest(to unknown: String, among known: [String]) -> String? {
        let lowered = unknown.lowercased()
        if let sameIgnoringCase = known.first(where: { $0.lowercased() == lowered }) {
            return sameIgnoringCase
        }
        let scored = known.map { candidate -> (String, Int) in
            let candidateLowered = candidate.lowercased()
            // A missing unit suffix or similar ("timeout" for "timeoutMs") is a common slip.
            if candidateLowered.hasPrefix(lowered) || lowered.hasPrefix(candidateLowered),
                min(lowered.count, candidateLowered.count) >= 4
            {
                return (candidate, 1)
            }
            return (candidate, editDistance(lowered, candidateLowered))
        }
        guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
        let tolerance = max(2, unknown.count / 3)
        return best.1 <= tolerance ? best.0 : nil
    }

    /// Levenshtein distance over characters.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = Array(repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
