// Fuzz target frame_parser: cws_parse in either role, with RSV bits, UTF-8 checking,
// limits and event capacity taken from the input, fed whole and in random pieces.
//
// Input: [flags] [capacity] [split seed] [frame limit: kind, u16] [message limit: kind,
// u16], then the byte stream. flags: bit 0 client role, bit 1 validate UTF-8, bits 2-4
// the allowed RSV bits.
//
// Checks: every event is well formed (lengths, flags, pointers into the buffer or the
// parser); the pieces give exactly the frames and status of the whole stream; and an
// independent model (RFC 6455 section 5, written here) decides which complete frames
// are acceptable: the parser must deliver exactly those before the first bad one, and
// fail there with a close code of a rule the frame breaks.
import CWebSocket

enum FrameParserFuzz {
    struct Settings {
        var role: cws_role
        var validateUTF8: Bool
        var allowedRSV: UInt8
        var capacity: Int
        var maxFrame: UInt64
        var maxMessage: UInt64
    }

    /// A frame as the parser delivered it, or as the model decoded it.
    struct Frame: Equatable {
        var fin: Bool
        var rsv: UInt8
        var opcode: UInt8
        var payload: [UInt8]
    }

    static func run(_ data: [UInt8]) throws {
        var input = FuzzInput(data)
        let flags = input.byte()
        let capacity = input.int(in: 1...8)
        let splitSeed = input.byte()
        let maxFrame = limit(&input)
        let maxMessage = limit(&input)
        let settings = Settings(
            role: flags & 1 == 1 ? CWS_ROLE_CLIENT : CWS_ROLE_SERVER, validateUTF8: flags & 2 != 0,
            allowedRSV: (flags >> 2 & 7) << 4, capacity: capacity, maxFrame: maxFrame,
            maxMessage: maxMessage)
        let stream = input.rest()

        let whole = try parse(stream, settings, pieces: [stream.count], capacity: 64)
        let split = try parse(stream, settings, pieces: fuzzPieces(count: stream.count, seed: splitSeed),
                              capacity: settings.capacity)
        try fuzzRequire(whole.frames == split.frames, "pieces changed the frames")
        try fuzzRequire(whole.status == split.status, "pieces changed the status: \(whole.status) vs \(split.status)")
        if whole.status != CWS_OK {
            let code = cws_status_close_code(whole.status)
            try fuzzRequire([1002, 1007, 1009].contains(code), "peer error \(whole.status) maps to \(code)")
        }

        let (model, firstBad) = modelFrames(stream, settings)
        if let firstBad {
            try fuzzRequire(whole.status != CWS_OK, "model frame \(firstBad.index) is bad but the parser accepted it")
            try fuzzRequire(whole.frames.count == firstBad.index,
                            "parser delivered \(whole.frames.count) frames, the model \(firstBad.index) good ones")
            let code = cws_status_close_code(whole.status)
            try fuzzRequire(firstBad.codes.contains(code),
                            "parser failed with \(whole.status) (\(code)), the model expects one of \(firstBad.codes.sorted())")
        } else {
            try fuzzRequire(whole.frames.count == model.count,
                            "parser delivered \(whole.frames.count) frames, the model \(model.count)")
        }
        try fuzzRequire(Array(model.prefix(whole.frames.count)) == whole.frames, "payloads differ from the model")
    }

    /// A limit: the default, no limit, or a small value (so that limits are hit).
    private static func limit(_ input: inout FuzzInput) -> UInt64 {
        let kind = input.byte() % 4
        let value = UInt64(input.uint16())
        switch kind {
        case 0: return 16 << 20  // the default of both limits
        case 1: return .max
        default: return value
        }
    }

