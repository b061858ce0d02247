import SeededRandom
// UTF-8 validation (RFC 3629): every instruction-set path of cws_utf8_feed_isa against
// Swift's own decoder (valid or not) and a byte-level reference built from Unicode's
// Table 3-7 (where it fails), whole and split into parts.
import CWebSocket
import Testing

/// One instruction-set path, named in test output.
struct UTF8Path: Sendable, CustomTestStringConvertible {
    let isa: cws_isa
    var testDescription: String { String(cString: cws_isa_name(isa)) }

    static let all = [CWS_ISA_SCALAR, CWS_ISA_SSE2, CWS_ISA_AVX2, CWS_ISA_AVX512, CWS_ISA_NEON]
        .map(UTF8Path.init)
    static let supported = all.filter { cws_isa_supported($0.isa) }
    static let unsupported = all.filter { !cws_isa_supported($0.isa) }
}

/// What validating a message gives: where it failed (absolute), or whether it may end.
private enum Outcome: Equatable, CustomStringConvertible {
    case failed(at: Int)
    case open  // every byte fine, but a sequence is left incomplete
    case valid

    var description: String {
        switch self {
        case .failed(let at): "failed at \(at)"
        case .open: "open"
        case .valid: "valid"
        }
    }
}


/// The definition, written from Table 3-7 (well-formed byte sequences): the first byte
/// no well-formed text can have there, else whether a sequence is left open.
private func reference(_ bytes: [UInt8]) -> Outcome {
    var i = 0
    while i < bytes.count {
        let b = bytes[i]
        if b < 0x80 {
            i += 1
            continue
        }
        // (continuation bytes, range of the first continuation)
        let shape: (Int, ClosedRange<UInt8>)
        switch b {
        case 0xC2...0xDF: shape = (1, 0x80...0xBF)
        case 0xE0: shape = (2, 0xA0...0xBF)
        case 0xE1...0xEC, 0xEE...0xEF: shape = (2, 0x80...0xBF)
        case 0xED: shape = (2, 0x80...0x9F)
        case 0xF0: shape = (3, 0x90...0xBF)
        case 0xF1...0xF3: shape = (3, 0x80...0xBF)
        case 0xF4: shape = (3, 0x80...0x8F)
        default: return .failed(at: i)
        }
        for k in 1...shape.0 {
            if i + k >= bytes.count { return .open }
            let range: ClosedRange<UInt8> = k == 1 ? shape.1 : 0x80...0xBF
            if !range.contains(bytes[i + k]) { return .failed(at: i + k) }
        }
        i += shape.0 + 1
    }
    return .valid
}

private func swiftAccepts(_ bytes: [UInt8]) -> Bool {
    String(validating: bytes, as: UTF8.self) != nil
}

/// Feeds bytes to one path in the parts the cut points give; error positions are made
/// absolute.
private func run(_ isa: cws_isa, _ bytes: [UInt8], cuts: [Int] = []) -> Outcome {
    var state = cws_utf8()
    cws_utf8_init(&state)
    return bytes.withUnsafeBufferPointer { buf -> Outcome in
        var start = 0
        for end in cuts + [buf.count] {
            var offset = -1
            let ok = cws_utf8_feed_isa(
                isa, &state, buf.baseAddress.map { $0 + start }, end - start, &offset)
            if !ok {
                // The state stays failed, and says so at offset 0.
                var again = -1
                let one: [UInt8] = [0x41]
                if cws_utf8_feed_isa(isa, &state, one, 1, &again) || again != 0
                    || cws_utf8_finish(&state)
                {
                    return .failed(at: -1)
                }
                return .failed(at: start + offset)
            }
            start = end
        }
        return cws_utf8_finish(&state) ? .valid : .open
    }
}

// MARK: - Inputs

private func encode(_ scalar: UInt32) -> [UInt8] {
    var out: [UInt8] = []
    UTF8.encode(Unicode.Scalar(scalar)!) { out.append($0) }
    return out
}

