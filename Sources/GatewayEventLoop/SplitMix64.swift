/// A tiny seeded generator (SplitMix64): the same seed gives the same stream on every run and
/// platform, which `SystemRandomNumberGenerator` cannot. The simulator builds its worlds from it and
/// property tests reproduce a failure from its seed. Never for secrets: those come from
/// `RandomIdentifier` and `secureRandomBytes` (the kernel).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// A generator whose stream depends on `seed` and on `labels`, so that changing one part of a
    /// generated world (a provider's, an organisation's) never reshuffles another's.
    public init(seed: UInt64, labels: String...) {
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

    public mutating func next() -> UInt64 {
        state = state &+ 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }
}
