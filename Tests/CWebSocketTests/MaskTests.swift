import SeededRandom
// Masking (RFC 6455 5.3): every instruction-set path of cws_mask_isa, and the
// dispatched cws_mask / cws_mask_copy, against a byte-at-a-time reference.
import CWebSocket
import Testing

/// One instruction-set path, named in test output.
struct MaskPath: Sendable, CustomTestStringConvertible {
    let isa: cws_isa
    var testDescription: String { String(cString: cws_isa_name(isa)) }

    static let all = [CWS_ISA_SCALAR, CWS_ISA_SSE2, CWS_ISA_AVX2, CWS_ISA_AVX512, CWS_ISA_NEON]
        .map(MaskPath.init)
    static let supported = all.filter { cws_isa_supported($0.isa) }
    static let unsupported = all.filter { !cws_isa_supported($0.isa) }
}


/// The definition: byte i is XORed with key[(offset + i) % 4].
private func referenceMask(
    _ dst: UnsafeMutablePointer<UInt8>, _ src: UnsafePointer<UInt8>, _ len: Int,
    _ key: [UInt8], _ offset: Int
) -> Int {
    for i in 0..<len { dst[i] = src[i] ^ key[(offset + i) & 3] }
    return (offset + len) & 3
}

/// A 64-byte-aligned scratch buffer, so "start + k" is misaligned by exactly k.
private final class Scratch {
    let base: UnsafeMutablePointer<UInt8>
    let count: Int
    init(_ count: Int) {
        self.count = count
        base = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 64)
            .bindMemory(to: UInt8.self, capacity: max(count, 1))
        base.initialize(repeating: 0, count: max(count, 1))
    }
    deinit { base.deallocate() }

    func fillRandom(_ rng: inout SeededRandom) {
        var i = 0
        while i + 8 <= count {
            UnsafeMutableRawPointer(base + i).storeBytes(of: rng.next(), as: UInt64.self)
            i += 8
        }
        while i < count {
            base[i] = UInt8(truncatingIfNeeded: rng.next())
            i += 1
        }
    }
    func fill(_ byte: UInt8) { base.update(repeating: byte, count: count) }
    func copy(from other: Scratch) { base.update(from: other.base, count: min(count, other.count)) }
}

/// Index of the first differing byte, or nil.
private func firstMismatch(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ count: Int) -> Int? {
    for i in 0..<count where a[i] != b[i] { return i }
    return nil
}

private func randomKey(_ rng: inout SeededRandom) -> [UInt8] {
    (0..<4).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
}

@Suite struct MaskTests {
    /// Start offsets (relative to a 64-byte boundary) for dst; src gets others.
    static let alignments = [0, 1, 2, 3, 5, 8, 15, 16, 31, 32, 33, 48, 63]

    @Test("every length 0...300, key offset and alignment, in place and copying",
          arguments: MaskPath.supported)
    func matchesReference(path: MaskPath) {
        var rng = SeededRandom(seed: 0x6d61_736b + UInt64(path.isa.rawValue))
        let maxLen = 300, pad = 64
        let size = pad + 64 + maxLen + pad
        let src = Scratch(size), original = Scratch(size), dst = Scratch(size)
        let expected = Scratch(maxLen)
        var failures: [String] = []

        for len in 0...maxLen {
            for offset in 0..<4 {
                for (n, align) in Self.alignments.enumerated() {
                    let srcAlign = Self.alignments[(n + len) % Self.alignments.count]
                    let key = randomKey(&rng)
                    src.fillRandom(&rng)
                    original.copy(from: src)
                    dst.fill(0xA5)
                    let s = src.base + pad + srcAlign
                    let d = dst.base + pad + align
                    let want = referenceMask(expected.base, s, len, key, offset)
                    let label = "len \(len) offset \(offset) dst+\(align) src+\(srcAlign)"

                    // Copy: exact bytes, nothing written around dst, src untouched.
                    let got = cws_mask_isa(path.isa, d, s, len, key, offset)
                    if got != want { failures.append("copy returned \(got), \(label)") }
                    if let i = firstMismatch(d, expected.base, len) {
                        failures.append("copy byte \(i) wrong, \(label)")
                    }
                    for i in 0..<(pad + align) where dst.base[i] != 0xA5 {
                        failures.append("copy wrote before dst at -\(pad + align - i), \(label)")
                        break
                    }
                    for i in (pad + align + len)..<size where dst.base[i] != 0xA5 {
                        failures.append("copy wrote after dst at +\(i - pad - align - len), \(label)")
                        break
                    }
                    if let i = firstMismatch(src.base, original.base, size) {
                        failures.append("copy changed src at \(i), \(label)")
                    }

                    // In place: exact bytes, neighbours untouched.
                    let gotInPlace = cws_mask_isa(path.isa, s, s, len, key, offset)
                    if gotInPlace != want { failures.append("in place returned \(gotInPlace), \(label)") }
                    if let i = firstMismatch(s, expected.base, len) {
                        failures.append("in place byte \(i) wrong, \(label)")
                    }
                    let before = pad + srcAlign
                    if let i = firstMismatch(src.base, original.base, before) {
                        failures.append("in place wrote before buffer at \(i), \(label)")
                    }
                    if let i = firstMismatch(s + len, original.base + before + len, size - before - len) {
                        failures.append("in place wrote after buffer at +\(i), \(label)")
                    }
                    if failures.count > 10 { break }
                }
            }
        }
        #expect(failures.isEmpty, "\(failures.count) failures, first: \(failures.prefix(10))")
    }