/// Random scalar: ASCII, 2-, 3- or 4-byte, or mixed (class 4).
private func randomScalar(_ cls: Int, _ rng: inout SeededRandom) -> UInt32 {
    switch cls {
    case 0: return UInt32.random(in: 0...0x7F, using: &rng)
    case 1: return UInt32.random(in: 0x80...0x7FF, using: &rng)
    case 2:
        let c = UInt32.random(in: 0x800...0xF7FF, using: &rng)
        return c >= 0xD800 ? c + 0x800 : c  // skip the surrogates
    case 3: return UInt32.random(in: 0x10000...0x10FFFF, using: &rng)
    default:
        return Bool.random(using: &rng)
            ? randomScalar(0, &rng) : randomScalar(Int.random(in: 1...3, using: &rng), &rng)
    }
}

private func randomText(length: Int, _ rng: inout SeededRandom) -> [UInt8] {
    let cls = Int.random(in: 0...5, using: &rng)  // 5: pick per scalar
    var out: [UInt8] = []
    out.reserveCapacity(length + 4)
    while out.count < length {
        let c = cls == 5 ? Int.random(in: 0...4, using: &rng) : cls
        out += encode(randomScalar(c, &rng))
    }
    return out
}

/// Long texts (about 1 MiB) and their reference outcome, built once: Swift is slow at
/// this in a debug build.
private let bigTexts: [(bytes: [UInt8], outcome: Outcome)] = {
    var rng = SeededRandom(seed: 0x5EED_0001)
    let cjk = String(repeating: "漢字かな交じり文、", count: 40_000)  // 3-byte
    let emoji = String(repeating: "😀🎉🚀", count: 90_000)  // 4-byte
    var mixed = randomText(length: 1 << 20, &rng)
    mixed.removeLast(mixed.count - (1 << 20) + 3)  // may cut a sequence: left open
    return [Array(cjk.utf8), Array(emoji.utf8), mixed].map { ($0, reference($0)) }
}()

// MARK: - Tests

