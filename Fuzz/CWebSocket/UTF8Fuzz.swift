// Fuzz target utf8: the UTF-8 validator, differentially. Every instruction-set path the
// CPU supports (cws_utf8_feed_isa), whole and streamed in random pieces, the
// dispatching cws_utf8_validate, the scalar reference path, Swift's own decoder and the
// independent Table 3-7 check in FuzzSupport must agree on validity and on the offset
// of the first bad byte.
//
// Input: [split seed], then the text.
import CWebSocket

enum UTF8Fuzz {
    static let paths = [CWS_ISA_SCALAR, CWS_ISA_SSE2, CWS_ISA_AVX2, CWS_ISA_AVX512, CWS_ISA_NEON]
        .filter { cws_isa_supported($0) }

    static func run(_ data: [UInt8]) throws {
        var input = FuzzInput(data)
        let seed = input.byte()
        let text = input.rest()
        let expected = utf8Verdict(text)

        try fuzzRequire((String(validating: text, as: UTF8.self) != nil) == (expected == .valid),
                        "Swift's decoder disagrees with the reference: \(expected)")
        try fuzzRequire(text.withUnsafeBufferPointer { cws_utf8_validate($0.baseAddress, $0.count) } == (expected == .valid),
                        "cws_utf8_validate disagrees: expected \(expected)")
        let pieces = fuzzPieces(count: text.count, seed: seed)
        for isa in paths {
            let name = String(cString: cws_isa_name(isa))
            let whole = feed(isa, text, pieces: [text.count])
            try fuzzRequire(whole == expected, "\(name) whole: \(whole), expected \(expected)")
            let split = feed(isa, text, pieces: pieces)
            try fuzzRequire(split == expected, "\(name) in pieces \(pieces): \(split), expected \(expected)")
        }
    }

    /// Streams `text` through one path; a failure offset is made absolute, and the
    /// state must stay failed afterwards.
    static func feed(_ isa: cws_isa, _ text: [UInt8], pieces: [Int]) -> UTF8Verdict {
        var state = cws_utf8()
        cws_utf8_init(&state)
        var start = 0
        return text.withUnsafeBufferPointer { buf -> UTF8Verdict in
            for size in pieces {
                var offset = -1
                if !cws_utf8_feed_isa(isa, &state, buf.baseAddress.map { $0 + start }, size, &offset) {
                    var again = -1
                    let sticky = !cws_utf8_feed_isa(isa, &state, [0x41], 1, &again) && again == 0
                        && !cws_utf8_finish(&state)
                    // A state that forgot its failure shows up as an impossible offset.
                    return .invalid(at: sticky && offset >= 0 && offset < size ? start + offset : -1)
                }
                start += size
            }
            return cws_utf8_finish(&state) ? .valid : .unfinished
        }
    }
}

#if FUZZ_ENTRY
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEntry(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    fuzzMain(data, size, UTF8Fuzz.run)
}
#endif
