/// SplitMix64: a small, fast, seeded generator, so test failures and benchmark inputs
/// reproduce. Not for anything that needs unpredictability.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    /// The generator's whole state.
    public var state: UInt64

    /// Creates a generator; the same seed gives the same sequence.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// `n` random bytes.
    public mutating func bytes(_ n: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: n)
        var i = 0
        while i < n {
            var x = next()
            for _ in 0..<8 where i < n {
                out[i] = UInt8(truncatingIfNeeded: x)
                x >>= 8
                i += 1
            }
        }
        return out
    }
}