    /// Feeds `stream` in pieces of the given sizes and collects the complete frames, after
    /// checking every event.
    static func parse(_ stream: [UInt8], _ s: Settings, pieces: [Int], capacity: Int) throws
        -> (frames: [Frame], status: cws_status)
    {
        var parser = cws_parser()
        cws_parser_init(&parser, s.role)
        parser.max_frame_size = s.maxFrame
        parser.max_message_size = s.maxMessage
        parser.allowed_rsv = s.allowedRSV
        parser.validate_utf8 = s.validateUTF8 ? 1 : 0
        var frames: [Frame] = []
        var current: Frame?
        var currentLength: UInt64 = 0
        var messageOpcode: UInt8 = 0
        var events = [cws_event](repeating: cws_event(), count: capacity)
        var start = 0
        for size in pieces {
            var piece = Array(stream[start..<start + size])
            start += size
            var offset = 0
            var rounds = 0
            repeat {
                rounds += 1
                try fuzzRequire(rounds <= piece.count + 2, "no progress on a piece")
                var consumed = 0
                var count = 0
                let status = piece.withUnsafeMutableBufferPointer { buf in
                    withUnsafeMutablePointer(to: &parser) { p in
                        cws_parse(p, buf.baseAddress.map { $0 + offset }, buf.count - offset, &consumed,
                                  &events, capacity, &count)
                    }
                }
                try fuzzRequire(consumed <= piece.count - offset && count <= capacity, "consumed or count too large")
                for e in events.prefix(count) {
                    try checkEvent(e, &parser, piece, s)
                    let payload = e.length > 0 ? Array(UnsafeBufferPointer(start: e.data, count: e.length)) : []
                    if e.flags & UInt8(CWS_EVENT_START) != 0 {
                        try fuzzRequire(current == nil || e.opcode & 8 != 0, "a data frame started inside another")
                        if e.opcode & 8 == 0 {
                            current = Frame(fin: e.flags & UInt8(CWS_EVENT_FIN) != 0, rsv: e.rsv,
                                            opcode: e.opcode, payload: [])
                            currentLength = e.frame_length
                            if e.opcode != 0 { messageOpcode = e.opcode }
                            try fuzzRequire(e.message_opcode == messageOpcode, "wrong message opcode")
                        }
                    }
                    if e.opcode & 8 != 0 {
                        frames.append(Frame(fin: true, rsv: e.rsv, opcode: e.opcode, payload: payload))
                        continue
                    }
                    try fuzzRequire(current != nil && current!.opcode == e.opcode, "chunk of no open frame")
                    current!.payload += payload
                    try fuzzRequire(UInt64(current!.payload.count) <= currentLength, "frame longer than its header")
                    if e.flags & UInt8(CWS_EVENT_END) != 0 {
                        try fuzzRequire(UInt64(current!.payload.count) == currentLength, "frame ended short")
                        frames.append(current!)
                        current = nil
                    }
                }
                offset += consumed
                if status != CWS_OK {
                    // Sticky: the next call says the same and consumes nothing.
                    var c2 = 0, n2 = 0
                    let again = cws_parse(&parser, nil, 0, &c2, &events, capacity, &n2)
                    try fuzzRequire(again == status && c2 == 0 && n2 == 0, "error not sticky")
                    return (frames, status)
                }
                if count == 0 && consumed == 0 && offset < piece.count {
                    throw FuzzFailure(message: "cws_parse made no progress with \(piece.count - offset) bytes left")
                }
            } while offset < piece.count
        }
        return (frames, CWS_OK)
    }

    /// Checks one event on its own.
    private static func checkEvent(_ e: cws_event, _ parser: inout cws_parser, _ piece: [UInt8], _ s: Settings) throws {
        try fuzzRequire(UInt64(e.length) <= e.frame_length, "chunk longer than its frame")
        try fuzzRequire(e.rsv & ~s.allowedRSV == 0 && e.rsv & 0x8F == 0, "RSV bits \(e.rsv) not allowed")
        if e.length > 0 {
            let p = UInt(bitPattern: e.data)
            let inPiece = piece.withUnsafeBufferPointer { b in
                p >= UInt(bitPattern: b.baseAddress) && p + UInt(e.length) <= UInt(bitPattern: b.baseAddress) + UInt(b.count)
            }
            let inParser = withUnsafePointer(to: &parser) { q in
                p >= UInt(bitPattern: q) && p + UInt(e.length) <= UInt(bitPattern: q) + UInt(MemoryLayout<cws_parser>.size)
            }
            try fuzzRequire(inPiece || inParser, "event data outside the buffer and the parser")
        }
        if e.opcode & 8 != 0 {
            let whole = UInt8(CWS_EVENT_START | CWS_EVENT_END | CWS_EVENT_FIN)
            try fuzzRequire(e.flags == whole && UInt64(e.length) == e.frame_length && e.length <= 125,
                            "control frame not delivered whole")
            try fuzzRequire(e.message_opcode == e.opcode, "control frame with a message opcode")
        } else {
            try fuzzRequire(e.message_opcode == 1 || e.message_opcode == 2, "data event of message opcode \(e.message_opcode)")
        }
    }