    @Test("1 MiB + 13 random bytes at odd alignments; masking twice restores",
          arguments: MaskPath.supported)
    func largeBuffer(path: MaskPath) {
        var rng = SeededRandom(seed: 0x1a26e + UInt64(path.isa.rawValue))
        let len = (1 << 20) + 13
        let src = Scratch(len + 64), original = Scratch(len + 64)
        let dst = Scratch(len + 64 + 128), expected = Scratch(len)
        for (srcAlign, dstAlign, offset) in [(0, 0, 0), (5, 3, 1), (13, 62, 2), (3, 3, 3)] {
            src.fillRandom(&rng)
            original.copy(from: src)
            dst.fill(0x5A)
            let key = randomKey(&rng)
            let s = src.base + srcAlign
            let d = dst.base + 64 + dstAlign
            let want = referenceMask(expected.base, s, len, key, offset)

            #expect(cws_mask_isa(path.isa, d, s, len, key, offset) == want)
            #expect(firstMismatch(d, expected.base, len) == nil)
            #expect(firstMismatch(src.base, original.base, src.count) == nil, "src changed")
            #expect((0..<(64 + dstAlign)).allSatisfy { dst.base[$0] == 0x5A }, "wrote before dst")
            #expect((64 + dstAlign + len..<dst.count).allSatisfy { dst.base[$0] == 0x5A },
                    "wrote after dst")

            #expect(cws_mask_isa(path.isa, s, s, len, key, offset) == want)
            #expect(firstMismatch(s, expected.base, len) == nil)
            #expect(cws_mask_isa(path.isa, s, s, len, key, offset) == want)
            #expect(firstMismatch(src.base, original.base, src.count) == nil,
                    "masking twice did not restore the input")
        }
    }

    @Test("16 MiB once through the dispatched entry points")
    func sixteenMiB() {
        var rng = SeededRandom(seed: 16)
        let len = 16 << 20
        let buf = Scratch(len + 7), original = Scratch(len + 7), expected = Scratch(len)
        let copy = Scratch(len)
        buf.fillRandom(&rng)
        original.copy(from: buf)
        let key = randomKey(&rng)
        let p = buf.base + 7
        let want = referenceMask(expected.base, p, len, key, 3)

        #expect(cws_mask_copy(copy.base, p, len, key, 3) == want)
        #expect(firstMismatch(copy.base, expected.base, len) == nil)
        #expect(cws_mask(p, len, key, 3) == want)
        #expect(firstMismatch(p, expected.base, len) == nil)
        #expect(cws_mask(p, len, key, 3) == want)
        #expect(firstMismatch(buf.base, original.base, buf.count) == nil)
    }

    @Test("masking in pieces with the returned offset equals masking in one go",
          arguments: MaskPath.supported)
    func pieces(path: MaskPath) {
        var rng = SeededRandom(seed: 0x9ece_0000 + UInt64(path.isa.rawValue))
        let len = 20_000
        let whole = Scratch(len + 64), pieces = Scratch(len + 64), original = Scratch(len + 64)
        for round in 0..<40 {
            whole.fillRandom(&rng)
            pieces.copy(from: whole)
            original.copy(from: whole)
            let key = randomKey(&rng)
            let start = Int(rng.next() % 64)
            let startOffset = Int(rng.next() % 4)
            let total = round < 20 ? Int(rng.next() % 600) : Int(rng.next() % UInt64(len))
            let end = cws_mask_isa(path.isa, whole.base + start, whole.base + start, total, key, startOffset)

            var position = 0, offset = startOffset
            while position < total {
                // Mostly short pieces (every head/tail shape), sometimes long ones, some empty.
                let limit = rng.next() % 4 == 0 ? 5000 : 70
                let piece = min(Int(rng.next() % UInt64(limit)), total - position)
                let next = cws_mask_isa(path.isa, pieces.base + start + position,
                                        pieces.base + start + position, piece, key, offset)
                #expect(next == (offset + piece) % 4)
                offset = next
                position += piece
            }
            #expect(offset == end)
            #expect(end == (startOffset + total) % 4)
            #expect(firstMismatch(whole.base, pieces.base, whole.count) == nil,
                    "round \(round): pieces differ from one go (total \(total))")
        }
    }

    @Test("cws_mask and cws_mask_copy match the reference on the active path")
    func dispatched() {
        var rng = SeededRandom(seed: 0xd15)
        let maxLen = 300
        let src = Scratch(maxLen + 128), dst = Scratch(maxLen + 128 + 64)
        let original = Scratch(maxLen + 128), expected = Scratch(maxLen)
        var failures: [String] = []
        for len in 0...maxLen {
            for offset in 0..<4 {
                for align in [0, 1, 3, 7, 33, 63] {
                    let key = randomKey(&rng)
                    src.fillRandom(&rng)
                    original.copy(from: src)
                    dst.fill(0xC3)
                    let s = src.base + (align * 3) % 64, d = dst.base + 64 + align
                    let want = referenceMask(expected.base, s, len, key, offset)
                    let label = "len \(len) offset \(offset) align \(align)"

                    if cws_mask_copy(d, s, len, key, offset) != want { failures.append("copy return, \(label)") }
                    if firstMismatch(d, expected.base, len) != nil { failures.append("copy bytes, \(label)") }
                    if !(0..<(64 + align)).allSatisfy({ dst.base[$0] == 0xC3 })
                        || !((64 + align + len)..<dst.count).allSatisfy({ dst.base[$0] == 0xC3 }) {
                        failures.append("copy wrote outside dst, \(label)")
                    }
                    if firstMismatch(src.base, original.base, src.count) != nil {
                        failures.append("copy changed src, \(label)")
                    }
                    if cws_mask(s, len, key, offset) != want { failures.append("in place return, \(label)") }
                    if firstMismatch(s, expected.base, len) != nil { failures.append("in place bytes, \(label)") }
                }
            }
        }
        #expect(failures.isEmpty, "active \(String(cString: cws_isa_name(cws_isa_active()))): \(failures.prefix(10))")
    }

    @Test("key offsets are taken mod 4, on every path", arguments: MaskPath.supported)
    func offsetModFour(path: MaskPath) {
        let key: [UInt8] = [0x01, 0x02, 0x04, 0x08]
        let input = [UInt8](0..<77)
        for offset in [4, 5, 6, 7, 1_000_003, Int.max] {
            var a = input, b = input
            let r1 = a.withUnsafeMutableBufferPointer {
                cws_mask_isa(path.isa, $0.baseAddress, $0.baseAddress, $0.count, key, offset)
            }
            let r2 = b.withUnsafeMutableBufferPointer {
                cws_mask_isa(path.isa, $0.baseAddress, $0.baseAddress, $0.count, key, offset % 4)
            }
            #expect(a == b, "offset \(offset)")
            #expect(r1 == r2 && r1 == (offset % 4 + input.count) % 4, "offset \(offset)")
        }
    }

    @Test("a known vector: RFC 6455 5.7 masked \"Hello\"")
    func rfcExample() {
        let key: [UInt8] = [0x37, 0xfa, 0x21, 0x3d]
        for path in MaskPath.supported {
            var bytes = Array("Hello".utf8)
            let r = bytes.withUnsafeMutableBufferPointer {
                cws_mask_isa(path.isa, $0.baseAddress, $0.baseAddress, $0.count, key, 0)
            }
            #expect(bytes == [0x7f, 0x9f, 0x4d, 0x51, 0x58], "\(path.testDescription)")
            #expect(r == 1)
        }
    }

    @Test("unsupported paths fall back to scalar and stay correct")
    func unsupportedFallsBack() {
        var rng = SeededRandom(seed: 0xfa11)
        let src = Scratch(300), dst = Scratch(300), expected = Scratch(300)
        for path in MaskPath.unsupported {
            for len in [0, 1, 15, 64, 125, 300] {
                src.fillRandom(&rng)
                let key = randomKey(&rng)
                let want = referenceMask(expected.base, src.base, len, key, 1)
                #expect(cws_mask_isa(path.isa, dst.base, src.base, len, key, 1) == want)
                #expect(firstMismatch(dst.base, expected.base, len) == nil, "\(path.testDescription) len \(len)")
            }
        }
    }
}