@Suite struct UTF8Tests {
    /// Agreement with Swift's decoder and the reference, and the same answer from every
    /// path and from the dispatched entry points.
    private func expectAgreement(
        _ bytes: [UInt8], _ isa: cws_isa, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let want = reference(bytes)
        #expect(
            (want == .valid) == swiftAccepts(bytes), "reference vs Swift",
            sourceLocation: sourceLocation)
        let got = run(isa, bytes)
        #expect(got == want, "\(bytes.count) bytes", sourceLocation: sourceLocation)
    }

    @Test(arguments: UTF8Path.supported)
    func boundaryScalarsAreValid(path: UTF8Path) {
        let scalars: [UInt32] = [
            0x0, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFD, 0xFFFF, 0x10000, 0x10FFFF,
        ]
        let contexts: [[UInt8]] = [
            [], Array(repeating: 0x61, count: 61), Array(String(repeating: "é", count: 40).utf8),
        ]
        for s in scalars {
            for ctx in contexts {
                let bytes = ctx + encode(s) + ctx + encode(s)
                #expect(swiftAccepts(bytes))
                #expect(run(path.isa, bytes) == .valid, "U+\(String(s, radix: 16))")
            }
        }
    }

    /// Each invalid form fails at the byte that makes it impossible, wherever it sits:
    /// after ASCII or multi-byte text of many lengths (so around 16/32/64-byte blocks).
    @Test(arguments: UTF8Path.supported)
    func invalidFormsFailAtExactOffset(path: UTF8Path) {
        let cases: [([UInt8], Int)] = [
            ([0xC0, 0x80], 0), ([0xC0, 0xAF], 0), ([0xC1, 0xBF], 0),  // overlong 2-byte
            ([0xE0, 0x80, 0x80], 1), ([0xE0, 0x9F, 0xBF], 1),  // overlong 3-byte
            ([0xF0, 0x80, 0x80, 0x80], 1), ([0xF0, 0x8F, 0xBF, 0xBF], 1),  // overlong 4-byte
            ([0xED, 0xA0, 0x80], 1), ([0xED, 0xBF, 0xBF], 1),  // surrogates
            ([0xF4, 0x90, 0x80, 0x80], 1), ([0xF4, 0xBF, 0xBF, 0xBF], 1),  // above U+10FFFF
            ([0xF5, 0x80, 0x80, 0x80], 0), ([0xF7, 0xBF, 0xBF, 0xBF], 0),
            ([0xF8, 0x88, 0x80, 0x80, 0x80], 0), ([0xFE], 0), ([0xFF], 0),
            ([0x80], 0), ([0xBF], 0), ([0x41, 0x80], 1),  // stray continuation
            ([0xC2, 0x80, 0x80], 2), ([0xE2, 0x82, 0xAC, 0xAC], 3),  // one too many
            ([0xF0, 0x9F, 0x98, 0x80, 0x80], 4),
            ([0xC2, 0x41], 1), ([0xE2, 0x28, 0xA1], 1), ([0xE2, 0x82, 0x41], 2),  // too few
            ([0xF0, 0x9F, 0x98, 0x41], 3), ([0xF0, 0x28, 0x8C, 0xBC], 1),
            ([0xE2, 0xC2, 0x80], 1), ([0xF1, 0xF1], 1), ([0xC2, 0xE2, 0x82, 0xAC], 1),
        ]
        var rng = SeededRandom(seed: 0xBAD)
        let multi = Array(String(repeating: "aé漢😀", count: 40).utf8)
        for (bad, offset) in cases {
            #expect(reference(bad) == .failed(at: offset), "reference on \(bad)")
            #expect(!swiftAccepts(bad))
            #expect(run(path.isa, bad) == .failed(at: offset), "\(bad)")
            let prefixLengths = [
                1, 2, 3, 13, 15, 16, 17, 29, 30, 31, 32, 33, 61, 62, 63, 64, 65, 127, 128, 129,
                255, 256, 257, 300,
            ]
            for prefixLength in prefixLengths {
                let ascii = Array(repeating: UInt8(ascii: "x"), count: prefixLength)
                var text = ascii + bad + Array(repeating: UInt8(ascii: "y"), count: 70)
                #expect(
                    run(path.isa, text) == .failed(at: prefixLength + offset),
                    "\(bad) after \(prefixLength) ASCII")
                // After multi-byte text: cut at a scalar boundary near prefixLength.
                var cut = min(prefixLength, multi.count)
                while cut < multi.count, multi[cut] & 0xC0 == 0x80 { cut += 1 }
                text = Array(multi[..<cut]) + bad + multi
                #expect(
                    run(path.isa, text) == .failed(at: cut + offset),
                    "\(bad) after \(cut) multi-byte")
                // The same, fed in random parts.
                let cuts = (0..<3).map { _ in Int.random(in: 0...text.count, using: &rng) }.sorted()
                #expect(
                    run(path.isa, text, cuts: cuts) == .failed(at: cut + offset),
                    "\(bad) cut at \(cuts)")
            }
        }
    }

    /// Every lead byte followed by every second byte (with valid continuations after),
    /// alone and deep in a block.
    @Test(arguments: UTF8Path.supported)
    func allTwoBytePrefixes(path: UTF8Path) {
        let pad = Array(repeating: UInt8(ascii: "p"), count: 45)
        for a in 0...255 {
            for b in 0...255 {
                let seq: [UInt8] = [UInt8(a), UInt8(b), 0x80, 0x80]
                let text = pad + seq + pad
                let want = reference(text)
                if run(path.isa, text) != want {
                    Issue.record("\(seq) got \(run(path.isa, text)) want \(want)")
                    return
                }
            }
        }
    }

    @Test(arguments: UTF8Path.supported)
    func truncatedSequenceOnlyFailsAtFinish(path: UTF8Path) {
        for scalar: UInt32 in [0xE9, 0x20AC, 0x1F600, 0x10FFFF] {
            let full = encode(scalar)
            for ctx in [[], Array(repeating: UInt8(ascii: "t"), count: 100)] {
                for keep in 1..<full.count {
                    let text = ctx + full[..<keep]
                    #expect(swiftAccepts(text) == false)
                    #expect(run(path.isa, text) == .open, "\(text.count) bytes")
                    // Completed by a later call, one byte at a time or all at once.
                    let whole = text + full[keep...]
                    #expect(run(path.isa, whole, cuts: [text.count]) == .valid)
                    #expect(run(path.isa, whole, cuts: Array(text.count...whole.count)) == .valid)
                }
            }
        }
    }

    @Test(arguments: UTF8Path.supported)
    func randomValidTextAgreesWithSwift(path: UTF8Path) {
        var rng = SeededRandom(seed: 0x7E57_0000 &+ UInt64(path.isa.rawValue))
        for round in 0..<300 {
            let length = round < 100 ? round : Int.random(in: 0...5000, using: &rng)
            let text = randomText(length: length, &rng)
            #expect(swiftAccepts(text))
            #expect(run(path.isa, text) == .valid, "\(text.count) bytes")
        }
        for (text, want) in bigTexts {
            #expect(want == (swiftAccepts(text) ? .valid : .open))
            #expect(run(path.isa, text) == want)
        }
    }

    @Test(arguments: UTF8Path.supported)
    func randomInvalidTextAgreesWithSwiftAndReference(path: UTF8Path) {
        var rng = SeededRandom(seed: 0xF00D_0000 &+ UInt64(path.isa.rawValue))
        var failures = 0
        for round in 0..<600 {
            let length = Int.random(in: 0...(round % 4 == 0 ? 5000 : 300), using: &rng)
            var text = randomText(length: length, &rng)
            switch round % 4 {
            case 0 where !text.isEmpty:  // one bit flipped
                let bit = UInt8.random(in: 0...7, using: &rng)
                text[Int.random(in: 0..<text.count, using: &rng)] ^= 1 << bit
            case 1 where !text.isEmpty:  // one byte replaced
                let byte = UInt8.random(in: 0x80...0xFF, using: &rng)
                text[Int.random(in: 0..<text.count, using: &rng)] = byte
            case 2 where !text.isEmpty:  // truncated
                text.removeLast(Int.random(in: 1...min(3, text.count), using: &rng))
            default:  // random bytes
                text = (0..<Int.random(in: 0...400, using: &rng)).map { _ in
                    UInt8.random(in: 0...255, using: &rng)
                }
            }
            let want = reference(text)
            #expect((want == .valid) == swiftAccepts(text))
            let got = run(path.isa, text)
            if got != want {
                Issue.record("round \(round): \(text.count) bytes, got \(got), want \(want)")
                failures += 1
                if failures > 5 { return }
            }
        }
        // Errors deep inside the long texts, at and around 16/32/64-byte block edges.
        // The text before is valid, so the error is exactly there: a continuation byte
        // where a sequence starts, or ASCII where one must continue.
        for (text, _) in bigTexts.prefix(2) {
            let positions = [
                4094, 4095, 4096, 4097, 65_535, 65_536, 65_537, text.count - 70, text.count - 1,
            ]
            for position in positions {
                var bad = text
                bad[position] = bad[position] & 0xC0 == 0x80 ? 0x41 : 0x80
                #expect(run(path.isa, bad) == .failed(at: position), "error at \(position)")
            }
        }
    }

    /// Every split point into two parts, and random many-part splits, give the answer
    /// and the absolute error position of one piece.
    @Test(arguments: UTF8Path.supported)
    func splitsMatchOnePiece(path: UTF8Path) {
        var rng = SeededRandom(seed: 0x5B11_7000 &+ UInt64(path.isa.rawValue))
        for round in 0..<24 {
            var text = randomText(length: Int.random(in: 1...260, using: &rng), &rng)
            if round % 3 == 1 {
                let byte = UInt8.random(in: 0x80...0xFF, using: &rng)
                text[Int.random(in: 0..<text.count, using: &rng)] = byte
            } else if round % 3 == 2 {
                text.removeLast()
            }
            let want = reference(text)
            #expect(run(path.isa, text) == want)
            for cut in 0...text.count {
                let got = run(path.isa, text, cuts: [cut])
                if got != want {
                    Issue.record("cut at \(cut) of \(text.count): got \(got), want \(want)")
                    return
                }
            }
            for _ in 0..<40 {
                let cuts = (0..<Int.random(in: 2...9, using: &rng)).map { _ in
                    Int.random(in: 0...text.count, using: &rng)
                }.sorted()
                #expect(run(path.isa, text, cuts: cuts) == want, "cuts \(cuts)")
            }
        }
    }

    /// The vector paths agree with the scalar path on the same inputs (including the
    /// SIMD-sized ones and errors at each position of a 128-byte window).
    @Test(arguments: UTF8Path.supported)
    func agreesWithScalarEverywhere(path: UTF8Path) {
        var rng = SeededRandom(seed: 0xA9EE_0000)
        let base = randomText(length: 200, &rng)
        for position in 0..<min(base.count, 160) {
            for replacement: UInt8 in [0x80, 0xC0, 0xE0, 0xED, 0xF4, 0xFF] {
                var text = base
                text[position] = replacement
                #expect(
                    run(path.isa, text) == run(CWS_ISA_SCALAR, text),
                    "\(replacement) at \(position)")
            }
        }
    }

    @Test func failedStateStaysFailed() {
        for path in UTF8Path.supported {
            var state = cws_utf8()
            cws_utf8_init(&state)
            var offset = -1
            let bad: [UInt8] = [0x61, 0x62, 0xFF]
            #expect(!cws_utf8_feed_isa(path.isa, &state, bad, bad.count, &offset))
            #expect(offset == 2)
            let good = Array("hello, world".utf8)
            offset = -1
            #expect(!cws_utf8_feed_isa(path.isa, &state, good, good.count, &offset))
            #expect(offset == 0)
            #expect(!cws_utf8_finish(&state))
            cws_utf8_init(&state)  // a new message starts clean
            #expect(cws_utf8_feed_isa(path.isa, &state, good, good.count, nil))
            #expect(cws_utf8_finish(&state))
        }
    }

    @Test func dispatchedEntryPoints() {
        let good = Array("Grüße, 世界 🌍".utf8)
        let bad = good + [0xED, 0xA0, 0x80]
        #expect(cws_utf8_validate(good, good.count))
        #expect(!cws_utf8_validate(bad, bad.count))
        #expect(!cws_utf8_validate(good, good.count - 1))  // cuts the globe
        #expect(cws_utf8_validate(nil, 0))
        var state = cws_utf8()
        var offset = -1
        #expect(!cws_utf8_feed(&state, bad, bad.count, &offset))
        #expect(offset == good.count + 1)
        // A zeroed state is a fresh one, and an empty feed changes nothing.
        state = cws_utf8()
        #expect(cws_utf8_feed(&state, nil, 0, nil))
        #expect(cws_utf8_finish(&state))
    }

    /// Paths this CPU lacks fall back to the scalar one instead of failing.
    @Test func unsupportedPathsFallBack() {
        let text = Array(String(repeating: "ça va? ", count: 20).utf8) + [0xC3]
        for path in UTF8Path.unsupported {
            #expect(run(path.isa, text) == .open)
            #expect(run(path.isa, text + [0x28]) == .failed(at: text.count))
        }
    }
}
