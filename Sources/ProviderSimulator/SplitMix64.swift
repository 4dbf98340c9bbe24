/// A tiny seeded PRNG (SplitMix64): the same seed gives the same simulated world on every run
/// and platform, which `SystemRandomNumberGenerator` cannot.
struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    /// A generator whose stream depends on `seed` and on `labels`, so that changing one
    /// provider's or organisation's data never reshuffles another's.
    init(seed: UInt64, labels: String...) {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for label in labels {
            for byte in label.utf8 {
                hash ^= UInt64(byte)
                hash = hash &* 0x0000_0100_0000_01B3
            }
            hash ^= 0xFF
            hash = hash &* 0x0000_0100_0000_01B3
        }
        state = seed ^ hash
    }

    mutating func next() -> UInt64 {
        state = state &+ 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func int(in range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }

    mutating func int64(in range: ClosedRange<Int64>) -> Int64 { Int64.random(in: range, using: &self) }

    /// True with probability `probability` (0...1).
    mutating func chance(_ probability: Double) -> Bool { Double.random(in: 0..<1, using: &self) < probability }

    mutating func pick<T>(_ elements: [T]) -> T {
        precondition(!elements.isEmpty, "pick from an empty list is a programming error")
        return elements[int(in: 0...(elements.count - 1))]
    }

    /// Picks by relative weight.
    mutating func weighted<T>(_ choices: [(T, Int)]) -> T {
        let total = choices.reduce(0) { $0 + $1.1 }
        var roll = int(in: 0...(total - 1))
        for (choice, weight) in choices {
            if roll < weight { return choice }
            roll -= weight
        }
        return choices[choices.count - 1].0
    }

    /// A random RFC 4122 version 4 UUID in lower case.
    mutating func uuid() -> String {
        var bytes = (0..<16).map { _ in UInt8(truncatingIfNeeded: next()) }
        bytes[6] = bytes[6] & 0x0F | 0x40
        bytes[8] = bytes[8] & 0x3F | 0x80
        let hex = bytes.map { byte in
            let digits = String(byte, radix: 16)
            return digits.count == 1 ? "0" + digits : digits
        }
        return hex[0..<4].joined() + "-" + hex[4..<6].joined() + "-" + hex[6..<8].joined() + "-"
            + hex[8..<10].joined() + "-" + hex[10..<16].joined()
    }

    /// `count` characters from a lower-case alphanumeric alphabet.
    mutating func token(_ count: Int, alphabet: String = "abcdefghijklmnopqrstuvwxyz0123456789") -> String {
        let characters = Array(alphabet)
        return String((0..<count).map { _ in pick(characters) })
    }
}