    /// The model: decodes the complete frames of `stream` and finds the first that RFC
    /// 6455 (with these settings) forbids, judging frames in order like a receiver.
    static func modelFrames(_ stream: [UInt8], _ s: Settings) -> (frames: [Frame], firstBad: (index: Int, codes: Set<UInt16>)?) {
        var frames: [Frame] = []
        var at = 0
        var openMessage: (opcode: UInt8, rsv: UInt8, size: UInt64, text: [UInt8])?
        var firstBad: (index: Int, codes: Set<UInt16>)?
        while stream.count - at >= 2 {
            let b0 = stream[at], b1 = stream[at + 1]
            let fin = b0 & 0x80 != 0, rsv = b0 & 0x70, opcode = b0 & 0x0F
            let masked = b1 & 0x80 != 0
            let len7 = Int(b1 & 0x7F)
            let extra = len7 == 126 ? 2 : len7 == 127 ? 8 : 0
            let headerLength = 2 + extra + (masked ? 4 : 0)
            guard stream.count - at >= headerLength else { break }
            var length = UInt64(len7)
            if extra > 0 {
                length = stream[at + 2..<at + 2 + extra].reduce(0) { $0 << 8 | UInt64($1) }
            }
            guard length <= UInt64(stream.count - at - headerLength) else { break }
            let key = masked ? Array(stream[at + 2 + extra..<at + headerLength]) : [0, 0, 0, 0]
            let body = stream[at + headerLength..<at + headerLength + Int(length)]
            let payload = body.enumerated().map { $0.element ^ key[$0.offset % 4] }
            at += headerLength + Int(length)
            let frame = Frame(fin: fin, rsv: rsv, opcode: opcode, payload: payload)
            frames.append(frame)
            if firstBad != nil { continue }

            // The rules, in no particular order; each broken one adds its close code.
            var broken: Set<UInt16> = []
            func rule(_ holds: Bool, _ code: UInt16) { if !holds { broken.insert(code) } }
            rule([0, 1, 2, 8, 9, 10].contains(opcode), 1002)
            rule(masked == (s.role == CWS_ROLE_SERVER), 1002)
            rule(extra == 0 || (extra == 2 ? length >= 126 : length > 0xFFFF && length >> 63 == 0), 1002)
            rule(rsv & ~s.allowedRSV == 0, 1002)
            if opcode >= 8 {
                rule(fin && rsv == 0 && length <= 125, 1002)
                if opcode == 8 && broken.isEmpty && payload.count == 1 {
                    rule(false, 1002)
                } else if opcode == 8 && broken.isEmpty && payload.count >= 2 {
                    let code = Int(payload[0]) << 8 | Int(payload[1])
                    rule((1000...1003).contains(code) || (1007...1014).contains(code) || (3000...4999).contains(code), 1002)
                    rule(utf8Verdict(Array(payload[2...])) == .valid, 1007)
                }
            } else if opcode == 0 {
                rule(rsv == 0 && openMessage != nil, 1002)
                rule(length <= s.maxFrame, 1009)
                if var m = openMessage {
                    rule(length <= s.maxMessage &- m.size, 1009)
                    m.size += length
                    m.text += payload
                    openMessage = m
                }
            } else {
                rule(openMessage == nil, 1002)
                rule(length <= s.maxFrame && length <= s.maxMessage, 1009)
                openMessage = (opcode, rsv, length, payload)
            }
            // Text is checked as it arrives, so only in frames that passed the rest.
            if broken.isEmpty && opcode < 8, let m = openMessage {
                if s.validateUTF8 && m.opcode == 1 && m.rsv & 0x40 == 0 {
                    let verdict = utf8Verdict(m.text)
                    rule(fin ? verdict == .valid : !isInvalid(verdict), 1007)
                }
                if fin { openMessage = nil }
            }
            if !broken.isEmpty { firstBad = (frames.count - 1, broken) }
        }
        return (frames, firstBad)
    }

    private static func isInvalid(_ v: UTF8Verdict) -> Bool {
        if case .invalid = v { return true }
        return false
    }
}

#if FUZZ_ENTRY
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEntry(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    fuzzMain(data, size, FrameParserFuzz.run)
}
#endif
