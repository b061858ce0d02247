// Shared by every fuzz target, in the fuzzer binaries and in the replay tests (the test
// targets see this folder through a symlink). A target is an enum with
// `static func run(_ data: [UInt8]) throws`, which throws FuzzFailure when a check
// fails; the fuzzer turns that into a crash, the replay tests into a test failure.

/// A check of a fuzz target that did not hold.
struct FuzzFailure: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// Throws a FuzzFailure with `message` unless `condition` holds.
func fuzzRequire(
    _ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String
) throws {
    if !condition() { throw FuzzFailure(message: message()) }
}

/// Reads parameters from the front of a fuzz input and hands out the rest. Exhausted
/// input reads as zeros, so every input decodes to something.
struct FuzzInput {
    private let bytes: [UInt8]
    private(set) var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// The next byte, or 0 when none is left.
    mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    /// A little-endian 16-bit value.
    mutating func uint16() -> UInt16 {
        let lo = UInt16(byte())
        return lo | UInt16(byte()) << 8
    }

    /// A value in `range`, from one byte (ranges of up to 256 values are uniform).
    mutating func int(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(byte()) % (range.upperBound - range.lowerBound + 1)
    }

    /// Whether the next byte is odd.
    mutating func bool() -> Bool { byte() & 1 == 1 }

    /// Up to `count` bytes.
    mutating func take(_ count: Int) -> [UInt8] {
        let end = min(bytes.count, position + max(0, count))
        defer { position = end }
        return Array(bytes[position..<end])
    }

    /// Everything not read yet.
    mutating func rest() -> [UInt8] { take(bytes.count - position) }
}

/// Cut points for feeding `count` bytes in pieces: a small deterministic generator
/// seeded from the input, so the fuzzer controls the splits. Pieces are mostly short
/// (0-15 bytes, empty ones included: feeding nothing must be harmless), sometimes long.
func fuzzPieces(count: Int, seed: UInt8) -> [Int] {
    var state = UInt32(seed) &* 0x9E37_79B9 | 1
    var sizes: [Int] = []
    var left = count
    while left > 0 {
        state ^= state << 13
        state ^= state >> 17
        state ^= state << 5
        let size = state & 0x30 == 0x30 ? Int(state >> 8) % 512 : Int(state >> 8) % 16
        sizes.append(min(size, left))
        left -= min(size, left)
    }
    return sizes
}

#if FUZZ_ENTRY
/// The body of LLVMFuzzerTestOneInput: runs a target on libFuzzer's bytes and aborts
/// with the failed check's message, which libFuzzer records as a crash.
func fuzzMain(
    _ data: UnsafePointer<UInt8>?, _ size: Int, _ run: ([UInt8]) throws -> Void
) -> Int32 {
    let bytes = size > 0 && data != nil ? Array(UnsafeBufferPointer(start: data, count: size)) : []
    do {
        try run(bytes)
    } catch {
        fatalError("fuzz check failed: \(error)")
    }
    return 0
}
#endif

/// What an independent UTF-8 check says about a byte string.
enum UTF8Verdict: Equatable {
    /// The first byte that no well-formed text can have at its place.
    case invalid(at: Int)
    /// Every byte fine, but the last sequence is unfinished.
    case unfinished
    case valid
}

/// UTF-8 by Unicode's Table 3-7 (well-formed byte sequences), written for the fuzz
/// targets without looking at the engine: a lead byte fixes how many continuation bytes
/// follow and the range of the first one.
func utf8Verdict(_ bytes: [UInt8]) -> UTF8Verdict {
    var i = 0
    while i < bytes.count {
        let lead = bytes[i]
        let count: Int
        var first: ClosedRange<UInt8> = 0x80...0xBF
        switch lead {
        case 0x00...0x7F: count = 0
        case 0xC2...0xDF: count = 1
        case 0xE0: count = 2; first = 0xA0...0xBF
        case 0xED: count = 2; first = 0x80...0x9F
        case 0xE1...0xEF: count = 2
        case 0xF0: count = 3; first = 0x90...0xBF
        case 0xF4: count = 3; first = 0x80...0x8F
        case 0xF1...0xF3: count = 3
        default: return .invalid(at: i)
        }
        for k in stride(from: 1, through: count, by: 1) {
            guard i + k < bytes.count else { return .unfinished }
            if !(k == 1 ? first : 0x80...0xBF).contains(bytes[i + k]) { return .invalid(at: i + k) }
        }
        i += count + 1
    }
    return .valid
}
